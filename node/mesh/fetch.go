package mesh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"

	"github.com/relaymesh/relaymesh/cache"
	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/p2p"
)

// maxAttempts bounds the sources one Fetch tries (waits between them do
// not count).
const maxAttempts = 12

// relaySiteServes bounds a relay's uploads to its own site's members at
// once, so its uplink keeps room for other sites' relays.
const relaySiteServes = 4

// relaySiteServesShared is relaySiteServes while the relay uploads to
// another site's relay: that stream is a whole site's WAN feed.
const relaySiteServesShared = 2

// relayRetryWait is the longest a node waits for a new source after its
// site's relays failed a fragment, before trying them again.
const relayRetryWait = 2 * time.Second

// busyRetry is how long a node waits after a relay said busy before it
// asks again (sooner when a peer announces the fragment); after maxBusy
// busy answers in one fetch they count as failed attempts.
const (
	busyRetry = 250 * time.Millisecond
	maxBusy   = 80
)

// smallServe: a relay serves objects up to this size (manifests) outside
// its serve slots; they cost its uplink nothing worth queueing for.
const smallServe = 16 << 10

// Fetch gets fragment c (at most maxSize bytes), verified, from the best
// source: site peers that have it, then the site's relay (which pulls it
// through from upstream once for the whole site), then the coordinator.
// A relay fetching for itself goes to site peers, then upstream. It does
// not store the fragment: the caller does (and calls Have).
func (m *Mesh) Fetch(ctx context.Context, c cid.Cid, maxSize int64) (core.Verified, error) {
	tried := map[peer.ID]bool{}
	var (
		lastErr    error
		relayFails time.Time // this fetch's first relay failure
		busy       int       // busy answers from relays
		busyRelays = map[peer.ID]bool{}
	)
	for attempts := 0; attempts < maxAttempts; {
		if m.IsRelay() {
			return m.upstream(ctx, c, maxSize)
		}
		if err := ctx.Err(); err != nil {
			return core.Verified{}, err
		}
		src, kind := m.next(c, tried)
		if src == "" {
			break
		}
		if kind == kindCoordinator && !m.mayBypassRelays() &&
			(relayFails.IsZero() || time.Since(relayFails) < m.cfg.RelayGiveUp) {
			// The site has relays but they just failed: a relay died and
			// the site is electing another, or it is overloaded. Going
			// to the coordinator now would send this fragment over the
			// WAN again: wait a little for a new source (a peer that got
			// it, another relay), then try the relays again, until they
			// have failed this fragment for RelayGiveUp.
			m.waitForSource(ctx, c, tried)
			clear(tried)
			continue
		}
		attempts++
		tried[src] = true
		var opts []p2p.FetchOption
		if kind == kindRelay {
			opts = append(opts, p2p.WithRedirect()) // a busy relay may name peers
		}
		data, err := m.fetchFrom(ctx, src, c, maxSize, nil, opts...)
		if err == nil {
			m.count(kind)
			if kind == kindRelay {
				m.relayFailSince.Store(0)
			}
			return data, nil
		}
		var rd *p2p.RedirectError
		if errors.As(err, &rd) {
			// The relay is busy and names members it just sent c to.
			// Only live site members this node does not avoid are asked,
			// at the addresses the site's gossip gave: a relay cannot
			// send members elsewhere, nor back to a peer caught lying.
			live, now := m.alive(), time.Now()
			for _, ai := range rd.Peers {
				if tried[ai.ID] || ai.ID == m.cfg.Host.ID() || !live[ai.ID] || m.banned(ai.ID, now) {
					continue
				}
				tried[ai.ID] = true
				if data, err = m.fetchFrom(ctx, ai.ID, c, maxSize, nil); err == nil {
					m.count(kindPeer)
					return data, nil
				}
			}
			err = p2p.ErrBusy // nobody named had it: as busy
		}
		lastErr = err
		if kind == kindRelay && errors.Is(err, p2p.ErrBusy) && busy < maxBusy {
			// The relay's serve slots are taken: not a failure. Ask
			// another relay or a peer that has c, else wait a little
			// (waiting relayRetryWait here left members seconds behind)
			// and ask the busy relays again.
			busy++
			attempts--
			busyRelays[src] = true
			if !m.untriedSource(c, tried) {
				m.waitBusy(ctx, c, tried)
				for r := range busyRelays {
					delete(tried, r)
				}
				clear(busyRelays)
			}
			continue
		}
		if kind == kindRelay && !errors.Is(err, p2p.ErrBusy) {
			now := time.Now()
			m.relayFailSince.CompareAndSwap(0, now.UnixNano())
			if relayFails.IsZero() {
				relayFails = now
			}
		}
	}
	m.mu.Lock()
	m.stats.Failed++
	m.mu.Unlock()
	return core.Verified{}, fmt.Errorf("%w: %s: %w", ErrNoSource, c, lastErr)
}

// manifestBudget is the size a manifest's sources are timed for until
// one announces the real size (see FetchManifest).
const manifestBudget = 256 << 10

type budgetKey struct{}

// FetchManifest is Fetch for a package's manifest, whose size nobody
// knows until a source announces it: at most core.MaxManifestBytes, but
// each source gets FragmentTimeout of manifestBudget (256 KiB) to answer,
// not the time for the largest manifest; the payload then has the time
// for the size announced. A relay pulling a larger manifest through
// slowly is asked again, and the second ask joins its pull.
func (m *Mesh) FetchManifest(ctx context.Context, c cid.Cid) (core.Verified, error) {
	return m.Fetch(context.WithValue(ctx, budgetKey{}, int64(manifestBudget)), c, core.MaxManifestBytes)
}

// untriedSource reports whether a site peer that has c, or a relay, is
// left to ask.
func (m *Mesh) untriedSource(c cid.Cid, tried map[peer.ID]bool) bool {
	if len(m.peersWith(c, tried)) > 0 {
		return true
	}
	now := time.Now()
	for _, r := range m.relays(c) {
		if !tried[r] && !m.banned(r, now) {
			return true
		}
	}
	return false
}

// waitBusy waits busyRetry, or less when a site peer not tried yet
// announces c, or until ctx ends.
func (m *Mesh) waitBusy(ctx context.Context, c cid.Cid, tried map[peer.ID]bool) {
	t := time.NewTimer(jittered(busyRetry))
	defer t.Stop()
	for {
		changed := m.HaveChanged()
		if len(m.peersWith(c, tried)) > 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			return
		case <-changed:
		}
	}
}

// waitForSource waits, at most relayRetryWait, until a source not tried
// yet may have c (a site peer that announced it, a relay that is not
// banned), the relays may be bypassed, or ctx ends.
func (m *Mesh) waitForSource(ctx context.Context, c cid.Cid, tried map[peer.ID]bool) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	deadline := time.Now().Add(relayRetryWait)
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if now.After(deadline) || m.IsRelay() || m.mayBypassRelays() || m.untriedSource(c, tried) {
				return
			}
		}
	}
}

type sourceKind int

const (
	kindPeer sourceKind = iota
	kindRelay
	kindCoordinator
	kindUpstream
	kindOtherSite
)

func (m *Mesh) count(k sourceKind) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch k {
	case kindPeer:
		m.stats.FromPeers++
	case kindRelay:
		m.stats.FromRelay++
	case kindCoordinator:
		m.stats.FromCoordinator++
	case kindUpstream:
		m.stats.FromUpstreamAsRelay++
	case kindOtherSite:
		m.stats.FromOtherSites++
	}
}

// next picks the next source not yet tried.
func (m *Mesh) next(c cid.Cid, tried map[peer.ID]bool) (peer.ID, sourceKind) {
	if ps := m.peersWith(c, tried); len(ps) > 0 {
		return ps[0], kindPeer
	}
	now := time.Now()
	// A relay cut below the floor lately is skipped once the relays may
	// be bypassed (every relay is slow or failing): the coordinator
	// first, the slow relay only after it.
	bypass := m.mayBypassRelays()
	var slow peer.ID
	for _, r := range m.relays(c) {
		if tried[r] || m.banned(r, now) {
			continue
		}
		if bypass && m.isSlow(r, now) {
			if slow == "" {
				slow = r
			}
			continue
		}
		return r, kindRelay
	}
	if !tried[m.cfg.Coordinator] {
		return m.cfg.Coordinator, kindCoordinator
	}
	if slow != "" {
		return slow, kindRelay
	}
	return "", 0
}

// isSlow reports whether p was cut below the floor within SlowMemory.
func (m *Mesh) isSlow(p peer.ID, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.floorScale == 1 && m.sources[p].slow(now, m.cfg.SlowMemory)
}

// localSlow reports whether this node's own link seems to be the slow one
// (its floor is lowered, see cutLocked): it then sends no hedges, and no
// relay counts as slow.
func (m *Mesh) localSlow() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.floorScale < 1
}

// noRelayGrace is how long a node must have seen no relay in its site
// before it fetches straight from the coordinator: under load a member
// can lose sight of its relays for a moment (suspected, re-elected), and
// going around them then sends fragments over the WAN again.
const noRelayGrace = 2 * time.Second

// mayBypassRelays reports whether a node may fetch straight from the
// coordinator: when it sees no site, when its site has had no relay for
// noRelayGrace, or when the relays have kept failing for RelayGiveUp.
func (m *Mesh) mayBypassRelays() bool {
	if m.cfg.Members == nil || m.cfg.Strategy == StrategyDirect {
		return true
	}
	if len(m.cfg.Members.Relays()) == 0 {
		now := time.Now().UnixNano()
		m.noRelaySince.CompareAndSwap(0, now)
		return time.Duration(now-m.noRelaySince.Load()) >= noRelayGrace
	}
	m.noRelaySince.Store(0)
	// Every relay caught sending bytes that do not match their CID, or
	// cut below the floor lately: the site cannot relay now, so go
	// upstream at once.
	allBad, now := true, time.Now()
	for _, r := range m.cfg.Members.Relays() {
		id, err := p2p.DecodePeerID(r)
		if err != nil || id == m.cfg.Host.ID() || !m.banned(id, now) && !m.isSlow(id, now) {
			allBad = false
			break
		}
	}
	if allBad {
		return true
	}
	since := m.relayFailSince.Load()
	return since != 0 && time.Since(time.Unix(0, since)) >= m.cfg.RelayGiveUp
}

func (m *Mesh) banned(p peer.ID, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.sources[p]
	return s != nil && now.Before(s.banned)
}

// fetchFrom fetches c from p within the fragment's deadline, keeping p's
// throughput and load, penalising p for bytes that do not match c and
// forgetting that p has c when it does not.
func (m *Mesh) fetchFrom(ctx context.Context, p peer.ID, c cid.Cid, maxSize int64, progress func(int), extra ...p2p.FetchOption) (core.Verified, error) {
	inSite := p != m.cfg.Coordinator && m.alive()[p]
	floor := m.floor(p)
	budget := maxSize
	if b, ok := ctx.Value(budgetKey{}).(int64); ok && b < budget {
		budget = b
	}
	m.mu.Lock()
	s := m.sources[p]
	if s == nil {
		s = &source{}
		m.sources[p] = s
	}
	s.inflight++
	if m.active[c] == nil {
		m.active[c] = map[peer.ID]int{}
	}
	m.active[c][p]++
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		s.inflight--
		if m.active[c][p]--; m.active[c][p] == 0 {
			delete(m.active[c], p)
			if len(m.active[c]) == 0 {
				delete(m.active, c)
			}
		}
		m.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(ctx, m.cfg.FragmentTimeout(maxSize))
	defer cancel()
	start := time.Now()
	opts := []p2p.FetchOption{p2p.WithMeter(m.cfg.Meter), p2p.WithSizedTimeout(m.cfg.FragmentTimeout)}
	if budget < maxSize {
		opts = append(opts, p2p.WithHeaderTimeout(m.cfg.FragmentTimeout(budget)))
	}
	if inSite && floor > 0 {
		opts = append(opts, p2p.WithFloor(floor, m.cfg.FloorGrace))
	}
	if progress != nil {
		opts = append(opts, p2p.WithProgress(progress))
	}
	opts = append(opts, extra...)
	v, err := p2p.FetchVerified(ctx, m.cfg.Host, p, c, maxSize, opts...)
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case err == nil:
		bps := float64(len(v.Bytes())) / max(time.Since(start).Seconds(), 1e-3)
		if s.ewma == 0 {
			s.ewma = bps
		} else {
			s.ewma = 0.7*s.ewma + 0.3*bps
		}
		if inSite && len(v.Bytes()) >= hedgeMeasureMin {
			if m.siteRate == 0 {
				m.siteRate = bps
			} else {
				m.siteRate = 0.7*m.siteRate + 0.3*bps
			}
		}
		switch {
		case floor > 0:
			m.okLocked(bps, floor)
		case m.cfg.FloorBps > 0 && len(v.Bytes()) >= hedgeMeasureMin &&
			bps < float64(m.cfg.FloorBps)*m.floorScale:
			// A source held to no floor (the coordinator) was as slow
			// as a cut one: evidence that this node's link is the slow
			// one, counted like a cut (not acted on against p).
			m.cutLocked(p)
		}
	case errors.Is(err, core.ErrDigestMismatch):
		s.banned = time.Now().Add(m.cfg.Penalty)
		m.stats.Corrupt++
		m.log.Warn("source sent bytes that do not match the CID: avoiding it", "peer", p, "cid", c, "for", m.cfg.Penalty)
		m.forgetLocked(c, p)
		if m.cfg.OnDistrust != nil {
			go m.cfg.OnDistrust() // the site learns not to elect it
		}
	case errors.Is(err, p2p.ErrTooSlow):
		s.ewma *= 0.5
		s.slowAt = time.Now()
		m.stats.TooSlow++
		m.log.Info("source below the throughput floor: cut, asking another", "peer", p, "cid", c, "err", err)
		m.cutLocked(p)
	case errors.Is(err, p2p.ErrNotFound), errors.Is(err, p2p.ErrTooLarge):
		// A holder announcing more than the fragment's size does not
		// have it (or lies): not asked for it again.
		m.forgetLocked(c, p)
	case errors.As(err, new(*p2p.RedirectError)), errors.Is(err, p2p.ErrBusy):
		// not a failure of p
	default:
		s.ewma *= 0.5 // slow or failing: rank it lower
		m.log.Debug("fetch from source failed", "peer", p, "cid", c, "err", err)
	}
	return v, err
}

// minFloorScale bounds how far a slow downlink lowers the floor: 64 KiB/s
// goes down to 64 B/s at most, which still cuts a byte-a-second trickle.
const minFloorScale = 1.0 / 1024

// floor is the throughput floor fetches from p are held to, bytes/s (0:
// none): FloorBps for site members, scaled down while this node's own
// downlink seems to be the bottleneck (see cutLocked), and raised for
// plain peers to FloorFraction of the site's measured rate.
func (m *Mesh) floor(p peer.ID) int64 {
	if m.cfg.FloorBps == 0 || p == m.cfg.Coordinator || !m.alive()[p] {
		return 0
	}
	relay := slices.Contains(m.relayIDs(), p)
	m.mu.Lock()
	defer m.mu.Unlock()
	f := max(int64(float64(m.cfg.FloorBps)*m.floorScale), 1)
	if m.floorScale == 1 && m.cfg.FloorFraction > 0 && !relay {
		f = max(f, int64(m.cfg.FloorFraction*m.siteRate))
	}
	return f
}

// cutLocked counts a cut of p below the floor. When, since the floor last
// moved, cuts hit at least two different sources and were at least as
// many as the fetches from site members that went through, the sources
// are not the slow ones: this node's own link is. The floor is halved
// then (down to minFloorScale); okLocked doubles it back after
// floorRestore fetches in a row well above it. A node behind a slow
// downlink would otherwise cut every source it has; one slow source among
// good ones is still cut, the floor staying where it is.
func (m *Mesh) cutLocked(p peer.ID) {
	if m.cutFrom == nil {
		m.cutFrom = map[peer.ID]bool{}
	}
	m.cutFrom[p] = true
	m.cuts++
	m.okInRow = 0
	if len(m.cutFrom) >= 2 && m.cuts >= m.oks {
		m.floorScale = max(m.floorScale/2, minFloorScale)
		m.cuts, m.oks, m.cutFrom = 0, 0, nil
		// The sources were not the slow ones: forget they were cut, so
		// neither ranking nor relay bypass acts on it.
		for _, s := range m.sources {
			s.slowAt = time.Time{}
		}
		m.log.Info("sources cut one after another: this node's link may be the slow one; floor lowered",
			"floor_bps", int64(float64(m.cfg.FloorBps)*m.floorScale))
	}
}

// floorRestore is how many fetches in a row at four times the floor or more
// double a lowered floor back.
const floorRestore = 4

// okLocked counts a fetch from a site member that went through at bps
// under floor.
func (m *Mesh) okLocked(bps float64, floor int64) {
	m.oks++
	if floor == 0 || bps < 4*float64(floor) {
		m.okInRow = 0
		return
	}
	if m.okInRow++; m.okInRow >= floorRestore && m.floorScale < 1 {
		m.floorScale = min(1, 2*m.floorScale)
		m.okInRow = 0
	}
}

func (m *Mesh) forgetLocked(c cid.Cid, p peer.ID) {
	if set := m.dir[c]; set != nil {
		delete(set, p)
	}
}

// upstreamBytes is the relay's pull-through: a fragment already in the site
// comes from the peers that have it; otherwise it crosses the WAN once,
// whoever asks and however many ask at the same time: through the relay
// rendezvous hashing assigns it to, or, on that relay, from the
// coordinator under the site's WAN cap. The fragment is stored before it
// returns.
//
// Relays asking relays cannot wait on each other in a circle, even when
// their views of the site differ: a relay asks another only when that one
// outweighs it for the fragment (rendezvous weights), so every hop goes to
// a strictly heavier relay and the chain ends at one that goes upstream.
func (m *Mesh) upstreamBytes(ctx context.Context, c cid.Cid, maxSize int64) ([]byte, error) {
	for {
		data, f, err := m.upstreamOnce(ctx, c, maxSize)
		// A flight capped lower than this caller's size (a member that
		// gave a smaller size, wrongly) does not fail this caller: it
		// pulls again under its own cap.
		if f != nil && f.max < maxSize && errors.Is(err, p2p.ErrTooLarge) && ctx.Err() == nil {
			continue
		}
		return data, err
	}
}

// upstreamOnce is one try of upstreamBytes: it leads a pull of c or joins
// the one under way, and returns that flight (nil when c was stored).
func (m *Mesh) upstreamOnce(ctx context.Context, c cid.Cid, maxSize int64) ([]byte, *flight, error) {
	if data, err := m.cfg.Store.Get(c); err == nil {
		return data, nil, nil
	}
	m.mu.Lock()
	f := m.flights[c]
	leader := f == nil
	if leader {
		f = &flight{done: make(chan struct{}), max: maxSize}
		m.flights[c] = f
	}
	m.mu.Unlock()
	if leader {
		via := peer.ID("")
		if r := m.assigned(c); r != "" && r != m.cfg.Host.ID() && !m.banned(r, time.Now()) {
			via = r
		}
		f.err = m.pull(ctx, c, maxSize, via)
		m.mu.Lock()
		delete(m.flights, c)
		m.mu.Unlock()
		close(f.done)
	} else {
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, f, ctx.Err()
		}
	}
	if f.err != nil {
		return nil, f, f.err
	}
	data, err := m.cfg.Store.Get(c)
	return data, f, err
}

// upstream is upstreamBytes for the relay's own fetch: the bytes come back
// hashed (the store verified them as it read them; Verified needs its own
// hash).
func (m *Mesh) upstream(ctx context.Context, c cid.Cid, maxSize int64) (core.Verified, error) {
	data, err := m.upstreamBytes(ctx, c, maxSize)
	if err != nil {
		return core.Verified{}, err
	}
	return core.Verify(c, data)
}

// pull gets c into the store: from a site peer that has it, else through
// relay via (when set), else from the coordinator.
func (m *Mesh) pull(ctx context.Context, c cid.Cid, maxSize int64, via peer.ID) error {
	tried := map[peer.ID]bool{}
	for _, p := range m.peersWith(c, tried) {
		data, err := m.fetchFrom(ctx, p, c, maxSize, nil)
		if err == nil {
			m.count(kindPeer)
			return m.store(data)
		}
	}
	if via != "" {
		data, err := m.viaRelay(ctx, via, c, maxSize)
		if err == nil {
			m.count(kindRelay)
			return m.store(data)
		}
		m.log.Debug("relay: the fragment's relay failed it; pulling from upstream", "cid", c, "relay", via, "err", err)
	}
	select {
	case m.upSem <- struct{}{}:
		defer func() { <-m.upSem }()
	case <-ctx.Done():
		return ctx.Err()
	}
	// Someone in the site may have got it while this pull waited.
	for _, p := range m.peersWith(c, tried) {
		data, err := m.fetchFrom(ctx, p, c, maxSize, nil)
		if err == nil {
			m.count(kindPeer)
			return m.store(data)
		}
	}
	var throttle func(int)
	if m.wan != nil {
		throttle = func(n int) { _ = m.wan.WaitN(ctx, min(n, m.wan.Burst())) }
	}
	var err error
	follow := true // the first ask may be redirected, once
	for attempt := 0; attempt < 3; {
		var data core.Verified
		var opts []p2p.FetchOption
		if follow {
			opts = append(opts, p2p.WithRedirect())
		}
		data, err = m.fetchFrom(ctx, m.cfg.Coordinator, c, maxSize, throttle, opts...)
		if err == nil {
			m.count(kindUpstream)
			return m.store(data)
		}
		var rd *p2p.RedirectError
		if follow && errors.As(err, &rd) {
			// The origin is busy and names relays of other sites that
			// have c: fetch it over their WAN uplinks instead. A redirect
			// is not a failed attempt.
			follow = false
			for _, ai := range rd.Peers {
				m.cfg.Host.Peerstore().AddAddrs(ai.ID, ai.Addrs, time.Hour)
				if data, err = m.fetchFrom(ctx, ai.ID, c, maxSize, throttle); err == nil {
					m.count(kindOtherSite)
					return m.store(data)
				}
				m.log.Debug("relay: another site's relay failed a redirected fetch", "cid", c, "relay", ai.ID, "err", err)
			}
			continue
		}
		attempt++
		if ctx.Err() != nil || errors.Is(err, p2p.ErrNotFound) {
			break
		}
		m.log.Debug("relay: upstream fetch failed", "cid", c, "attempt", attempt, "err", err)
	}
	return fmt.Errorf("mesh: relay pull of %s from upstream: %w", c, err)
}

// jittered is d less up to half of it, at random, so that the members
// told busy, or the relays that missed one another, at the same moment do
// not ask again in lockstep.
func jittered(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

// viaRetries are the waits before asking the fragment's relay again after
// it could not be reached: a busy host can miss a dial timeout, and going
// upstream instead sends the fragment over the WAN a second time.
var viaRetries = []time.Duration{250 * time.Millisecond, time.Second}

// viaRelay fetches c through relay via, the one rendezvous hashing gives
// it to. When via cannot be reached it asks again (see viaRetries) while
// via is still c's relay, clearing libp2p's dial backoff for it first.
func (m *Mesh) viaRelay(ctx context.Context, via peer.ID, c cid.Cid, maxSize int64) (core.Verified, error) {
	data, err := m.fetchFrom(ctx, via, c, maxSize, nil)
	for _, wait := range viaRetries {
		if err == nil || errors.Is(err, p2p.ErrNotFound) || errors.Is(err, core.ErrDigestMismatch) ||
			m.assigned(c) != via || m.banned(via, time.Now()) {
			break
		}
		t := time.NewTimer(jittered(wait))
		select {
		case <-ctx.Done():
			t.Stop()
			return core.Verified{}, ctx.Err()
		case <-t.C:
		}
		if sw, ok := m.cfg.Host.Network().(interface{ Backoff() *swarm.DialBackoff }); ok {
			sw.Backoff().Clear(via)
		}
		data, err = m.fetchFrom(ctx, via, c, maxSize, nil)
	}
	return data, err
}

func (m *Mesh) store(v core.Verified) error {
	if err := cache.PutVerified(m.cfg.Store, v); err != nil {
		return err
	}
	m.Have(v.CID())
	return nil
}

// OpenFragment serves this node's cache to site peers; a relay asked for a
// fragment it lacks pulls it through from upstream first.
func (m *Mesh) OpenFragment(ctx context.Context, c cid.Cid) (io.ReadCloser, int64, error) {
	if !m.IsRelay() || m.cfg.Strategy != StrategyMesh {
		// Without peer swarming (the relay strategy) members have no
		// one else to ask: the relay serves them all.
		return m.open(ctx, c)
	}
	req := p2p.Requester(ctx)
	if req == "" || req == m.cfg.Coordinator || slices.Contains(m.relayIDs(), req) {
		return m.open(ctx, c)
	}
	if !m.alive()[req] {
		// Another site's relay, sent here by the origin.
		r, n, err := m.open(ctx, c)
		if err != nil {
			return nil, 0, err
		}
		m.otherServes.Add(1)
		return onClose(r, func() { m.otherServes.Add(-1) }), n, nil
	}
	// A relay's uplink is its site's way out to other sites and the first
	// copy of each fragment into the site: members (not the site's other
	// relays) get at most relaySiteServes uploads at once, and
	// relaySiteServesShared while another site's relay is downloading
	// from it. One asking for a fragment the relay holds is told it is
	// busy (it asks a peer, or asks again shortly); one the relay pulled
	// through for waits its turn. Small objects (manifests) need no slot.
	if r, n, err := m.cfg.Store.Open(c); err == nil {
		if n <= smallServe {
			return r, n, nil
		}
		if m.memberSlotsFull() {
			return m.busyAnswer(r)
		}
		select {
		case m.siteServe <- struct{}{}:
		default:
			return m.busyAnswer(r)
		}
		return onClose(r, m.freeSiteServe), n, nil
	} else if !errors.Is(err, cache.ErrNotFound) {
		return nil, 0, err
	}
	r, n, err := m.open(ctx, c)
	if err != nil || n <= smallServe {
		return r, n, err
	}
	select {
	case m.siteServe <- struct{}{}:
	case <-ctx.Done():
		_ = r.Close()
		return nil, 0, ctx.Err()
	}
	return onClose(r, m.freeSiteServe), n, nil
}

func (m *Mesh) freeSiteServe() { <-m.siteServe }

// memberSlotsFull reports whether a relay's uploads to its members are at
// their limit: relaySiteServes, or relaySiteServesShared while another
// site's relay downloads from it.
func (m *Mesh) memberSlotsFull() bool {
	n := len(m.siteServe)
	return n >= relaySiteServes || (m.otherServes.Load() > 0 && n >= relaySiteServesShared)
}

// busyAnswer closes r and tells the member the relay is busy.
func (m *Mesh) busyAnswer(r io.ReadCloser) (io.ReadCloser, int64, error) {
	_ = r.Close()
	m.mu.Lock()
	m.stats.BusyAnswers++
	m.mu.Unlock()
	return nil, 0, p2p.ErrBusy
}

// closer runs release once, when the reader is first closed.
type closer struct {
	io.ReadCloser
	release func()
	once    sync.Once
}

func onClose(r io.ReadCloser, release func()) io.ReadCloser {
	return &closer{ReadCloser: r, release: release}
}

func (c *closer) Close() error {
	c.once.Do(c.release)
	return c.ReadCloser.Close()
}

func (m *Mesh) open(ctx context.Context, c cid.Cid) (io.ReadCloser, int64, error) {
	r, n, err := m.cfg.Store.Open(c)
	if err == nil {
		return r, n, nil
	}
	if !errors.Is(err, cache.ErrNotFound) {
		return nil, 0, err
	}
	if !m.IsRelay() {
		return nil, 0, p2p.ErrNotFound
	}
	// A relay pulls through for its own site only: another site's relay
	// sent here by the origin gets what is in the cache.
	if req := p2p.Requester(ctx); req != "" && req != m.cfg.Coordinator && !m.alive()[req] {
		return m.inFlight(ctx, c)
	}
	// The member's request says the fragment's size (frag/1.2.0): the
	// pull is capped and timed by it, not by the largest allowed size.
	maxSize := int64(core.MaxFragmentSize)
	if n := p2p.RequestMax(ctx); n > 0 && n < maxSize {
		maxSize = n
	}
	data, err := m.upstreamBytes(ctx, c, maxSize)
	if err != nil {
		if errors.Is(err, p2p.ErrNotFound) {
			return nil, 0, p2p.ErrNotFound
		}
		return nil, 0, err
	}
	return io.NopCloser(bytes.NewReader(data)), int64(len(data)), nil
}

// inFlight serves c to another site's relay once this relay's fetch of c
// that is under way ends; with no such fetch, c is not here.
func (m *Mesh) inFlight(ctx context.Context, c cid.Cid) (io.ReadCloser, int64, error) {
	m.mu.Lock()
	f := m.flights[c]
	m.mu.Unlock()
	if f == nil {
		return nil, 0, p2p.ErrNotFound
	}
	select {
	case <-f.done:
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	}
	if f.err != nil {
		return nil, 0, p2p.ErrNotFound
	}
	r, n, err := m.cfg.Store.Open(c)
	if errors.Is(err, cache.ErrNotFound) {
		return nil, 0, p2p.ErrNotFound
	}
	return r, n, err
}
