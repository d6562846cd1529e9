package node

import (
	"math/rand/v2"
	"time"
)

// backoff is the delay before retry number attempt (1 for the first
// retry): lo, doubling each time, capped at hi. With lo 1s and hi 60s:
// 1s, 2s, 4s, 8s, 16s, 32s, 60s, 60s, … It is deterministic; the retry
// loops wait jitter(backoff(…)) so that nodes which failed together (a
// coordinator outage) do not retry together.
func backoff(lo, hi time.Duration, attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	d := lo
	for i := 1; i < attempt; i++ {
		if d >= hi/2 {
			return hi
		}
		d *= 2
	}
	return min(d, hi)
}

// jitter spreads a delay d: it returns a delay drawn uniformly from
// [d/2, d] ("equal jitter"), using r, a source of floats in [0, 1) such
// as math/rand/v2's Float64 (nil means that one). Equal rather than full
// jitter ([0, d]): a retry never comes sooner than half the schedule's
// delay, so a fleet still backs off, and never later than the schedule,
// so the schedule's delays stay the bounds. A d of 0 or less is returned
// as is.
func jitter(d time.Duration, r func() float64) time.Duration {
	if d <= 0 {
		return d
	}
	if r == nil {
		r = rand.Float64
	}
	half := d / 2
	f := r()
	if f < 0 || f >= 1 { // a broken source still gives a delay in range
		f = 0
	}
	return half + time.Duration(f*float64(d-half))
}
