// Package vnet is the simulator's network for libp2p: every simulated
// host gets an Endpoint whose Transport libp2p upgrades as it does TCP
// (Noise, yamux, the connection gater and the resource manager all run),
// but whose connections are in-memory pipes. Every byte written on one —
// orders, syncs, status, manifests, fragments, Noise and yamux framing —
// pays for the links it crosses: the sender's uplink, its site's WAN
// uplink when it leaves the site, the receiver's site WAN downlink when it
// enters another, the receiver's downlink, and the one-way latency of the
// path. Faults are the network's: a partitioned site loses its
// connections to the coordinator and cannot dial it until healed, a
// crashed endpoint loses every connection, a slow one has its links
// divided.
//
// It only uses timers and channels to wait, so it runs unchanged in real
// time and inside a testing/synctest bubble.
package vnet

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

var (
	// ErrBadRate is a link rate that is not positive.
	ErrBadRate = errors.New("vnet: link rate must be > 0")
	// ErrUnknownSite names a site that was not added.
	ErrUnknownSite = errors.New("vnet: unknown site")
	// ErrUnreachable is a dial to an address nobody has, to a crashed
	// host, or across a partition.
	ErrUnreachable = errors.New("vnet: host unreachable")
	// ErrRefused is a dial to a port nobody listens on.
	ErrRefused = errors.New("vnet: connection refused")
	// ErrReset is what a connection cut by a fault returns, on both ends,
	// and what writing to a connection whose reader has closed returns.
	ErrReset = errors.New("vnet: connection reset")
	// ErrFull is a topology with more sites or nodes than addresses.
	ErrFull = errors.New("vnet: out of addresses")
	// ErrBadAddr is a multiaddr that is not /ip4/A.B.C.D/tcp/PORT.
	ErrBadAddr = errors.New("vnet: not an /ip4/…/tcp/… address")
)

// Defaults of Config.
const (
	// DefaultChunk is the most one write moves at once: the links are
	// charged, and the receiver sees the bytes, chunk by chunk.
	DefaultChunk = 64 << 10
	// DefaultWindow is how many bytes one direction of a connection may
	// hold unread before its writer blocks, as a TCP receive window.
	DefaultWindow = 1 << 20
)

// Config configures a Network.
type Config struct {
	// CoordinatorUp is the coordinator's uplink, bytes/s.
	CoordinatorUp float64
	// Chunk and Window: 0 means DefaultChunk and DefaultWindow.
	Chunk, Window int
}

// SiteLink is one site's WAN link and its latencies.
type SiteLink struct {
	Up, Down float64 // WAN uplink and downlink, bytes/s
	// WANLatency is the one-way delay between the site and the outside
	// (the coordinator, or the WAN side of another site).
	WANLatency time.Duration
	// LANLatency is the one-way delay between two hosts of the site.
	LANLatency time.Duration
}

// Network is the shared simulated network: add sites, then the
// coordinator and the nodes, and give each host its Endpoint.
type Network struct {
	cfg Config

	mu      sync.Mutex
	sites   map[string]*site
	order   []*site
	byIP    map[string]*Endpoint
	coord   *Endpoint
	conns   map[*pair]struct{}
	coordUp *rate.Limiter
	out     atomic.Int64 // bytes the coordinator sent
}

type site struct {
	name     string
	idx      int // 1-based: the address's second byte
	link     SiteLink
	up, down *rate.Limiter
	in, out  atomic.Int64
	nodes    int
	cut      bool // partitioned from the coordinator
}

// New returns a network with no sites.
func New(cfg Config) (*Network, error) {
	if !(cfg.CoordinatorUp > 0) {
		return nil, fmt.Errorf("%w: coordinator uplink %v", ErrBadRate, cfg.CoordinatorUp)
	}
	if cfg.Chunk <= 0 {
		cfg.Chunk = DefaultChunk
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	n := &Network{cfg: cfg, sites: map[string]*site{}, byIP: map[string]*Endpoint{}, conns: map[*pair]struct{}{}}
	n.coordUp = n.bucket(cfg.CoordinatorUp)
	return n, nil
}

func (n *Network) bucket(bps float64) *rate.Limiter {
	return rate.NewLimiter(rate.Limit(bps), n.cfg.Chunk)
}

// AddSite adds a site and its WAN link.
func (n *Network) AddSite(name string, l SiteLink) error {
	if !(l.Up > 0) || !(l.Down > 0) {
		return fmt.Errorf("%w: site %s WAN up %v down %v", ErrBadRate, name, l.Up, l.Down)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.order) >= 254 {
		return fmt.Errorf("%w: at most 254 sites", ErrFull)
	}
	s := &site{name: name, idx: len(n.order) + 1, link: l, up: n.bucket(l.Up), down: n.bucket(l.Down)}
	n.sites[name] = s
	n.order = append(n.order, s)
	return nil
}

// Coordinator returns the coordinator's endpoint, 10.0.0.1, on its uplink
// (its downlink is not limited).
func (n *Network) Coordinator() *Endpoint {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.coord == nil {
		n.coord = n.newEndpoint(net.IPv4(10, 0, 0, 1), nil, n.coordUp, nil)
	}
	return n.coord
}

// AddNode adds a host to site with its own uplink and downlink (bytes/s)
// and returns its endpoint: the site's k-th node is 10.S.k/250.k%250+1.
func (n *Network) AddNode(siteName string, up, down float64) (*Endpoint, error) {
	if !(up > 0) || !(down > 0) {
		return nil, fmt.Errorf("%w: node of %s up %v down %v", ErrBadRate, siteName, up, down)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.sites[siteName]
	if s == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownSite, siteName)
	}
	k := s.nodes
	if k >= 250*256 {
		return nil, fmt.Errorf("%w: at most %d nodes per site", ErrFull, 250*256)
	}
	s.nodes++
	ip := net.IPv4(10, byte(s.idx), byte(k/250), byte(k%250+1))
	e := n.newEndpoint(ip, s, n.bucket(up), n.bucket(down))
	e.baseUp, e.baseDown = up, down
	return e, nil
}

func (n *Network) newEndpoint(ip net.IP, s *site, up, down *rate.Limiter) *Endpoint {
	e := &Endpoint{n: n, ip: ip.To4(), site: s, up: up, down: down, listeners: map[int]*listener{},
		nextPort: 40000}
	n.byIP[e.ip.String()] = e
	return e
}

// Partition cuts site from the coordinator: their connections are reset
// and neither can dial the other until Heal.
func (n *Network) Partition(siteName string) error {
	n.mu.Lock()
	s := n.sites[siteName]
	if s == nil {
		n.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrUnknownSite, siteName)
	}
	s.cut = true
	var victims []*pair
	for p := range n.conns {
		if (p.a.site == s && p.b == n.coord) || (p.b.site == s && p.a == n.coord) {
			victims = append(victims, p)
		}
	}
	n.mu.Unlock()
	for _, p := range victims {
		p.reset()
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
	s.cut = false
	return nil
}

// reachable reports whether a may reach b now. Call with n.mu held.
func (n *Network) reachable(a, b *Endpoint) bool {
	if a.crashed || b.crashed {
		return false
	}
	if a == n.coord && b.site != nil && b.site.cut {
		return false
	}
	if b == n.coord && a.site != nil && a.site.cut {
		return false
	}
	return true
}

// Stats are the network's byte counters: every byte written on a
// connection, framing included.
type Stats struct {
	SiteIn         map[string]int64 // bytes into each site from outside it
	SiteOut        map[string]int64 // bytes out of each site
	CoordinatorOut int64            // bytes the coordinator sent
}

// Stats returns the counters so far.
func (n *Network) Stats() Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	st := Stats{SiteIn: map[string]int64{}, SiteOut: map[string]int64{}, CoordinatorOut: n.out.Load()}
	for name, s := range n.sites {
		st.SiteIn[name] = s.in.Load()
		st.SiteOut[name] = s.out.Load()
	}
	return st
}

// route is what one direction of a connection from a to b pays: the links
// it crosses, the counters it adds to and the one-way latency.
type route struct {
	links    []*rate.Limiter
	counters []*atomic.Int64
	latency  time.Duration
}

func (n *Network) route(a, b *Endpoint) route {
	var r route
	r.links = append(r.links, a.up)
	if a == n.coord {
		r.counters = append(r.counters, &n.out)
	}
	if a.site != b.site {
		if a.site != nil {
			r.links = append(r.links, a.site.up)
			r.counters = append(r.counters, &a.site.out)
			r.latency += a.site.link.WANLatency
		}
		if b.site != nil {
			r.links = append(r.links, b.site.down)
			r.counters = append(r.counters, &b.site.in)
			r.latency += b.site.link.WANLatency
		}
	} else if a.site != nil {
		r.latency = a.site.link.LANLatency
	}
	if b.down != nil {
		r.links = append(r.links, b.down)
	}
	return r
}

// Endpoint is one simulated host: give it to the host's config as its
// p2p.Network.
type Endpoint struct {
	n                *Network
	ip               net.IP
	site             *site // nil for the coordinator
	up, down         *rate.Limiter
	baseUp, baseDown float64

	// guarded by n.mu
	crashed   bool
	listeners map[int]*listener
	nextPort  int
}

// IP is the endpoint's address.
func (e *Endpoint) IP() net.IP { return e.ip }

// Addr is the multiaddr of port on this endpoint, to listen on and
// advertise.
func (e *Endpoint) Addr(port int) string { return fmt.Sprintf("/ip4/%s/tcp/%d", e.ip, port) }

// SetSlow divides the endpoint's uplink and downlink by factor; 1
// restores them. The coordinator's cannot be changed.
func (e *Endpoint) SetSlow(factor float64) error {
	if !(factor > 0) {
		return fmt.Errorf("%w: slow factor %v", ErrBadRate, factor)
	}
	if e.site == nil {
		return fmt.Errorf("vnet: the coordinator's links are fixed")
	}
	now := time.Now()
	e.up.SetLimitAt(now, rate.Limit(e.baseUp/factor))
	e.down.SetLimitAt(now, rate.Limit(e.baseDown/factor))
	return nil
}

// Crash takes the host off the network as a crashed machine leaves it:
// its connections are reset and nobody can dial it, nor it anybody.
func (e *Endpoint) Crash() {
	n := e.n
	n.mu.Lock()
	e.crashed = true
	var victims []*pair
	for p := range n.conns {
		if p.a == e || p.b == e {
			victims = append(victims, p)
		}
	}
	n.mu.Unlock()
	for _, p := range victims {
		p.reset()
	}
}
