package node

import (
	"context"
	"errors"
	"log/slog"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relaymesh/relaymesh/cache"
	"github.com/relaymesh/relaymesh/core"
)

// outboxRetryDelays runs an outbox whose coordinator never takes a report
// until it failed n times, and returns the delays it logged between.
func outboxRetryDelays(t *testing.T, n int, r func() float64) []time.Duration {
	t.Helper()
	cfg := TestConfig(t.TempDir())
	cfg.StatusBackoffMin, cfg.StatusBackoffMax = 20*time.Millisecond, 20*time.Millisecond
	priv, err := core.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	o := newOutbox(cache.NewMemory(0).KV(), priv, nil, "node-1", cfg,
		slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if r != nil {
		o.rand = r
	}
	if err := o.kv.Update(func(tx cache.KVTx) error {
		return o.add(tx, core.Status{OrderID: "o1", State: core.StateNotified})
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(testCtx(t))
	var sends atomic.Int32
	var wg sync.WaitGroup
	wg.Go(func() {
		o.run(ctx, func(context.Context, *core.StatusBatch) (*core.StatusAck, error) {
			if sends.Add(1) > int32(n) {
				cancel()
			}
			return nil, errors.New("coordinator down")
		})
	})
	wg.Wait()
	var out []time.Duration
	for _, m := range regexp.MustCompile(`retry_in=(\S+)`).FindAllStringSubmatch(logs.String(), -1) {
		d, err := time.ParseDuration(m[1])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	if len(out) < n {
		t.Fatalf("%d delays logged after %d failures:\n%s", len(out), n, logs)
	}
	return out[:n]
}

// Status delivery backs off with jitter: between half and all of the
// schedule's delay, drawn anew each time.
func TestOutboxBackoffJittered(t *testing.T) {
	t.Parallel()
	for _, d := range outboxRetryDelays(t, 3, func() float64 { return 0 }) {
		if d != 10*time.Millisecond {
			t.Errorf("delay %s with a source giving 0, want 10ms (half of 20ms)", d)
		}
	}
	ds := outboxRetryDelays(t, 8, nil)
	seen := map[time.Duration]bool{}
	for _, d := range ds {
		if d < 10*time.Millisecond || d > 20*time.Millisecond {
			t.Errorf("delay %s, want within [10ms, 20ms]", d)
		}
		seen[d] = true
	}
	if len(seen) < 2 {
		t.Errorf("delays %v all equal", ds)
	}
}
