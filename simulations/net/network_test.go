package net

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// fakeClock never moves: every reservation is made at the same instant, so
// a delay is exactly the queue of bytes ahead of it on the narrowest
// bucket. Sleep records instead of sleeping.
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	sleeps []time.Duration
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *fakeClock) sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.sleeps = append(c.sleeps, d)
	c.mu.Unlock()
	return ctx.Err()
}

func (c *fakeClock) last() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sleeps[len(c.sleeps)-1]
}

const chunk = 64 << 10

func newTestNet(t *testing.T) (*Network, *fakeClock) {
	t.Helper()
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	n, err := New(Config{CoordinatorUp: 2e6, FragmentSize: 4 * chunk, Now: clk.now, Sleep: clk.sleep})
	if err != nil {
		t.Fatal(err)
	}
	n.SetCoordinator("coord")
	for _, s := range []string{"a", "b"} {
		if err := n.AddSite(s, SiteLink{Up: 1e6, Down: 1e6, WANLatency: 20 * time.Millisecond, LANLatency: time.Millisecond}); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range []struct {
		id   peer.ID
		site string
	}{{"a1", "a"}, {"a2", "a"}, {"a3", "a"}, {"b1", "b"}} {
		if err := n.AddNode(h.id, h.site, 10e6, 10e6); err != nil {
			t.Fatal(err)
		}
	}
	return n, clk
}

func near(t *testing.T, what string, got, want time.Duration) {
	t.Helper()
	if math.Abs(float64(got-want)) > float64(time.Millisecond) {
		t.Errorf("%s: delay %v, want %v", what, got, want)
	}
}

// secs is the time to move bytes at bps once the burst is used.
func secs(bytes, bps float64) time.Duration {
	return time.Duration((bytes - chunk) / bps * float64(time.Second))
}

func TestSiteWANIsSharedByItsNodes(t *testing.T) {
	t.Parallel()
	n, clk := newTestNet(t)
	ctx := context.Background()
	// Two nodes of site a each send 10 chunks to site b at the same
	// instant: their own uplinks (10 MB/s) are not the limit, the site's
	// 1 MB/s WAN uplink is, and they share it.
	for range 10 {
		for _, id := range []peer.ID{"a1", "a2"} {
			if err := n.View(id).Send(ctx, "b1", chunk); err != nil {
				t.Fatal(err)
			}
		}
	}
	near(t, "shared WAN up", clk.last(), secs(20*chunk, 1e6))
	st := n.Stats()
	if st.SiteOut["a"] != 20*chunk || st.SiteIn["a"] != 0 {
		t.Errorf("site a out %d in %d, want %d and 0", st.SiteOut["a"], st.SiteIn["a"], 20*chunk)
	}
}

func TestLANTrafficSkipsTheWAN(t *testing.T) {
	t.Parallel()
	n, clk := newTestNet(t)
	ctx := context.Background()
	for range 10 {
		if err := n.View("a1").Send(ctx, "a2", chunk); err != nil {
			t.Fatal(err)
		}
	}
	near(t, "node uplink", clk.last(), secs(10*chunk, 10e6))
	// a3 receiving from a2 pays only its downlink (plus LAN latency on
	// the first chunk of the fragment).
	if err := n.View("a3").Recv(ctx, "a2", chunk); err != nil {
		t.Fatal(err)
	}
	near(t, "LAN latency", clk.last(), time.Millisecond)
	if st := n.Stats(); st.SiteOut["a"] != 0 || st.SiteIn["a"] != 0 {
		t.Errorf("LAN bytes counted on the WAN: %+v", st)
	}
}

func TestCoordinatorUplinkAndWANDown(t *testing.T) {
	t.Parallel()
	n, clk := newTestNet(t)
	ctx := context.Background()
	co := n.View("coord")
	// The origin (2 MB/s) sends 10 chunks each to a1 and b1.
	for range 10 {
		for _, id := range []peer.ID{"a1", "b1"} {
			if err := co.Send(ctx, id, chunk); err != nil {
				t.Fatal(err)
			}
		}
	}
	near(t, "coordinator uplink", clk.last(), secs(20*chunk, 2e6))
	// a1 and a2 receive 5 chunks each from outside: site a's 1 MB/s WAN
	// down is shared.
	for range 5 {
		for _, id := range []peer.ID{"a1", "a2"} {
			if err := n.View(id).Recv(ctx, "coord", chunk); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The 5th chunk of a fragment of 4 chunks starts a new fragment and
	// pays the WAN latency too.
	near(t, "shared WAN down", clk.last(), secs(10*chunk, 1e6)+20*time.Millisecond)
	st := n.Stats()
	if st.CoordinatorOut != 20*chunk || st.SiteIn["a"] != 10*chunk {
		t.Errorf("coordinator out %d site a in %d, want %d and %d", st.CoordinatorOut, st.SiteIn["a"], 20*chunk, 10*chunk)
	}
}

func TestSlowPeer(t *testing.T) {
	t.Parallel()
	n, clk := newTestNet(t)
	if err := n.SetSlow("a1", 4); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if err := n.View("a1").Send(context.Background(), "a2", chunk); err != nil {
			t.Fatal(err)
		}
	}
	near(t, "slow uplink", clk.last(), secs(10*chunk, 10e6/4))
}

func TestPartitionBlocksUntilHealOrCancel(t *testing.T) {
	t.Parallel()
	n, _ := newTestNet(t)
	if err := n.Partition("a"); err != nil {
		t.Fatal(err)
	}
	// Other sites and the site's LAN are not cut.
	if err := n.View("coord").Send(context.Background(), "b1", chunk); err != nil {
		t.Fatal(err)
	}
	if err := n.View("a1").Send(context.Background(), "a2", chunk); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := n.View("coord").Send(ctx, "a1", chunk); !errors.Is(err, context.Canceled) {
		t.Fatalf("send across a partition with a cancelled context: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- n.View("a1").Recv(context.Background(), "coord", chunk) }()
	select {
	case err := <-done:
		t.Fatalf("recv across a partition returned before heal: %v", err)
	default:
	}
	if err := n.Heal("a"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("recv still blocked 10 s after heal")
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	if _, err := New(Config{}); !errors.Is(err, ErrBadRate) {
		t.Errorf("New without coordinator uplink: %v", err)
	}
	n, _ := newTestNet(t)
	if err := n.AddNode("x", "nowhere", 1, 1); !errors.Is(err, ErrUnknownSite) {
		t.Errorf("AddNode to an unknown site: %v", err)
	}
	if err := n.AddSite("z", SiteLink{Up: 0, Down: 1}); !errors.Is(err, ErrBadRate) {
		t.Errorf("AddSite with zero uplink: %v", err)
	}
}
