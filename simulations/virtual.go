package simulations

import (
	"context"
	"log/slog"
	"runtime"
	"time"
)

// Virtual time (Options.Bubble). Everything below runs inside the
// testing/synctest bubble: no real socket (vnet, memnet, no admin API),
// no DNS, no exec (checkInstaller).

const (
	beatEvery = 100 * time.Millisecond
	// drainFor bounds, in simulated time, the wait for the goroutines a
	// closed fleet leaves behind.
	drainFor = 5 * time.Minute
)

// runVirtual runs one strategy in the bubble it is called in, then
// drains the bubble.
func runVirtual(sc *Scenario, strategy string, opts Options, log *slog.Logger) Result {
	base := runtime.NumGoroutine()
	stop := make(chan struct{})
	beats := make(chan struct{})
	go func() {
		defer close(beats)
		t := time.NewTicker(beatEvery)
		defer t.Stop()
		for {
			if opts.Beat != nil {
				opts.Beat(time.Now())
			}
			select {
			case <-t.C:
			case <-stop:
				return
			}
		}
	}()
	res := runStrategy(context.Background(), sc, strategy, opts, log, true)
	close(stop)
	<-beats
	drain(base, log)
	return res
}

// drain waits until the goroutines the fleet started have ended: some
// outlive Close by their timers (memberlist's probes after Shutdown), and
// the bubble can only end when they have. Sleeping moves simulated time,
// so the wait costs little wall time. It gives up after drainFor; a
// goroutine still blocked then makes synctest report the deadlock with
// its stack.
func drain(base int, log *slog.Logger) {
	deadline := time.Now().Add(drainFor)
	for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
		time.Sleep(beatEvery)
	}
	if n := runtime.NumGoroutine(); n > base {
		log.Warn("goroutines left after the drain", "extra", n-base, "waited", drainFor)
	}
}
