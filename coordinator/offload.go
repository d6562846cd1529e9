package coordinator

import (
	"context"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/relaymesh/relaymesh/cache"
	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/p2p"
)

// The origin's offload: when its uplink is busy, a site relay asking for a
// fragment is sent to relays of other sites that hold it or are fetching
// it (from the origin or from another holder), so copies cross other
// sites' WAN uplinks instead of queueing behind the origin's. A holder
// still fetching answers once its copy is complete. A relay that cannot
// get it there asks the origin again without following redirects.

const (
	defaultRedirectBusy = 4
	// redirectWait is the longest a relay's request waits at a busy
	// origin for a free upload slot or a holder in another site.
	redirectWait     = 5 * time.Second
	redirectPeers    = 2       // holders named per redirect
	maxHolders       = 64      // holders remembered per fragment
	maxHeldFragments = 1 << 16 // fragments remembered; reset beyond
)

type offload struct {
	busyAt  int           // uploads running from which to redirect; <0 never
	maxWait time.Duration // redirectWait, shorter in tests
	active  atomic.Int64  // uploads running
	mu      sync.Mutex
	holders map[cid.Cid][]string // relays that got, or are getting, each fragment
	given   map[string]int       // redirects that named each relay
	changed chan struct{}        // closed when an upload ends or a holder is added
}

// poke wakes the requests waiting in redirect; o.mu is held.
func (o *offload) poke() {
	if o.changed != nil {
		close(o.changed)
		o.changed = nil
	}
}

func (o *offload) wait() <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.changed == nil {
		o.changed = make(chan struct{})
	}
	return o.changed
}

func newOffload(busy int) *offload {
	if busy == 0 {
		busy = defaultRedirectBusy
	}
	return &offload{busyAt: busy, maxWait: redirectWait, holders: map[cid.Cid][]string{}, given: map[string]int{}}
}

// countingSource serves the coordinator's store and counts the uploads
// running.
type countingSource struct {
	s cache.Store
	o *offload
}

func (f countingSource) OpenFragment(_ context.Context, c cid.Cid) (io.ReadCloser, int64, error) {
	r, n, err := f.s.Open(c)
	if err == cache.ErrNotFound {
		return nil, 0, p2p.ErrNotFound
	}
	if err != nil {
		return nil, 0, err
	}
	f.o.active.Add(1)
	return &countedReader{ReadCloser: r, o: f.o}, n, nil
}

type countedReader struct {
	io.ReadCloser
	o    *offload
	once sync.Once
}

func (r *countedReader) Close() error {
	r.once.Do(func() {
		r.o.active.Add(-1)
		r.o.mu.Lock()
		r.o.poke()
		r.o.mu.Unlock()
	})
	return r.ReadCloser.Close()
}

// served records that relay to holds f, or will shortly: it is called
// when the origin starts serving f to a relay or redirects one for it,
// and again when an upload (redirects not asked for) ends.
func (c *Coordinator) served(to peer.ID, f cid.Cid) {
	id := to.String()
	c.st.mu.RLock()
	n := c.st.nodes[id]
	relay := n != nil && n.Relay
	c.st.mu.RUnlock()
	if !relay {
		return
	}
	o := c.offload
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.holders) >= maxHeldFragments {
		o.holders = map[cid.Cid][]string{}
		o.given = map[string]int{}
	}
	hs := o.holders[f]
	if !slices.Contains(hs, id) && len(hs) < maxHolders {
		o.holders[f] = append(hs, id)
		o.poke()
	}
}

// redirect decides where a relay's request for f goes while the origin is
// busy: to up to redirectPeers live relays of other sites holding f (the
// least used first); or, when nobody holds it yet, it waits (at most
// redirectWait) for an upload slot to free up or a holder to appear.
// Either way the requester becomes a holder of f for those asking next,
// so a fragment spreads along a tree of relays. The
// origin then sends few fragments at a time at full speed, so holders
// exist early, rather than every fragment at once at a crawl. Requests of
// non-relays are never redirected or held.
func (c *Coordinator) redirect(from peer.ID, f cid.Cid) []peer.AddrInfo {
	o := c.offload
	if o.busyAt < 0 {
		return nil
	}
	deadline := time.NewTimer(o.maxWait)
	defer deadline.Stop()
	for {
		changed := o.wait()
		if o.active.Load() < int64(o.busyAt) {
			c.served(from, f)
			return nil
		}
		holders, relay := c.holders(from, f)
		if !relay {
			return nil
		}
		if len(holders) > 0 {
			c.served(from, f)
			return holders
		}
		select {
		case <-changed:
		case <-deadline.C:
			return nil
		}
	}
}

// holders names up to redirectPeers live relays outside from's site that
// hold f, the least used first, and counts them as used; relay reports
// whether from is a relay at all.
func (c *Coordinator) holders(from peer.ID, f cid.Cid) (out []peer.AddrInfo, relay bool) {
	o := c.offload
	o.mu.Lock()
	hs := slices.Clone(o.holders[f])
	o.mu.Unlock()
	now := c.now()
	type cand struct {
		id   string
		info peer.AddrInfo
	}
	var cands []cand
	c.st.mu.RLock()
	req := c.st.nodes[from.String()]
	relay = req != nil && req.Relay
	if relay {
		for _, h := range hs {
			n := c.st.nodes[h]
			if n == nil || !n.Relay || n.Site == req.Site || now.Sub(n.LastSeen) >= c.cfg.OnlineWindow {
				continue
			}
			pid, err := p2p.DecodePeerID(h)
			if err != nil {
				continue
			}
			if info := addrInfo(pid, n.Addrs); len(info.Addrs) > 0 {
				cands = append(cands, cand{h, info})
			}
		}
	}
	c.st.mu.RUnlock()
	if len(cands) == 0 {
		return nil, relay
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	slices.SortStableFunc(cands, func(a, b cand) int { return o.given[a.id] - o.given[b.id] })
	for _, cd := range cands[:min(len(cands), redirectPeers)] {
		o.given[cd.id]++
		out = append(out, cd.info)
	}
	return out, relay
}

// otherRelaysLocked lists the live relays outside site for a push to a
// relay of site; st.mu is held.
func (c *Coordinator) otherRelaysLocked(site string) []core.Member {
	now := c.now()
	var out []core.Member
	for id, n := range c.st.nodes {
		if n.Relay && n.Site != site && now.Sub(n.LastSeen) < c.cfg.OnlineWindow && len(out) < core.MaxPushRelays {
			out = append(out, core.Member{NodeID: id, Addrs: n.Addrs})
		}
	}
	slices.SortFunc(out, func(a, b core.Member) int { return strings.Compare(a.NodeID, b.NodeID) })
	return out
}

// addrInfo is id with the addresses of addrs that parse.
func addrInfo(id peer.ID, addrs []string) peer.AddrInfo {
	info := peer.AddrInfo{ID: id}
	for _, a := range addrs {
		if m, err := ma.NewMultiaddr(a); err == nil {
			info.Addrs = append(info.Addrs, m)
		}
	}
	return info
}
