package integration

import (
	"context"
	"crypto/ed25519"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/relaymesh/relaymesh/coordinator"
	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/node"
	"github.com/relaymesh/relaymesh/node/site"
	"github.com/relaymesh/relaymesh/p2p"
)

// rogue is a hostile process holding a site's gossip keyring: a real
// libp2p host and a real memberlist member that claims the best links in
// the site and the relay role, and whose status handler acks every
// report as applied (with a receipt it signs itself) and forwards none.
type rogue struct {
	id       peer.ID
	h        host.Host
	m        *site.Membership
	reports  atomic.Int64 // status reports it was handed
	fetches  atomic.Int64 // fragment requests it got
	receipts ed25519.PrivateKey
}

// startRogue starts a rogue in site with identity ident (enrolled or
// not), the gossip keyring keys, and the members the coordinator knows in
// that site as seeds.
func (c *cluster) startRogue(siteName string, ident crypto.PrivKey, keys [][]byte) *rogue {
	c.t.Helper()
	h, err := p2p.NewHost(p2p.HostConfig{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, Identity: ident, Gater: &p2p.Gater{Open: true}})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { _ = h.Close() })
	r := &rogue{id: h.ID(), h: h}
	if r.receipts, err = core.GenerateKey(); err != nil {
		c.t.Fatal(err)
	}
	p2p.Handle(h, core.ProtoStatus, 32<<20, func(_ context.Context, _ peer.ID, b *core.StatusBatch) (*core.StatusAck, error) {
		r.reports.Add(int64(len(b.Reports)))
		ack := &core.StatusAck{}
		rc := &core.Receipt{Schema: core.ReceiptSchema}
		for _, e := range b.Reports {
			ack.Results = append(ack.Results, core.AckApplied)
			rc.Entries = append(rc.Entries, core.ReceiptEntry{Digest: core.ReportDigest(e), Result: core.AckApplied})
		}
		// A receipt, but not signed by the coordinator's order key.
		ack.Receipt, _ = core.SignReceipt(rc, r.receipts)
		return ack, nil
	})
	for _, proto := range []protocol.ID{p2p.FragmentProtocol, p2p.FragmentProtocolRedirect, p2p.FragmentProtocolSized} {
		h.SetStreamHandler(proto, func(s network.Stream) {
			r.fetches.Add(1)
			_ = s.Reset()
		})
	}
	var seeds []string
	for _, n := range c.coord.Nodes() {
		if n.Site == siteName && n.GossipAddr != "" && n.ID != r.id.String() {
			seeds = append(seeds, n.GossipAddr)
		}
	}
	sc := site.DefaultTestConfig()
	sc.Name = r.id.String()
	sc.Label = "relaymesh/" + siteName
	sc.Keyring = keys
	started := time.Now().Add(-24 * time.Hour).Unix() // the oldest member: full uptime weight
	meta := site.Meta{NodeID: r.id.String(), Site: siteName, P2PAddr: h.Addrs()[0].String(),
		UpBps: 1 << 40, DownBps: 1 << 40, MeasuredBps: 1 << 40, RelayEligible: true,
		FreeCacheBytes: 1 << 50, StartedAt: started, Version: node.Version}
	sc.Meta = func() site.Meta { return meta }
	m, err := site.Join(sc, seeds)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { _ = m.Shutdown() })
	r.m = m
	return r
}

// enrolledRogue enrolls a node in site the ordinary way (join token, its
// own identity) and runs it as a rogue instead of a node.
func (c *cluster) enrolledRogue(siteName string) *rogue {
	c.t.Helper()
	tok, err := c.coord.CreateToken(coordinator.TokenRequest{Site: siteName})
	if err != nil {
		c.t.Fatal(err)
	}
	dir := filepath.Join(c.root, "rogue-"+siteName)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := node.Enroll(ctx, node.EnrollOptions{Dir: dir, Coordinator: c.coord.P2PAddrs()[0], Token: tok.Token, Name: "rogue-" + siteName}); err != nil {
		c.t.Fatalf("enroll the rogue: %v", err)
	}
	ident, err := p2p.ReadIdentity(filepath.Join(dir, node.IdentityFile))
	if err != nil {
		c.t.Fatal(err)
	}
	keys, err := node.ReadGossipKeys(dir)
	if err != nil {
		c.t.Fatal(err)
	}
	return c.startRogue(siteName, ident, keys)
}

// waitRelay waits until every node of ns sees want as its site's only
// relay.
func waitRelay(t *testing.T, ns []*testNode, want peer.ID, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, "the site elected "+want.String(), func() (bool, string) {
		for _, n := range ns {
			if r := n.n.Relays(); len(r) != 1 || r[0] != want.String() {
				return false, n.name + " sees relays " + strings.Join(r, ",")
			}
		}
		return true, ""
	})
}

// TestRelayThatDropsReportsCannotLoseThem: the only relay-eligible member
// of a site is hostile: it takes every status batch, acks it as applied
// with a receipt of its own and forwards nothing. Nodes forget a report
// only on a receipt signed by the coordinator, so they send it again
// straight to the coordinator, and every node's SUCCESS lands.
func TestRelayThatDropsReportsCannotLoseThem(t *testing.T) {
	c := newCluster(t, nil)
	honest := c.addSite("store", 3, func(cfg *node.Config) { cfg.NotRelay = true })
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
	waitRelay(t, honest, r.id, 30*time.Second)

	rec, _ := c.publish("fix", 64<<10)
	var ids []string
	for _, n := range honest {
		ids = append(ids, n.n.ID().String())
	}
	d, err := c.coord.CreateDeployment(coordinator.DeployRequest{Packages: []string{rec.ID}, Nodes: ids})
	if err != nil {
		t.Fatal(err)
	}
	waitDeployment(t, c.coord, d.ID, len(honest), 60*time.Second)
	if r.reports.Load() == 0 {
		t.Fatal("no node sent its reports through the rogue relay: the test did not exercise it")
	}
	t.Logf("the rogue relay was handed %d reports; all %d nodes' results reached the coordinator", r.reports.Load(), len(honest))
}
