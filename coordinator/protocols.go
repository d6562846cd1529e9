package coordinator

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/p2p"
)

// Request size caps of the node-facing protocols. Enrollment is the only
// one an unenrolled peer may speak, so it is small; a status batch holds
// up to MaxBatch signed reports of a few hundred bytes each.
const (
	maxEnrollBytes = 16 << 10
	maxSyncBytes   = 64 << 10
	maxStatusBytes = MaxBatch * 2 << 10
	maxSiteMembers = 16
)

// registerProtocols serves enrollment to anyone and every other protocol
// only to enrolled nodes: an unenrolled peer's sync or status stream is
// reset before a byte of it is read.
func (c *Coordinator) registerProtocols() {
	p2p.Handle(c.host, core.ProtoEnroll, maxEnrollBytes, c.handleEnroll)
	p2p.HandleAdmitted(c.host, core.ProtoSync, maxSyncBytes, c.admitNode("sync"), c.handleSync)
	p2p.HandleAdmitted(c.host, core.ProtoStatus, maxStatusBytes, c.admitNode("status report"), c.handleStatus)
}

// admitNode lets an enrolled peer's stream be read; it counts the others,
// and logs a revoked node's (at most once a minute per node).
func (c *Coordinator) admitNode(what string) func(peer.ID) bool {
	return func(p peer.ID) bool {
		if c.enrolled(p) {
			return true
		}
		c.counters.NotEnrolled.Add(1)
		if !c.refuseRevoked(p.String(), what) {
			c.log.Debug("stream of unenrolled peer reset", "peer", p)
		}
		return false
	}
}

func (c *Coordinator) handleEnroll(_ context.Context, from peer.ID, req *core.EnrollRequest) (*core.EnrollResponse, error) {
	return c.Enroll(from, req)
}

// Enroll records a node presenting a join token.
func (c *Coordinator) Enroll(from peer.ID, req *core.EnrollRequest) (*core.EnrollResponse, error) {
	pub, err := p2p.PeerPublicKey(from)
	if err != nil {
		return nil, fmt.Errorf("%w: peer %s: %w", ErrBadToken, from, err)
	}
	if err := checkInfo(&req.Info); err != nil {
		return nil, err
	}
	now := c.now().UTC()
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	if r := c.revokedLocked(from.String()); r != nil {
		c.log.Warn("enrollment refused: revoked node", "peer", from, "name", r.Name, "site", r.Site)
		return nil, fmt.Errorf("%w: node %s was revoked at %s: a revoked key never enrolls again; give the machine a new identity (remove its node directory) and enroll it afresh",
			ErrRevoked, from, r.Revoked.Format(time.RFC3339))
	}
	tok := c.st.tokens[hashToken(req.Token)]
	switch {
	case tok == nil:
		c.log.Warn("enrollment refused: unknown token", "peer", from)
		return nil, fmt.Errorf("%w: unknown token", ErrBadToken)
	case !now.Before(tok.Expires):
		c.log.Warn("enrollment refused: expired token", "peer", from, "site", tok.Site)
		return nil, fmt.Errorf("%w: token expired at %s", ErrBadToken, tok.Expires.Format(time.RFC3339))
	case tok.Uses > 0 && tok.Used >= tok.Uses:
		c.log.Warn("enrollment refused: token used up", "peer", from, "site", tok.Site)
		return nil, fmt.Errorf("%w: token already used %d of %d times", ErrBadToken, tok.Used, tok.Uses)
	}
	id := from.String()
	if err := c.nameTakenLocked(req.Info.Hostname, id); err != nil {
		c.log.Warn("enrollment refused: name in use", "peer", from, "name", req.Info.Hostname)
		return nil, err
	}
	n := c.st.nodes[id]
	if n == nil {
		n = &NodeRecord{ID: id, FirstSeen: now}
	} else {
		cp := *n
		n = &cp
	}
	n.Site, n.Tags = tok.Site, tok.Tags
	applyInfo(n, &req.Info, now)
	t := *tok
	t.Used++
	// The site's member lists change: a new version, written with the node.
	ver, verPair := c.bumpMembersLocked()
	pairs := []kvPair{jsonPair(keyNode+id, n), jsonPair(keyToken+t.Hash, &t), verPair}
	gossipKeys, keysPair, err := c.siteKeysLocked(n.Site, id)
	if err != nil {
		return nil, err
	}
	if keysPair != nil {
		pairs = append(pairs, *keysPair)
	}
	if err := c.st.write(pairs...); err != nil {
		return nil, err
	}
	c.st.nodes[id], c.st.pubkeys[id], c.st.tokens[t.Hash] = n, pub, &t
	c.st.members = ver
	c.st.siteKeys[n.Site] = gossipKeys
	c.st.known.Store(id, struct{}{})
	c.noteVersionsLocked()
	if c.host != nil {
		p2p.Promote(c.host, from)
	}
	c.log.Info("node enrolled", "node", id, "name", n.Name, "site", n.Site)
	keys := make([][]byte, len(gossipKeys))
	copy(keys, gossipKeys)
	list, err := c.memberListLocked(n.Site)
	if err != nil {
		return nil, err
	}
	return &core.EnrollResponse{
		NodeID:      id,
		Site:        n.Site,
		Tags:        n.Tags,
		OrderKeys:   []string{c.orderKeyPEM()},
		GossipKeys:  keys,
		Coordinator: c.peerID,
		SiteMembers: c.siteMembersLocked(n.Site, id, now),

		MaxOrderLifetime: int64(c.cfg.maxOrderLifetime() / time.Second),
		MemberList:       list,
	}, nil
}

func (c *Coordinator) orderKeyPEM() string {
	der, err := x509.MarshalPKIXPublicKey(c.OrderPublicKey())
	if err != nil {
		panic(err) // an ed25519 key always marshals
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func checkInfo(i *core.NodeInfo) error {
	if len(i.Hostname) > 255 || len(i.OS) > 32 || len(i.Arch) > 32 || len(i.Version) > 64 || len(i.GossipAddr) > 128 || len(i.Addrs) > 16 ||
		len(i.Unreachable) > core.MaxUnreachable {
		return fmt.Errorf("%w: node info fields too long", ErrBadRequest)
	}
	for _, a := range i.Addrs {
		if len(a) > 256 {
			return fmt.Errorf("%w: address too long", ErrBadRequest)
		}
	}
	return nil
}

func applyInfo(n *NodeRecord, i *core.NodeInfo, now time.Time) {
	n.Name, n.OS, n.Arch, n.Version = i.Hostname, i.OS, i.Arch, i.Version
	n.Addrs, n.GossipAddr, n.Relay = i.Addrs, i.GossipAddr, i.Relay
	n.Unreachable = i.Unreachable
	if i.Traffic != nil {
		n.TrafficTotal = grownTraffic(n.TrafficTotal, n.Traffic, i.Traffic)
		n.Traffic = i.Traffic
	}
	n.LastSeen = now
}

// aliveInSiteLocked counts the site's members seen within OnlineWindow.
func (c *Coordinator) aliveInSiteLocked(site string, now time.Time) int {
	k := 0
	for _, n := range c.st.nodes {
		if n.Site == site && now.Sub(n.LastSeen) < c.cfg.OnlineWindow {
			k++
		}
	}
	return k
}

// siteMembersLocked lists up to maxSiteMembers live members of site other
// than self, most recently seen first.
func (c *Coordinator) siteMembersLocked(site, self string, now time.Time) []core.Member {
	var live []*NodeRecord
	for _, n := range c.st.nodes {
		if n.Site == site && n.ID != self && now.Sub(n.LastSeen) < c.cfg.OnlineWindow && (len(n.Addrs) > 0 || n.GossipAddr != "") {
			live = append(live, n)
		}
	}
	slices.SortFunc(live, func(a, b *NodeRecord) int { return b.LastSeen.Compare(a.LastSeen) })
	if len(live) > maxSiteMembers {
		live = live[:maxSiteMembers]
	}
	out := make([]core.Member, 0, len(live))
	for _, n := range live {
		out = append(out, core.Member{NodeID: n.ID, Addrs: n.Addrs, GossipAddr: n.GossipAddr})
	}
	return out
}

func (c *Coordinator) handleSync(_ context.Context, from peer.ID, req *core.SyncRequest) (*core.SyncResponse, error) {
	return c.Sync(from.String(), req)
}

// Sync is a node's heartbeat: it records the node's addresses and returns
// the orders addressed to it with a sequence above req.AfterSeq, and those
// inside its replay window (req.Window sequences at and below AfterSeq)
// that it has not reported on: a push it missed while a later order got
// through. A node that sends no Window gets nothing below AfterSeq.
func (c *Coordinator) Sync(node string, req *core.SyncRequest) (*core.SyncResponse, error) {
	if err := checkInfo(&req.Info); err != nil {
		return nil, err
	}
	if len(req.GossipKeys) > core.MaxGossipKeys {
		return nil, fmt.Errorf("%w: %d gossip key fingerprints, at most %d", ErrBadRequest, len(req.GossipKeys), core.MaxGossipKeys)
	}
	now := c.now().UTC()
	c.st.mu.Lock()
	n := c.st.nodes[node]
	if n == nil {
		c.st.mu.Unlock()
		return nil, fmt.Errorf("%w: %s", ErrNotEnrolled, node)
	}
	cp := *n
	applyInfo(&cp, &req.Info, now)
	if !req.Clock.IsZero() {
		// The request left the node at Clock and took about half a round
		// trip to arrive.
		cp.ClockOffset = req.Clock.Add(req.LastRTT / 2).Sub(now)
		cp.ClockBound, cp.ClockKnown = req.LastRTT/2, true
	}
	if len(req.GossipKeys) > 0 {
		cp.GossipKeys = req.GossipKeys
	}
	if cp.Name != n.Name && c.nameTakenLocked(cp.Name, node) != nil {
		c.log.Warn("node asked for a name in use: keeps its name", "node", node, "name", n.Name, "asked", cp.Name)
		cp.Name = n.Name
	}
	// Persist a heartbeat when something but the time changed, or the
	// stored last-seen is getting old; memory always has the latest.
	// A relay flag or a name is in the member lists: a change is a new
	// membership version, written with the record.
	listed := cp.Relay != n.Relay || cp.Name != n.Name
	if listed || !slices.Equal(cp.Addrs, n.Addrs) || cp.GossipAddr != n.GossipAddr ||
		cp.Version != n.Version || !slices.Equal(cp.Unreachable, n.Unreachable) || !slices.Equal(cp.GossipKeys, n.GossipKeys) || now.Sub(c.st.savedSeen[node]) > time.Minute {
		pairs := []kvPair{jsonPair(keyNode+node, &cp)}
		ver := c.st.members
		if listed {
			var p kvPair
			ver, p = c.bumpMembersLocked()
			pairs = append(pairs, p)
		}
		if err := c.st.write(pairs...); err != nil {
			c.st.mu.Unlock()
			return nil, err
		}
		c.st.savedSeen[node] = now
		c.st.members = ver
	}
	c.st.nodes[node] = &cp
	if cp.Version != n.Version {
		c.noteVersionsLocked()
	}
	c.advanceRotationLocked(cp.Site, now)
	c.st.mu.Unlock()
	// The answer only reads: under the read lock, so a thousand nodes'
	// heartbeats do not queue the origin's uploads and other readers.
	c.st.mu.RLock()
	defer c.st.mu.RUnlock()
	from := req.AfterSeq - min(req.Window, req.AfterSeq)
	resp := &core.SyncResponse{Orders: c.ordersSinceLocked(node, from, req.AfterSeq, false)}
	// Members go out only to a node that sees fewer than are alive (it is
	// alone, or part of its site formed apart): at a thousand nodes the
	// lists would otherwise dominate the sync traffic.
	if req.SeenMembers == 0 || req.SeenMembers < c.aliveInSiteLocked(cp.Site, now) {
		resp.SiteMembers = c.siteMembersLocked(cp.Site, node, now)
	}
	resp.UnreachableBy = c.unreachableByLocked(&cp, now)
	resp.GossipRing = c.gossipRingLocked(cp.Site, req.GossipKeys)
	if req.MembersVersion < max(c.st.members, 1) {
		list, err := c.memberListLocked(cp.Site)
		if err != nil {
			return nil, err
		}
		resp.MemberList = list
	}
	return resp, nil
}

// ordersForLocked returns the signed orders for node above seq, in
// sequence order: deployments that still concern it and cancel orders.
func (c *Coordinator) ordersForLocked(node string, after uint64, pendingOnly bool) []*core.Envelope {
	return c.ordersSinceLocked(node, after, after, pendingOnly)
}

// ordersSinceLocked is ordersForLocked with, besides the orders above
// after, those in (from, after] that node has not reported on: deployments
// its row is still WAITING_NOTIFICATION for, and cancel orders of
// deployments it has not finished. A sync thus catches orders a node
// missed inside its replay window without resending everything it has
// done. A row marked CANCELLED at the cancel because its node was never
// notified counts as not finished until the node reports on the order:
// the node is sent the cancel order (above after and in the window, and
// by pendingOnly pushes), so that it never runs the deploy order should a
// relay or peer deliver it later.
func (c *Coordinator) ordersSinceLocked(node string, from, after uint64, pendingOnly bool) []*core.Envelope {
	type item struct {
		seq uint64
		env *core.Envelope
	}
	var items []item
	for id, d := range c.st.deps {
		row := c.st.rows[id][node]
		if row == nil {
			continue // not targeted, or unaffected
		}
		unheard := d.Cancelled && row.State == core.StateCancelled && row.LastReport.IsZero() &&
			row.Detail == detailCancelledUnheard
		if pendingOnly && row.State.Final() && !unheard {
			continue
		}
		live := !d.Cancelled && d.Expires.After(c.now())
		switch {
		case live && d.Seq > after && (!pendingOnly || row.State == core.StateWaiting):
			items = append(items, item{d.Seq, d.Order})
		case live && d.Seq > from && d.Seq <= after && row.State == core.StateWaiting:
			items = append(items, item{d.Seq, d.Order}) // missed inside the window
		}
		if d.Cancelled && d.CancelOrder != nil && (row.State != core.StateCancelled || unheard) &&
			(d.CancelSeq > after || d.CancelSeq > from && (unheard || !row.State.Final())) {
			items = append(items, item{d.CancelSeq, d.CancelOrder})
		}
	}
	slices.SortFunc(items, func(a, b item) int { return cmpU64(a.seq, b.seq) })
	out := make([]*core.Envelope, len(items))
	for i, it := range items {
		out[i] = it.env
	}
	return out
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (c *Coordinator) handleStatus(_ context.Context, from peer.ID, req *core.StatusBatch) (*core.StatusAck, error) {
	if !c.enrolled(from) {
		c.counters.NotEnrolled.Add(int64(len(req.Reports)))
		return nil, fmt.Errorf("%w: %s", ErrNotEnrolled, from)
	}
	return c.Intake(req.Reports), nil
}
