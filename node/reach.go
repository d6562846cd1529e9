package node

import (
	"context"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/p2p"
)

// Reachability: a node whose advertised address its site peers cannot
// reach (a wrong advertise, a firewall, loopback) makes its site fetch
// around it, and nothing else would say so. On each sync every node
// therefore makes a plain TCP connect to up to reachProbes site members it
// has not checked for reachRecheck, at the address they gossip, and tells
// the coordinator which failed; the coordinator shows, per node, which
// peers cannot reach it (nodes show, sites list) and tells the node, which
// logs a warning.
const (
	reachProbes  = 2
	reachRecheck = 10 * time.Minute
	reachForget  = 15 * time.Minute // a failure older than this is not reported
	reachTimeout = 10 * time.Second
)

type reachEntry struct {
	checked time.Time
	failed  bool
	err     string
}

// reachability is what this node learnt of connecting to site members.
type reachability struct {
	mu      sync.Mutex
	peers   map[peer.ID]reachEntry
	probing bool
	warned  string // the UnreachableBy list last warned about
}

func (r *reachability) note(id peer.ID, now time.Time, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.peers == nil {
		r.peers = map[peer.ID]reachEntry{}
	}
	e := reachEntry{checked: now, failed: err != nil}
	if err != nil {
		e.err = err.Error()
	}
	r.peers[id] = e
}

// unreachable lists the members that failed at the last check, within
// reachForget, sorted, at most core.MaxUnreachable.
func (r *reachability) unreachable(now time.Time, member func(peer.ID) bool) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for id, e := range r.peers {
		if !member(id) || now.Sub(e.checked) > reachForget {
			delete(r.peers, id)
			continue
		}
		if e.failed {
			out = append(out, id.String())
		}
	}
	slices.Sort(out)
	return out[:min(len(out), core.MaxUnreachable)]
}

// due returns up to n of ids not checked within reachRecheck, at random.
func (r *reachability) due(ids []peer.ID, now time.Time, n int) []peer.ID {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []peer.ID
	for _, i := range rand.Perm(len(ids)) {
		if e, ok := r.peers[ids[i]]; ok && now.Sub(e.checked) < reachRecheck {
			continue
		}
		out = append(out, ids[i])
		if len(out) == n {
			break
		}
	}
	return out
}

// unreachablePeers is NodeInfo.Unreachable.
func (n *Node) unreachablePeers() []string {
	return n.reach.unreachable(n.cfg.now(), func(id peer.ID) bool {
		n.siteMu.Lock()
		defer n.siteMu.Unlock()
		return n.sitePeers[id]
	})
}

// probeMembers checks that a few site members, not checked lately, accept
// a TCP connection at the address they gossip (the one they advertise),
// noting which do not. A plain TCP connect tests exactly that address: a
// libp2p connection may already exist the other way, or to an address the
// member did not advertise. One probe round runs at a time.
func (n *Node) probeMembers() {
	m := n.members.Load()
	if m == nil {
		return
	}
	addrs := map[peer.ID]ma.Multiaddr{}
	var ids []peer.ID
	for _, mem := range m.Members() {
		id, err := p2p.DecodePeerID(mem.Meta.NodeID)
		if err != nil || id == n.h.ID() {
			continue
		}
		a, err := ma.NewMultiaddr(mem.Meta.P2PAddr)
		if err != nil {
			continue
		}
		addrs[id] = a
		ids = append(ids, id)
	}
	todo := n.reach.due(ids, n.cfg.now(), reachProbes)
	if len(todo) == 0 {
		return
	}
	n.reach.mu.Lock()
	if n.reach.probing {
		n.reach.mu.Unlock()
		return
	}
	n.reach.probing = true
	n.reach.mu.Unlock()
	ok := n.spawn(func() {
		defer func() {
			n.reach.mu.Lock()
			n.reach.probing = false
			n.reach.mu.Unlock()
		}()
		for _, id := range todo {
			ctx, cancel := context.WithTimeout(n.ctx, reachTimeout)
			c, err := n.dialRaw(ctx, addrs[id])
			cancel()
			if c != nil {
				_ = c.Close()
			}
			if n.ctx.Err() != nil {
				return
			}
			if err != nil {
				n.log.Warn("a site member does not accept connections at the address it advertises", "member", id, "addr", addrs[id], "err", err)
			}
			n.reach.note(id, n.cfg.now(), err)
		}
	})
	if !ok {
		n.reach.mu.Lock()
		n.reach.probing = false
		n.reach.mu.Unlock()
	}
}

// dialRaw makes the plain TCP connect of a probe, on the node's network.
func (n *Node) dialRaw(ctx context.Context, a ma.Multiaddr) (net.Conn, error) {
	if n.cfg.Network != nil {
		return n.cfg.Network.Dial(ctx, a)
	}
	var d manet.Dialer
	return d.DialContext(ctx, a)
}

// warnUnreachable logs, once per change, the members that say they
// cannot reach this node.
func (n *Node) warnUnreachable(by []string) {
	key := strings.Join(by, ",")
	n.reach.mu.Lock()
	changed := key != n.reach.warned
	n.reach.warned = key
	n.reach.mu.Unlock()
	if !changed {
		return
	}
	if len(by) == 0 {
		n.log.Info("site peers reach this node again", "advertise", n.h.Addrs())
		return
	}
	n.log.Warn("site peers cannot connect to this node at the addresses it advertises: check listen/advertise and the firewall (libp2p TCP port, gossip UDP+TCP port)",
		"peers", len(by), "names", by, "advertise", n.h.Addrs())
}
