// Package poll waits in tests for a condition, with a deadline: the one
// way the test suites wait for something to happen.
package poll

import (
	"testing"
	"time"
)

// Until calls cond every interval until it reports true, and fails t when
// within passes first, naming what was awaited and the last state cond
// described. The deadline is cut short to leave 20 s of go test's own
// -timeout, so a failing wait still runs the test's cleanups.
func Until(t testing.TB, within, interval time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	if dt, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if d, ok := dt.Deadline(); ok && d.Add(-20*time.Second).Before(deadline) {
			deadline = d.Add(-20 * time.Second)
		}
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	last := ""
	for {
		ok, state := cond()
		if ok {
			return
		}
		if state != "" {
			last = state
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last: %s", within, what, last)
		}
		<-tick.C
	}
}

// Bool adapts a condition with nothing to say about its state.
func Bool(cond func() bool) func() (bool, string) {
	return func() (bool, string) { return cond(), "" }
}
