package node

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/relaymesh/relaymesh/p2p"
)

// A member keeps a connection open to each relay of its site, made when it
// first sees the relay rather than when a deployment starts. The relay is
// where its status goes and where its fragments come from first; without
// this, a deployment made every member of a site dial the relay at the
// same moment, and at a thousand nodes on two cores the relays' Noise
// handshakes missed libp2p's timeout: in a bench-20x50 trace, 2,159 of
// 3,211 manifest fetches failed to open a stream, and the rest waited
// 4.3 s (median) for one.

const (
	relayConnTag = "relaymesh-relay" // connection manager protection tag
	// relayDialJitter spreads the dials of a site's members to a newly
	// elected relay, which all see it within a gossip round.
	relayDialJitter  = time.Second
	relayDialTimeout = 20 * time.Second
)

// relayConns tracks the relays a node keeps connections to.
type relayConns struct {
	mu      sync.Mutex
	kept    map[peer.ID]bool // protected in the connection manager
	dialing map[peer.ID]bool
}

// keepRelaysConnected protects the connections to the site's current
// relays, drops the protection of former ones, and dials, after a random
// delay below relayDialJitter, each relay this node is not connected to.
func (n *Node) keepRelaysConnected(relays []string) {
	now := map[peer.ID]bool{}
	for _, r := range relays {
		if id, err := p2p.DecodePeerID(r); err == nil && id != n.h.ID() {
			now[id] = true
		}
	}
	rc := &n.relayConns
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.kept == nil {
		rc.kept, rc.dialing = map[peer.ID]bool{}, map[peer.ID]bool{}
	}
	for id := range rc.kept {
		if !now[id] {
			n.h.ConnManager().Unprotect(id, relayConnTag)
			delete(rc.kept, id)
		}
	}
	for id := range now {
		if !rc.kept[id] {
			n.h.ConnManager().Protect(id, relayConnTag)
			rc.kept[id] = true
		}
		if rc.dialing[id] || n.h.Network().Connectedness(id) == network.Connected {
			continue
		}
		if n.spawn(func() { n.dialRelay(id) }) {
			rc.dialing[id] = true
		}
	}
}

// dialRelay connects to relay id after a random delay; a failure is
// retried on the next site change or sync, and a fetch dials anyway.
func (n *Node) dialRelay(id peer.ID) {
	defer func() {
		n.relayConns.mu.Lock()
		delete(n.relayConns.dialing, id)
		n.relayConns.mu.Unlock()
	}()
	t := time.NewTimer(rand.N(relayDialJitter))
	defer t.Stop()
	select {
	case <-n.ctx.Done():
		return
	case <-t.C:
	}
	ctx, cancel := context.WithTimeout(n.ctx, relayDialTimeout)
	defer cancel()
	if err := n.h.Connect(ctx, peer.AddrInfo{ID: id}); err != nil && n.ctx.Err() == nil {
		// A failed libp2p dial is not proof that the relay's address is
		// wrong (a handshake that timed out under load, libp2p's dial
		// backoff): reachability is probed with plain TCP (reach.go).
		n.log.Debug("connecting to the site's relay failed (retried on the next site change or sync)", "relay", id, "err", err)
	}
}
