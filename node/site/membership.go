package site

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Member is a live member of the site as this node sees it.
type Member struct {
	Meta Meta
	Addr string // memberlist host:port
}

func (m Member) equal(o Member) bool {
	return m.Addr == o.Addr && m.Meta.Equal(o.Meta)
}

// Stats are counters for operators and tests.
type Stats struct {
	// SkippedMembers is how many members the last view left out: meta that
	// does not decode, a NodeID other than the member's name, or another
	// site.
	SkippedMembers int
	// Unlisted is how many live gossip members the last view left out
	// because Config.Admit refused them (not on the member list).
	Unlisted int
	// DroppedMessages counts received messages dropped: malformed, too
	// large, or OnMessage too slow (queue full).
	DroppedMessages uint64
	// Undecryptable counts gossip packets and streams no key of the
	// keyring could decrypt (a peer on another key, or a stranger).
	Undecryptable uint64
}

// Membership is this node's membership in its site's memberlist pool.
type Membership struct {
	cfg       Config
	log       *slog.Logger
	ml        atomic.Pointer[memberlist.Memberlist]
	queue     *memberlist.TransmitLimitedQueue // broadcasts' gossip copies
	advice    *memberlist.TransmitLimitedQueue // Gossip's advisory messages
	gossipMax int                              // frames up to this size also go out by gossip
	site      string
	keyring   *memberlist.Keyring // nil with InsecureNoEncryption

	mu       sync.Mutex
	claim    bool   // we compute ourselves as relay and say so in our meta
	lastMeta []byte // last meta that encoded
	skipped  int
	unlisted int

	// peers is this node's view, copied in memberlist's event callbacks:
	// the *Node values memberlist.Members returns are updated in place
	// under memberlist's lock, so reading them outside it races.
	viewMu sync.Mutex
	peers  map[string]memberlist.Node
	// view is Members' result, rebuilt after the peers changed (nil).
	view         []Member
	viewRelays   []string
	viewSkipped  int
	viewUnlisted int

	seen          seenSet
	dropped       atomic.Uint64
	undecryptable atomic.Uint64

	kick   chan struct{}
	inbox  chan inbound
	stop   chan struct{}
	wg     sync.WaitGroup
	closed atomic.Bool
	once   sync.Once
	err    error
}

// Join creates this node's memberlist and joins the pool through seeds
// (host:port). Reaching no seed is not fatal: the node works alone, the
// failure is logged as a warning, and Rejoin can try again.
func Join(cfg Config, seeds []string) (*Membership, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	meta := cfg.Meta()
	if meta.NodeID != cfg.Name {
		return nil, fmt.Errorf("%w: Meta().NodeID %q differs from Name %q", ErrBadConfig, meta.NodeID, cfg.Name)
	}
	enc, err := EncodeMeta(meta)
	if err != nil {
		return nil, fmt.Errorf("%w: Meta(): %w", ErrBadConfig, err)
	}
	m := &Membership{
		cfg:      cfg,
		log:      logger.With("component", "site", "node", cfg.Name),
		site:     meta.Site,
		lastMeta: enc,
		seen:     newSeenSet(4096),
		peers:    make(map[string]memberlist.Node),
		kick:     make(chan struct{}, 1),
		inbox:    make(chan inbound, cfg.MessageQueue),
		stop:     make(chan struct{}),
	}
	mc, err := cfg.memberlistConfig(&delegate{m: m}, logger)
	if err != nil {
		return nil, err
	}
	m.keyring = mc.Keyring
	m.queue = &memberlist.TransmitLimitedQueue{NumNodes: m.numNodes, RetransmitMult: mc.RetransmitMult}
	// Advisory gossip is passed on AdviceTransmits times by each member,
	// whatever the site's size (memberlist's queue scales its limit with
	// log10 of the member count; 9 members or fewer give exactly 1×).
	m.advice = &memberlist.TransmitLimitedQueue{NumNodes: func() int { return min(m.numNodes(), 9) },
		RetransmitMult: cfg.AdviceTransmits}
	// Room left in a gossip packet after memberlist's headers, encryption
	// and label.
	m.gossipMax = mc.UDPBufferSize - 128 - len(mc.Label)
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("site: create memberlist on %s:%d: %w", cfg.BindAddr, cfg.BindPort, err)
	}
	m.ml.Store(ml)
	m.wg.Add(2)
	go m.deliver()
	if len(seeds) > 0 {
		if _, err := m.Rejoin(seeds); err != nil {
			m.log.Warn("joining the site failed; working alone until Rejoin", "seeds", seeds, "err", err)
		}
	}
	// The election starts once the join attempt is over: a node that
	// computed it alone would claim the relay role for a moment, and a
	// claim that spreads can unseat the site's relay (more claimants than
	// seats keep the lowest IDs).
	go m.watch()
	m.trigger()
	return m, nil
}

// Rejoin tries to join the pool through seeds and returns how many it
// reached. Reaching none is an error wrapping ErrNoSeedReached.
func (m *Membership) Rejoin(seeds []string) (int, error) {
	if m.closed.Load() {
		return 0, ErrShutdown
	}
	n, err := m.ml.Load().Join(seeds)
	m.trigger()
	if n == 0 {
		if err == nil {
			err = errors.New("no seed given")
		}
		return 0, fmt.Errorf("%w: %v: %w", ErrNoSeedReached, seeds, err)
	}
	if err != nil {
		m.log.Debug("some seeds unreachable", "joined", n, "err", err)
	}
	return n, nil
}

// LocalAddr is the host:port other members join this node through.
func (m *Membership) LocalAddr() string {
	if n, ok := m.peer(m.cfg.Name); ok {
		return n.Address()
	}
	return ""
}

// notePeer records a member from a memberlist event callback, which runs
// under memberlist's node lock: copying n there is safe.
func (m *Membership) notePeer(n *memberlist.Node) {
	c := *n
	c.Addr = slices.Clone(n.Addr)
	c.Meta = slices.Clone(n.Meta)
	m.viewMu.Lock()
	m.peers[c.Name] = c
	m.view = nil
	m.viewMu.Unlock()
	m.trigger()
}

func (m *Membership) forgetPeer(n *memberlist.Node) {
	m.viewMu.Lock()
	delete(m.peers, n.Name)
	m.view = nil
	m.viewMu.Unlock()
	m.trigger()
}

func (m *Membership) peer(name string) (*memberlist.Node, bool) {
	m.viewMu.Lock()
	defer m.viewMu.Unlock()
	n, ok := m.peers[name]
	return &n, ok
}

// livePeers returns copies of the live (alive or suspect) members that
// Config.Admit lets in.
func (m *Membership) livePeers() []*memberlist.Node {
	m.viewMu.Lock()
	defer m.viewMu.Unlock()
	out := make([]*memberlist.Node, 0, len(m.peers))
	for _, n := range m.peers {
		if m.admits(n.Name) {
			out = append(out, &n)
		}
	}
	return out
}

// Members returns the live members (alive or suspect) with valid meta of
// this node's site, this node included, sorted by NodeID. The decoded view
// is kept until the next membership event, so calling it often is cheap.
func (m *Membership) Members() []Member {
	members, _ := m.snapshot()
	return members
}

// snapshot returns Members and the relays elected from them, decoding and
// electing only after the view changed.
func (m *Membership) snapshot() ([]Member, []string) {
	m.viewMu.Lock()
	defer m.viewMu.Unlock()
	if m.view == nil {
		m.view, m.viewSkipped, m.viewUnlisted = m.decodeViewLocked()
		m.viewRelays = m.relaysOf(m.view)
	}
	m.mu.Lock()
	m.skipped, m.unlisted = m.viewSkipped, m.viewUnlisted
	m.mu.Unlock()
	return slices.Clone(m.view), slices.Clone(m.viewRelays)
}

// decodeViewLocked decodes the meta of every peer Admit lets in; viewMu
// is held. It returns the view, how many peers were skipped for their
// meta and how many were not admitted.
func (m *Membership) decodeViewLocked() ([]Member, int, int) {
	out := make([]Member, 0, len(m.peers))
	skipped, unlisted := 0, 0
	for _, n := range m.peers {
		if !m.admits(n.Name) {
			unlisted++
			continue
		}
		meta, err := DecodeMeta(n.Meta)
		if err != nil || meta.NodeID != n.Name || meta.Site != m.site {
			skipped++
			continue
		}
		out = append(out, Member{Meta: meta, Addr: n.Address()})
	}
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.Meta.NodeID, b.Meta.NodeID) })
	return out, skipped, unlisted
}

// admits reports whether Config.Admit lets nodeID into the view (this
// node always).
func (m *Membership) admits(nodeID string) bool {
	return m.cfg.Admit == nil || nodeID == m.cfg.Name || m.cfg.Admit(nodeID)
}

// Refresh rebuilds the view and re-runs the election: call it after
// Config.Admit's answers or Config.Meta changed.
func (m *Membership) Refresh() {
	m.viewMu.Lock()
	m.view = nil
	m.viewMu.Unlock()
	m.trigger()
}

// Relays returns the node IDs of the site's elected relays, sorted, as this
// node computes them from its current view. See Elect.
func (m *Membership) Relays() []string {
	_, relays := m.snapshot()
	return relays
}

func (m *Membership) relaysOf(members []Member) []string {
	metas := make([]Meta, len(members))
	var incumbents []string
	for i, mb := range members {
		metas[i] = mb.Meta
		if mb.Meta.RelayClaim {
			incumbents = append(incumbents, mb.Meta.NodeID)
		}
	}
	n := RelayCount(len(metas), m.cfg.RelaysPerSite, m.cfg.MaxRelays)
	return Elect(metas, incumbents, n, m.cfg.Hysteresis)
}

// IsRelay reports whether this node is one of Relays.
func (m *Membership) IsRelay() bool {
	return slices.Contains(m.Relays(), m.cfg.Name)
}

// UpdateMeta re-reads Config.Meta and gossips it.
func (m *Membership) UpdateMeta() error {
	if m.closed.Load() {
		return ErrShutdown
	}
	if _, err := EncodeMeta(m.cfg.Meta()); err != nil {
		return err
	}
	m.updateNode()
	m.trigger()
	return nil
}

// updateNode re-advertises the local node. memberlist blocks until the
// update went out once; the update stays queued past the wait anyway.
func (m *Membership) updateNode() {
	if err := m.ml.Load().UpdateNode(5 * m.cfg.GossipInterval); err != nil {
		m.log.Debug("meta update not yet sent", "err", err)
	}
}

// Stats returns the counters.
func (m *Membership) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Stats{SkippedMembers: m.skipped, Unlisted: m.unlisted, DroppedMessages: m.dropped.Load(),
		Undecryptable: m.undecryptable.Load()}
}

// Leave tells the pool this node is leaving, waiting up to timeout for the
// message to go out. Call Shutdown afterwards.
func (m *Membership) Leave(timeout time.Duration) error {
	if m.closed.Load() {
		return ErrShutdown
	}
	if err := m.ml.Load().Leave(timeout); err != nil {
		return fmt.Errorf("site: leave: %w", err)
	}
	return nil
}

// Shutdown stops the membership without telling anyone (to the pool it is
// a crash; call Leave first for a clean exit) and waits for its goroutines.
// No callback runs after it returns. Safe to call more than once.
func (m *Membership) Shutdown() error {
	m.once.Do(func() {
		m.closed.Store(true)
		close(m.stop)
		m.wg.Wait()
		if err := m.ml.Load().Shutdown(); err != nil {
			m.err = fmt.Errorf("site: shutdown: %w", err)
		}
	})
	return m.err
}

func (m *Membership) numNodes() int {
	if ml := m.ml.Load(); ml != nil {
		return ml.NumMembers()
	}
	return 1
}

// trigger asks watch to look at the view again; it never blocks.
func (m *Membership) trigger() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// watch recomputes the relay set after every change of the view, updates
// this node's relay claim, and calls OnChange.
func (m *Membership) watch() {
	defer m.wg.Done()
	var last []Member
	var lastRelays []string
	lastSkipped, lastUnlisted := 0, 0
	for {
		select {
		case <-m.stop:
			return
		case <-m.kick:
		}
		members, relays := m.snapshot()
		claim := slices.Contains(relays, m.cfg.Name)
		m.mu.Lock()
		changedClaim := claim != m.claim
		m.claim = claim
		skipped, unlisted := m.skipped, m.unlisted
		m.mu.Unlock()
		if changedClaim {
			m.log.Info("relay role changed", "relay", claim, "relays", relays)
			m.updateNode()
			m.trigger() // our own meta changed
		}
		if skipped != lastSkipped {
			m.log.Warn("members skipped: bad meta, name mismatch or other site", "count", skipped)
			lastSkipped = skipped
		}
		if unlisted != lastUnlisted {
			if unlisted > lastUnlisted {
				m.log.Warn("gossip members not admitted (not on the member list) are ignored", "count", unlisted)
			}
			lastUnlisted = unlisted
		}
		if slices.EqualFunc(members, last, Member.equal) && slices.Equal(relays, lastRelays) {
			continue
		}
		if !slices.Equal(relays, lastRelays) {
			m.log.Debug("relay set", "relays", relays, "members", len(members))
		}
		last, lastRelays = members, relays
		if m.cfg.OnChange != nil {
			m.cfg.OnChange()
		}
	}
}

// nodeMeta is this node's encoded meta with its relay claim.
func (m *Membership) nodeMeta(limit int) []byte {
	meta := m.cfg.Meta()
	m.mu.Lock()
	defer m.mu.Unlock()
	meta.RelayClaim = m.claim
	enc, err := EncodeMeta(meta)
	if err == nil && meta.NodeID != m.cfg.Name {
		err = fmt.Errorf("%w: NodeID %q differs from Name %q", ErrBadMeta, meta.NodeID, m.cfg.Name)
	}
	if err == nil && len(enc) <= limit {
		m.lastMeta = enc
	} else {
		m.log.Error("keeping previous node meta", "err", err, "limit", limit)
	}
	return m.lastMeta
}
