package p2p

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"go.uber.org/goleak"

	"github.com/relaymesh/relaymesh/internal/testlog"

	"github.com/relaymesh/relaymesh/core"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testLogger logs to t (see internal/testlog).
func testLogger(t testing.TB) *slog.Logger {
	t.Helper()
	return testlog.New(t, slog.LevelDebug)
}

// newTestHost starts a host on 127.0.0.1 and closes it when the test ends.
func newTestHost(t testing.TB, edit func(*HostConfig)) host.Host {
	t.Helper()
	id, err := GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultHostConfig(id)
	if edit != nil {
		edit(&cfg)
	}
	h, err := NewHost(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// connect makes a know b's addresses and connects.
func connect(t testing.TB, a, b host.Host) {
	t.Helper()
	if err := a.Connect(testCtx(t), AddrInfo(b)); err != nil {
		t.Fatalf("connect %s -> %s: %v", a.ID(), b.ID(), err)
	}
}

func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// memSource serves fragments from memory. A CID mapped to bytes that do
// not hash to it plays a corrupt peer.
type memSource struct {
	mu    sync.Mutex
	frags map[cid.Cid][]byte
	err   error // returned by OpenFragment when set
}

func newMemSource(frags ...[]byte) *memSource {
	s := &memSource{frags: map[cid.Cid][]byte{}}
	for _, f := range frags {
		s.put(core.FragmentCID(f), f)
	}
	return s
}

func (s *memSource) put(c cid.Cid, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frags[c] = data
}

func (s *memSource) OpenFragment(_ context.Context, c cid.Cid) (io.ReadCloser, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, 0, s.err
	}
	data, ok := s.frags[c]
	if !ok {
		return nil, 0, fmt.Errorf("memSource: %s: %w", c, ErrNotFound)
	}
	return io.NopCloser(bytes.NewReader(data)), int64(len(data)), nil
}
