package vnet

import (
	"context"
	"errors"
	"io"
	"os"
	"testing"
	"testing/synctest"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/relaymesh/relaymesh/p2p"
)

const (
	wanDown = 1 << 20 // bytes/s
	wanLat  = 10 * time.Millisecond
	lanLat  = time.Millisecond
)

// world is a coordinator and one site of two nodes.
func world(t *testing.T) (*Network, *Endpoint, *Endpoint, *Endpoint) {
	t.Helper()
	n, err := New(Config{CoordinatorUp: 100 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.AddSite("plant", SiteLink{Up: wanDown, Down: wanDown, WANLatency: wanLat, LANLatency: lanLat}); err != nil {
		t.Fatal(err)
	}
	a, err := n.AddNode("plant", 10<<20, 10<<20)
	if err != nil {
		t.Fatal(err)
	}
	b, err := n.AddNode("plant", 10<<20, 10<<20)
	if err != nil {
		t.Fatal(err)
	}
	return n, n.Coordinator(), a, b
}

func newHost(t *testing.T, e *Endpoint, port int) host.Host {
	t.Helper()
	id, err := p2p.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	h, err := p2p.NewHost(p2p.HostConfig{Identity: id, Network: e, ListenAddrs: []string{e.Addr(port)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

const proto = "/vnet-test/1"

// serve answers every stream with size bytes.
func serve(h host.Host, size int) {
	h.SetStreamHandler(proto, func(s network.Stream) {
		defer s.Close()
		_, _ = s.Write(make([]byte, size))
	})
}

func fetch(ctx context.Context, h host.Host, from host.Host) (int64, error) {
	if err := h.Connect(ctx, peer.AddrInfo{ID: from.ID(), Addrs: from.Addrs()}); err != nil {
		return 0, err
	}
	s, err := h.NewStream(ctx, from.ID(), proto)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	return io.Copy(io.Discard, s)
}

// A node's download from the coordinator runs over Noise and yamux, at
// the site's WAN downlink, and every byte of it is counted into the site.
func TestWANTransferPaysTheLink(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, co, a, _ := world(t)
		hc, ha := newHost(t, co, 7471), newHost(t, a, 4001)
		const size = 1 << 20
		serve(hc, size)
		start := time.Now()
		got, err := fetch(t.Context(), ha, hc)
		if err != nil || got != size {
			t.Fatalf("fetch: %d bytes, %v", got, err)
		}
		took := time.Since(start)
		// 1 MiB at 1 MiB/s, plus a few round trips of 20 ms (connect,
		// Noise, multistream, the request).
		if took < time.Second || took > 1300*time.Millisecond {
			t.Errorf("1 MiB over a 1 MiB/s WAN took %s, want 1–1.3 s", took)
		}
		conns := ha.Network().ConnsToPeer(hc.ID())
		if len(conns) != 1 {
			t.Fatalf("%d connections", len(conns))
		}
		if st := conns[0].ConnState(); st.Security != noise.ID || st.StreamMultiplexer != yamux.ID {
			t.Errorf("connection state %+v: want noise and yamux", st)
		}
		in := n.Stats().SiteIn["plant"]
		if in < size || in > size*102/100 {
			t.Errorf("site in %d bytes for a %d-byte download: want payload plus ≤ 2%% framing", in, size)
		}
		if out := n.Stats().CoordinatorOut; out < size {
			t.Errorf("coordinator out %d < %d", out, size)
		}
	})
}

// Inside the site the LAN is the limit, and no WAN byte is counted.
func TestLANTransferStaysOffTheWAN(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, _, a, b := world(t)
		ha, hb := newHost(t, a, 4001), newHost(t, b, 4001)
		const size = 4 << 20
		serve(hb, size)
		start := time.Now()
		if got, err := fetch(t.Context(), ha, hb); err != nil || got != size {
			t.Fatalf("fetch: %d bytes, %v", got, err)
		}
		if took := time.Since(start); took < 400*time.Millisecond || took > 450*time.Millisecond {
			t.Errorf("4 MiB over a 10 MiB/s LAN took %s, want 0.4–0.45 s", took)
		}
		if st := n.Stats(); st.SiteIn["plant"] != 0 || st.SiteOut["plant"] != 0 {
			t.Errorf("WAN counters %+v after a LAN transfer", st)
		}
	})
}

// A partition resets the site's connections to the coordinator and
// refuses new ones until healed; the LAN is untouched.
func TestPartitionCutsConnections(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, co, a, b := world(t)
		hc, ha, hb := newHost(t, co, 7471), newHost(t, a, 4001), newHost(t, b, 4001)
		serve(hc, 1000)
		serve(hb, 1000)
		ctx := t.Context()
		if _, err := fetch(ctx, ha, hc); err != nil {
			t.Fatal(err)
		}
		if _, err := fetch(ctx, ha, hb); err != nil {
			t.Fatal(err)
		}
		if err := n.Partition("plant"); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if c := ha.Network().Connectedness(hc.ID()); c == network.Connected {
			t.Error("still connected to the coordinator after the partition")
		}
		if c := ha.Network().Connectedness(hb.ID()); c != network.Connected {
			t.Errorf("site peer: %v after a partition from the coordinator", c)
		}
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := fetch(dctx, ha, hc)
		cancel()
		if err == nil {
			t.Fatal("fetched from the coordinator across a partition")
		}
		if err := n.Heal("plant"); err != nil {
			t.Fatal(err)
		}
		ha.Network().(*swarm.Swarm).Backoff().Clear(hc.ID()) // the failed dial's backoff
		if _, err := fetch(ctx, ha, hc); err != nil {
			t.Fatalf("after the heal: %v", err)
		}
	})
}

func dialed(t *testing.T) (*Conn, *Conn) {
	t.Helper()
	n, _, a, b := world(t)
	l := &listener{e: b, backlog: make(chan *Conn, 1), closed: make(chan struct{})}
	n.mu.Lock()
	b.listeners[4001] = l
	n.mu.Unlock()
	c, err := a.dial(t.Context(), ma.StringCast(b.Addr(4001)))
	if err != nil {
		t.Fatal(err)
	}
	return c, <-l.backlog
}

// Bytes arrive in order, one latency after they were sent; EOF follows
// the last of them; writing to a closed reader fails.
func TestConnLatencyOrderAndClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		c, s := dialed(t)
		if d := time.Since(start); d != 2*lanLat {
			t.Errorf("connect took %s, want one round trip (%s)", d, 2*lanLat)
		}
		sent := time.Now()
		if _, err := c.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte(" world")); err != nil {
			t.Fatal(err)
		}
		_ = c.Close()
		got, err := io.ReadAll(s)
		if err != nil || string(got) != "hello world" {
			t.Fatalf("read %q, %v", got, err)
		}
		// 11 bytes at 10 MiB/s are a microsecond; the latency dominates.
		if d := time.Since(sent); d < lanLat || d > lanLat+10*time.Microsecond {
			t.Errorf("bytes took %s, want the LAN latency %s", d, lanLat)
		}
		if _, err := s.Write([]byte("x")); !errors.Is(err, ErrReset) {
			t.Errorf("write to a closed peer: %v, want ErrReset", err)
		}
		_ = s.Close()
	})
}

// Deadlines end a blocked read with a timeout; a crash resets both ends.
func TestConnDeadlineAndCrash(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, s := dialed(t)
		_ = s.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		start := time.Now()
		if _, err := s.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read past the deadline: %v", err)
		}
		if d := time.Since(start); d != 50*time.Millisecond {
			t.Errorf("deadline after %s", d)
		}
		_ = s.SetReadDeadline(time.Time{})
		c.p.a.Crash()
		if _, err := s.Read(make([]byte, 1)); !errors.Is(err, ErrReset) {
			t.Errorf("read after the peer crashed: %v", err)
		}
		if _, err := c.Write([]byte("x")); !errors.Is(err, ErrReset) {
			t.Errorf("write after a crash: %v", err)
		}
		if _, err := c.p.b.dial(t.Context(), ma.StringCast(c.p.a.Addr(4001))); !errors.Is(err, ErrUnreachable) {
			t.Errorf("dial a crashed host: %v", err)
		}
		_ = c.Close()
		_ = s.Close()
	})
}
