package p2p

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"

	"github.com/relaymesh/relaymesh/core"
)

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// fragPair starts a server host serving cfg and a connected client host.
func fragPair(t *testing.T, cfg FragmentServerConfig) (server, client host.Host) {
	t.Helper()
	server, client = newTestHost(t, nil), newTestHost(t, nil)
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	if err := ServeFragments(server, cfg); err != nil {
		t.Fatal(err)
	}
	connect(t, client, server)
	return server, client
}

func TestFetchFragment(t *testing.T) {
	t.Parallel()
	const size = 300<<10 + 7 // several chunks and a ragged tail
	data := randomBytes(t, size)
	c := core.FragmentCID(data)
	serverMeter, clientMeter := &Meter{}, &Meter{}
	server, client := fragPair(t, FragmentServerConfig{Source: newMemSource(data), Meter: serverMeter})

	var progress int
	got, err := FetchFragment(testCtx(t), client, server.ID(), c, 1<<20,
		WithProgress(func(n int) { progress += n }), WithMeter(clientMeter))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("fetched bytes differ")
	}
	if progress != size {
		t.Fatalf("progress reported %d bytes, want %d", progress, size)
	}
	if s := serverMeter.Snapshot()[ClassUnknown]; s.Sent != size || s.Recv != 0 {
		t.Fatalf("server meter %+v, want Sent=%d", s, size)
	}
	if s := clientMeter.Snapshot()[ClassUnknown]; s.Recv != size || s.Sent != 0 {
		t.Fatalf("client meter %+v, want Recv=%d", s, size)
	}
}

func TestFetchFragmentEmpty(t *testing.T) {
	t.Parallel()
	server, client := fragPair(t, FragmentServerConfig{Source: newMemSource([]byte{})})
	got, err := FetchFragment(testCtx(t), client, server.ID(), core.FragmentCID(nil), 1)
	if err != nil || len(got) != 0 {
		t.Fatalf("FetchFragment(empty) = %d bytes, %v", len(got), err)
	}
}

func TestFetchFragmentFailures(t *testing.T) {
	t.Parallel()
	good := randomBytes(t, 100<<10)
	src := newMemSource(good)
	wrongCID := core.FragmentCID([]byte("what the manifest says"))
	src.put(wrongCID, randomBytes(t, 1000)) // a corrupt peer
	server, client := fragPair(t, FragmentServerConfig{Source: src})

	tests := []struct {
		name    string
		c       cid.Cid
		max     int64
		wantErr error
		inErr   string
	}{
		{"unknown CID", core.FragmentCID([]byte("nobody has this")), 1 << 20, ErrNotFound, ""},
		{"wrong bytes", wrongCID, 1 << 20, core.ErrDigestMismatch, ""},
		{"larger than max", core.FragmentCID(good), 1000, ErrTooLarge, "102400 bytes announced, limit 1000"},
		{"CIDv0 refused before asking", cid.NewCidV0(core.FragmentCID(good).Hash()), 1 << 20, core.ErrBadCID, ""},
		{"bad maxSize", core.FragmentCID(good), 0, ErrBadConfig, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := FetchFragment(testCtx(t), client, server.ID(), tt.c, tt.max)
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.inErr) {
				t.Fatalf("FetchFragment = %v, want %v containing %q", err, tt.wantErr, tt.inErr)
			}
		})
	}
}

func TestFetchFragmentSourceFailure(t *testing.T) {
	t.Parallel()
	src := newMemSource()
	src.err = errors.New("disk on fire")
	server, client := fragPair(t, FragmentServerConfig{Source: src})
	_, err := FetchFragment(testCtx(t), client, server.ID(), core.FragmentCID([]byte("x")), 1<<20)
	var re *RemoteError
	if !errors.As(err, &re) || strings.Contains(re.Msg, "fire") {
		t.Fatalf("FetchFragment = %v, want *RemoteError that does not leak the local cause", err)
	}
}

func TestFetchFragmentBusy(t *testing.T) {
	t.Parallel()
	src := newMemSource()
	src.err = fmt.Errorf("all upload slots taken: %w", ErrBusy)
	server, client := fragPair(t, FragmentServerConfig{Source: src})
	_, err := FetchFragment(testCtx(t), client, server.ID(), core.FragmentCID([]byte("x")), 1<<20)
	if !errors.Is(err, ErrBusy) || errors.Is(err, ErrNotFound) {
		t.Fatalf("FetchFragment = %v, want ErrBusy", err)
	}
}

// shortSource announces more bytes than it has.
type shortSource struct{ memSource }

func (s *shortSource) OpenFragment(ctx context.Context, c cid.Cid) (io.ReadCloser, int64, error) {
	rc, n, err := s.memSource.OpenFragment(ctx, c)
	return rc, n + 1000, err
}

func TestFetchFragmentSourceShort(t *testing.T) {
	t.Parallel()
	data := randomBytes(t, 5000)
	server, client := fragPair(t, FragmentServerConfig{Source: &shortSource{*newMemSource(data)}})
	_, err := FetchFragment(testCtx(t), client, server.ID(), core.FragmentCID(data), 1<<20)
	if err == nil || errors.Is(err, core.ErrDigestMismatch) {
		t.Fatalf("FetchFragment = %v, want the aborted upload reported", err)
	}
}

func TestFetchFragmentTruncated(t *testing.T) {
	t.Parallel()
	server, client := newTestHost(t, nil), newTestHost(t, nil)
	server.SetStreamHandler(FragmentProtocol, func(s network.Stream) { // a peer that lies about the size
		var req fragRequest
		_ = ReadMsg(s, maxFragRequest, &req)
		_ = WriteMsg(s, fragHeader{Found: true, Size: 1000})
		_, _ = s.Write(make([]byte, 10))
		_ = s.Close()
	})
	connect(t, client, server)
	_, err := FetchFragment(testCtx(t), client, server.ID(), core.FragmentCID([]byte("x")), 1<<20)
	if !errors.Is(err, ErrTruncated) || !strings.Contains(err.Error(), "got 10 of 1000 bytes") {
		t.Fatalf("FetchFragment = %v, want ErrTruncated after 10 of 1000 bytes", err)
	}
}

func TestFetchFragmentUnauthorized(t *testing.T) {
	t.Parallel()
	data := randomBytes(t, 1000)
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var allowed sync.Map
	server, client := fragPair(t, FragmentServerConfig{
		Source:    newMemSource(data),
		Authorize: func(p peer.ID) bool { _, ok := allowed.Load(p); return ok },
		Logger:    log,
	})
	_, err := FetchFragment(testCtx(t), client, server.ID(), core.FragmentCID(data), 1<<20)
	if err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("FetchFragment by an unauthorized peer = %v, want a refused stream", err)
	}
	if !strings.Contains(logs.String(), "not authorized") || !strings.Contains(logs.String(), "level=DEBUG") {
		t.Fatalf("refusal not logged at debug: %q", logs.String())
	}

	allowed.Store(client.ID(), true)
	if _, err := FetchFragment(testCtx(t), client, server.ID(), core.FragmentCID(data), 1<<20); err != nil {
		t.Fatalf("after authorizing: %v", err)
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// countingWaiter charges a real limiter and records every charge.
type countingWaiter struct {
	lim   *rate.Limiter
	mu    sync.Mutex
	total int
	calls int
	max   int
}

func (w *countingWaiter) WaitN(ctx context.Context, n int) error {
	w.mu.Lock()
	w.total += n
	w.calls++
	w.max = max(w.max, n)
	w.mu.Unlock()
	return w.lim.WaitN(ctx, n)
}

func TestFragmentLimiterChargesEveryByte(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		burst     int
		size      int
		wantChunk int
	}{
		{"burst of one chunk", 64 << 10, 200<<10 + 3, 64 << 10},
		{"burst below a chunk", 10 << 10, 50<<10 + 1, 10 << 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			data := randomBytes(t, tt.size)
			// A fast refill keeps the test quick; what is checked is the
			// accounting, not the wall-clock rate.
			lim := rate.NewLimiter(rate.Limit(64<<20), tt.burst)
			w := &countingWaiter{lim: lim}
			server, client := newTestHost(t, nil), newTestHost(t, nil)
			serveFragments(server, FragmentServerConfig{Source: newMemSource(data), Limiter: lim}, w.WaitN)
			connect(t, client, server)
			if _, err := FetchFragment(testCtx(t), client, server.ID(), core.FragmentCID(data), 1<<20); err != nil {
				t.Fatal(err)
			}
			w.mu.Lock()
			defer w.mu.Unlock()
			if w.total != tt.size {
				t.Fatalf("limiter charged %d bytes, want all %d", w.total, tt.size)
			}
			if w.max != tt.wantChunk {
				t.Fatalf("largest charge %d, want %d (chunk bounded by burst)", w.max, tt.wantChunk)
			}
			if want := (tt.size + tt.wantChunk - 1) / tt.wantChunk; w.calls != want {
				t.Fatalf("%d charges, want %d", w.calls, want)
			}
		})
	}
}

// TestFragmentLimiterConsumesTokens uses the real ServeFragments wiring: a
// limiter that refills one byte a second has its whole burst spent by one
// burst-sized fragment, and a second fetch cannot get its bytes before its
// deadline.
func TestFragmentLimiterConsumesTokens(t *testing.T) {
	t.Parallel()
	const burst = 64 << 10
	lim := rate.NewLimiter(1, burst)
	data := randomBytes(t, burst)
	server, client := fragPair(t, FragmentServerConfig{Source: newMemSource(data), Limiter: lim})
	if _, err := FetchFragment(testCtx(t), client, server.ID(), core.FragmentCID(data), 1<<20); err != nil {
		t.Fatal(err)
	}
	if tokens := lim.Tokens(); tokens > burst/2 {
		t.Fatalf("limiter holds %.0f of %d tokens after serving %d bytes", tokens, burst, burst)
	}
}

func TestServeFragmentsValidate(t *testing.T) {
	t.Parallel()
	h := newTestHost(t, nil)
	if err := ServeFragments(h, FragmentServerConfig{}); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("ServeFragments without Source = %v, want ErrBadConfig", err)
	}
	cfg := FragmentServerConfig{Source: newMemSource(), Limiter: rate.NewLimiter(10, 0)}
	if err := ServeFragments(h, cfg); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("ServeFragments with zero burst = %v, want ErrBadConfig", err)
	}
}
