package node

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/relaymesh/relaymesh/core"
)

// Reachability: a node whose advertised address its site peers cannot
// reach (a wrong advertise, a firewall, loopback) makes its site fetch
// around it, and nothing else would say so. Every node therefore notes the
// site members it fails to connect to (its relays, and on each sync up to
// reachProbes members it has not checked for reachRecheck) and tells the
// coordinator; the coordinator shows, per node, which peers cannot reach
// it (nodes show, sites list) and tells the node, which logs a warning.
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

// probeMembers connects to a few site members this node is not connected
// to and has not checked lately, noting which fail. One probe round runs
// at a time.
func (n *Node) probeMembers() {
	n.siteMu.Lock()
	var ids []peer.ID
	for id := range n.sitePeers {
		if n.h.Network().Connectedness(id) != network.Connected {
			ids = append(ids, id)
		}
	}
	n.siteMu.Unlock()
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
			err := n.h.Connect(ctx, peer.AddrInfo{ID: id})
			cancel()
			if n.ctx.Err() != nil {
				return
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
