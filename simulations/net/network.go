package net

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

// DefaultBurst is the token buckets' burst: one chunk of fragment payload.
const DefaultBurst = 64 << 10

// Config configures a Network.
type Config struct {
	// CoordinatorUp is the coordinator's uplink, bytes/s.
	CoordinatorUp float64
	// FragmentSize is how many bytes of one (from, to) stream count as
	// one fragment, for latency: the one-way delay is paid once per
	// fragment, on its first chunk.
	FragmentSize int
	// Burst is every bucket's burst in bytes; 0 means DefaultBurst.
	Burst int
	// Now and Sleep are the clock; nil means the wall clock. Tests inject
	// a fake one.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

// SiteLink is one site's WAN link and its latencies.
type SiteLink struct {
	Up, Down float64 // WAN uplink and downlink, bytes/s
	// WANLatency is the one-way delay between the site and the outside
	// (the coordinator, or the WAN side of another site).
	WANLatency time.Duration
	// LANLatency is the one-way delay between two nodes of the site.
	LANLatency time.Duration
}

// Network is the shared shaped network. Add sites, then nodes, then hand
// each host its View.
type Network struct {
	cfg   Config
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error

	coordUp  *rate.Limiter
	coordOut atomic.Int64

	mu      sync.RWMutex
	coordID peer.ID
	sites   map[string]*site
	hosts   map[peer.ID]*host
}

type site struct {
	name     string
	up, down *rate.Limiter
	link     SiteLink
	in, out  atomic.Int64
	cut      chan struct{} // non-nil while partitioned from the coordinator; closed on heal
}

type host struct {
	id             peer.ID
	site           *site
	up, down       *rate.Limiter
	baseUp, baseDn float64

	mu     sync.Mutex
	recvd  map[peer.ID]int64 // payload bytes received per sender, for latency
	factor float64           // slow-peer divisor, 1 = normal
}

// New returns an empty network.
func New(cfg Config) (*Network, error) {
	if cfg.CoordinatorUp <= 0 {
		return nil, fmt.Errorf("%w: coordinator uplink %v", ErrBadRate, cfg.CoordinatorUp)
	}
	if cfg.Burst == 0 {
		cfg.Burst = DefaultBurst
	}
	n := &Network{cfg: cfg, now: cfg.Now, sleep: cfg.Sleep, sites: map[string]*site{}, hosts: map[peer.ID]*host{}}
	if n.now == nil {
		n.now = time.Now
	}
	if n.sleep == nil {
		n.sleep = sleepCtx
	}
	n.coordUp = n.bucket(cfg.CoordinatorUp)
	return n, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (n *Network) bucket(bps float64) *rate.Limiter {
	return rate.NewLimiter(rate.Limit(bps), n.cfg.Burst)
}

// SetCoordinator names the coordinator's peer ID, so nodes' views know
// which of their peers is the origin.
func (n *Network) SetCoordinator(id peer.ID) {
	n.mu.Lock()
	n.coordID = id
	n.mu.Unlock()
}

// AddSite adds a site and its WAN link.
func (n *Network) AddSite(name string, l SiteLink) error {
	if l.Up <= 0 || l.Down <= 0 {
		return fmt.Errorf("%w: site %s WAN up %v down %v", ErrBadRate, name, l.Up, l.Down)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.sites[name] = &site{name: name, up: n.bucket(l.Up), down: n.bucket(l.Down), link: l}
	return nil
}

// AddNode adds a node of siteName with its own uplink and downlink.
func (n *Network) AddNode(id peer.ID, siteName string, up, down float64) error {
	if up <= 0 || down <= 0 {
		return fmt.Errorf("%w: node %s up %v down %v", ErrBadRate, id, up, down)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.sites[siteName]
	if s == nil {
		return fmt.Errorf("%w: %q", ErrUnknownSite, siteName)
	}
	n.hosts[id] = &host{id: id, site: s, up: n.bucket(up), down: n.bucket(down), baseUp: up, baseDn: down,
		recvd: map[peer.ID]int64{}, factor: 1}
	return nil
}

// Partition cuts site from the coordinator: fragment bytes between them
// wait until Heal (or their context ends).
func (n *Network) Partition(siteName string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.sites[siteName]
	if s == nil {
		return fmt.Errorf("%w: %q", ErrUnknownSite, siteName)
	}
	if s.cut == nil {
		s.cut = make(chan struct{})
	}
	return nil
}

// Heal ends site's partition.
func (n *Network) Heal(siteName string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.sites[siteName]
	if s == nil {
		return fmt.Errorf("%w: %q", ErrUnknownSite, siteName)
	}
	if s.cut != nil {
		close(s.cut)
		s.cut = nil
	}
	return nil
}

// SetSlow divides node id's uplink and downlink by factor (1 restores).
func (n *Network) SetSlow(id peer.ID, factor float64) error {
	if factor <= 0 {
		return fmt.Errorf("%w: slow factor %v", ErrBadRate, factor)
	}
	n.mu.RLock()
	h := n.hosts[id]
	n.mu.RUnlock()
	if h == nil {
		return fmt.Errorf("simulations/net: unknown node %s", id)
	}
	now := n.now()
	h.mu.Lock()
	h.factor = factor
	h.mu.Unlock()
	h.up.SetLimitAt(now, rate.Limit(h.baseUp/factor))
	h.down.SetLimitAt(now, rate.Limit(h.baseDn/factor))
	return nil
}

// Stats are the shaper's byte counters: authoritative for reports.
type Stats struct {
	SiteIn         map[string]int64 // payload bytes into each site from outside it
	SiteOut        map[string]int64 // payload bytes out of each site
	CoordinatorOut int64            // payload bytes the coordinator sent
}

// Stats returns the counters so far.
func (n *Network) Stats() Stats {
	n.mu.RLock()
	defer n.mu.RUnlock()
	st := Stats{SiteIn: map[string]int64{}, SiteOut: map[string]int64{}, CoordinatorOut: n.coordOut.Load()}
	for name, s := range n.sites {
		st.SiteIn[name] = s.in.Load()
		st.SiteOut[name] = s.out.Load()
	}
	return st
}

// View returns the shaper of host self (a node, or the coordinator when
// self is the coordinator's ID or empty).
func (n *Network) View(self peer.ID) *View { return &View{n: n, self: self} }
