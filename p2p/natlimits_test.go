package p2p

import (
	"fmt"
	"testing"

	"github.com/libp2p/go-libp2p/core/network"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	ma "github.com/multiformats/go-multiaddr"
)

// A site behind NAT shows all its nodes as one address. libp2p's default
// resource manager refuses the 9th concurrent connection from one IPv4
// address (and more than 16 new ones in a burst); ours admits a hundred
// nodes starting at once behind one address. Loopback is exempt from
// these limits, so a loopback fleet cannot show this.
func TestManyNodesBehindOneAddress(t *testing.T) {
	t.Parallel()
	open := func(rm network.ResourceManager, n int, addr string) (int, error) {
		var scopes []network.ConnManagementScope
		defer func() {
			for _, s := range scopes {
				s.Done()
			}
		}()
		for i := range n {
			s, err := rm.OpenConnection(network.DirInbound, true, ma.StringCast(fmt.Sprintf("%s/tcp/%d", addr, 4000+i)))
			if err != nil {
				return i, err
			}
			scopes = append(scopes, s)
		}
		return n, nil
	}
	ours, err := newResourceManager(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ours.Close()
	for _, addr := range []string{"/ip4/203.0.113.7", "/ip6/2001:db8::7"} {
		if got, err := open(ours, 100, addr); err != nil {
			t.Errorf("%s: connection %d of 100 refused: %v", addr, got+1, err)
		}
	}
	// The same with libp2p's defaults, to show the test can fail.
	def, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(rcmgr.DefaultLimits.AutoScale()))
	if err != nil {
		t.Fatal(err)
	}
	defer def.Close()
	if got, err := open(def, 100, "/ip4/203.0.113.8"); err == nil {
		t.Errorf("libp2p's default limits admitted %d connections from one address; the test no longer shows the fault", got)
	}
}
