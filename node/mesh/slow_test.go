package mesh

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"golang.org/x/time/rate"

	"github.com/relaymesh/relaymesh/cache"
	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/internal/poll"
	"github.com/relaymesh/relaymesh/p2p"
)

var fragProtocols = []protocol.ID{p2p.FragmentProtocol, p2p.FragmentProtocolRedirect, p2p.FragmentProtocolSized}

// trickle makes h answer every fragment request with a header announcing
// size bytes, then body bytes of which it writes chunk every tick (the
// whole body at once when tick is 0), and counts the requests.
func trickle(t *testing.T, h host.Host, size int64, chunk int, tick time.Duration) *atomic.Int64 {
	t.Helper()
	var asked atomic.Int64
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	for _, proto := range fragProtocols {
		h.SetStreamHandler(proto, func(s network.Stream) {
			defer func() { _ = s.Reset() }()
			asked.Add(1)
			var req struct {
				CID             string `json:"cid"`
				FollowRedirects bool   `json:"follow_redirects"`
				Max             int64  `json:"max"`
			}
			if p2p.ReadMsg(s, 512, &req) != nil {
				return
			}
			if p2p.WriteMsg(s, struct {
				Found bool  `json:"found"`
				Size  int64 `json:"size"`
			}{true, size}) != nil {
				return
			}
			if tick == 0 {
				_, _ = s.Write(make([]byte, size))
				_ = s.Close()
				<-done
				return
			}
			tk := time.NewTicker(tick)
			defer tk.Stop()
			for {
				select {
				case <-done:
					return
				case <-tk.C:
				}
				if _, err := s.Write(make([]byte, chunk)); err != nil {
					return
				}
			}
		})
	}
	return &asked
}

func floorMesh(t *testing.T, h host.Host, coord peer.ID, fs *fakeSite, meter *p2p.Meter) *Mesh {
	t.Helper()
	m, err := New(Config{Host: h, Coordinator: coord, Store: cache.NewMemory(0), Members: fs, Logger: discard,
		FloorBps: 64 << 10, FloorGrace: 300 * time.Millisecond, Meter: meter})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// A site peer trickling a fragment (a byte every 10 ms) is cut at the
// floor, the fetch completes from another peer, and the slow peer is
// ranked after the others for the next fragment.
func TestSlowPeerIsCutAndRankedDown(t *testing.T) {
	t.Parallel()
	self, slow, good, co := loopbackHost(t), loopbackHost(t), loopbackHost(t), loopbackHost(t)
	introduce(self, slow, good, co)
	data := bytes.Repeat([]byte("s"), 200<<10)
	c := core.FragmentCID(data)
	asked := trickle(t, slow, int64(len(data)), 1, 10*time.Millisecond)
	if err := p2p.ServeFragments(good, p2p.FragmentServerConfig{Source: &countingSource{store: storeWith(t, data)}}); err != nil {
		t.Fatal(err)
	}
	ids := []string{self.ID().String(), slow.ID().String(), good.ID().String()}
	m := floorMesh(t, self, co.ID(), &fakeSite{members: ids}, nil)
	m.mu.Lock()
	m.dir[c] = map[peer.ID]struct{}{slow.ID(): {}, good.ID(): {}}
	m.sources[slow.ID()] = &source{ewma: 1e9} // the fastest so far: asked first
	m.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a test timeout only
	defer cancel()
	v, err := m.Fetch(ctx, c, int64(len(data)))
	if err != nil || !bytes.Equal(v.Bytes(), data) {
		t.Fatalf("fetch with a trickling peer first: %v", err)
	}
	if s := m.Stats(); s.TooSlow != 1 || s.FromPeers != 1 || asked.Load() != 1 {
		t.Fatalf("stats %+v, slow peer asked %d times: want it cut once and the fragment from the other peer", s, asked.Load())
	}
	if got := m.peersWith(c, map[peer.ID]bool{}); len(got) != 2 || got[0] != good.ID() || got[1] != slow.ID() {
		t.Fatalf("peersWith after the cut = %v, want %s first and the slow %s last", got, good.ID(), slow.ID())
	}
}

// A member whose only relay trickles is cut at the floor and fetches from
// the coordinator; the next fragment goes to the coordinator without
// waiting on the slow relay again.
func TestSlowRelayIsCutAndBypassed(t *testing.T) {
	t.Parallel()
	self, relay, co := loopbackHost(t), loopbackHost(t), loopbackHost(t)
	introduce(self, relay, co)
	d1, d2 := bytes.Repeat([]byte("1"), 100<<10), bytes.Repeat([]byte("2"), 100<<10)
	origin := &countingSource{store: storeWith(t, d1, d2)}
	if err := p2p.ServeFragments(co, p2p.FragmentServerConfig{Source: origin}); err != nil {
		t.Fatal(err)
	}
	asked := trickle(t, relay, int64(len(d1)), 1, 10*time.Millisecond)
	ids := []string{self.ID().String(), relay.ID().String()}
	m := floorMesh(t, self, co.ID(), &fakeSite{members: ids, relays: ids[1:]}, nil)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a test timeout only
	defer cancel()
	for _, d := range [][]byte{d1, d2} {
		v, err := m.Fetch(ctx, core.FragmentCID(d), int64(len(d)))
		if err != nil || !bytes.Equal(v.Bytes(), d) {
			t.Fatalf("fetch with a trickling relay: %v", err)
		}
	}
	if s := m.Stats(); s.TooSlow != 1 || s.FromCoordinator != 2 || asked.Load() != 1 || origin.served.Load() != 2 {
		t.Fatalf("stats %+v, relay asked %d times: want the relay cut once, then both fragments from the coordinator", s, asked.Load())
	}
}

// A relay pulling a fragment through for a member caps the pull by the
// size the member asked for: a site peer announcing four times that size
// is cut before it sends a byte of payload, and the relay gets the
// fragment from the coordinator.
func TestRelayPullBoundedByRealSize(t *testing.T) {
	t.Parallel()
	co, hr, hostile, hm := loopbackHost(t), loopbackHost(t), loopbackHost(t), loopbackHost(t)
	introduce(co, hr, hostile, hm)
	data := bytes.Repeat([]byte("r"), 100<<10)
	c := core.FragmentCID(data)
	if err := p2p.ServeFragments(co, p2p.FragmentServerConfig{Source: &countingSource{store: storeWith(t, data)}}); err != nil {
		t.Fatal(err)
	}
	asked := trickle(t, hostile, 4*int64(len(data)), 0, 0) // announces and sends 400 KiB
	ids := []string{hr.ID().String(), hostile.ID().String(), hm.ID().String()}
	meter := &p2p.Meter{}
	relay := floorMesh(t, hr, co.ID(), &fakeSite{self: true, members: ids, relays: ids[:1]}, meter)
	relay.mu.Lock()
	relay.dir[c] = map[peer.ID]struct{}{hostile.ID(): {}}
	relay.mu.Unlock()
	if err := p2p.ServeFragments(hr, p2p.FragmentServerConfig{Source: relay}); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a test timeout only
	defer cancel()
	got, err := p2p.FetchFragment(ctx, hm, hr.ID(), c, int64(len(data)))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("member's fetch through the relay: %v", err)
	}
	var recv int64
	for _, n := range meter.Snapshot() {
		recv += n.Recv
	}
	if asked.Load() != 1 || recv != int64(len(data)) {
		t.Fatalf("hostile peer asked %d times, relay received %d payload bytes: want it asked once and only the coordinator's %d bytes read",
			asked.Load(), recv, len(data))
	}
	if s := relay.Stats(); s.FromUpstreamAsRelay != 1 {
		t.Fatalf("relay %+v: want the fragment from upstream", s)
	}
}

func storeWith(t *testing.T, frags ...[]byte) cache.Store {
	t.Helper()
	s := cache.NewMemory(0)
	for _, f := range frags {
		if err := s.Put(core.FragmentCID(f), f); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// A hedge goes to another site member that holds the fragment, not to the
// one the fetch under way is reading from, and wins against it; with no
// other holder there is no hedge, and the coordinator is never asked.
func TestHedgeAsksAnotherHolderNeverTheWAN(t *testing.T) {
	t.Parallel()
	self, slow, good, co := loopbackHost(t), loopbackHost(t), loopbackHost(t), loopbackHost(t)
	introduce(self, slow, good, co)
	data := bytes.Repeat([]byte("h"), 200<<10)
	c := core.FragmentCID(data)
	origin := &countingSource{store: storeWith(t, data)}
	if err := p2p.ServeFragments(co, p2p.FragmentServerConfig{Source: origin}); err != nil {
		t.Fatal(err)
	}
	// This mesh has no floor: the slow holder is never cut and only a
	// hedge gets the fragment.
	trickle(t, slow, int64(len(data)), 1, 10*time.Millisecond)
	goodSrc := &countingSource{store: storeWith(t, data)}
	if err := p2p.ServeFragments(good, p2p.FragmentServerConfig{Source: goodSrc}); err != nil {
		t.Fatal(err)
	}
	ids := []string{self.ID().String(), slow.ID().String(), good.ID().String()}
	m, err := New(Config{Host: self, Coordinator: co.ID(), Store: cache.NewMemory(0), Members: &fakeSite{members: ids}, Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.HedgeAfter(int64(len(data))); ok {
		t.Fatal("HedgeAfter with nothing measured yet: want no hedge")
	}
	m.mu.Lock()
	m.dir[c] = map[peer.ID]struct{}{slow.ID(): {}}
	m.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a test timeout only
	defer cancel()
	pctx, pcancel := context.WithCancel(ctx)
	defer pcancel()
	primary := make(chan error, 1)
	go func() { _, err := m.Fetch(pctx, c, int64(len(data))); primary <- err }()
	poll.Until(t, 10*time.Second, 5*time.Millisecond, "the fetch reads from the slow holder", func() (bool, string) {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.active[c][slow.ID()] > 0, ""
	})
	// The only holder is the one being read: nobody to hedge with, and
	// the coordinator is not asked.
	if _, err := m.Hedge(ctx, c, int64(len(data))); !errors.Is(err, ErrNoSource) || origin.served.Load() != 0 {
		t.Fatalf("Hedge with no other holder = %v (coordinator served %d), want ErrNoSource and no WAN fetch", err, origin.served.Load())
	}
	m.mu.Lock()
	m.dir[c][good.ID()] = struct{}{}
	m.mu.Unlock()
	v, err := m.Hedge(ctx, c, int64(len(data)))
	if err != nil || !bytes.Equal(v.Bytes(), data) {
		t.Fatalf("Hedge with a second holder: %v", err)
	}
	if goodSrc.served.Load() != 1 || origin.served.Load() != 0 {
		t.Fatalf("second holder served %d, coordinator %d: want the hedge from the second holder only", goodSrc.served.Load(), origin.served.Load())
	}
	pcancel()
	if err := <-primary; !errors.Is(err, context.Canceled) {
		t.Fatalf("the hedged fetch after its cancel = %v, want context.Canceled", err)
	}
	if d, ok := m.HedgeAfter(int64(len(data))); !ok || d < m.cfg.HedgeMin {
		t.Fatalf("HedgeAfter once a site member was measured = %s, %v: want at least HedgeMin %s", d, ok, m.cfg.HedgeMin)
	}
	if s := m.Stats(); s.Hedges != 1 {
		t.Fatalf("stats %+v: want one hedge sent", s)
	}
}

// A relay that takes a manifest request and never answers holds the
// member for the time of a 256 KiB object, not of the largest manifest
// (8 MiB): the member then gets the manifest from the coordinator.
func TestSilentRelayHoldsManifestForItsBudgetOnly(t *testing.T) {
	t.Parallel()
	self, relay, co := loopbackHost(t), loopbackHost(t), loopbackHost(t)
	introduce(self, relay, co)
	manifest := bytes.Repeat([]byte("m"), 4<<10)
	if err := p2p.ServeFragments(co, p2p.FragmentServerConfig{Source: &countingSource{store: storeWith(t, manifest)}}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	var asked atomic.Int64
	for _, proto := range fragProtocols {
		relay.SetStreamHandler(proto, func(s network.Stream) {
			asked.Add(1)
			<-done // reads nothing, answers nothing
			_ = s.Reset()
		})
	}
	ids := []string{self.ID().String(), relay.ID().String()}
	m, err := New(Config{Host: self, Coordinator: co.ID(), Store: cache.NewMemory(0), Logger: discard,
		Members: &fakeSite{members: ids, relays: ids[1:]}, RelayGiveUp: time.Millisecond,
		// 1 ms per KiB: 256 ms for the manifest budget, 8 s for 8 MiB.
		FragmentTimeout: func(size int64) time.Duration { return time.Duration(size>>10) * time.Millisecond }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second) // a test timeout, below the 8 s for 8 MiB
	defer cancel()
	v, err := m.FetchManifest(ctx, core.FragmentCID(manifest))
	if err != nil || !bytes.Equal(v.Bytes(), manifest) {
		t.Fatalf("FetchManifest with a silent relay: %v", err)
	}
	if s := m.Stats(); asked.Load() == 0 || s.FromCoordinator != 1 {
		t.Fatalf("stats %+v, relay asked %d times: want the relay asked, then the coordinator", s, asked.Load())
	}
}

// On a fast site a peer sending far below the rate measured from site
// members (under FloorFraction of it) is cut though it is above FloorBps.
func TestPeerFarBelowTheSiteRateIsCut(t *testing.T) {
	t.Parallel()
	self, slow, good, co := loopbackHost(t), loopbackHost(t), loopbackHost(t), loopbackHost(t)
	introduce(self, slow, good, co)
	data := bytes.Repeat([]byte("f"), 1<<20)
	c := core.FragmentCID(data)
	asked := trickle(t, slow, int64(len(data)), 16<<10, 50*time.Millisecond) // 320 KiB/s: 5x the absolute floor
	if err := p2p.ServeFragments(good, p2p.FragmentServerConfig{Source: &countingSource{store: storeWith(t, data)}}); err != nil {
		t.Fatal(err)
	}
	ids := []string{self.ID().String(), slow.ID().String(), good.ID().String()}
	m, err := New(Config{Host: self, Coordinator: co.ID(), Store: cache.NewMemory(0), Members: &fakeSite{members: ids}, Logger: discard,
		FloorBps: 64 << 10, FloorGrace: 300 * time.Millisecond, FloorFraction: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	m.siteRate = 100 << 20 // measured: 100 MiB/s, so the peers' floor is 5 MiB/s
	m.dir[c] = map[peer.ID]struct{}{slow.ID(): {}, good.ID(): {}}
	m.sources[slow.ID()] = &source{ewma: 1e12} // asked first
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a test timeout only
	defer cancel()
	v, err := m.Fetch(ctx, c, int64(len(data)))
	if err != nil || !bytes.Equal(v.Bytes(), data) {
		t.Fatalf("fetch: %v", err)
	}
	if s := m.Stats(); s.TooSlow != 1 || asked.Load() != 1 || s.FromPeers != 1 {
		t.Fatalf("stats %+v, slow peer asked %d times: want it cut below 5%% of the site rate, the fragment from the other peer", s, asked.Load())
	}
}

// A node whose own downlink is slower than the floor sees every source as
// slow: after cuts of two different sources in a row it lowers its floor
// (halving it each time), until its fetches go through, instead of
// cutting every source for ever.
func TestSlowDownlinkLowersTheFloor(t *testing.T) {
	t.Parallel()
	self, co := loopbackHost(t), loopbackHost(t)
	data := bytes.Repeat([]byte("d"), 32<<10)
	c := core.FragmentCID(data)
	hs := []host.Host{self, co}
	ids := []string{self.ID().String()}
	var holders []peer.ID
	for range 3 {
		h := loopbackHost(t)
		// Every source sends 16 KiB/s: what a node behind a slow link
		// sees from all of them.
		lim := rate.NewLimiter(16<<10, 4<<10)
		if err := p2p.ServeFragments(h, p2p.FragmentServerConfig{Source: &countingSource{store: storeWith(t, data)}, Limiter: lim}); err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
		ids = append(ids, h.ID().String())
		holders = append(holders, h.ID())
	}
	introduce(hs...)
	m := floorMesh(t, self, co.ID(), &fakeSite{members: ids}, nil)           // 64 KiB/s after 300 ms; the coordinator serves nothing
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second) // a test timeout only
	defer cancel()
	var err error
	tries := 0
	for tries < 8 {
		tries++
		m.mu.Lock()
		m.dir[c] = map[peer.ID]struct{}{}
		for _, h := range holders {
			m.dir[c][h] = struct{}{}
		}
		m.mu.Unlock()
		var v core.Verified
		if v, err = m.Fetch(ctx, c, int64(len(data))); err == nil {
			if !bytes.Equal(v.Bytes(), data) {
				t.Fatal("wrong bytes")
			}
			break
		}
	}
	if err != nil {
		t.Fatalf("no fetch went through in %d tries with every source at 16 KiB/s: %v", tries, err)
	}
	m.mu.Lock()
	scale := m.floorScale
	m.mu.Unlock()
	if s := m.Stats(); s.TooSlow < 2 || scale >= 1 {
		t.Fatalf("stats %+v, floor scale %g: want sources cut, then the floor lowered", s, scale)
	}
	t.Logf("fetched after %d tries, %d cuts; floor now %.0f B/s", tries, m.Stats().TooSlow, 64<<10*scale)
}
