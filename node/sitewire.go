package node

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/node/mesh"
	"github.com/relaymesh/relaymesh/node/site"
	"github.com/relaymesh/relaymesh/p2p"
)

// The node's part in its site: memberlist membership (per site, encrypted
// with the site's keyring), relay election, the fragment mesh, orders
// passed around the site and status reports relayed upward.

// startSite joins the site's pool and builds the mesh. With gossip off the
// node works straight from the coordinator.
func (n *Node) startSite() error {
	mc := mesh.Config{
		Host: n.h, Coordinator: n.coord.ID, Store: n.store, Strategy: n.cfg.Strategy,
		SiteWANDownBps: n.cfg.SiteWANDownBps, Meter: n.fragMeter, Logger: n.log,
		FragmentTimeout: n.fragTimeout, OnDistrust: n.republishMeta,
		FloorBps: n.cfg.SourceFloorBps, FloorGrace: n.cfg.SourceFloorGrace, FloorFraction: n.cfg.SourceFloorFraction,
	}
	if n.cfg.NoGossip || n.cfg.Strategy == mesh.StrategyDirect {
		mc.Strategy = mesh.StrategyDirect
		var err error
		n.mesh, err = mesh.New(mc)
		return err
	}
	keys, err := ReadGossipKeys(n.cfg.Dir)
	if err != nil {
		return err
	}
	sc := site.DefaultConfig()
	if n.cfg.FastGossip {
		sc = site.DefaultTestConfig()
	}
	sc.Name = n.enr.NodeID
	sc.BindAddr, sc.BindPort = n.cfg.GossipBind, n.cfg.GossipPort
	sc.AdvertiseAddr = gossipAdvertise(n.cfg, n.adv.route)
	sc.Label = "relaymesh/" + n.enr.Site
	sc.Keyring = keys
	// The membership names the node itself (node=<ID>): give it the
	// logger without n.log's node= so a line carries the key once.
	sc.Logger = n.cfg.logger()
	sc.Transport = n.cfg.GossipTransport
	sc.Meta = n.siteMeta
	sc.OnChange = n.onSiteChange
	sc.OnMessage = n.onSiteMessage
	sc.Admit = n.admitMember
	if n.cfg.RelaysPerSite > 0 {
		sc.RelaysPerSite = n.cfg.RelaysPerSite
	}
	n.started = time.Now().Unix()
	// The mesh exists before the membership's callbacks can run.
	mc.Members = lazyMembers{n}
	if n.mesh, err = mesh.New(mc); err != nil {
		return err
	}
	seeds := n.seeds(n.enr.SiteMembers)
	m, err := site.Join(sc, seeds)
	if err != nil {
		return fmt.Errorf("node: join site %s: %w", n.enr.Site, err)
	}
	n.members.Store(m)
	// Members seen during Join reached onSiteChange before the membership
	// was stored; take them in now.
	n.onSiteChange()
	n.spawn(func() { _ = n.mesh.Run(n.ctx) })
	n.log.Info("joined site", "site", n.enr.Site, "gossip", m.LocalAddr(), "seeds", len(seeds))
	return nil
}

// lazyMembers lets the mesh reach the membership once it exists.
type lazyMembers struct{ n *Node }

func (l lazyMembers) Members() []site.Member {
	if m := l.n.members.Load(); m != nil {
		return m.Members()
	}
	return nil
}

func (l lazyMembers) Relays() []string {
	if m := l.n.members.Load(); m != nil {
		return m.Relays()
	}
	return nil
}

func (l lazyMembers) IsRelay() bool {
	m := l.n.members.Load()
	return m != nil && m.IsRelay()
}

func (l lazyMembers) Broadcast(msg []byte) error {
	if m := l.n.members.Load(); m != nil {
		return m.Broadcast(msg)
	}
	return nil
}

func (l lazyMembers) SendTo(nodeID string, msg []byte) error {
	if m := l.n.members.Load(); m != nil {
		return m.SendTo(nodeID, msg)
	}
	return nil
}

func (l lazyMembers) Gossip(msg []byte) error {
	if m := l.n.members.Load(); m != nil {
		return m.Gossip(msg)
	}
	return nil
}

func (n *Node) seeds(ms []core.Member) []string {
	var out []string
	for _, m := range ms {
		if m.GossipAddr != "" && m.NodeID != n.enr.NodeID {
			out = append(out, m.GossipAddr)
		}
	}
	return out
}

// siteMeta is what this node gossips about itself.
func (n *Node) siteMeta() site.Meta {
	var addr string
	for _, a := range n.h.Addrs() {
		addr = a.String()
		break
	}
	used, quota := n.store.Usage()
	free := uint64(1 << 40)
	if quota > 0 {
		free = uint64(max(quota-used, 0))
	}
	meta := site.Meta{
		NodeID: n.enr.NodeID, Site: n.enr.Site, P2PAddr: addr,
		UpBps: uint64(n.cfg.UpBps), DownBps: uint64(n.cfg.DownBps),
		RelayEligible: !n.cfg.NotRelay && n.hasList(), FreeCacheBytes: free, StartedAt: n.started,
		Version: Version, Distrust: n.mesh.Distrusted(),
	}
	// What this node measured of its peers, the site's relays first
	// (they are what the election weighs), as many as the meta holds.
	meta.Measured = n.measurements()
	for len(meta.Measured) > 0 {
		if _, err := site.EncodeMeta(meta); err == nil {
			break
		}
		meta.Measured = meta.Measured[:len(meta.Measured)-1]
	}
	return meta
}

// measurements lists what the mesh measured of site peers, at most
// site.MaxMeasured: relays first, then the fastest.
func (n *Node) measurements() []site.Measurement {
	got := n.mesh.Measured()
	if len(got) == 0 {
		return nil
	}
	relays := map[peer.ID]bool{}
	if m := n.members.Load(); m != nil {
		for _, r := range m.Relays() {
			if id, err := p2p.DecodePeerID(r); err == nil {
				relays[id] = true
			}
		}
	}
	ids := make([]peer.ID, 0, len(got))
	for id := range got {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b peer.ID) int {
		if relays[a] != relays[b] {
			if relays[a] {
				return -1
			}
			return 1
		}
		if c := cmp.Compare(got[b], got[a]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	out := make([]site.Measurement, 0, min(len(ids), site.MaxMeasured))
	for _, id := range ids[:min(len(ids), site.MaxMeasured)] {
		out = append(out, site.Measurement{Peer: site.MeasureTag(id.String()), Bps: got[id]})
	}
	return out
}

// republishMeasured gossips this node's meta again when what it measured
// moved enough to matter: a peer measured or forgotten, or a rate more
// than doubled or halved since the last time.
func (n *Node) republishMeasured() {
	now := n.measurements()
	n.measuredMu.Lock()
	last := n.lastMeasured
	changed := len(now) != len(last)
	for i := 0; !changed && i < len(now); i++ {
		a, b := now[i], last[i]
		changed = a.Peer != b.Peer || a.Bps > 2*b.Bps || b.Bps > 2*a.Bps
	}
	if changed {
		n.lastMeasured = now
	}
	n.measuredMu.Unlock()
	if changed {
		n.republishMeta()
	}
}

// republishMeta gossips this node's meta again (its distrust list changed).
func (n *Node) republishMeta() {
	if m := n.members.Load(); m != nil {
		if err := m.UpdateMeta(); err != nil {
			n.log.Debug("site meta not republished", "err", err)
		}
	}
}

// onSiteChange learns the addresses of the site's members (the view
// holds listed members only; the gater admits them from the list) and,
// when this node's relay role changed, tells the coordinator.
func (n *Node) onSiteChange() {
	m := n.members.Load()
	if m == nil {
		return
	}
	for _, mem := range m.Members() {
		id, err := p2p.DecodePeerID(mem.Meta.NodeID)
		if err != nil || id == n.h.ID() {
			continue
		}
		if a, err := ma.NewMultiaddr(mem.Meta.P2PAddr); err == nil {
			n.h.Peerstore().AddAddr(id, a, peerstore.RecentlyConnectedAddrTTL)
		}
		n.siteMu.Lock()
		n.sitePeers[id] = true
		n.siteMu.Unlock()
	}
	n.mesh.MembersChanged()
	if n.cfg.Strategy != mesh.StrategyDirect {
		n.keepRelaysConnected(m.Relays())
	}
	if relay := m.IsRelay(); relay != n.wasRelay.Swap(relay) {
		n.log.Info("relay role changed", "relay", relay, "relays", m.Relays())
		signal(n.syncKick) // the coordinator learns the role on sync
	}
}

// onSiteMessage takes gossip from the site: fragment announcements for
// the mesh, and orders the relay passed on (verified like any order).
func (n *Node) onSiteMessage(from string, msg []byte) {
	for _, env := range n.mesh.HandleMessage(from, msg) {
		if env != nil && n.addressedToMe(env) {
			n.intake(env)
		}
	}
}

// addressedToMe peeks at an order's targets without trusting it; intake
// verifies it fully. Orders for other nodes of the site are the relay's to
// pass on, not this node's to refuse.
func (n *Node) addressedToMe(env *core.Envelope) bool {
	o, err := core.DecodeOrder(env.Payload)
	if err != nil {
		return true // let intake refuse and report it
	}
	return o.Addressed(n.enr.NodeID)
}

func (n *Node) isSitePeer(id peer.ID) bool {
	n.siteMu.Lock()
	defer n.siteMu.Unlock()
	return n.sitePeers[id]
}

func (n *Node) classify(id peer.ID) p2p.Class {
	switch {
	case id == n.coord.ID:
		return p2p.ClassCoordinator
	case n.isSitePeer(id):
		return p2p.ClassSameSite
	}
	return p2p.ClassOtherSite
}

// Meter is the node's byte accounting per peer class (every stream byte).
func (n *Node) Meter() *p2p.Meter { return n.meter }

// MeshStats tells where this node's fragments came from.
func (n *Node) MeshStats() mesh.Stats { return n.mesh.Stats() }

// IsRelay reports whether this node is a relay of its site now.
func (n *Node) IsRelay() bool { return n.mesh.IsRelay() }

// Relays returns the site's relays as this node sees them.
func (n *Node) Relays() []string {
	if m := n.members.Load(); m != nil {
		return m.Relays()
	}
	return nil
}

// SiteMembers returns the number of live members this node sees.
func (n *Node) SiteMembers() int {
	if m := n.members.Load(); m != nil {
		return len(m.Members())
	}
	return 0
}

// SiteStats returns the site membership's counters (zero without gossip).
func (n *Node) SiteStats() site.Stats {
	if m := n.members.Load(); m != nil {
		return m.Stats()
	}
	return site.Stats{}
}

func (n *Node) gossipAddr() string {
	if m := n.members.Load(); m != nil {
		return m.LocalAddr()
	}
	return ""
}

// rejoin joins the site members the coordinator listed that this node
// does not see: a node that started alone, or a group of nodes that formed
// apart from the rest of the site (they enrolled at the same moment and
// knew only each other), merges with the others this way.
func (n *Node) rejoin(ms []core.Member) {
	n.onSiteChange() // refresh the gater and addresses now and then
	m := n.members.Load()
	if m == nil {
		return
	}
	seen := map[string]bool{}
	for _, mem := range m.Members() {
		seen[mem.Meta.NodeID] = true
	}
	var missing []core.Member
	for _, mem := range ms {
		if !seen[mem.NodeID] {
			missing = append(missing, mem)
		}
	}
	if seeds := n.seeds(missing); len(seeds) > 0 {
		if k, err := m.Rejoin(seeds); err == nil && k > 0 {
			n.log.Info("joined site members the coordinator listed", "reached", k, "listed", len(seeds))
		}
	}
}

// relayForwardStatus is a relay's status handler: it passes a site
// member's batch to the coordinator and returns the coordinator's ack.
// Reports are signed by their nodes, so a relay cannot alter them.
func (n *Node) relayForwardStatus(ctx context.Context, from peer.ID, b *core.StatusBatch) (*core.StatusAck, error) {
	if !n.IsRelay() || !n.isSitePeer(from) {
		return nil, fmt.Errorf("node: %s is not a relay for %s", n.h.ID(), from)
	}
	return n.sendToCoordinator(ctx, b)
}

// relayForwardOrders: a relay given orders by the coordinator passes them
// to its site.
func (n *Node) relayForwardOrders(from peer.ID, envs []*core.Envelope) {
	if from != n.coord.ID || !n.IsRelay() {
		return
	}
	if err := n.mesh.BroadcastOrders(envs); err != nil {
		n.log.Debug("passing orders to the site: some members missed them (they catch up on sync)", "err", err)
	}
}

// statusRoute returns the relay to send status through, or "" for the
// coordinator.
func (n *Node) statusRoute() peer.ID {
	if n.IsRelay() || n.cfg.Strategy == mesh.StrategyDirect {
		return ""
	}
	for _, r := range n.Relays() {
		if id, err := p2p.DecodePeerID(r); err == nil && id != n.h.ID() {
			return id
		}
	}
	return ""
}

// fragmentSource is what the node serves: its cache through the mesh (a
// relay pulls through), or, with the CorruptServing fault, bad bytes.
func (n *Node) fragmentSource() p2p.FragmentSource {
	if n.cfg.CorruptServing {
		return corruptSource{n.mesh}
	}
	return n.mesh
}

type corruptSource struct{ s p2p.FragmentSource }

func (c corruptSource) OpenFragment(ctx context.Context, id cid.Cid) (io.ReadCloser, int64, error) {
	r, size, err := c.s.OpenFragment(ctx, id)
	if err != nil {
		return nil, 0, err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, 0, err
	}
	if len(b) > 0 {
		b[len(b)/2] ^= 0xff
	}
	return io.NopCloser(bytes.NewReader(b)), size, nil
}

// traffic summarises the node's byte meter for the coordinator.
func (n *Node) traffic() *core.Traffic {
	s := n.meter.Snapshot()
	return &core.Traffic{
		FromCoordinator: s[p2p.ClassCoordinator].Recv,
		FromOtherSites:  s[p2p.ClassOtherSite].Recv + s[p2p.ClassUnknown].Recv,
		FromSite:        s[p2p.ClassSameSite].Recv,
		ToSite:          s[p2p.ClassSameSite].Sent,
		ToOutside:       s[p2p.ClassCoordinator].Sent + s[p2p.ClassOtherSite].Sent + s[p2p.ClassUnknown].Sent,
	}
}
