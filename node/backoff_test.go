package node

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestJitterRange(t *testing.T) {
	t.Parallel()
	for _, d := range []time.Duration{time.Nanosecond, 3 * time.Nanosecond, 10 * time.Millisecond, time.Second, time.Minute, 10 * time.Minute} {
		seen := map[time.Duration]bool{}
		for range 1000 {
			got := jitter(d, nil)
			if got < d/2 || got > d {
				t.Fatalf("jitter(%s) = %s, want within [%s, %s]", d, got, d/2, d)
			}
			seen[got] = true
		}
		if d >= 10*time.Millisecond && len(seen) < 100 {
			t.Errorf("jitter(%s): %d distinct delays in 1000 draws", d, len(seen))
		}
	}
	for _, tc := range []struct {
		r    float64
		want time.Duration
	}{
		{0, 30 * time.Second}, {0.5, 45 * time.Second}, {1 - 1e-12, time.Minute},
		{1, 30 * time.Second}, {-0.5, 30 * time.Second}, // a broken source stays in range
	} {
		got := jitter(time.Minute, func() float64 { return tc.r })
		if diff := got - tc.want; diff < -time.Microsecond || diff > time.Microsecond {
			t.Errorf("jitter(1m) with r=%v: %s, want %s", tc.r, got, tc.want)
		}
	}
	for _, d := range []time.Duration{0, -time.Second} {
		if got := jitter(d, nil); got != d {
			t.Errorf("jitter(%s) = %s", d, got)
		}
	}
}

// jittered is the sequence of delays a retry loop waits over n attempts.
func jittered(n int, r func() float64) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = jitter(backoff(time.Second, time.Minute, i+1), r)
	}
	return out
}

func TestJitterSequencesDiffer(t *testing.T) {
	t.Parallel()
	a, b := jittered(10, nil), jittered(10, nil)
	if slices.Equal(a, b) {
		t.Errorf("two draws of the default source gave the same delays %v", a)
	}
	// Two nodes seeded differently (as two processes' default sources are).
	r1 := rand.New(rand.NewPCG(1, 2))
	r2 := rand.New(rand.NewPCG(3, 4))
	a, b = jittered(10, r1.Float64), jittered(10, r2.Float64)
	if slices.Equal(a, b) {
		t.Errorf("two nodes' delays are the same %v", a)
	}
	for _, seq := range [][]time.Duration{a, b} {
		for i, d := range seq {
			full := backoff(time.Second, time.Minute, i+1)
			if d < full/2 || d > full {
				t.Errorf("attempt %d: %s, want within [%s, %s]", i+1, d, full/2, full)
			}
		}
		if len(slices.Compact(slices.Clone(seq[6:]))) == 1 {
			t.Errorf("the capped delays are all equal: %v", seq)
		}
	}
	// The same seed gives the same delays: tests can pin them.
	a = jittered(10, rand.New(rand.NewPCG(1, 2)).Float64)
	b = jittered(10, rand.New(rand.NewPCG(1, 2)).Float64)
	if !slices.Equal(a, b) {
		t.Errorf("same seed, different delays: %v, %v", a, b)
	}
}

func TestSyncWaitSpread(t *testing.T) {
	t.Parallel()
	d := time.Minute
	if lo, hi := syncWait(d, func() float64 { return 0 }), syncWait(d, func() float64 { return 0.999999 }); lo != 45*time.Second || hi < 74*time.Second || hi > 75*time.Second {
		t.Errorf("sync wait range %s..%s, want 45s..75s", lo, hi)
	}
}
