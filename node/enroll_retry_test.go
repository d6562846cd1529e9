package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/p2p"
)

// fakeWait is Enroll's clock and sleep for tests: a sleep records its
// delay, moves the clock on by it and returns at once; onWait, when set,
// runs after the n-th sleep (1 for the first), before it returns.
type fakeWait struct {
	mu     sync.Mutex
	t      time.Time
	waits  []time.Duration
	onWait func(n int)
}

func newFakeWait() *fakeWait {
	return &fakeWait{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (w *fakeWait) now() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.t
}

func (w *fakeWait) sleep(ctx context.Context, d time.Duration) bool {
	if ctx.Err() != nil {
		return false
	}
	w.mu.Lock()
	w.waits = append(w.waits, d)
	w.t = w.t.Add(d)
	n := len(w.waits)
	w.mu.Unlock()
	if w.onWait != nil {
		w.onWait(n)
	}
	return ctx.Err() == nil
}

func (w *fakeWait) delays() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.waits)
}

// syncBuffer is a bytes.Buffer safe for the host's goroutines to log to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// countEnrolls makes f's host count the enrollment calls it answers.
func countEnrolls(f *fakeCoord, n *atomic.Int32) {
	p2p.Handle(f.host(), core.ProtoEnroll, 1<<20, func(ctx context.Context, from peer.ID, req *core.EnrollRequest) (*core.EnrollResponse, error) {
		n.Add(1)
		return f.enroll(ctx, from, req)
	})
}

// checkEnrollWaits checks that the i-th wait is within jitter's range of
// the schedule, 1s doubling to 60s.
func checkEnrollWaits(t *testing.T, waits []time.Duration) {
	t.Helper()
	for i, d := range waits {
		full := backoff(time.Second, time.Minute, i+1)
		if d < full/2 || d > full {
			t.Errorf("wait %d: %s, want within [%s, %s]", i+1, d, full/2, full)
		}
	}
}

// A coordinator that is not up yet and comes up after three failed tries:
// Enroll keeps trying, warns about each failure, and enrolls.
func TestEnrollRetriesUntilCoordinatorUp(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	addr := f.addr()
	f.stop() // its port stays reserved in f.listen; start listens there again
	w := newFakeWait()
	var calls atomic.Int32
	w.onWait = func(n int) {
		if n == 3 {
			f.start()
			countEnrolls(f, &calls)
		}
	}
	logs := &syncBuffer{}
	dir := filepath.Join(t.TempDir(), "node")
	e, err := Enroll(testCtx(t), EnrollOptions{Dir: dir, Coordinator: addr, Token: f.token,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
		now:    w.now, sleep: w.sleep})
	if err != nil {
		t.Fatalf("Enroll = %v; want it to retry until the coordinator is up\nlogs:\n%s", err, logs)
	}
	if e.CoordinatorID != f.host().ID().String() || calls.Load() != 1 {
		t.Errorf("enrollment %+v after %d enrollment calls", e, calls.Load())
	}
	if _, err := LoadEnrollment(dir); err != nil {
		t.Error(err)
	}
	waits := w.delays()
	if len(waits) != 3 {
		t.Errorf("waited %v; want 3 waits, one after each failed try", waits)
	}
	checkEnrollWaits(t, waits)
	var warned []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "will retry") {
			warned = append(warned, l)
		}
	}
	if len(warned) != 3 {
		t.Fatalf("%d retry warnings, want 3:\n%s", len(warned), logs)
	}
	for i, l := range warned {
		for _, want := range []string{"level=WARN", fmt.Sprintf("attempt=%d", i+1),
			"retry_in=" + waits[i].String(), "connection refused"} {
			if !strings.Contains(l, want) {
				t.Errorf("warning %d lacks %q: %s", i+1, want, l)
			}
		}
	}
}

// A refused token is the coordinator's answer, not a failure to reach it:
// one try, no wait, even after the coordinator first could not be reached.
func TestEnrollRefusalNotRetried(t *testing.T) {
	t.Parallel()
	t.Run("up", func(t *testing.T) {
		t.Parallel()
		f := newFakeCoord(t)
		var calls atomic.Int32
		countEnrolls(f, &calls)
		w := newFakeWait()
		_, err := Enroll(testCtx(t), EnrollOptions{Dir: filepath.Join(t.TempDir(), "node"), Coordinator: f.addr(),
			Token: "wrong", Logger: testLogger(t), now: w.now, sleep: w.sleep})
		if !errors.Is(err, ErrEnrollRefused) || !strings.Contains(err.Error(), "join token unknown") {
			t.Errorf("err = %v; want ErrEnrollRefused", err)
		}
		if calls.Load() != 1 || len(w.delays()) != 0 {
			t.Errorf("%d enrollment calls and waits %v; want exactly one try", calls.Load(), w.delays())
		}
	})
	t.Run("after an outage", func(t *testing.T) {
		t.Parallel()
		f := newFakeCoord(t)
		addr := f.addr()
		f.stop()
		var calls atomic.Int32
		w := newFakeWait()
		w.onWait = func(n int) {
			if n == 2 {
				f.start()
				countEnrolls(f, &calls)
			}
		}
		_, err := Enroll(testCtx(t), EnrollOptions{Dir: filepath.Join(t.TempDir(), "node"), Coordinator: addr,
			Token: "wrong", Logger: testLogger(t), now: w.now, sleep: w.sleep})
		if !errors.Is(err, ErrEnrollRefused) {
			t.Errorf("err = %v; want ErrEnrollRefused", err)
		}
		if calls.Load() != 1 || len(w.delays()) != 2 {
			t.Errorf("%d enrollment calls and waits %v; want 2 waits, then one refused call", calls.Load(), w.delays())
		}
	})
}

// deadCoord is the address of a coordinator that is down: its port is
// closed, so a dial fails at once.
func deadCoord(t *testing.T) string {
	t.Helper()
	f := newFakeCoord(t)
	addr := f.addr()
	f.stop()
	return addr
}

// Enroll gives up RetryFor after its first try, saying how long it tried,
// how many times, and the last error.
func TestEnrollGivesUp(t *testing.T) {
	t.Parallel()
	addr := deadCoord(t)
	half := func() float64 { return 0.5 }
	for _, tc := range []struct {
		retryFor time.Duration
		want     string
		waits    int
	}{
		// 0.75 of 1s, 2s, 4s … 60s: 0.75s, 1.5s, 3s, 6s, 12s, 24s, then
		// 45s; eleven waits make 272.25s, the twelfth is cut to 27.75s.
		{0, "gave up after 5m0s and 13 tries", 12},
		{10 * time.Second, "gave up after 10s and 5 tries", 4},
		{-1, "gave up after 0s and 1 try", 0},
	} {
		t.Run(tc.retryFor.String(), func(t *testing.T) {
			t.Parallel()
			w := newFakeWait()
			_, err := Enroll(testCtx(t), EnrollOptions{Dir: filepath.Join(t.TempDir(), "node"), Coordinator: addr,
				Token: "t", RetryFor: tc.retryFor, Logger: testLogger(t), now: w.now, sleep: w.sleep, rand: half})
			if err == nil {
				t.Fatal("Enroll with no coordinator succeeded")
			}
			msg := err.Error()
			for _, want := range []string{"node: enroll: cannot reach coordinator " + addr + ": " + tc.want + ": ", "connection refused"} {
				if !strings.Contains(msg, want) {
					t.Errorf("err = %q; want it to contain %q", msg, want)
				}
			}
			if errors.Is(err, ErrEnrollRefused) || errors.Is(err, ErrBadConfig) {
				t.Errorf("err = %v; a coordinator that is down is neither a refusal nor bad config", err)
			}
			waits := w.delays()
			if len(waits) != tc.waits {
				t.Errorf("%d waits %v, want %d", len(waits), waits, tc.waits)
			}
			var total time.Duration
			for _, d := range waits {
				total += d
			}
			retryFor := orDefault(tc.retryFor, DefaultEnrollRetryFor)
			if tc.retryFor >= 0 && total != retryFor {
				t.Errorf("waits %v add up to %s, want RetryFor %s", waits, total, retryFor)
			}
		})
	}
}

// orDefault is d, or def when d is 0.
func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// ctx ends the retrying: Enroll returns ctx's error, with the last one.
func TestEnrollRetryStopsWithContext(t *testing.T) {
	t.Parallel()
	addr := deadCoord(t)
	ctx, cancel := context.WithCancel(testCtx(t))
	w := newFakeWait()
	w.onWait = func(n int) {
		if n == 2 {
			cancel()
		}
	}
	_, err := Enroll(ctx, EnrollOptions{Dir: filepath.Join(t.TempDir(), "node"), Coordinator: addr,
		Token: "t", Logger: testLogger(t), now: w.now, sleep: w.sleep})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "2 tries") ||
		!strings.Contains(err.Error(), "connection refused") {
		t.Errorf("err = %v; want context.Canceled after 2 tries, with the last error", err)
	}
	if n := len(w.delays()); n != 2 {
		t.Errorf("%d waits, want 2", n)
	}
}

// Two nodes that lose the same coordinator do not retry in lockstep: with
// the default randomness their waits are in range and differ.
func TestEnrollRetryJittered(t *testing.T) {
	t.Parallel()
	addr := deadCoord(t)
	var seqs [2][]time.Duration
	for i := range seqs {
		w := newFakeWait()
		_, err := Enroll(testCtx(t), EnrollOptions{Dir: filepath.Join(t.TempDir(), "node"), Coordinator: addr,
			Token: "t", RetryFor: 2 * time.Minute, Logger: testLogger(t), now: w.now, sleep: w.sleep})
		if err == nil || !strings.Contains(err.Error(), "gave up after 2m0s") {
			t.Fatalf("err = %v; want giving up after 2m0s", err)
		}
		seqs[i] = w.delays()
		if len(seqs[i]) < 6 {
			t.Fatalf("node %d waited %v; want at least 6 waits in 2m", i, seqs[i])
		}
		// The last wait is cut to the deadline; the others follow the schedule.
		checkEnrollWaits(t, seqs[i][:len(seqs[i])-1])
	}
	if slices.Equal(seqs[0], seqs[1]) {
		t.Errorf("two nodes waited the same %v", seqs[0])
	}
}
