package p2p

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/relaymesh/relaymesh/core"
)

// trickler answers every fragment request with a header announcing size
// bytes, then sends one byte each tick until the client goes away: the
// slow source of issue 13 item 3.
func trickler(t *testing.T, size int64, tick time.Duration) host.Host {
	t.Helper()
	h := newTestHost(t, nil)
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	for _, proto := range []protocol.ID{FragmentProtocol, FragmentProtocolSized} {
		h.SetStreamHandler(proto, func(s network.Stream) {
			defer func() { _ = s.Reset() }()
			var req fragRequest
			if ReadMsg(s, maxFragRequest, &req) != nil || WriteMsg(s, fragHeader{Found: true, Size: size}) != nil {
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
				if _, err := s.Write([]byte{'x'}); err != nil {
					return
				}
			}
		})
	}
	return h
}

// A source trickling bytes far below the floor is cut with ErrTooSlow once
// the grace has passed, long before the fetch's own deadline.
func TestFloorCutsTricklingSource(t *testing.T) {
	t.Parallel()
	server := trickler(t, 64<<10, 10*time.Millisecond)
	client := newTestHost(t, nil)
	connect(t, client, server)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	_, err := FetchFragment(ctx, client, server.ID(), core.FragmentCID(make([]byte, 64<<10)), 64<<10,
		WithFloor(64<<10, 200*time.Millisecond))
	if !errors.Is(err, ErrTooSlow) || !strings.Contains(err.Error(), "floor 65536 B/s") {
		t.Fatalf("FetchFragment from a trickling source = %v, want ErrTooSlow naming the floor", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("cut by the fetch's deadline after %s, not by the floor", time.Since(start))
	}
	t.Logf("cut after %s: %v", time.Since(start).Round(time.Millisecond), err)
}

// A source that keeps up is not cut, and time the caller spends in its
// progress callback (its own rate cap) does not count against the source.
func TestFloorSparesFastSourceAndCallerTime(t *testing.T) {
	t.Parallel()
	data := randomBytes(t, 300<<10)
	server, client := fragPair(t, FragmentServerConfig{Source: newMemSource(data)})
	first := true
	got, err := FetchFragment(testCtx(t), client, server.ID(), core.FragmentCID(data), int64(len(data)),
		WithFloor(1<<20, 50*time.Millisecond),
		WithProgress(func(int) {
			if first { // the caller's throttle holds the first chunk well past the grace
				first = false
				time.Sleep(300 * time.Millisecond)
			}
		}))
	if err != nil || len(got) != len(data) {
		t.Fatalf("FetchFragment with a floor from a fast source = %d bytes, %v", len(got), err)
	}
}

// A client that knows the fragment's size sends it (1.2.0): a server
// holding more bytes under that CID refuses without sending them, and a
// peer that announces more than the size anyway is cut before its payload.
func TestFetchBoundedByRealSize(t *testing.T) {
	t.Parallel()
	big := randomBytes(t, 200<<10)
	c := core.FragmentCID(big[:100<<10]) // the manifest says 100 KiB
	src := newMemSource()
	src.put(c, big) // a corrupt or hostile holder: 200 KiB under it
	meter := &Meter{}
	server, client := fragPair(t, FragmentServerConfig{Source: src, Meter: meter})
	_, err := FetchFragment(testCtx(t), client, server.ID(), c, 100<<10)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "204800 bytes announced, limit 102400") {
		t.Fatalf("FetchFragment of an oversized holding = %v, want the server's refusal", err)
	}
	if sent := meter.Snapshot()[ClassUnknown].Sent; sent != 0 {
		t.Fatalf("server sent %d payload bytes, want none", sent)
	}

	liar := trickler(t, 200<<10, time.Millisecond) // ignores the size asked for
	connect(t, client, liar)
	clientMeter := &Meter{}
	_, err = FetchFragment(testCtx(t), client, liar.ID(), c, 100<<10, WithMeter(clientMeter))
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "204800 bytes announced, limit 102400") {
		t.Fatalf("FetchFragment from a peer announcing more than the size = %v, want ErrTooLarge", err)
	}
	if recv := clientMeter.Snapshot()[ClassUnknown].Recv; recv != 0 {
		t.Fatalf("client read %d payload bytes from the liar, want none", recv)
	}
}

// A header trickled a byte at a time is cut once the grace after its
// first byte has passed.
func TestFloorCutsTrickledHeader(t *testing.T) {
	t.Parallel()
	server, client := newTestHost(t, nil), newTestHost(t, nil)
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	server.SetStreamHandler(FragmentProtocolSized, func(s network.Stream) {
		defer func() { _ = s.Reset() }()
		var req fragRequest
		if ReadMsg(s, maxFragRequest, &req) != nil {
			return
		}
		tk := time.NewTicker(20 * time.Millisecond)
		defer tk.Stop()
		b := []byte{100} // a length prefix of 100 bytes, then a byte each tick
		for range 100 {
			select {
			case <-done:
				return
			case <-tk.C:
			}
			if _, err := s.Write(b); err != nil {
				return
			}
			b = []byte{' '}
		}
	})
	connect(t, client, server)
	_, err := FetchFragment(testCtx(t), client, server.ID(), core.FragmentCID([]byte("x")), 1<<10,
		WithFloor(64<<10, 200*time.Millisecond))
	if !errors.Is(err, ErrTooSlow) || !strings.Contains(err.Error(), "header not whole") {
		t.Fatalf("FetchFragment from a trickled header = %v, want ErrTooSlow", err)
	}
}

// WithSizedTimeout bounds the payload by the announced size even when ctx
// allows much longer and no floor is set.
func TestSizedTimeoutBoundsPayload(t *testing.T) {
	t.Parallel()
	server := trickler(t, 1<<10, 10*time.Millisecond)
	client := newTestHost(t, nil)
	connect(t, client, server)
	var asked int64
	_, err := FetchFragment(testCtx(t), client, server.ID(), core.FragmentCID([]byte("x")), 1<<20,
		WithSizedTimeout(func(size int64) time.Duration { asked = size; return 200 * time.Millisecond }))
	if !errors.Is(err, ErrTooSlow) || asked != 1<<10 {
		t.Fatalf("FetchFragment = %v (timeout asked for %d bytes), want ErrTooSlow after the time for 1024 bytes", err, asked)
	}
}

// WithHeaderTimeout fails a source that does not answer in time with
// ErrNoAnswer, while ctx would wait much longer.
func TestHeaderTimeoutCutsSilentSource(t *testing.T) {
	t.Parallel()
	server, client := newTestHost(t, nil), newTestHost(t, nil)
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	server.SetStreamHandler(FragmentProtocolSized, func(s network.Stream) {
		defer func() { _ = s.Reset() }()
		var req fragRequest
		_ = ReadMsg(s, maxFragRequest, &req)
		<-done // never answers
	})
	connect(t, client, server)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := FetchFragment(ctx, client, server.ID(), core.FragmentCID([]byte("x")), 1<<20, WithHeaderTimeout(200*time.Millisecond))
	if !errors.Is(err, ErrNoAnswer) || ctx.Err() != nil {
		t.Fatalf("FetchFragment from a silent source = %v, want ErrNoAnswer well before ctx ends", err)
	}
}
