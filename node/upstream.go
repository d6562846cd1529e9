package node

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/p2p"
)

// Response size caps of the coordinator's answers.
const (
	maxSyncResponse   = 64 << 20
	maxStatusResponse = 1 << 20
	maxPushRequest    = 64 << 20
	maxStatusRequest  = 32 << 20
)

// syncLoop pulls orders: at start, every SyncInterval, and when the
// coordinator connection comes back.
//
// Each wait is SyncInterval ± 25 %, drawn anew: nodes started together (a
// fleet booted at once, a coordinator back from an outage) drift apart
// instead of syncing in lockstep.
func (n *Node) syncLoop() {
	t := time.NewTimer(syncWait(n.cfg.SyncInterval, rand.Float64))
	defer t.Stop()
	var watch coordWatch
	for {
		if err := n.syncOnce(n.ctx); n.ctx.Err() == nil {
			watch.observe(n.log, err, time.Now())
		}
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		case <-n.syncKick:
		}
		// Reset drops a fire not received yet (Go 1.23 timers).
		t.Reset(syncWait(n.cfg.SyncInterval, rand.Float64))
	}
}

// coordWatch turns the outcomes of syncs into one log line per change:
// a warning when the coordinator stops answering, an info line when it
// answers again. The failed retries in between are debug lines. Only the
// sync loop uses it.
type coordWatch struct {
	down     bool
	since    time.Time // when it went down
	failures int       // syncs failed since
}

// observe records one sync's outcome (err nil: it answered).
func (w *coordWatch) observe(log *slog.Logger, err error, now time.Time) {
	switch {
	case err == nil && w.down:
		log.Info("coordinator reachable again", "down_for", now.Sub(w.since).Round(time.Second), "failed_syncs", w.failures)
		*w = coordWatch{}
	case err == nil:
	case !w.down:
		*w = coordWatch{down: true, since: now, failures: 1}
		log.Warn("coordinator unreachable: new orders and status reports wait until it answers", "err", err)
	default:
		w.failures++
		log.Debug("sync failed", "err", err, "failed_syncs", w.failures)
	}
}

// syncWait is d ± 25 %, uniformly, with r drawing from [0, 1).
func syncWait(d time.Duration, r func() float64) time.Duration {
	return d*3/4 + time.Duration(float64(d/2)*r())
}

// syncOnce asks the coordinator for the orders above the highest sequence
// accepted, and takes each in.
func (n *Node) syncOnce(ctx context.Context) error {
	after, err := n.seqs.maxSeq()
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, n.cfg.CallTimeout)
	defer cancel()
	// Window asks again for orders this node may have missed below its
	// highest sequence that it would still accept; it ignores those it
	// holds already (intake).
	req := &core.SyncRequest{AfterSeq: after, Window: core.ReplayWindow, Info: n.info(), SeenMembers: n.SiteMembers(),
		Clock: n.cfg.now().UTC(), LastRTT: time.Duration(n.lastRTT.Load()), MembersVersion: n.membersVersion(),
		GossipKeys: n.gossipKeyIDs()}
	sent := time.Now()
	resp, err := p2p.Call[core.SyncRequest, core.SyncResponse](cctx, n.h, n.coord.ID, core.ProtoSync, req, maxSyncResponse)
	if err != nil {
		return fmt.Errorf("node: sync: %w", err)
	}
	n.lastRTT.Store(int64(time.Since(sent)))
	if _, err := n.adoptMemberList(resp.MemberList); err != nil {
		n.log.Warn("the coordinator's member list does not check out; keeping the one held", "err", err)
	}
	if resp.GossipRing != nil {
		n.settleGossip(resp.GossipRing)
	}
	for _, env := range resp.Orders {
		n.intake(env)
	}
	n.rejoin(resp.SiteMembers)
	n.warnUnreachable(resp.UnreachableBy[:min(len(resp.UnreachableBy), core.MaxUnreachable)])
	n.probeMembers()
	n.republishMeasured()
	return nil
}

func (n *Node) info() core.NodeInfo {
	addrs := n.h.Addrs()
	out := make([]string, 0, min(len(addrs), 16))
	for _, a := range addrs[:min(len(addrs), 16)] {
		out = append(out, a.String())
	}
	return core.NodeInfo{Hostname: n.enr.Name, OS: runtime.GOOS, Arch: runtime.GOARCH, Version: Version, Addrs: out,
		GossipAddr: n.gossipAddr(), Relay: n.IsRelay(), Traffic: n.traffic(), Unreachable: n.unreachablePeers()}
}

// sendStatus delivers one outbox batch upward: through the site's relay,
// or straight to the coordinator when this node is the relay, no relay
// answers, or the relay's answer lacks the coordinator's signed receipt
// for any report of the batch (a relay that acks and drops).
func (n *Node) sendStatus(ctx context.Context, b *core.StatusBatch) (*core.StatusAck, error) {
	if r := n.statusRoute(); r != "" {
		cctx, cancel := context.WithTimeout(ctx, n.cfg.CallTimeout)
		ack, err := p2p.Call[core.StatusBatch, core.StatusAck](cctx, n.h, r, core.ProtoStatus, b, maxStatusResponse)
		cancel()
		if err == nil {
			var res []string
			if res, err = n.out.receipted(b.Reports, ack); err == nil {
				if missing := slices.Index(res, ""); missing < 0 {
					return ack, nil
				}
				err = fmt.Errorf("%w: the receipt names %d of %d reports", ErrUnsignedAck, len(res)-countEmpty(res), len(res))
			}
			n.log.Warn("the relay's status ack is not the coordinator's signed receipt for the batch; sending straight to the coordinator", "relay", r, "err", err)
		} else {
			n.log.Debug("relay did not take the status batch; sending straight to the coordinator", "relay", r, "err", err)
		}
	}
	return n.sendToCoordinator(ctx, b)
}

func countEmpty(ss []string) int {
	k := 0
	for _, s := range ss {
		if s == "" {
			k++
		}
	}
	return k
}

// sendToCoordinator delivers a status batch to the coordinator.
func (n *Node) sendToCoordinator(ctx context.Context, b *core.StatusBatch) (*core.StatusAck, error) {
	cctx, cancel := context.WithTimeout(ctx, n.cfg.CallTimeout)
	defer cancel()
	return p2p.Call[core.StatusBatch, core.StatusAck](cctx, n.h, n.coord.ID, core.ProtoStatus, b, maxStatusResponse)
}

// handlePush takes in orders the coordinator (or, later, a relay) pushes.
// The gater lets only the coordinator and site peers this far; each order
// is verified on its own whoever forwarded it.
func (n *Node) handlePush(_ context.Context, from peer.ID, req *core.OrdersPush) (*core.OrdersAck, error) {
	if n.ctx.Err() != nil {
		return nil, ErrClosed
	}
	if from == n.coord.ID {
		if _, err := n.adoptMemberList(req.MemberList); err != nil {
			n.log.Warn("the member list pushed by the coordinator does not check out; keeping the one held", "err", err)
		}
		n.learnRelays(req.Relays)
	}
	accepted := 0
	for _, env := range req.Orders {
		// A relay handed the site's orders by the coordinator takes in its
		// own and passes the rest on; anyone else verifies everything.
		if env == nil || n.IsRelay() && from == n.coord.ID && !n.addressedToMe(env) {
			continue
		}
		if n.intake(env) {
			accepted++
		}
	}
	n.relayForwardOrders(from, req.Orders)
	n.log.Debug("orders pushed", "from", from, "orders", len(req.Orders), "accepted", accepted)
	return &core.OrdersAck{Accepted: accepted}, nil
}

// learnRelays learns the addresses of the other sites' relays the
// coordinator pushed: the origin may send this node, as a relay, to them
// for fragments, and them to it. Only those on the signed member list get
// through the gater (the push carries the list); entries that do not
// parse are skipped.
func (n *Node) learnRelays(ms []core.Member) {
	for _, m := range ms[:min(len(ms), core.MaxPushRelays)] {
		id, err := p2p.DecodePeerID(m.NodeID)
		if err != nil || id == n.h.ID() || !n.listedPeer(m.NodeID) {
			continue
		}
		for _, a := range m.Addrs {
			if addr, err := ma.NewMultiaddr(a); err == nil {
				n.h.Peerstore().AddAddr(id, addr, peerstore.RecentlyConnectedAddrTTL)
			}
		}
	}
}

// notifiee watches the coordinator connection: when it comes back after
// being lost, the node syncs and retries its outbox at once.
func (n *Node) notifiee() network.Notifiee {
	return &network.NotifyBundle{
		ConnectedF: func(_ network.Network, c network.Conn) {
			if c.RemotePeer() == n.coord.ID && n.lost.Swap(false) {
				signal(n.syncKick)
				signal(n.out.kick)
			}
		},
		DisconnectedF: func(net network.Network, c network.Conn) {
			if c.RemotePeer() == n.coord.ID && net.Connectedness(n.coord.ID) != network.Connected {
				n.lost.Store(true)
			}
		},
	}
}
