package integration

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/relaymesh/relaymesh/coordinator"
	"github.com/relaymesh/relaymesh/node"
	"github.com/relaymesh/relaymesh/p2p"
)

// trickleFragments makes the rogue answer every fragment request as found,
// with a plausible size, and then send one byte a second: the slow relay
// of issue 13 item 3, which held a 200 KB deployment for 3 min 52 s.
func (r *rogue) trickleFragments(t *testing.T) {
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	for _, proto := range []protocol.ID{p2p.FragmentProtocol, p2p.FragmentProtocolRedirect, p2p.FragmentProtocolSized} {
		r.h.SetStreamHandler(proto, func(s network.Stream) {
			defer func() { _ = s.Reset() }()
			r.fetches.Add(1)
			var req struct {
				CID             string `json:"cid"`
				FollowRedirects bool   `json:"follow_redirects"`
				Max             int64  `json:"max"`
			}
			if p2p.ReadMsg(s, 512, &req) != nil {
				return
			}
			size := req.Max
			if size <= 0 || size > 200<<10 {
				size = 200 << 10
			}
			if p2p.WriteMsg(s, struct {
				Found bool  `json:"found"`
				Size  int64 `json:"size"`
			}{true, size}) != nil {
				return
			}
			tk := time.NewTicker(time.Second)
			defer tk.Stop()
			for {
				select {
				case <-done:
					return
				case <-tk.C:
				}
				if _, err := s.Write([]byte{0}); err != nil {
					return
				}
			}
		})
	}
}

// TestTricklingRelayDoesNotStallDeployment: a site's elected relay answers
// every fragment request and then sends a byte a second. Members cut it at
// the throughput floor (the node defaults: 64 KiB/s after 5 s), fetch the
// manifest and the fragment elsewhere (the coordinator: the site has no
// other relay), ask the slow relay last afterwards, and a 200 KB
// deployment completes. The deadline below is a test timeout, far below
// the minutes the trickle held it before the floor.
func TestTricklingRelayDoesNotStallDeployment(t *testing.T) {
	c := newCluster(t, nil)
	honest := c.addSite("store", 3, func(cfg *node.Config) {
		cfg.NotRelay = true
		// Production timeouts: fragment timeouts derive from it.
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
	for _, n := range honest {
		ids = append(ids, n.n.ID().String())
	}
	start := time.Now()
	d, err := c.coord.CreateDeployment(coordinator.DeployRequest{Packages: []string{rec.ID}, Nodes: ids})
	if err != nil {
		t.Fatal(err)
	}
	waitDeployment(t, c.coord, d.ID, len(honest), 30*time.Second)
	t.Logf("deployment of a %d-byte package done in %s with a trickling relay; the relay was asked %d times",
		rec.Manifest.Size, time.Since(start).Round(100*time.Millisecond), r.fetches.Load())
	if r.fetches.Load() == 0 {
		t.Fatal("no node asked the trickling relay: the test did not exercise it")
	}
	for _, n := range honest {
		s := n.n.MeshStats()
		if s.TooSlow == 0 {
			t.Errorf("%s: mesh stats %+v: want the trickling relay cut at the floor", n.name, s)
		}
		t.Logf("%s: %+v", n.name, s)
	}
}
