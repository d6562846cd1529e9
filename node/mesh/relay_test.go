package mesh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"

	"github.com/relaymesh/relaymesh/cache"
	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/internal/poll"
	"github.com/relaymesh/relaymesh/node/site"
	"github.com/relaymesh/relaymesh/p2p"
)

// countingSource serves a store and counts what it served.
type countingSource struct {
	store  cache.Store
	served atomic.Int64
}

func (s *countingSource) OpenFragment(_ context.Context, c cid.Cid) (io.ReadCloser, int64, error) {
	r, n, err := s.store.Open(c)
	if err != nil {
		return nil, 0, p2p.ErrNotFound
	}
	s.served.Add(1)
	return r, n, nil
}

func loopbackHost(t *testing.T) host.Host {
	t.Helper()
	k, err := p2p.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	h, err := p2p.NewHost(p2p.DefaultHostConfig(k))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func introduce(hs ...host.Host) {
	for _, a := range hs {
		for _, b := range hs {
			if a != b {
				a.Peerstore().AddAddrs(b.ID(), b.Addrs(), peerstore.PermanentAddrTTL)
			}
		}
	}
}

// relaySite is a coordinator serving fragments and relays of one site,
// each with its own view of the site's relays.
type relaySite struct {
	origin *countingSource
	relays []*Mesh
	ids    []peer.ID
}

// newRelaySite starts n relays; views[i] lists the indexes relay i sees as
// relays (itself included).
func newRelaySite(t *testing.T, views [][]int) *relaySite {
	t.Helper()
	co := loopbackHost(t)
	hs := []host.Host{co}
	rs := &relaySite{origin: &countingSource{store: cache.NewMemory(0)}}
	for range views {
		h := loopbackHost(t)
		hs = append(hs, h)
		rs.ids = append(rs.ids, h.ID())
	}
	introduce(hs...)
	if err := p2p.ServeFragments(co, p2p.FragmentServerConfig{Source: rs.origin}); err != nil {
		t.Fatal(err)
	}
	for i, view := range views {
		fs := &fakeSite{self: true, relays: rs.view(view)}
		for _, id := range rs.ids {
			fs.members = append(fs.members, id.String())
		}
		m, err := New(Config{Host: hs[i+1], Coordinator: co.ID(), Store: cache.NewMemory(0), Members: fs, Logger: discard})
		if err != nil {
			t.Fatal(err)
		}
		if err := p2p.ServeFragments(hs[i+1], p2p.FragmentServerConfig{Source: m}); err != nil {
			t.Fatal(err)
		}
		rs.relays = append(rs.relays, m)
	}
	return rs
}

func (rs *relaySite) view(idx []int) []string {
	var out []string
	for _, i := range idx {
		out = append(out, rs.ids[i].String())
	}
	return out
}

// assigned reports the index of the relay view gives c to.
func (rs *relaySite) assigned(c cid.Cid, view []int) int {
	a := site.Assign(c.KeyString(), rs.view(view))
	for i, id := range rs.ids {
		if id.String() == a {
			return i
		}
	}
	return -1
}

// fragment stores at the origin a fragment for which pick holds.
func (rs *relaySite) fragment(t *testing.T, pick func(c cid.Cid) bool) cid.Cid {
	t.Helper()
	for i := range 10000 {
		data := []byte(fmt.Sprintf("fragment %d", i))
		c := core.FragmentCID(data)
		if pick(c) {
			if err := rs.origin.store.Put(c, data); err != nil {
				t.Fatal(err)
			}
			return c
		}
	}
	t.Fatal("no fragment fits")
	return cid.Undef
}

func TestRelayAsksTheFragmentsRelayInsteadOfTheWAN(t *testing.T) {
	t.Parallel()
	both := []int{0, 1}
	rs := newRelaySite(t, [][]int{both, both})
	c := rs.fragment(t, func(c cid.Cid) bool { return rs.assigned(c, both) == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := rs.relays[0].Fetch(ctx, c, 1<<20); err != nil {
		t.Fatal(err)
	}
	if got := rs.origin.served.Load(); got != 1 {
		t.Fatalf("origin served %d times, want 1", got)
	}
	if s0, s1 := rs.relays[0].Stats(), rs.relays[1].Stats(); s0.FromRelay != 1 || s0.FromUpstreamAsRelay != 0 || s1.FromUpstreamAsRelay != 1 {
		t.Fatalf("relay 0 %+v, relay 1 %+v: want 0 through 1, 1 from upstream", s0, s1)
	}
	// Relay 1 has it now: its own fetch costs the WAN nothing.
	if _, err := rs.relays[1].Fetch(ctx, c, 1<<20); err != nil {
		t.Fatal(err)
	}
	if got := rs.origin.served.Load(); got != 1 {
		t.Fatalf("origin served %d times after relay 1's fetch, want 1", got)
	}
}

func TestRelaysWithDifferentViewsEndAtOneUpstreamPull(t *testing.T) {
	t.Parallel()
	// Relay 0 sees relays {0, 1}; relays 1 and 2 see {0, 1, 2}. For the
	// chosen fragment relay 0's view assigns 1 and the others' assign 2:
	// 0 asks 1, 1 asks 2, 2 goes upstream, and the fragment crosses the
	// WAN once, while every relay fetches it at the same time.
	small, all := []int{0, 1}, []int{0, 1, 2}
	rs := newRelaySite(t, [][]int{small, all, all})
	c := rs.fragment(t, func(c cid.Cid) bool { return rs.assigned(c, small) == 1 && rs.assigned(c, all) == 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errs := make(chan error, len(rs.relays))
	for _, m := range rs.relays {
		go func() { _, err := m.Fetch(ctx, c, 1<<20); errs <- err }()
	}
	for range rs.relays {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := rs.origin.served.Load(); got != 1 {
		t.Fatalf("origin served %d times, want 1", got)
	}
	if s := rs.relays[2].Stats(); s.FromUpstreamAsRelay != 1 {
		t.Fatalf("relay 2 %+v: want the one upstream pull", s)
	}
}

func TestBusyOriginSendsRelayToAnotherSite(t *testing.T) {
	t.Parallel()
	co, hq, hh := loopbackHost(t), loopbackHost(t), loopbackHost(t)
	introduce(co, hq, hh)
	held := []byte("fragment another site's relay holds")
	missing := []byte("fragment nobody else holds")
	origin := &countingSource{store: cache.NewMemory(0)}
	for _, d := range [][]byte{held, missing} {
		if err := origin.store.Put(core.FragmentCID(d), d); err != nil {
			t.Fatal(err)
		}
	}
	// The origin always sends relay q to relay h of another site.
	if err := p2p.ServeFragments(co, p2p.FragmentServerConfig{Source: origin,
		Redirect: func(from peer.ID, _ cid.Cid) []peer.AddrInfo {
			if from != hq.ID() {
				return nil
			}
			return []peer.AddrInfo{{ID: hh.ID(), Addrs: hh.Addrs()}}
		}}); err != nil {
		t.Fatal(err)
	}
	relay := func(h host.Host) *Mesh {
		fs := &fakeSite{self: true, relays: []string{h.ID().String()}, members: []string{h.ID().String()}}
		m, err := New(Config{Host: h, Coordinator: co.ID(), Store: cache.NewMemory(0), Members: fs, Logger: discard})
		if err != nil {
			t.Fatal(err)
		}
		if err := p2p.ServeFragments(h, p2p.FragmentServerConfig{Source: m}); err != nil {
			t.Fatal(err)
		}
		return m
	}
	q, h := relay(hq), relay(hh)
	if err := h.cfg.Store.Put(core.FragmentCID(held), held); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := q.Fetch(ctx, core.FragmentCID(held), 1<<20); err != nil {
		t.Fatal(err)
	}
	if s := q.Stats(); s.FromOtherSites != 1 || origin.served.Load() != 0 {
		t.Fatalf("q %+v, origin served %d: want the fragment from the other site's relay", s, origin.served.Load())
	}
	// h lacks the other fragment: it does not pull it through for another
	// site, and q falls back to the origin, asking not to be redirected.
	if _, err := q.Fetch(ctx, core.FragmentCID(missing), 1<<20); err != nil {
		t.Fatal(err)
	}
	if s, hs := q.Stats(), h.Stats(); s.FromUpstreamAsRelay != 1 || hs.FromUpstreamAsRelay != 0 || origin.served.Load() != 1 {
		t.Fatalf("q %+v, h %+v, origin served %d: want q from the origin once, h never pulling for q", s, hs, origin.served.Load())
	}
}

func TestRelayServesMembersAFewAtATime(t *testing.T) {
	t.Parallel()
	co, hr, hr2, hm := loopbackHost(t), loopbackHost(t), loopbackHost(t), loopbackHost(t)
	member := hm.ID()
	fs := &fakeSite{self: true, relays: []string{hr.ID().String(), hr2.ID().String()},
		members: []string{hr.ID().String(), hr2.ID().String(), member.String()}}
	m := newMesh(t, hr, co.ID(), fs, StrategyMesh)
	c := hold(t, m, bytes.Repeat([]byte("fragment the relay holds "), 2*smallServe/25))
	small := hold(t, m, []byte("a manifest"))
	open := func(from peer.ID) (io.ReadCloser, error) {
		r, _, err := m.OpenFragment(p2p.WithRequester(context.Background(), from), c)
		return r, err
	}
	held := takeSlots(t, m, member, c, relaySiteServes)
	if _, err := open(member); !errors.Is(err, p2p.ErrBusy) {
		t.Fatalf("a member's request with every slot taken = %v, want ErrBusy", err)
	}
	if s := m.Stats(); s.BusyAnswers != 1 {
		t.Fatalf("stats %+v: want 1 busy answer", s)
	}
	// A manifest-sized object needs no slot.
	if r, _, err := m.OpenFragment(p2p.WithRequester(context.Background(), member), small); err != nil {
		t.Fatalf("a small object with every slot taken: %v", err)
	} else {
		_ = r.Close()
	}
	// The site's other relay, the coordinator and other sites' relays do
	// not wait for member slots.
	for _, p := range []peer.ID{hr2.ID(), co.ID()} {
		r, err := open(p)
		if err != nil {
			t.Fatalf("request of %s with member slots taken: %v", p, err)
		}
		_ = r.Close()
	}
	_ = held[0].Close()
	_ = held[0].Close() // a second Close frees nothing more
	r, err := open(member)
	if err != nil {
		t.Fatalf("a member's request after a slot freed: %v", err)
	}
	if _, err := open(member); !errors.Is(err, p2p.ErrBusy) {
		t.Fatalf("double Close freed two slots: %v", err)
	}
	_ = r.Close()
	for _, r := range held[1:] {
		_ = r.Close()
	}
	// While another site's relay downloads from it, members get fewer.
	other := loopbackHost(t).ID()
	ro, err := open(other)
	if err != nil {
		t.Fatal(err)
	}
	held = takeSlots(t, m, member, c, relaySiteServesShared)
	if _, err := open(member); !errors.Is(err, p2p.ErrBusy) {
		t.Fatalf("a member's request while another site downloads, %d slots taken = %v, want ErrBusy", relaySiteServesShared, err)
	}
	_ = ro.Close()
	_ = ro.Close()
	if r, err := open(member); err != nil {
		t.Fatalf("a member's request once the other site is done: %v", err)
	} else {
		_ = r.Close()
	}
	for _, r := range held {
		_ = r.Close()
	}
}

// gate is an origin whose uploads wait until it is opened.
type gate struct {
	countingSource
	open chan struct{}
}

func (g *gate) OpenFragment(ctx context.Context, c cid.Cid) (io.ReadCloser, int64, error) {
	select {
	case <-g.open:
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	}
	return g.countingSource.OpenFragment(ctx, c)
}

// asked counts the requests a source has begun to answer.
type asked struct {
	p2p.FragmentSource
	n atomic.Int64
}

func (a *asked) OpenFragment(ctx context.Context, c cid.Cid) (io.ReadCloser, int64, error) {
	a.n.Add(1)
	return a.FragmentSource.OpenFragment(ctx, c)
}

func TestRelayAnswersAnotherSiteOnceItsFetchEnds(t *testing.T) {
	t.Parallel()
	co, hh, hq := loopbackHost(t), loopbackHost(t), loopbackHost(t)
	introduce(co, hh, hq)
	data := []byte("fragment on its way to relay h")
	c := core.FragmentCID(data)
	origin := &gate{countingSource: countingSource{store: cache.NewMemory(0)}, open: make(chan struct{})}
	if err := origin.store.Put(c, data); err != nil {
		t.Fatal(err)
	}
	if err := p2p.ServeFragments(co, p2p.FragmentServerConfig{Source: origin}); err != nil {
		t.Fatal(err)
	}
	fs := &fakeSite{self: true, relays: []string{hh.ID().String()}, members: []string{hh.ID().String()}}
	h := newMesh(t, hh, co.ID(), fs, StrategyMesh)
	src := &asked{FragmentSource: h}
	if err := p2p.ServeFragments(hh, p2p.FragmentServerConfig{Source: src}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hDone := make(chan error, 1)
	go func() { _, err := h.Fetch(ctx, c, 1<<20); hDone <- err }()
	// Relay q of another site, sent to h by the origin, asks while h's
	// own fetch waits at the origin.
	qGot := make(chan error, 1)
	go func() {
		got, err := p2p.FetchFragment(ctx, hq, hh.ID(), c, 1<<20)
		if err == nil && !bytes.Equal(got, data) {
			err = fmt.Errorf("got %q", got)
		}
		qGot <- err
	}()
	for src.n.Load() == 0 {
		select {
		case <-ctx.Done():
			t.Fatal("q's request never reached h")
		case <-time.After(5 * time.Millisecond): // polling interval
		}
	}
	close(origin.open)
	if err := <-hDone; err != nil {
		t.Fatal(err)
	}
	if err := <-qGot; err != nil {
		t.Fatalf("q's fetch from h during h's fetch: %v", err)
	}
	if got := origin.served.Load(); got != 1 {
		t.Fatalf("origin served %d times, want 1 (q got h's copy)", got)
	}
}

func TestMembersAskPeersBeforeRelays(t *testing.T) {
	t.Parallel()
	self, hr, hp := loopbackHost(t), loopbackHost(t), loopbackHost(t)
	fs := &fakeSite{relays: []string{hr.ID().String()},
		members: []string{self.ID().String(), hr.ID().String(), hp.ID().String()}}
	m := newMesh(t, self, hr.ID(), fs, StrategyMesh)
	c := core.FragmentCID([]byte("held by a relay and a peer"))
	m.mu.Lock()
	m.dir[c] = map[peer.ID]struct{}{hr.ID(): {}, hp.ID(): {}}
	m.sources[hr.ID()] = &source{ewma: 1e9} // the relay is the fastest so far
	m.mu.Unlock()
	for range 20 { // the order of equal peers is shuffled
		if got := m.peersWith(c, map[peer.ID]bool{}); len(got) != 2 || got[0] != hp.ID() || got[1] != hr.ID() {
			t.Fatalf("peersWith = %v, want the peer %s before the relay %s", got, hp.ID(), hr.ID())
		}
	}
}

func TestRelayStrategyServesEveryMember(t *testing.T) {
	t.Parallel()
	co, hr, hm := loopbackHost(t), loopbackHost(t), loopbackHost(t)
	fs := &fakeSite{self: true, relays: []string{hr.ID().String()}, members: []string{hr.ID().String(), hm.ID().String()}}
	m := newMesh(t, hr, co.ID(), fs, StrategyRelay)
	c := hold(t, m, []byte("fragment for every member"))
	// Without peer swarming members have nobody else to ask: no slots.
	for i := range relaySiteServes + 2 {
		r, _, err := m.OpenFragment(p2p.WithRequester(context.Background(), hm.ID()), c)
		if err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
		defer r.Close()
	}
}

// flaky fails its first n requests, then serves its source.
type flaky struct {
	p2p.FragmentSource
	left atomic.Int64
}

func (f *flaky) OpenFragment(ctx context.Context, c cid.Cid) (io.ReadCloser, int64, error) {
	if f.left.Add(-1) >= 0 {
		return nil, 0, errors.New("momentarily unable")
	}
	return f.FragmentSource.OpenFragment(ctx, c)
}

func TestRelayAsksTheFragmentsRelayAgainBeforeTheWAN(t *testing.T) {
	// Not parallel: it shortens viaRetries.
	saved := viaRetries
	viaRetries = []time.Duration{time.Millisecond, time.Millisecond}
	defer func() { viaRetries = saved }()
	both := []int{0, 1}
	rs := newRelaySite(t, [][]int{both, both})
	c := rs.fragment(t, func(c cid.Cid) bool { return rs.assigned(c, both) == 1 })
	// Relay 1, which c is assigned to, fails its first two requests.
	h1 := rs.relays[1].cfg.Host
	src := &flaky{FragmentSource: rs.relays[1]}
	src.left.Store(2)
	h1.RemoveStreamHandler(p2p.FragmentProtocol)
	h1.RemoveStreamHandler(p2p.FragmentProtocolRedirect)
	h1.RemoveStreamHandler(p2p.FragmentProtocolSized)
	if err := p2p.ServeFragments(h1, p2p.FragmentServerConfig{Source: src}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := rs.relays[0].Fetch(ctx, c, 1<<20); err != nil {
		t.Fatal(err)
	}
	if got := rs.origin.served.Load(); got != 1 {
		t.Fatalf("origin served %d times, want 1 (relay 0 should not go upstream itself)", got)
	}
	if s0 := rs.relays[0].Stats(); s0.FromRelay != 1 || s0.FromUpstreamAsRelay != 0 {
		t.Fatalf("relay 0 %+v: want the fragment through relay 1", s0)
	}
	// With the retries spent, relay 0 goes upstream itself.
	c2 := rs.fragment(t, func(x cid.Cid) bool { return x != c && rs.assigned(x, both) == 1 })
	src.left.Store(3)
	if _, err := rs.relays[0].Fetch(ctx, c2, 1<<20); err != nil {
		t.Fatal(err)
	}
	if s0 := rs.relays[0].Stats(); s0.FromUpstreamAsRelay != 1 {
		t.Fatalf("relay 0 %+v: want one upstream pull once relay 1 kept failing", s0)
	}
}

// newMesh is a mesh on h with an in-memory store.
func newMesh(t *testing.T, h host.Host, coord peer.ID, fs *fakeSite, strategy string) *Mesh {
	t.Helper()
	m, err := New(Config{Host: h, Coordinator: coord, Store: cache.NewMemory(0), Members: fs, Logger: discard, Strategy: strategy})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// hold stores data in m's cache and returns its CID.
func hold(t *testing.T, m *Mesh, data []byte) cid.Cid {
	t.Helper()
	c := core.FragmentCID(data)
	if err := m.cfg.Store.Put(c, data); err != nil {
		t.Fatal(err)
	}
	return c
}

// A member told busy by its relay asks again shortly, and busy answers do
// not use up its attempts: it gets the fragment once a slot frees, after
// more busy answers than a fetch has attempts.
func TestBusyRelayIsAskedAgain(t *testing.T) {
	t.Parallel()
	co, hr, hm := loopbackHost(t), loopbackHost(t), loopbackHost(t)
	introduce(co, hr, hm)
	ids := []string{hr.ID().String(), hm.ID().String()}
	relay := newMesh(t, hr, co.ID(), &fakeSite{self: true, relays: ids[:1], members: ids}, StrategyMesh)
	member := newMesh(t, hm, co.ID(), &fakeSite{relays: ids[:1], members: ids}, StrategyMesh)
	if err := p2p.ServeFragments(hr, p2p.FragmentServerConfig{Source: relay}); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("x"), 2*smallServe)
	c := hold(t, relay, data)
	held := takeSlots(t, relay, hm.ID(), c, relaySiteServes)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	type result struct {
		data []byte
		err  error
	}
	got := make(chan result, 1)
	go func() {
		b, err := member.Fetch(ctx, c, 1<<20)
		got <- result{b.Bytes(), err}
	}()
	poll.Until(t, 30*time.Second, 10*time.Millisecond, "busy answers beyond maxAttempts", func() (bool, string) {
		n := relay.Stats().BusyAnswers
		return n > maxAttempts, fmt.Sprintf("%d busy answers", n)
	})
	for _, r := range held {
		_ = r.Close()
	}
	r := <-got
	if r.err != nil || !bytes.Equal(r.data, data) {
		t.Fatalf("fetch after the relay's slots freed: %v", r.err)
	}
	if s := member.Stats(); s.FromRelay != 1 || s.Failed != 0 {
		t.Fatalf("member %+v: want the fragment from the relay, no failure", s)
	}
}

// A relay with every serve slot taken names a member it just sent the
// fragment to, and the asking member fetches it there.
func TestBusyRelayNamesItsLatestDownloaders(t *testing.T) {
	t.Parallel()
	co, hr, hd, hm := loopbackHost(t), loopbackHost(t), loopbackHost(t), loopbackHost(t)
	introduce(co, hr, hd, hm)
	ids := []string{hr.ID().String(), hd.ID().String(), hm.ID().String()}
	site := func(self bool) *fakeSite { return &fakeSite{self: self, relays: ids[:1], members: ids} }
	relay := newMesh(t, hr, co.ID(), site(true), StrategyMesh)
	first := newMesh(t, hd, co.ID(), site(false), StrategyMesh)
	member := newMesh(t, hm, co.ID(), site(false), StrategyMesh)
	if err := p2p.ServeFragments(hr, p2p.FragmentServerConfig{Source: relay, Redirect: relay.Redirect, Served: relay.Served}); err != nil {
		t.Fatal(err)
	}
	if err := p2p.ServeFragments(hd, p2p.FragmentServerConfig{Source: first}); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("y"), 2*smallServe)
	c := hold(t, relay, data)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The first member gets it from the relay (slots free: no redirect).
	b, err := first.Fetch(ctx, c, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.cfg.Store.Put(c, b.Bytes()); err != nil {
		t.Fatal(err)
	}
	if s := first.Stats(); s.FromRelay != 1 {
		t.Fatalf("first member %+v: want the fragment from the relay", s)
	}
	takeSlots(t, relay, hm.ID(), c, relaySiteServes)
	if got := relay.Redirect(hd.ID(), c); len(got) != 0 {
		t.Fatalf("redirect of the only downloader to itself: %v", got)
	}
	b, err = member.Fetch(ctx, c, 1<<20)
	if err != nil || !bytes.Equal(b.Bytes(), data) {
		t.Fatalf("fetch with the relay's slots taken: %v", err)
	}
	if s, rs := member.Stats(), relay.Stats(); s.FromPeers != 1 || s.FromRelay != 0 || rs.Redirects != 1 || rs.BusyAnswers != 0 {
		t.Fatalf("member %+v, relay %+v: want one redirect and the fragment from the first member", s, rs)
	}
}

// A member follows a relay's redirect only to live members of its site
// that it does not avoid: a peer outside the site, or a member it caught
// sending bad bytes, is not asked even when the relay names it.
func TestRedirectOnlyToTrustedMembers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		member bool // the named peer is a site member
		banned bool // the member caught it sending bad bytes
	}{
		{"stranger", false, false},
		{"banned member", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			co, hr, hs, hm := loopbackHost(t), loopbackHost(t), loopbackHost(t), loopbackHost(t)
			introduce(co, hr, hs, hm)
			ids := []string{hr.ID().String(), hm.ID().String()}
			if tc.member {
				ids = append(ids, hs.ID().String())
			}
			member := newMesh(t, hm, co.ID(), &fakeSite{relays: ids[:1], members: ids}, StrategyMesh)
			if tc.banned {
				member.mu.Lock()
				member.sources[hs.ID()] = &source{banned: time.Now().Add(time.Hour)}
				member.mu.Unlock()
			}
			data := bytes.Repeat([]byte("z"), 2*smallServe)
			relaySrc := &countingSource{store: cache.NewMemory(0)}
			named := &countingSource{store: cache.NewMemory(0)}
			for _, s := range []*countingSource{relaySrc, named} {
				if err := s.store.Put(core.FragmentCID(data), data); err != nil {
					t.Fatal(err)
				}
			}
			var redirected atomic.Int64
			if err := p2p.ServeFragments(hr, p2p.FragmentServerConfig{Source: relaySrc,
				Redirect: func(peer.ID, cid.Cid) []peer.AddrInfo {
					if redirected.Add(1) == 1 {
						return []peer.AddrInfo{{ID: hs.ID(), Addrs: hs.Addrs()}}
					}
					return nil
				}}); err != nil {
				t.Fatal(err)
			}
			if err := p2p.ServeFragments(hs, p2p.FragmentServerConfig{Source: named}); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			b, err := member.Fetch(ctx, core.FragmentCID(data), 1<<20)
			if err != nil || !bytes.Equal(b.Bytes(), data) {
				t.Fatalf("fetch: %v", err)
			}
			if s := member.Stats(); s.FromRelay != 1 || s.FromPeers != 0 || named.served.Load() != 0 || redirected.Load() != 2 {
				t.Fatalf("member %+v, named peer served %d, redirects asked %d: want the relay's copy after one ignored redirect",
					s, named.served.Load(), redirected.Load())
			}
		})
	}
}

// takeSlots opens c on relay m n times as site member from, holding the
// member serve slots; the readers are closed at the end of the test.
func takeSlots(t *testing.T, m *Mesh, from peer.ID, c cid.Cid, n int) []io.ReadCloser {
	t.Helper()
	var held []io.ReadCloser
	for range n {
		r, _, err := m.OpenFragment(p2p.WithRequester(context.Background(), from), c)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, r)
		t.Cleanup(func() { _ = r.Close() })
	}
	return held
}
