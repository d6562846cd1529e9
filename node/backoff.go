package node

import "time"

// backoff is the delay before retry number attempt (1 for the first
// retry): lo, doubling each time, capped at hi. With lo 1s and hi 60s:
// 1s, 2s, 4s, 8s, 16s, 32s, 60s, 60s, …
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
