package console

import (
	"net/http"
	"testing"
	"time"

	"github.com/relaymesh/relaymesh/core"
)

// scan sends a signed scan report for node listing updates.
func (e *env) scan(name string, updates ...core.Update) {
	e.t.Helper()
	n := e.nodes[name]
	r := &core.ScanReport{Schema: core.ScanSchema, NodeID: n.id, Seq: n.seq.Add(1), Time: time.Now().UTC().Truncate(time.Second),
		Inventory: core.Inventory{Manager: "dpkg", InstalledCount: 1, Updates: updates}}
	env, err := core.SignScan(r, n.key)
	if err != nil {
		e.t.Fatal(err)
	}
	if ack := e.c.Intake([]*core.Envelope{env}); ack.Results[0] != core.AckApplied {
		e.t.Fatalf("scan intake: %+v", ack)
	}
}

func TestPackagesPageShowsUpdates(t *testing.T) {
	e := newEnv(t, false)
	e.enroll("paris", nil, "linux", "web-1", "web-2")
	e.scan("web-1", core.Update{Name: "openssl", Arch: "amd64", Installed: "3.0.11-1~deb12u1", Candidate: "3.0.11-1~deb12u2", Security: true})
	e.scan("web-2")
	b := e.browser()
	b.login()
	wantCode(t, b.get("/packages"), http.StatusOK, "Updates and compliance", "50% of 2 nodes compliant", "2 scanned",
		"openssl", "3.0.11-1~deb12u1", "3.0.11-1~deb12u2", "paris: 1")
}
