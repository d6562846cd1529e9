package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/relaymesh/relaymesh/coordinator"
	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/p2p"
)

// TestRevokedNodeIsRefusedBySitePeers: after `nodes revoke`, the revoked
// node's site peers get a member list without it and refuse it (its
// fragment requests over the connections it already had too), and the
// next deployment to the site goes to the others and completes.
func TestRevokedNodeIsRefusedBySitePeers(t *testing.T) {
	c := newCluster(t, nil)
	ns := c.addSite("paris", 3, nil)
	c.waitSites(map[string][]*testNode{"paris": ns}, 30*time.Second)
	rec, _ := c.publish("agent", 200<<10)
	d, err := c.coord.CreateDeployment(coordinator.DeployRequest{Sites: []string{"paris"}, Packages: []string{rec.ID}})
	if err != nil {
		t.Fatal(err)
	}
	waitDeployment(t, c.coord, d.ID, 3, 60*time.Second)
	frag := rec.Manifest.FragmentCIDs()[0]
	fetch := func(from, to *testNode) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := p2p.FetchFragment(ctx, from.n.Host(), to.n.ID(), frag, core.MaxFragmentSize)
		return err
	}
	revoked, peerA, peerB := ns[2], ns[0], ns[1]
	if err := fetch(revoked, peerA); err != nil {
		t.Fatalf("before the revocation: %v", err)
	}

	if _, err := c.coord.RevokeNode(revoked.name); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "site peers hold a member list without the revoked node", func() (bool, string) {
		for _, n := range []*testNode{peerA, peerB} {
			l := n.n.MemberList()
			if l == nil || l.Has(revoked.n.ID().String()) {
				return false, n.name + " still lists it"
			}
			if got := n.n.SiteMembers(); got != 2 {
				return false, fmt.Sprintf("%s sees %d members", n.name, got)
			}
		}
		return true, ""
	})
	if err := fetch(revoked, peerA); err == nil {
		t.Error("a site peer served a fragment to the revoked node")
	}
	if err := fetch(peerB, peerA); err != nil {
		t.Errorf("a listed peer was refused: %v", err)
	}
	d2, err := c.coord.CreateDeployment(coordinator.DeployRequest{Sites: []string{"paris"}, Packages: []string{c.publishExecute("after")}})
	if err != nil {
		t.Fatal(err)
	}
	if d2.Targets != 2 {
		t.Errorf("deployment after the revocation targets %d nodes, want 2", d2.Targets)
	}
	eventually(t, 60*time.Second, "deployment after the revocation COMPLETED", func() (bool, string) {
		v, err := c.coord.Deployment(d2.ID)
		if err != nil {
			return false, err.Error()
		}
		return v.State == coordinator.DeployCompleted, v.State + " " + fmt.Sprint(v.Counts)
	})
}
