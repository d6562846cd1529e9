package integration

import (
	"testing"
	"time"

	"github.com/relaymesh/relaymesh/coordinator"
	"github.com/relaymesh/relaymesh/node"
)

// TestRelayMeasuredSlowLosesTheRole: an enrolled member claims 2^40 B/s,
// a full cache and the longest uptime, and is elected while nobody has
// measured it (claims count up to site.ClaimCapBps, and it claims the
// best of everything else). It then trickles every fragment. The
// members measure it below the floor, gossip what they measured, and the
// site elects an honest member: the claim no longer wins.
func TestRelayMeasuredSlowLosesTheRole(t *testing.T) {
	c := newCluster(t, nil)
	honest := c.addSite("store", 3, func(cfg *node.Config) {
		// Honest links below site.ClaimCapBps: the claimer's 2^40, capped
		// there, wins the first election.
		cfg.UpBps, cfg.DownBps = 4<<20, 4<<20
		cfg.CallTimeout = node.DefaultConfig("").CallTimeout
		cfg.SourceFloorBps = node.DefaultConfig("").SourceFloorBps
		cfg.SourceFloorGrace = node.DefaultConfig("").SourceFloorGrace
	})
	eventually(t, 30*time.Second, "members synced their gossip addresses", func() (bool, string) {
		k := 0
		for _, n := range c.coord.Nodes() {
			if n.GossipAddr != "" {
				k++
			}
		}
		return k == len(honest), ""
	})
	r := c.enrolledRogue("store")
	r.trickleFragments(t)
	waitRelay(t, honest, r.id, 30*time.Second)

	rec, _ := c.publish("fix", 200<<10)
	var ids []string
	honestIDs := map[string]bool{}
	for _, n := range honest {
		ids = append(ids, n.n.ID().String())
		honestIDs[n.n.ID().String()] = true
	}
	d, err := c.coord.CreateDeployment(coordinator.DeployRequest{Packages: []string{rec.ID}, Nodes: ids})
	if err != nil {
		t.Fatal(err)
	}
	waitDeployment(t, c.coord, d.ID, len(honest), 60*time.Second)
	if r.fetches.Load() == 0 {
		t.Fatal("no member fetched from the slow relay: nothing was measured")
	}
	eventually(t, 30*time.Second, "the site elected an honest member over the slow claimer", func() (bool, string) {
		var want string
		for _, n := range honest {
			rs := n.n.Relays()
			if len(rs) != 1 || !honestIDs[rs[0]] {
				return false, n.name + " sees relays " + joinIDs(rs)
			}
			if want == "" {
				want = rs[0]
			}
			if rs[0] != want {
				return false, "members disagree: " + want + " vs " + rs[0]
			}
		}
		return true, ""
	})
	t.Logf("the slow claimer was asked %d times; the site now relays through %s", r.fetches.Load(), honest[0].n.Relays()[0])
}

func joinIDs(ids []string) string {
	out := ""
	for i, id := range ids {
		if i > 0 {
			out += ","
		}
		out += shortID(id)
	}
	return "[" + out + "]"
}

func shortID(id string) string { return id[max(0, len(id)-8):] }
