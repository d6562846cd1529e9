package coordinator

import (
	"testing"

	"github.com/relaymesh/relaymesh/core"
)

// TestAllowDowngradeIsSigned: --allow-downgrade (over the HTTP API) is in
// the signed order the nodes get, and absent from orders without it.
func TestAllowDowngradeIsSigned(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	a1 := f.a1
	for _, allow := range []bool{false, true} {
		d := f.deploy(DeployRequest{Nodes: []string{a1.ID()}, AllowDowngrade: allow})
		resp, err := f.c.Sync(a1.ID(), &core.SyncRequest{AfterSeq: d.Seq - 1, Info: a1.info()})
		if err != nil || len(resp.Orders) != 1 {
			t.Fatalf("sync after %s: %d orders, %v", d.ID, len(resp.Orders), err)
		}
		o, err := a1.ver.Check(resp.Orders[0])
		if err != nil {
			t.Fatalf("order %s refused: %v", d.ID, err)
		}
		if o.AllowDowngrade != allow {
			t.Errorf("order %s: allow_downgrade %v, want %v", d.ID, o.AllowDowngrade, allow)
		}
	}
}
