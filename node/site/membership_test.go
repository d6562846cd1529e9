package site

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testLogger sends logs to t.Log until the test ends; memberlist goroutines
// may still log a line while shutting down.
func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	w := &testWriter{t: t}
	t.Cleanup(w.close)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(bytes.TrimRight(p, "\n")))
	}
	return len(p), nil
}

func (w *testWriter) close() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

type received struct{ from, msg string }

type testNode struct {
	id   string
	m    *Membership
	meta atomic.Pointer[Meta]
	msgs chan received
}

func newKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func peerID(i int) string { return fmt.Sprintf("12D3KooWTestNode%02d", i) }

// startNode joins a node with bandwidth bps to seeds.
func startNode(t *testing.T, id, site string, key []byte, bps uint64, seeds ...string) *testNode {
	t.Helper()
	return startNodeWith(t, id, site, key, bps, nil, seeds...)
}

// startNodeWith is startNode with mut applied to the config.
func startNodeWith(t *testing.T, id, site string, key []byte, bps uint64, mut func(*Config), seeds ...string) *testNode {
	t.Helper()
	n := &testNode{id: id, msgs: make(chan received, 16)}
	n.meta.Store(&Meta{
		NodeID: id, Site: site, P2PAddr: "/ip4/127.0.0.1/tcp/4001",
		UpBps: bps, DownBps: bps, RelayEligible: true, StartedAt: 1_760_000_000, Version: "test",
	})
	cfg := DefaultTestConfig()
	// Gossip is epidemic: with 5 nodes and the test timings' 3 transmits a
	// member misses a gossiped message about once in 250. More transmits
	// make "Gossip reaches everyone" a certainty for the test (advice
	// passed on twice, the default, reaches about 80% of a site).
	cfg.RetransmitMult = 8
	cfg.AdviceTransmits = 7 // not RetransmitMult: the advice test tells them apart
	cfg.Name = id
	cfg.Keyring = [][]byte{key}
	cfg.Logger = testLogger(t).With("test_node", id)
	cfg.Meta = func() Meta { return *n.meta.Load() }
	cfg.OnMessage = func(from string, msg []byte) {
		n.msgs <- received{from, string(msg)}
	}
	if mut != nil {
		mut(&cfg)
	}
	m, err := Join(cfg, seeds)
	if err != nil {
		t.Fatalf("join %s: %v", id, err)
	}
	n.m = m
	t.Cleanup(func() {
		if err := m.Shutdown(); err != nil {
			t.Errorf("shutdown %s: %v", id, err)
		}
	})
	return n
}

func (n *testNode) setMeta(t *testing.T, f func(*Meta)) {
	t.Helper()
	m := *n.meta.Load()
	f(&m)
	n.meta.Store(&m)
	if err := n.m.UpdateMeta(); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

func (n *testNode) receive(t *testing.T) received {
	t.Helper()
	select {
	case r := <-n.msgs:
		return r
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: no message", n.id)
		return received{}
	}
}

// agree reports whether every node sees want live members and computes the
// relay set relays.
func agree(nodes []*testNode, want int, relays ...string) bool {
	for _, n := range nodes {
		if len(n.m.Members()) != want || !slices.Equal(n.m.Relays(), relays) {
			return false
		}
	}
	return true
}

func TestSiteCluster(t *testing.T) {
	key := newKey(t)
	// Node i declares (i+1)×10 MB/s: node 4 is the best. It starts first,
	// alone, and takes the relay role; the others join through it, see it,
	// and never claim the role themselves (a node elects only once its join
	// is over).
	nodes := make([]*testNode, 5)
	nodes[4] = startNode(t, peerID(4), "plant-1", key, 50_000_000)
	for i := range 4 {
		nodes[i] = startNode(t, peerID(i), "plant-1", key, uint64(i+1)*10_000_000, nodes[4].m.LocalAddr())
	}
	waitFor(t, "5 members agreeing on relay 4", func() bool { return agree(nodes, 5, peerID(4)) })
	waitFor(t, "relay 4's claim gossiped", func() bool {
		for _, mb := range nodes[0].m.Members() {
			if mb.Meta.NodeID == peerID(4) {
				return mb.Meta.RelayClaim
			}
		}
		return false
	})
	if !nodes[4].m.IsRelay() || nodes[0].m.IsRelay() {
		t.Fatal("IsRelay disagrees with Relays")
	}

	t.Run("broadcast reaches all others", func(t *testing.T) {
		small := "order-small"
		large := string(bytes.Repeat([]byte{'L'}, 200_000)) // TCP only
		for _, msg := range []string{small, large} {
			if err := nodes[1].m.Broadcast([]byte(msg)); err != nil {
				t.Fatal(err)
			}
			for i, n := range nodes {
				if i == 1 {
					continue
				}
				if r := n.receive(t); r.from != peerID(1) || r.msg != msg {
					t.Fatalf("%s got %q from %s", n.id, r.msg[:min(20, len(r.msg))], r.from)
				}
			}
		}
		// Delivered once: gossip copies of the small one are deduplicated.
		if err := nodes[2].m.SendTo(peerID(3), []byte("direct")); err != nil {
			t.Fatal(err)
		}
		if r := nodes[3].receive(t); r.msg != "direct" || r.from != peerID(2) {
			t.Fatalf("node 3 got %q from %s, want the direct message", r.msg, r.from)
		}
		if err := nodes[0].m.SendTo("nobody", nil); !errors.Is(err, ErrUnknownNode) {
			t.Fatalf("SendTo unknown: %v", err)
		}
		if err := nodes[0].m.Broadcast(make([]byte, DefaultMaxMessageSize+1)); !errors.Is(err, ErrMessageTooLarge) {
			t.Fatalf("Broadcast too large: %v", err)
		}
	})

	t.Run("gossip reaches all others once", func(t *testing.T) {
		small := "have-small"
		large := string(bytes.Repeat([]byte{'G'}, nodes[0].m.GossipLimit()+1)) // goes as a Broadcast
		for _, msg := range []string{small, large} {
			if err := nodes[2].m.Gossip([]byte(msg)); err != nil {
				t.Fatal(err)
			}
			for i, n := range nodes {
				if i == 2 {
					continue
				}
				if r := n.receive(t); r.from != peerID(2) || r.msg != msg {
					t.Fatalf("%s got %q from %s", n.id, r.msg[:min(20, len(r.msg))], r.from)
				}
			}
		}
		// Each was delivered once: the next message anyone gets is a new one.
		if err := nodes[2].m.Gossip([]byte("marker")); err != nil {
			t.Fatal(err)
		}
		for i, n := range nodes {
			if i == 2 {
				continue
			}
			if r := n.receive(t); r.msg != "marker" {
				t.Fatalf("%s got %q again before the marker", n.id, r.msg[:min(20, len(r.msg))])
			}
		}
		if err := nodes[0].m.Gossip(make([]byte, DefaultMaxMessageSize+1)); !errors.Is(err, ErrMessageTooLarge) {
			t.Fatalf("Gossip too large: %v", err)
		}
	})

	t.Run("meta update propagates, small gain keeps the relay", func(t *testing.T) {
		nodes[3].setMeta(t, func(m *Meta) { m.MeasuredBps = 60_000_000 }) // 1.2× node 4
		waitFor(t, "node 3's new meta everywhere", func() bool {
			for _, n := range nodes {
				i := slices.IndexFunc(n.m.Members(), func(mb Member) bool { return mb.Meta.NodeID == peerID(3) })
				if i < 0 || n.m.Members()[i].Meta.MeasuredBps != 60_000_000 {
					return false
				}
			}
			return true
		})
		if !agree(nodes, 5, peerID(4)) {
			t.Fatalf("relay moved on a small gain: %v", nodes[0].m.Relays())
		}
	})

	t.Run("relay crash elects the next", func(t *testing.T) {
		if err := nodes[4].m.Shutdown(); err != nil {
			t.Fatal(err)
		}
		nodes = nodes[:4]
		waitFor(t, "4 members agreeing on relay 3", func() bool { return agree(nodes, 4, peerID(3)) })
	})

	t.Run("claiming much more moves nothing", func(t *testing.T) {
		// Node 3 holds the role for everyone (its claim gossiped): nodes
		// 1 to 3 tie at ClaimCapBps, where only an incumbent is kept.
		waitFor(t, "relay 3's claim gossiped", func() bool {
			for _, n := range nodes {
				i := slices.IndexFunc(n.m.Members(), func(mb Member) bool { return mb.Meta.NodeID == peerID(3) })
				if i < 0 || !n.m.Members()[i].Meta.RelayClaim {
					return false
				}
			}
			return true
		})
		nodes[1].setMeta(t, func(m *Meta) { m.MeasuredBps = 1_000_000_000 })
		waitFor(t, "node 1's claim everywhere", func() bool {
			for _, n := range nodes {
				i := slices.IndexFunc(n.m.Members(), func(mb Member) bool { return mb.Meta.NodeID == peerID(1) })
				if i < 0 || n.m.Members()[i].Meta.MeasuredBps != 1_000_000_000 {
					return false
				}
			}
			return true
		})
		if !agree(nodes, 4, peerID(3)) {
			t.Fatalf("a claim nobody measured moved the relay: %v", nodes[0].m.Relays())
		}
	})

	t.Run("a relay the site measured slow is replaced", func(t *testing.T) {
		measured := []Measurement{{Peer: MeasureTag(peerID(3)), Bps: 1000}}
		for _, i := range []int{0, 2} {
			nodes[i].setMeta(t, func(m *Meta) { m.Measured = measured })
		}
		// Nodes 1 and 2 tie at ClaimCapBps; node 1 claims more.
		waitFor(t, "relay 1", func() bool { return agree(nodes, 4, peerID(1)) })
	})

	t.Run("wrong keyring cannot join", func(t *testing.T) {
		bad := startNode(t, peerID(9), "plant-1", newKey(t), 1e9, nodes[0].m.LocalAddr())
		if n, err := bad.m.Rejoin([]string{nodes[0].m.LocalAddr()}); !errors.Is(err, ErrNoSeedReached) {
			t.Fatalf("Rejoin with wrong key: %d, %v", n, err)
		}
		if got := len(bad.m.Members()); got != 1 {
			t.Fatalf("outsider sees %d members", got)
		}
		if !agree(nodes, 4, peerID(1)) {
			t.Fatal("outsider changed the site")
		}
	})

	t.Run("member of another site is skipped", func(t *testing.T) {
		other := startNode(t, peerID(8), "plant-2", key, 1e9, nodes[0].m.LocalAddr())
		waitFor(t, "skipped member counted", func() bool {
			nodes[0].m.Members()
			return nodes[0].m.Stats().SkippedMembers == 1
		})
		if !agree(nodes, 4, peerID(1)) {
			t.Fatal("foreign member changed the site")
		}
		if err := other.m.Leave(time.Second); err != nil {
			t.Fatal(err)
		}
	})
}

func TestJoinAlone(t *testing.T) {
	t.Parallel()
	// Nothing listens on port 1: the join fails, the node works alone.
	n := startNode(t, peerID(0), "s", newKey(t), 10, "127.0.0.1:1")
	if got := n.m.Relays(); !slices.Equal(got, []string{peerID(0)}) {
		t.Fatalf("alone: relays %v", got)
	}
	if _, err := n.m.Rejoin([]string{"127.0.0.1:1"}); !errors.Is(err, ErrNoSeedReached) {
		t.Fatalf("Rejoin: %v", err)
	}
	n.setMeta(t, func(m *Meta) { m.RelayEligible = false })
	if got := n.m.Relays(); got != nil {
		t.Fatalf("no eligible member: relays %v, want none", got)
	}
}

func TestJoinRejectsBadConfig(t *testing.T) {
	t.Parallel()
	c := validConfig()
	c.Meta = func() Meta { return Meta{NodeID: "other", Site: "s"} }
	if _, err := Join(c, nil); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("NodeID mismatch: %v", err)
	}
	c = validConfig()
	c.Keyring = nil
	if _, err := Join(c, nil); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("no keyring: %v", err)
	}
}

func TestAdviceGoesOnItsOwnQueue(t *testing.T) {
	t.Parallel()
	n := startNode(t, peerID(0), "s", newKey(t), 10, "127.0.0.1:1")
	m := n.m
	if err := m.Gossip([]byte("advice")); err != nil {
		t.Fatal(err)
	}
	if err := m.Broadcast([]byte("order")); err != nil {
		t.Fatal(err)
	}
	if a, b := m.advice.NumQueued(), m.queue.NumQueued(); a != 1 || b != 1 {
		t.Fatalf("queued: advice %d, broadcasts %d; want 1 and 1", a, b)
	}
	// Advice from another member is delivered once and passed on, on the
	// advice queue.
	other := &Membership{cfg: Config{Name: peerID(1)}}
	f, _ := other.frame(kindAdvice, []byte("their advice"))
	m.receive(f)
	m.receive(f)
	if r := n.receive(t); r.from != peerID(1) || r.msg != "their advice" {
		t.Fatalf("got %q from %s", r.msg, r.from)
	}
	if a, b := m.advice.NumQueued(), m.queue.NumQueued(); a != 2 || b != 1 {
		t.Fatalf("after receiving advice: advice %d, broadcasts %d queued; want 2 and 1", a, b)
	}
	// A packet takes broadcasts first; advice gets the room left.
	msgs := (&delegate{m: m}).GetBroadcasts(2, 1400)
	if len(msgs) != 3 || msgs[0][0] != kindBroadcast || msgs[1][0] != kindAdvice {
		t.Fatalf("packet: %d messages, kinds %v", len(msgs), kinds(msgs))
	}
	if got := (&delegate{m: m}).GetBroadcasts(2, len(msgs[0])+2); len(got) != 1 || got[0][0] != kindBroadcast {
		t.Fatalf("a packet with room for one: kinds %v, want the broadcast", kinds(got))
	}
	// However big the site, each member passes advice on AdviceTransmits
	// times (memberlist's limit is mult × ceil(log10(n+1))).
	if got := m.advice.NumNodes(); got > 9 {
		t.Fatalf("advice queue counts %d nodes, want at most 9", got)
	}
	// Both advice frames went out once in the first packet above; they go
	// out AdviceTransmits times in all (7 here, see startNode).
	sent := map[string]int{}
	for range m.cfg.AdviceTransmits + 2 {
		for _, b := range m.advice.GetBroadcasts(2, 1400) {
			sent[string(b)]++
		}
	}
	if len(sent) != 2 {
		t.Fatalf("advice frames sent again: %d distinct, want 2", len(sent))
	}
	for _, k := range sent {
		if k+1 != m.cfg.AdviceTransmits {
			t.Fatalf("an advice frame went out %d times, want AdviceTransmits = %d", k+1, m.cfg.AdviceTransmits)
		}
	}
	// The repeated frame was not delivered: the next message is a new one.
	marker, _ := other.frame(kindAdvice, []byte("marker"))
	m.receive(marker)
	if r := n.receive(t); r.msg != "marker" {
		t.Fatalf("got %q, want the marker: advice delivered twice", r.msg)
	}
}

func kinds(msgs [][]byte) []byte {
	var out []byte
	for _, b := range msgs {
		out = append(out, b[0])
	}
	return out
}

// TestAdmitKeepsUnlistedOut: a member holding the key but not admitted
// (not on the member list) is gossiped with yet left out of the view,
// never elected however much it claims, and its messages are dropped;
// once admitted and refreshed it counts like any member.
func TestAdmitKeepsUnlistedOut(t *testing.T) {
	t.Parallel()
	key := newKey(t)
	var listed sync.Map
	listed.Store(peerID(1), true)
	listed.Store(peerID(2), true)
	admit := func(c *Config) {
		c.Admit = func(id string) bool { _, ok := listed.Load(id); return ok }
	}
	a := startNodeWith(t, peerID(1), "s", key, 1000, admit)
	b := startNodeWith(t, peerID(2), "s", key, 1000, admit, a.m.LocalAddr())
	out := startNode(t, peerID(3), "s", key, 1<<40, a.m.LocalAddr())
	waitFor(t, "the outsider sees the site", func() bool { return len(out.m.Members()) == 3 })
	waitFor(t, "the members hear of the outsider and leave it out", func() bool {
		return a.m.Stats().Unlisted == 1 && b.m.Stats().Unlisted == 1
	})
	for _, n := range []*testNode{a, b} {
		if k := len(n.m.Members()); k != 2 {
			t.Fatalf("%s sees %d members, want 2", n.id, k)
		}
		if slices.Contains(n.m.Relays(), out.id) {
			t.Fatalf("%s elected the unlisted outsider: %v", n.id, n.m.Relays())
		}
	}
	dropped := a.m.Stats().DroppedMessages
	if err := out.m.SendTo(a.id, []byte("from outside")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the outsider's message is dropped", func() bool { return a.m.Stats().DroppedMessages > dropped })
	if err := a.m.SendTo(out.id, []byte("to outside")); !errors.Is(err, ErrUnknownNode) {
		t.Fatalf("sending to an unlisted member: %v, want ErrUnknownNode", err)
	}

	listed.Store(peerID(3), true)
	a.m.Refresh()
	b.m.Refresh()
	waitFor(t, "the admitted member is elected", func() bool {
		return agree([]*testNode{a, b}, 3, out.id)
	})
}
