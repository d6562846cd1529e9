package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/relaymesh/relaymesh/coordinator"
	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/node"
)

const pkgSize = 16 << 20

// TestMeshFetchOncePerSite: a coordinator and 3 sites × 5 nodes; a 16 MiB
// package deployed to all crosses each site's boundary about once, every
// node installs it and holds every fragment; then a site's relay is killed
// in the middle of a second package and the site re-elects and finishes
// with little extra WAN traffic.
func TestMeshFetchOncePerSite(t *testing.T) {
	// The origin's upload is capped so the transfer lasts long enough to
	// kill a relay in the middle of it.
	c := newCluster(t, func(cfg *coordinator.Config) { cfg.MaxUploadBps = 24 << 20 })
	sites := map[string][]*testNode{}
	for _, s := range []string{"paris", "lyon", "nantes"} {
		sites[s] = c.addSite(s, 5, nil)
	}
	c.waitSites(sites, 90*time.Second)
	// Members connect to their relays when they see them, not when the
	// first deployment makes every member of a site dial at once.
	eventually(t, 30*time.Second, "members connected to their relays", func() (bool, string) {
		for _, ns := range sites {
			for _, n := range ns {
				for _, r := range n.n.Relays() {
					id, err := peer.Decode(r)
					if err != nil {
						return false, err.Error()
					}
					if id != n.n.ID() && n.n.Host().Network().Connectedness(id) != network.Connected {
						return false, n.name + " is not connected to relay " + r
					}
				}
			}
		}
		return true, ""
	})

	// 1. One package to all 15 nodes.
	rec, markers := c.publish("app", pkgSize)
	size := rec.Manifest.Size
	sentBefore := coordSent(c.coord)
	inBefore := map[string]map[string]int64{}
	for s, ns := range sites {
		inBefore[s] = siteIn(ns)
	}
	d, err := c.coord.CreateDeployment(coordinator.DeployRequest{Packages: []string{rec.ID}, All: true})
	if err != nil {
		t.Fatal(err)
	}
	waitDeployment(t, c.coord, d.ID, 15, 3*time.Minute)
	egress := coordSent(c.coord) - sentBefore
	t.Logf("coordinator egress %.3f × package size", float64(egress)/float64(size))
	if egress > int64(3.15*float64(size)) {
		t.Errorf("coordinator sent %d bytes for a %d-byte package to 3 sites: %.2f×, want ≤ 3.15×", egress, size, float64(egress)/float64(size))
	}
	for s, ns := range sites {
		in := sum(siteIn(ns)) - sum(inBefore[s])
		t.Logf("site %s: WAN in %.3f × package size", s, float64(in)/float64(size))
		for _, n := range ns {
			if b, err := os.ReadFile(filepath.Join(markers, n.name)); err != nil || string(b) != "ok" {
				t.Errorf("%s: marker %q %v", n.name, b, err)
			}
			assertHasAll(t, n, rec.Manifest)
		}
	}

	// 2. Kill a relay at about 40% of its transfer.
	rec2, _ := c.publish("app2", pkgSize)
	victimSite := "lyon"
	relayID := sites[victimSite][0].n.Relays()[0]
	var relay *testNode
	for _, n := range sites[victimSite] {
		if n.n.ID().String() == relayID {
			relay = n
		}
	}
	if relay == nil {
		t.Fatalf("relay %s not among the site's nodes", relayID)
	}
	before := siteIn(sites[victimSite])
	d2, err := c.coord.CreateDeployment(coordinator.DeployRequest{Packages: []string{rec2.ID}, All: true})
	if err != nil {
		t.Fatal(err)
	}
	frags := rec2.Manifest.FragmentCIDs()
	eventually(t, 2*time.Minute, "relay holding 40% of the package", func() (bool, string) {
		k := countHave(relay, frags)
		return k*10 >= len(frags)*4, fmt.Sprintf("%d/%d", k, len(frags))
	})
	held := countHave(relay, frags)
	lostIn := siteIn([]*testNode{relay})[relay.name] - before[relay.name]
	c.closeNode(relay)
	t.Logf("killed relay %s holding %d/%d fragments", relay.name, held, len(frags))

	var rest []*testNode
	for _, n := range sites[victimSite] {
		if n != relay {
			rest = append(rest, n)
		}
	}
	waitDeployment(t, c.coord, d2.ID, 14, 3*time.Minute)
	in := sum(siteIn(rest)) - (sum(before) - before[relay.name]) + lostIn
	t.Logf("site %s after relay failover: WAN in %.3f × package size", victimSite, float64(in)/float64(rec2.Manifest.Size))
	if in > int64(1.25*float64(rec2.Manifest.Size)) {
		t.Errorf("site %s took in %d bytes for a %d-byte package across a relay failure: %.2f×, want ≤ 1.25×",
			victimSite, in, rec2.Manifest.Size, float64(in)/float64(rec2.Manifest.Size))
	}
	for _, n := range rest {
		t.Logf("%s: %+v in=%d", n.name, n.n.MeshStats(), siteIn([]*testNode{n})[n.name]-before[n.name])
	}
	t.Logf("dead relay took in %d before it died", lostIn)
	newRelays := rest[0].n.Relays()
	if len(newRelays) == 0 || newRelays[0] == relayID {
		t.Errorf("site %s relays after the kill: %v", victimSite, newRelays)
	}
	for _, n := range rest {
		assertHasAll(t, n, rec2.Manifest)
	}
}

func countHave(n *testNode, frags []cid.Cid) int {
	k := 0
	for _, f := range frags {
		if ok, _ := n.n.Store().Has(f); ok {
			k++
		}
	}
	return k
}

func assertHasAll(t *testing.T, n *testNode, m *core.Manifest) {
	t.Helper()
	if k := countHave(n, m.FragmentCIDs()); k != len(m.Fragments) {
		t.Errorf("%s holds %d of %d fragments", n.name, k, len(m.Fragments))
	}
}

// waitDeployment waits until want rows are SUCCESS.
func waitDeployment(t *testing.T, co *coordinator.Coordinator, id string, want int, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, fmt.Sprintf("%d nodes SUCCESS in %s", want, id), func() (bool, string) {
		d, err := co.Deployment(id)
		if err != nil {
			return false, err.Error()
		}
		bad := 0
		for st, k := range d.Counts {
			if st.Final() && st != core.StateSuccess {
				bad += k
			}
		}
		if bad > 0 {
			t.Fatalf("deployment %s: failures %v", id, d.Counts)
		}
		return d.Counts[core.StateSuccess] >= want, fmt.Sprint(d.Counts)
	})
}

// TestCorruptPeer: a site member that serves bytes not matching their CID
// does not stop any node from finishing; peers detect the bad bytes, drop
// them, and avoid that member afterwards.
func TestCorruptPeer(t *testing.T) {
	c := newCluster(t, func(cfg *coordinator.Config) { cfg.MaxUploadBps = 16 << 20 })
	good := c.addSite("plant", 4, nil)
	// The corrupt member joins the same site, never as relay.
	liar := c.addSite("plant", 1, func(cfg *node.Config) {
		cfg.CorruptServing = true
		cfg.NotRelay = true
	})
	site := append(good, liar...)
	c.waitSites(map[string][]*testNode{"plant": site}, 60*time.Second)

	// The liar gets the first package honestly, so it holds fragments
	// and announces them.
	rec1, _ := c.publish("first", 4<<20)
	d1, err := c.coord.CreateDeployment(coordinator.DeployRequest{Packages: []string{rec1.ID}, Nodes: []string{liar[0].n.ID().String()}})
	if err != nil {
		t.Fatal(err)
	}
	waitDeployment(t, c.coord, d1.ID, 1, 2*time.Minute)

	// Everyone else now wants the same package; the liar offers it.
	var ids []string
	for _, n := range good {
		ids = append(ids, n.n.ID().String())
	}
	d2, err := c.coord.CreateDeployment(coordinator.DeployRequest{Packages: []string{rec1.ID}, Nodes: ids})
	if err != nil {
		t.Fatal(err)
	}
	waitDeployment(t, c.coord, d2.ID, len(good), 2*time.Minute)
	corrupt := 0
	for _, n := range good {
		st := n.n.MeshStats()
		corrupt += st.Corrupt
		assertHasAll(t, n, rec1.Manifest)
	}
	for _, n := range append(good, liar...) {
		t.Logf("%s relay=%v %+v", n.name, n.n.IsRelay(), n.n.MeshStats())
	}
	t.Logf("corrupt fragments detected and dropped: %d", corrupt)
	if corrupt == 0 {
		t.Fatalf("no node ever fetched from the corrupt peer: the test did not exercise it")
	}
	// Fetches already in flight to the liar when the first bad fragment
	// was caught may fail too (FetchConcurrency of them); after that it is
	// avoided: a second package it offers costs nobody a corrupt fetch.
	before := map[string]int{}
	for _, n := range good {
		before[n.name] = n.n.MeshStats().Corrupt
		if before[n.name] > node.TestConfig("x").FetchConcurrency {
			t.Errorf("%s fetched corrupt bytes %d times", n.name, before[n.name])
		}
	}
	rec2, _ := c.publish("second", 4<<20)
	d3, err := c.coord.CreateDeployment(coordinator.DeployRequest{Packages: []string{rec2.ID}, Nodes: []string{liar[0].n.ID().String()}})
	if err != nil {
		t.Fatal(err)
	}
	waitDeployment(t, c.coord, d3.ID, 1, 2*time.Minute)
	d4, err := c.coord.CreateDeployment(coordinator.DeployRequest{Packages: []string{rec2.ID}, Nodes: ids})
	if err != nil {
		t.Fatal(err)
	}
	waitDeployment(t, c.coord, d4.ID, len(good), 2*time.Minute)
	for _, n := range good {
		if got := n.n.MeshStats().Corrupt; got != before[n.name] {
			t.Errorf("%s fetched corrupt bytes again (%d → %d): the bad peer was not avoided", n.name, before[n.name], got)
		}
		assertHasAll(t, n, rec2.Manifest)
	}
}

// TestCorruptRelayIsVotedOut: the site's relay serves bytes that do not
// match their CID. The members that catch it say so in their site meta,
// the site elects another relay, and every node installs the package from
// the honest one.
func TestCorruptRelayIsVotedOut(t *testing.T) {
	c := newCluster(t, func(cfg *coordinator.Config) { cfg.MaxUploadBps = 16 << 20 })
	// The liar starts first and declares the best links: it is the relay.
	liar := c.addSite("plant", 1, func(cfg *node.Config) {
		cfg.CorruptServing = true
		cfg.UpBps, cfg.DownBps = 1<<30, 1<<30
	})
	good := c.addSite("plant", 4, nil)
	site := append(liar, good...)
	c.waitSites(map[string][]*testNode{"plant": site}, 60*time.Second)
	liarID := liar[0].n.ID().String()
	if r := good[0].n.Relays(); len(r) != 1 || r[0] != liarID {
		t.Fatalf("relays %v: the liar was to be the relay", r)
	}

	rec, _ := c.publish("pkg", 4<<20)
	var ids []string
	for _, n := range good {
		ids = append(ids, n.n.ID().String())
	}
	d, err := c.coord.CreateDeployment(coordinator.DeployRequest{Packages: []string{rec.ID}, Nodes: ids})
	if err != nil {
		t.Fatal(err)
	}
	waitDeployment(t, c.coord, d.ID, len(good), 2*time.Minute)
	for _, n := range good {
		assertHasAll(t, n, rec.Manifest)
	}
	eventually(t, 30*time.Second, "the site to elect another relay", func() (bool, string) {
		for _, n := range good {
			if r := n.n.Relays(); len(r) == 0 || slices.Contains(r, liarID) {
				return false, fmt.Sprintf("%s sees relays %v", n.name, r)
			}
		}
		return true, ""
	})
	corrupt := 0
	for _, n := range site {
		st := n.n.MeshStats()
		corrupt += st.Corrupt
		t.Logf("%s relay=%v %+v", n.name, n.n.IsRelay(), st)
	}
	if corrupt == 0 {
		t.Fatal("nobody caught the corrupt relay: the test did not exercise it")
	}
}
