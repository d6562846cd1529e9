package integration

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/relaymesh/relaymesh/coordinator"
	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/node"
	"github.com/relaymesh/relaymesh/node/site"
	"github.com/relaymesh/relaymesh/p2p"
)

// TestUnenrolledKeyHolderIsNeitherMemberNorRelay: a process with a fresh
// identity the coordinator never enrolled and a keyring copied from a
// member joins the site's gossip claiming 2^40 B/s, full uptime and a huge
// cache. The members hear it, but it is on no coordinator-signed member
// list: it is not in their view, not elected relay, its streams to members
// are refused by their gaters, and a deployment runs without a report or
// fragment request reaching it.
func TestUnenrolledKeyHolderIsNeitherMemberNorRelay(t *testing.T) {
	c := newCluster(t, nil)
	honest := c.addSite("store", 3, nil)
	eventually(t, 30*time.Second, "members synced their gossip addresses", func() (bool, string) {
		k := 0
		for _, n := range c.coord.Nodes() {
			if n.GossipAddr != "" {
				k++
			}
		}
		return k == len(honest), ""
	})
	c.waitSites(map[string][]*testNode{"store": honest}, 30*time.Second)

	keys, err := node.ReadGossipKeys(honest[0].dir)
	if err != nil {
		t.Fatal(err)
	}
	ident, err := p2p.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	r := c.startRogue("store", ident, keys)
	// The keyring works: the rogue sees the whole site, and every member
	// has heard of the rogue (in its view, or left out of it).
	eventually(t, 30*time.Second, "the rogue joined the site's gossip", func() (bool, string) {
		if k := len(r.m.Members()); k != len(honest)+1 {
			return false, fmt.Sprintf("the rogue sees %d members", k)
		}
		for _, n := range honest {
			if n.n.SiteStats().Unlisted == 0 && n.n.SiteMembers() == len(honest) {
				return false, n.name + " has not heard of the rogue"
			}
		}
		return true, ""
	})
	honestIDs := map[string]bool{}
	for _, n := range honest {
		honestIDs[n.n.ID().String()] = true
	}
	check := func(when string) {
		t.Helper()
		for _, n := range honest {
			if k := n.n.SiteMembers(); k != len(honest) {
				t.Fatalf("%s: %s sees %d members, want %d (the rogue counted)", when, n.name, k, len(honest))
			}
			for _, id := range n.n.Relays() {
				if !honestIDs[id] {
					t.Fatalf("%s: %s elected %s, which is no enrolled member", when, n.name, id)
				}
			}
		}
	}
	check("after the rogue joined")

	// The gaters refuse the rogue's streams.
	for _, n := range honest {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = r.h.Connect(ctx, peer.AddrInfo{ID: n.n.ID(), Addrs: n.n.Addrs()})
		s, err := r.h.NewStream(ctx, n.n.ID(), core.ProtoStatus)
		cancel()
		if err == nil {
			_ = s.Reset()
			t.Fatalf("%s let the unenrolled rogue open a stream", n.name)
		}
	}

	rec, _ := c.publish("fix", 256<<10)
	var ids []string
	for _, n := range honest {
		ids = append(ids, n.n.ID().String())
	}
	d, err := c.coord.CreateDeployment(coordinator.DeployRequest{Packages: []string{rec.ID}, Nodes: ids})
	if err != nil {
		t.Fatal(err)
	}
	waitDeployment(t, c.coord, d.ID, len(honest), 60*time.Second)
	check("after the deployment")
	if r.reports.Load() != 0 || r.fetches.Load() != 0 {
		t.Fatalf("the rogue was handed %d reports and %d fragment requests", r.reports.Load(), r.fetches.Load())
	}
}

// TestSiteGossipKeysDoNotCross: each site has its own gossip keyring, so
// a member of site B (or whoever copied its keyring) cannot join site A's
// gossip even with A's label and A's seeds; A's own keyring can.
func TestSiteGossipKeysDoNotCross(t *testing.T) {
	c := newCluster(t, nil)
	a := c.addSite("a", 2, nil)
	b := c.addSite("b", 1, nil)
	eventually(t, 30*time.Second, "members synced their gossip addresses", func() (bool, string) {
		k := 0
		for _, n := range c.coord.Nodes() {
			if n.GossipAddr != "" {
				k++
			}
		}
		return k == len(a)+len(b), ""
	})
	keysA, err := node.ReadGossipKeys(a[0].dir)
	if err != nil {
		t.Fatal(err)
	}
	keysB, err := node.ReadGossipKeys(b[0].dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(keysA) == 0 || len(keysB) == 0 || bytes.Equal(keysA[0], keysB[0]) {
		t.Fatalf("sites a and b hold the same gossip key (%d, %d keys)", len(keysA), len(keysB))
	}
	join := func(keys [][]byte) *site.Membership {
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
		sc.Name, sc.Label, sc.Keyring = id.String(), "relaymesh/a", keys
		meta := site.Meta{NodeID: id.String(), Site: "a", StartedAt: time.Now().Unix(), Version: node.Version}
		sc.Meta = func() site.Meta { return meta }
		var seeds []string
		for _, n := range c.coord.Nodes() {
			if n.Site == "a" {
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
	withB := join(keysB)
	withA := join(keysA) // the control: site a's own keyring joins
	eventually(t, 30*time.Second, "site a's keyring joins site a", func() (bool, string) {
		return len(withA.Members()) == len(a)+1, fmt.Sprintf("sees %d", len(withA.Members()))
	})
	if k := len(withB.Members()); k != 1 {
		t.Fatalf("with site b's keyring, site a's gossip shows %d members, want only itself", k)
	}
	eventually(t, 30*time.Second, "site a's members heard of the one with a's keyring", func() (bool, string) {
		for _, n := range a {
			n.n.SiteMembers() // the counters follow the view
			if k := n.n.SiteStats().Unlisted; k != 1 {
				return false, fmt.Sprintf("%s heard of %d unlisted members", n.name, k)
			}
		}
		return true, ""
	})
	if k := len(withB.Members()); k != 1 {
		t.Fatalf("with site b's keyring, site a's gossip shows %d members, want only itself", k)
	}
}
