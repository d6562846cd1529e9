// Package mesh is the node's part of the site mesh: a directory of which
// site peers hold which fragments (gossiped), source choice for each
// fragment (site peers, then the site's relay, then the coordinator), the
// relay's pull-through cache (a fragment nobody in the site has is fetched
// from upstream once, concurrent requests coalesced) and orders passed
// around the site.
package mesh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"

	"github.com/relaymesh/relaymesh/cache"
	"github.com/relaymesh/relaymesh/node/site"
	"github.com/relaymesh/relaymesh/p2p"
)

var (
	ErrNoSource  = errors.New("mesh: no source could deliver the fragment")
	ErrBadConfig = errors.New("mesh: invalid config")
)

// Strategies.
const (
	StrategyMesh   = "mesh"   // site peers, relay pull-through, coordinator
	StrategyRelay  = "relay"  // relay pull-through only: no peer swarming
	StrategyDirect = "direct" // every node straight from the coordinator
)

// Membership is what the mesh needs of site membership.
type Membership interface {
	Members() []site.Member
	Relays() []string
	IsRelay() bool
	// Broadcast reaches every member now (orders); Gossip spreads advice
	// cheaply over a few gossip rounds (which fragments a node has).
	Broadcast(msg []byte) error
	Gossip(msg []byte) error
	// SendTo reaches one member (a newcomer learns what this node has).
	SendTo(nodeID string, msg []byte) error
}

// Config configures a Mesh.
type Config struct {
	Host        host.Host
	Coordinator peer.ID
	Store       cache.Store
	Members     Membership // nil: no site (coordinator only)
	Strategy    string
	// SiteWANDownBps caps what this node pulls from outside the site
	// while it is the relay, bytes/s; 0 = no cap.
	SiteWANDownBps int64
	// FragmentTimeout gives a source this long for a fragment of size
	// bytes before the fetch moves on to another source.
	FragmentTimeout func(size int64) time.Duration
	// Penalty is how long a source that sent bytes not matching the CID
	// is avoided.
	Penalty time.Duration
	// FloorBps is the slowest a site peer or relay may send a fragment,
	// bytes/s, after FloorGrace (default 5 s): a source below it is cut
	// (p2p.ErrTooSlow), the fetch moves to another source, and the slow
	// one is ranked after every other for SlowMemory (default 1 min). 0
	// means no floor. The coordinator and other sites' relays are not
	// held to it: they are reached over the WAN, where the alternative
	// crosses the WAN too; their payload is bounded by FragmentTimeout of
	// the size they announce.
	FloorBps   int64
	FloorGrace time.Duration
	// FloorFraction raises the floor for site peers that are not relays
	// to this fraction of the rate this node measured from site members
	// (0: no raise): on a fast LAN a peer far slower than the others is
	// cut sooner, at no WAN cost, since another peer or the relay holds
	// the fragment. Relays keep FloorBps: cutting the only relay sends
	// members upstream.
	FloorFraction float64
	SlowMemory    time.Duration
	// HedgeMin is the shortest a fragment is in flight before a hedge
	// (see Hedge, HedgeAfter) may be sent for it (default 1 s).
	HedgeMin time.Duration
	// AnnounceInterval batches "have" announcements.
	AnnounceInterval time.Duration
	// ReannounceInterval re-gossips every stored fragment, so members
	// that missed a gossip learn what this node has. (A member that joins
	// is sent the list at once: see MembersChanged.)
	ReannounceInterval time.Duration
	// UpstreamConcurrency bounds the relay's fetches from outside the
	// site (default 2). All of them share the site's WAN cap. More in
	// flight keeps the link fuller when sources are slow (another site's
	// relay, a busy origin), but a relay that dies then loses more
	// half-fetched data: 4 failed the failover test's 1.25 × S bound.
	UpstreamConcurrency int
	// RelayGiveUp is how long the site's relays may keep failing before a
	// node fetches straight from the coordinator (a relay death is
	// normally healed by re-election well before).
	RelayGiveUp time.Duration
	// OnDistrust, when set, is called (on its own goroutine) after a peer
	// was caught sending bytes that do not match their CID, and when such
	// a ban ends: the node re-publishes its site meta (see Distrusted).
	OnDistrust func()
	Meter      *p2p.Meter // fragment payload accounting; may be nil
	Logger     *slog.Logger
}

// DefaultFragmentTimeout allows 15 s plus 64 KiB/s.
func DefaultFragmentTimeout(size int64) time.Duration {
	return 15*time.Second + time.Duration(size/(64<<10))*time.Second
}

// Validate names the first bad field.
func (c *Config) Validate() error {
	switch {
	case c.Host == nil:
		return fmt.Errorf("%w: Host is nil", ErrBadConfig)
	case c.Store == nil:
		return fmt.Errorf("%w: Store is nil", ErrBadConfig)
	case c.Coordinator == "":
		return fmt.Errorf("%w: Coordinator is empty", ErrBadConfig)
	case c.Strategy != StrategyMesh && c.Strategy != StrategyRelay && c.Strategy != StrategyDirect:
		return fmt.Errorf("%w: Strategy %q: want mesh, relay or direct", ErrBadConfig, c.Strategy)
	case c.SiteWANDownBps < 0:
		return fmt.Errorf("%w: SiteWANDownBps %d: must be >= 0", ErrBadConfig, c.SiteWANDownBps)
	case c.FloorBps < 0:
		return fmt.Errorf("%w: FloorBps %d: must be >= 0 (0: no floor)", ErrBadConfig, c.FloorBps)
	case c.FloorFraction < 0 || c.FloorFraction >= 1:
		return fmt.Errorf("%w: FloorFraction %g: must be in [0, 1)", ErrBadConfig, c.FloorFraction)
	case c.FloorGrace < 0:
		return fmt.Errorf("%w: FloorGrace %s: must be >= 0", ErrBadConfig, c.FloorGrace)
	}
	return nil
}

// source is what the mesh knows of one peer as a source.
type source struct {
	ewma     float64 // bytes/s, moving average
	inflight int
	banned   time.Time
	slowAt   time.Time // last cut below the floor
}

// slow reports whether s was cut below the floor within memory of now.
func (s *source) slow(now time.Time, memory time.Duration) bool {
	return s != nil && !s.slowAt.IsZero() && now.Sub(s.slowAt) < memory
}

// Mesh is one node's view of its site for fetching.
type Mesh struct {
	cfg Config
	log *slog.Logger
	wan *rate.Limiter

	mu      sync.Mutex
	dir     map[cid.Cid]map[peer.ID]struct{} // who in the site has what
	pending []cid.Cid                        // to announce
	sources map[peer.ID]*source
	flights map[cid.Cid]*flight         // relay pull-through in progress
	recent  map[cid.Cid][]peer.ID       // a relay's latest downloaders per fragment (tracker.go)
	active  map[cid.Cid]map[peer.ID]int // fetches under way: fragment, source, count
	// siteRate is the moving average rate of whole fragments fetched
	// from site members, bytes/s (see HedgeAfter).
	siteRate float64
	// floorScale scales FloorBps down while this node's own link seems
	// the slow one; cuts, oks and cutFrom count fetches from site members
	// since it last moved, okInRow those in a row well above the floor.
	floorScale float64
	cuts, oks  int
	okInRow    int
	cutFrom    map[peer.ID]bool
	stats      Stats
	known      map[string]bool  // members seen at the last MembersChanged
	live       map[peer.ID]bool // live members as of the last MembersChanged; nil: ask each time
	haveCh     chan struct{}    // closed when the directory gains an entry
	sending    bool             // a newcomers' send is running
	greet      []string         // newcomers waiting for it

	upSem          chan struct{} // upstream fetch slots
	siteServe      chan struct{} // a relay's uploads to its own site
	otherServes    atomic.Int64  // a relay's uploads to other sites' relays
	relayFailSince atomic.Int64  // unix ns of the first relay failure since the last success; 0 = none
	noRelaySince   atomic.Int64  // unix ns since which the site has shown no relay; 0 = it has one
}

// Stats count where this node's fragments came from.
type Stats struct {
	FromPeers, FromRelay, FromCoordinator, FromUpstreamAsRelay int
	// FromOtherSites counts fragments a relay got from another site's
	// relay, sent there by a busy origin.
	FromOtherSites  int
	Corrupt, Failed int
	// TooSlow counts sources cut below the floor; Hedges the hedged
	// requests sent (Hedge) and HedgeWins those that answered first.
	TooSlow, Hedges, HedgeWins int
	// BusyAnswers counts requests of members this relay answered busy
	// (every serve slot taken); Redirects those it sent to members that
	// got the fragment from it lately instead.
	BusyAnswers, Redirects int
}

type flight struct {
	done chan struct{}
	err  error
	max  int64 // the size cap of the pull
}

// New makes a Mesh. Call Run to start announcing.
func New(cfg Config) (*Mesh, error) {
	if cfg.FragmentTimeout == nil {
		cfg.FragmentTimeout = DefaultFragmentTimeout
	}
	if cfg.Penalty == 0 {
		cfg.Penalty = 10 * time.Minute
	}
	if cfg.AnnounceInterval == 0 {
		cfg.AnnounceInterval = 200 * time.Millisecond
	}
	if cfg.UpstreamConcurrency == 0 {
		cfg.UpstreamConcurrency = 2
	}
	if cfg.RelayGiveUp == 0 {
		cfg.RelayGiveUp = 30 * time.Second
	}
	if cfg.ReannounceInterval == 0 {
		cfg.ReannounceInterval = 60 * time.Second
	}
	if cfg.Strategy == "" {
		cfg.Strategy = StrategyMesh
	}
	if cfg.FloorGrace == 0 {
		cfg.FloorGrace = 5 * time.Second
	}
	if cfg.SlowMemory == 0 {
		cfg.SlowMemory = time.Minute
	}
	if cfg.HedgeMin == 0 {
		cfg.HedgeMin = time.Second
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Mesh{
		cfg: cfg, log: cfg.Logger,
		dir: map[cid.Cid]map[peer.ID]struct{}{}, sources: map[peer.ID]*source{}, flights: map[cid.Cid]*flight{},
		active: map[cid.Cid]map[peer.ID]int{}, floorScale: 1,
		upSem:     make(chan struct{}, max(cfg.UpstreamConcurrency, 1)),
		siteServe: make(chan struct{}, relaySiteServes),
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if cfg.SiteWANDownBps > 0 {
		m.wan = rate.NewLimiter(rate.Limit(cfg.SiteWANDownBps), 256<<10)
	}
	return m, nil
}

// Distrusted lists the peers (at most site.MaxDistrust, the latest first)
// banned now for sending bytes that do not match their CID.
func (m *Mesh) Distrusted() []string {
	now := time.Now()
	type ban struct {
		id    peer.ID
		until time.Time
	}
	var bans []ban
	m.mu.Lock()
	for id, s := range m.sources {
		if now.Before(s.banned) {
			bans = append(bans, ban{id, s.banned})
		}
	}
	m.mu.Unlock()
	slices.SortFunc(bans, func(a, b ban) int { return b.until.Compare(a.until) })
	var out []string
	for _, b := range bans[:min(len(bans), site.MaxDistrust)] {
		out = append(out, b.id.String())
	}
	return out
}

// Measured returns what this node measured of the live site peers it has
// fetched from, bytes/s: 1 for a peer cut below the floor within
// SlowMemory (it did not keep up the slowest rate allowed), else the
// moving average of its fragments' throughput but at least site.SlowBps:
// a fetch that waited behind others or behind the relay's WAN is slow
// without the peer being at fault, so only a cut says slow. The site
// passes over members measured slow (site.Meta.Measured, Score).
func (m *Mesh) Measured() map[peer.ID]uint64 {
	live := m.alive()
	now := time.Now()
	out := map[peer.ID]uint64{}
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, s := range m.sources {
		if !live[id] || id == m.cfg.Host.ID() {
			continue
		}
		switch {
		case s.slow(now, m.cfg.SlowMemory):
			out[id] = 1
		case s.ewma > 0:
			out[id] = max(uint64(s.ewma), site.SlowBps)
		}
	}
	return out
}

// Stats returns the fetch counters.
func (m *Mesh) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stats
}

// Run announces newly stored fragments to the site until ctx ends.
func (m *Mesh) Run(ctx context.Context) error {
	t := time.NewTicker(m.cfg.AnnounceInterval)
	defer t.Stop()
	re := time.NewTicker(m.cfg.ReannounceInterval)
	defer re.Stop()
	m.announceAll()
	var lastDistrust []string
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			m.flushAnnounce()
		case <-re.C:
			m.announceAll()
			if d := m.Distrusted(); m.cfg.OnDistrust != nil && !slices.Equal(d, lastDistrust) {
				lastDistrust = d
				go m.cfg.OnDistrust() // a ban ended
			}
		}
	}
}

// Have records that this node stored c; the site hears of it shortly.
func (m *Mesh) Have(c cid.Cid) {
	if m.cfg.Members == nil || m.cfg.Strategy != StrategyMesh {
		return
	}
	m.mu.Lock()
	m.pending = append(m.pending, c)
	m.mu.Unlock()
}

// announceAll queues every stored fragment (up to a cap) for announcement.
func (m *Mesh) announceAll() {
	if m.cfg.Members == nil || m.cfg.Strategy != StrategyMesh {
		return
	}
	all := m.stored()
	m.mu.Lock()
	m.pending = append(m.pending, all...)
	m.mu.Unlock()
}

// stored lists the fragments in the store, up to maxReannounce.
func (m *Mesh) stored() []cid.Cid {
	var all []cid.Cid
	_ = m.cfg.Store.List(func(c cid.Cid, _ int64) error {
		if len(all) >= maxReannounce {
			return errStopList
		}
		all = append(all, c)
		return nil
	})
	return all
}

// HaveChanged returns a channel closed when a site member next announces a
// fragment this node did not know it had; fetchers wait on it instead of
// polling.
func (m *Mesh) HaveChanged() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.haveCh == nil {
		m.haveCh = make(chan struct{})
	}
	return m.haveCh
}

// MembersChanged is called after the site's view changed: every member
// that appeared since the last call is sent the list of fragments this
// node has, directly, so a newcomer can fetch from peers at once instead of
// waiting for the next re-announcement. Sends run on one goroutine, off
// the caller's.
func (m *Mesh) MembersChanged() {
	if m.cfg.Members == nil || m.cfg.Strategy != StrategyMesh {
		return
	}
	self := m.cfg.Host.ID().String()
	members := m.cfg.Members.Members()
	now := make(map[string]bool, len(members))
	live := make(map[peer.ID]bool, len(members))
	var fresh []string
	m.mu.Lock()
	for _, mem := range members {
		id := mem.Meta.NodeID
		now[id] = true
		if pid, err := p2p.DecodePeerID(id); err == nil {
			live[pid] = true
		}
		if id != self && !m.known[id] {
			fresh = append(fresh, id)
		}
	}
	m.known = now
	m.live = live
	m.greet = append(m.greet, fresh...)
	start := !m.sending && len(m.greet) > 0
	if start {
		m.sending = true
	}
	m.mu.Unlock()
	if start {
		go m.greetNewcomers()
	}
}

// greetNewcomers sends the fragment list to the members in m.greet until
// none is left.
func (m *Mesh) greetNewcomers() {
	for {
		m.mu.Lock()
		ids := m.greet
		m.greet = nil
		if len(ids) == 0 {
			m.sending = false
			m.mu.Unlock()
			return
		}
		m.mu.Unlock()
		all := m.stored()
		if len(all) == 0 {
			continue
		}
		for _, id := range ids {
			for p := all; len(p) > 0; {
				n := min(len(p), maxHaveBatch)
				if err := m.cfg.Members.SendTo(id, encodeHave(p[:n])); err != nil {
					m.log.Debug("telling a new member what this node has failed (it learns on re-announce)", "member", id, "err", err)
					break
				}
				p = p[n:]
			}
		}
	}
}

const maxReannounce = 8192

var errStopList = errors.New("mesh: stop listing")

func (m *Mesh) flushAnnounce() {
	m.mu.Lock()
	p := m.pending
	m.pending = nil
	m.mu.Unlock()
	for len(p) > 0 {
		n := min(len(p), gossipHaveBatch)
		if err := m.cfg.Members.Gossip(encodeHave(p[:n])); err != nil {
			m.log.Debug("announce: broadcast incomplete", "err", err)
		}
		p = p[n:]
	}
}

// alive returns the live site members by peer ID: the set MembersChanged
// computed, or the view now before its first call. The map is read-only.
func (m *Mesh) alive() map[peer.ID]bool {
	m.mu.Lock()
	live := m.live
	m.mu.Unlock()
	if live != nil {
		return live
	}
	return m.liveNow()
}

func (m *Mesh) liveNow() map[peer.ID]bool {
	out := map[peer.ID]bool{}
	if m.cfg.Members == nil {
		return out
	}
	for _, mem := range m.cfg.Members.Members() {
		if id, err := p2p.DecodePeerID(mem.Meta.NodeID); err == nil {
			out[id] = true
		}
	}
	return out
}

// Available reports whether a live site peer announced c.
func (m *Mesh) Available(c cid.Cid) bool { return m.AvailableNow()(c) }

// AvailableNow returns Available over one snapshot of the site's live
// members, for checking many fragments at once: the membership view is
// decoded once, not once per fragment.
func (m *Mesh) AvailableNow() func(cid.Cid) bool {
	if m.cfg.Strategy != StrategyMesh || m.cfg.Members == nil {
		return func(cid.Cid) bool { return false }
	}
	live := m.alive()
	now := time.Now()
	return func(c cid.Cid) bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		for p := range m.dir[c] {
			if s := m.sources[p]; live[p] && (s == nil || !now.Before(s.banned)) {
				return true
			}
		}
		return false
	}
}

// relays returns the site's relays other than this node, the one that
// rendezvous hashing assigns c to first.
func (m *Mesh) relays(c cid.Cid) []peer.ID {
	if m.cfg.Members == nil || m.cfg.Strategy == StrategyDirect {
		return nil
	}
	rs := m.cfg.Members.Relays()
	first := site.Assign(c.KeyString(), rs)
	var out []peer.ID
	self := m.cfg.Host.ID()
	for _, r := range append([]string{first}, rs...) {
		id, err := p2p.DecodePeerID(r)
		if err != nil || id == self || contains(out, id) {
			continue
		}
		out = append(out, id)
	}
	// A relay cut below the floor lately is asked after the others.
	now := time.Now()
	m.mu.Lock()
	slices.SortStableFunc(out, func(a, b peer.ID) int {
		sa, sb := m.sources[a].slow(now, m.cfg.SlowMemory), m.sources[b].slow(now, m.cfg.SlowMemory)
		switch {
		case sa == sb:
			return 0
		case sb:
			return -1
		}
		return 1
	})
	m.mu.Unlock()
	return out
}

// assigned returns the relay that rendezvous hashing gives c to, which may
// be this node, or "" when the site has none.
func (m *Mesh) assigned(c cid.Cid) peer.ID {
	if m.cfg.Members == nil || m.cfg.Strategy == StrategyDirect {
		return ""
	}
	id, err := p2p.DecodePeerID(site.Assign(c.KeyString(), m.cfg.Members.Relays()))
	if err != nil {
		return ""
	}
	return id
}

// IsRelay reports whether this node is a relay of its site.
func (m *Mesh) IsRelay() bool {
	return m.cfg.Members != nil && m.cfg.Strategy != StrategyDirect && m.cfg.Members.IsRelay()
}

func contains(ids []peer.ID, id peer.ID) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// peersWith returns live, unbanned site peers that announced c, best
// first: least in flight, then fastest measured, ties shuffled.
func (m *Mesh) peersWith(c cid.Cid, tried map[peer.ID]bool) []peer.ID {
	if m.cfg.Strategy != StrategyMesh {
		return nil
	}
	live := m.alive()
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []peer.ID
	for p := range m.dir[c] {
		s := m.sources[p]
		if !live[p] || tried[p] || s != nil && now.Before(s.banned) {
			continue
		}
		out = append(out, p)
	}
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	// Relays come last: their uplinks carry the site's WAN traffic and
	// the first copy of each fragment into the site.
	// Then peers this node is connected to: a new connection costs a
	// handshake, and a member dialling every peer of a big site makes
	// the site's connections grow with the square of its size.
	net := m.cfg.Host.Network()
	type key struct {
		slow, relay, unconnected bool
		inflight                 int
		ewma                     float64
	}
	var relays []peer.ID
	if len(out) > 1 {
		relays = m.relayIDs()
	}
	keys := make(map[peer.ID]key, len(out))
	for _, p := range out {
		k := key{slow: m.sources[p].slow(now, m.cfg.SlowMemory), relay: slices.Contains(relays, p),
			unconnected: net.Connectedness(p) != network.Connected}
		if s := m.sources[p]; s != nil {
			k.inflight, k.ewma = s.inflight, s.ewma
		}
		keys[p] = k
	}
	less := func(a, b key) bool {
		switch {
		case a.slow != b.slow: // cut below the floor lately: last
			return !a.slow
		case a.relay != b.relay:
			return !a.relay
		case a.unconnected != b.unconnected:
			return !a.unconnected
		case a.inflight != b.inflight:
			return a.inflight < b.inflight
		}
		return a.ewma > b.ewma
	}
	for i := 1; i < len(out); i++ { // insertion sort: lists are short
		for j := i; j > 0; j-- {
			if less(keys[out[j]], keys[out[j-1]]) {
				out[j], out[j-1] = out[j-1], out[j]
			}
		}
	}
	return out
}

// relayIDs lists the site's relays now.
func (m *Mesh) relayIDs() []peer.ID {
	if m.cfg.Members == nil {
		return nil
	}
	var out []peer.ID
	for _, r := range m.cfg.Members.Relays() {
		if id, err := p2p.DecodePeerID(r); err == nil {
			out = append(out, id)
		}
	}
	return out
}
