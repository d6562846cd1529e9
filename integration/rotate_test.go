package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/relaymesh/relaymesh/coordinator"
	"github.com/relaymesh/relaymesh/node"
	"github.com/relaymesh/relaymesh/node/site"
	"github.com/relaymesh/relaymesh/p2p"
)

// joinSiteGossip joins site's memberlist pool with keys under a fresh,
// unenrolled identity, seeded with the site's gossip addresses.
func joinSiteGossip(t *testing.T, c *cluster, siteName string, keys [][]byte) *site.Membership {
	t.Helper()
	ident, err := p2p.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(ident)
	if err != nil {
		t.Fatal(err)
	}
	sc := site.DefaultTestConfig()
	sc.Name, sc.Label, sc.Keyring = id.String(), "relaymesh/"+siteName, keys
	meta := site.Meta{NodeID: id.String(), Site: siteName, StartedAt: time.Now().Unix(), Version: node.Version}
	sc.Meta = func() site.Meta { return meta }
	var seeds []string
	for _, n := range c.coord.Nodes() {
		if n.Site == siteName && n.Alive && n.GossipAddr != "" {
			seeds = append(seeds, n.GossipAddr)
		}
	}
	m, err := site.Join(sc, seeds)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	return m
}

// restartNode starts n again on its directory.
func (c *cluster) restartNode(n *testNode) *testNode {
	c.t.Helper()
	cfg := node.TestConfig(n.dir)
	cfg.NoGossip = false
	cfg.Logger = c.log.With("who", n.name)
	ctx, cancel := context.WithCancel(context.Background())
	nn, err := node.Start(ctx, cfg)
	if err != nil {
		cancel()
		c.t.Fatalf("restart %s: %v", n.name, err)
	}
	tn := &testNode{name: n.name, site: n.site, dir: n.dir, n: nn, cancel: cancel}
	c.mu.Lock()
	c.nodes = append(c.nodes, tn)
	c.mu.Unlock()
	return tn
}

func keysOf(t *testing.T, n *testNode) [][]byte {
	t.Helper()
	k, err := node.ReadGossipKeys(n.dir)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestGossipKeyRotation: a site of three live nodes rotates its gossip key
// in three steps while its members keep seeing each other; afterwards each
// holds only the new key (in gossip.keys too), a process with the old
// keyring cannot join the site's gossip while one with the new can, and a
// fourth node, offline throughout, catches up on its first sync and joins
// again. Starting a second rotation while one runs, or rotating an unknown
// site, fails clearly.
func TestGossipKeyRotation(t *testing.T) {
	c := newCluster(t, func(cfg *coordinator.Config) { cfg.OnlineWindow = 3 * time.Second })
	all := c.addSite("a", 4, nil)
	live, away := all[:3], all[3]
	seesAll := func(ns []*testNode, want int) func() (bool, string) {
		return func() (bool, string) {
			for _, n := range ns {
				if k := n.n.SiteMembers(); k != want {
					return false, fmt.Sprintf("%s sees %d of %d", n.name, k, want)
				}
			}
			return true, ""
		}
	}
	eventually(t, 30*time.Second, "the site's four nodes see each other", seesAll(all, 4))
	old := keysOf(t, live[0])
	c.closeNode(away)
	eventually(t, 60*time.Second, "the stopped node is no longer alive", func() (bool, string) {
		for _, s := range c.coord.Sites() {
			if s.Site == "a" {
				return s.Alive == 3, fmt.Sprintf("%d alive", s.Alive)
			}
		}
		return false, "no site a"
	})
	eventually(t, 60*time.Second, "the three see each other", seesAll(live, 3))

	if _, err := c.coord.RotateSiteKey("nowhere"); !errors.Is(err, coordinator.ErrNotFound) {
		t.Fatalf("rotating an unknown site: %v, want ErrNotFound", err)
	}
	undecryptable := func() uint64 {
		var k uint64
		for _, n := range live {
			k += n.n.SiteStats().Undecryptable
		}
		return k
	}
	before := undecryptable()
	r, err := c.coord.RotateSiteKey("a")
	if err != nil {
		t.Fatal(err)
	}
	if r.Phase != coordinator.RotationAdding {
		t.Fatalf("a new rotation is %s, want %s", r.Phase, coordinator.RotationAdding)
	}
	if _, err := c.coord.RotateSiteKey("a"); !errors.Is(err, coordinator.ErrConflict) {
		t.Fatalf("a second rotation while one runs: %v, want ErrConflict", err)
	}
	phases := map[string]bool{}
	eventually(t, 60*time.Second, "the rotation is done, the site's gossip whole throughout", func() (bool, string) {
		for _, n := range live {
			if k := n.n.SiteMembers(); k != 3 {
				t.Fatalf("during the rotation (%v) %s sees %d of 3 members", phases, n.name, k)
			}
		}
		v := c.coord.KeyRotationOf("a")
		phases[v.Phase] = true
		return v.Phase == coordinator.RotationDone, fmt.Sprintf("%s, waiting for %v", v.Phase, v.Waiting)
	})
	t.Logf("phases seen: %v", phases)
	newKeys := [][]byte(nil)
	for _, n := range live {
		k := keysOf(t, n)
		if len(k) != 1 || slices.ContainsFunc(old, func(o []byte) bool { return bytes.Equal(o, k[0]) }) {
			t.Fatalf("%s holds %d keys after the rotation, or the old one", n.name, len(k))
		}
		if newKeys != nil && !bytes.Equal(newKeys[0], k[0]) {
			t.Fatalf("%s holds another key than %s", n.name, live[0].name)
		}
		newKeys = k
		if ring, ver, err := n.n.GossipKeyring(); err != nil || !slices.EqualFunc(ring, k, bytes.Equal) || ver == 0 {
			t.Fatalf("%s runs keyring version %d (%v) other than its gossip.keys", n.name, ver, err)
		}
	}
	for _, n := range live {
		if k := n.n.SiteMembers(); k != 3 {
			t.Fatalf("after the rotation %s sees %d of 3 members", n.name, k)
		}
	}

	withNew := joinSiteGossip(t, c, "a", newKeys) // the control
	eventually(t, 30*time.Second, "the new keyring joins the site", func() (bool, string) {
		return len(withNew.Members()) == 4, fmt.Sprintf("sees %d", len(withNew.Members()))
	})
	// No member ever got a packet it could not decrypt: at each step every
	// member could read what every other one wrote.
	if k := undecryptable() - before; k != 0 {
		t.Fatalf("the members failed to decrypt %d gossip packets or streams during the rotation", k)
	}
	withOld := joinSiteGossip(t, c, "a", old)
	eventually(t, 30*time.Second, "the members turned away the old keyring", func() (bool, string) {
		return undecryptable() > before, "no packet refused yet"
	})
	if k := len(withOld.Members()); k != 1 {
		t.Fatalf("with the old keyring the site's gossip shows %d members, want only itself", k)
	}

	back := c.restartNode(away)
	eventually(t, 60*time.Second, "the node offline during the rotation catches up and rejoins", func() (bool, string) {
		k := keysOf(t, back)
		if len(k) != 1 || !bytes.Equal(k[0], newKeys[0]) {
			return false, fmt.Sprintf("%s holds %d keys, not the new one", back.name, len(k))
		}
		return seesAll(append(slices.Clone(live), back), 4)()
	})
	if k := len(withOld.Members()); k != 1 {
		t.Fatalf("with the old keyring the site's gossip shows %d members, want only itself", k)
	}
	// A restart keeps the new keyring (gossip.keys and its version).
	c.closeNode(live[0])
	again := c.restartNode(live[0])
	eventually(t, 60*time.Second, "a member restarted after the rotation rejoins with the new key", func() (bool, string) {
		return seesAll([]*testNode{again, live[1], live[2], back}, 4)()
	})
	if ring, ver, err := again.n.GossipKeyring(); err != nil || len(ring) != 1 || !bytes.Equal(ring[0], newKeys[0]) || ver == 0 {
		t.Fatalf("after a restart the keyring is %d keys at version %d (%v), want the new key", len(ring), ver, err)
	}
	eventually(t, 30*time.Second, "every node reported on the three gossip-key orders", func() (bool, string) {
		k := 0
		for _, d := range c.coord.Deployments() {
			if d.Kind != coordinator.DeployKindGossipKey {
				continue
			}
			k++
			if d.State != coordinator.DeployCompleted {
				return false, fmt.Sprintf("order %s is %s", d.ID, d.State)
			}
		}
		return k == 3, fmt.Sprintf("%d gossip-key orders", k)
	})
}
