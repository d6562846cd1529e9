package simulations

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// The virtual-time mode's entry points. TestVirtualSim runs the scenario
// files named in RELAYMESH_VSIM (paths separated by spaces or commas;
// make vsim sets it to the shipped scenarios) in virtual time, prints
// each report's table, writes RELAYMESH_VSIM_OUT/NAME/ when that is set,
// and fails when a scenario's bounds break. With RELAYMESH_VSIM_OUT each
// scenario's directory also gets timeline.csv (see NewTimelineWriter). RELAYMESH_VSIM_STALL (a Go
// duration, default 2m) is how long the watchdog lets simulated time
// stand still, in wall time, before it dumps every goroutine and fails.
func TestVirtualSim(t *testing.T) {
	paths := strings.Fields(strings.ReplaceAll(os.Getenv("RELAYMESH_VSIM"), ",", " "))
	if len(paths) == 0 {
		t.Skip("RELAYMESH_VSIM names no scenario file: make vsim runs the shipped scenarios in virtual time")
	}
	stall := 2 * time.Minute
	if s := os.Getenv("RELAYMESH_VSIM_STALL"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			t.Fatalf("RELAYMESH_VSIM_STALL %q: want a positive Go duration such as 2m", s)
		}
		stall = d
	}
	out := os.Getenv("RELAYMESH_VSIM_OUT")
	for _, path := range paths {
		sc, err := LoadScenario(path)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		t.Run(sc.Name, func(t *testing.T) {
			fmt.Printf("== vsim %s\n", sc.Name)
			opts := Options{Logger: testLogger(t)}
			var flush func() error
			if out != "" {
				if err := os.MkdirAll(filepath.Join(out, sc.Name), 0o755); err != nil {
					t.Fatal(err)
				}
				f, err := os.Create(filepath.Join(out, sc.Name, "timeline.csv"))
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if opts.Timeline, err = NewTimelineWriter(f); err != nil {
					t.Fatal(err)
				}
				flush = func() error { opts.Timeline.Flush(); return opts.Timeline.Error() }
			}
			rep, err := runVirtualScenario(t, sc, opts, stall)
			if flush != nil {
				if ferr := flush(); ferr != nil {
					t.Error(ferr)
				}
			}
			if rep != nil {
				_ = rep.WriteTable(os.Stdout)
				if out != "" {
					if werr := rep.WriteFiles(filepath.Join(out, sc.Name)); werr != nil {
						t.Error(werr)
					}
				}
			}
			if err != nil {
				t.Error(err)
			}
		})
	}
}

// runVirtualScenario runs sc with every strategy in its own synctest
// bubble, watched from outside by a watchdog.
func runVirtualScenario(t *testing.T, sc *Scenario, opts Options, stall time.Duration) (*Report, error) {
	w := &watchdog{stall: stall, onStall: func(sim time.Time, stood time.Duration) {
		fmt.Fprintf(os.Stderr, "vsim %s: simulated time stood at %s for %s of wall time; every goroutine:\n", sc.Name, sim.Format(time.RFC3339Nano), stood)
		_ = pprof.Lookup("goroutine").WriteTo(os.Stderr, 2)
		panic(fmt.Sprintf("vsim %s: simulated time stopped moving (see the goroutines above)", sc.Name))
	}}
	opts.Beat = w.beat
	opts.Bubble = func(run func()) {
		stop := w.start()
		defer stop()
		synctest.Test(t, func(*testing.T) { run() })
	}
	return Run(context.Background(), sc, opts)
}

// watchdog fails a virtual run whose simulated time stops moving: the
// bubble beats with its simulated time, and a goroutine outside it looks
// every second of wall time.
type watchdog struct {
	stall   time.Duration
	onStall func(sim time.Time, stood time.Duration)

	sim      atomic.Int64 // last beat, simulated unix ns
	lastSim  int64
	lastMove time.Time // wall
}

func (w *watchdog) beat(now time.Time) { w.sim.Store(now.UnixNano()) }

// check looks at the beats at wall time now: it reports whether simulated
// time has stood still for longer than stall, and for how long.
func (w *watchdog) check(now time.Time) (bool, time.Duration) {
	if s := w.sim.Load(); s != w.lastSim || w.lastMove.IsZero() {
		w.lastSim, w.lastMove = s, now
		return false, 0
	}
	stood := now.Sub(w.lastMove)
	return stood > w.stall, stood
}

// start watches until the returned stop is called.
func (w *watchdog) start() (stop func()) {
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				if stalled, stood := w.check(now); stalled {
					w.onStall(time.Unix(0, w.sim.Load()), stood)
					return
				}
			}
		}
	}()
	return func() { close(done); <-exited }
}

// The watchdog fires only when beats stop for longer than stall.
func TestWatchdogFiresWhenSimulatedTimeStops(t *testing.T) {
	t.Parallel()
	w := &watchdog{stall: 10 * time.Second}
	wall := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	sim := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 30 { // beats every wall second: never stalled
		sim = sim.Add(time.Second)
		w.beat(sim)
		if stalled, _ := w.check(wall.Add(time.Duration(i) * time.Second)); stalled {
			t.Fatalf("stalled at %d s while simulated time moved", i)
		}
	}
	wall = wall.Add(29 * time.Second)
	for i := 1; i <= 10; i++ { // no beat: within stall
		if stalled, _ := w.check(wall.Add(time.Duration(i) * time.Second)); stalled {
			t.Fatalf("stalled after %d s, stall is 10 s", i)
		}
	}
	stalled, stood := w.check(wall.Add(11 * time.Second))
	if !stalled || stood != 11*time.Second {
		t.Fatalf("check after 11 s without a beat: %v %s, want stalled for 11s", stalled, stood)
	}
	w.beat(sim.Add(time.Millisecond))
	if stalled, _ := w.check(wall.Add(12 * time.Second)); stalled {
		t.Error("still stalled after a beat")
	}
}

// The tiny scenario in virtual time: the whole fleet (coordinator, six
// nodes, memberlist, libp2p over vnet) runs in a bubble, every node
// succeeds, each site takes the package in about once, no node beats
// the bound T* (the network never moves bytes faster than its links),
// and the report is in simulated seconds with the wall time beside.
func TestVirtualTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a fleet")
	}
	sc, err := ParseScenario([]byte(tinyScenario))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := runVirtualScenario(t, sc, Options{Logger: testLogger(t)}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	r := rep.Results[0]
	t.Logf("%+v", r)
	if !rep.Virtual || r.WallS <= 0 || !strings.Contains(rep.Notes[0], "simulated seconds") {
		t.Errorf("virtual %v wall %v notes %q: want a virtual report with the wall time", rep.Virtual, r.WallS, rep.Notes[0])
	}
	if r.Error != "" || r.Succeeded != 6 || r.CorruptInstalls != 0 {
		t.Fatalf("error %q, succeeded %d of 6, corrupt installs %d", r.Error, r.Succeeded, r.CorruptInstalls)
	}
	if r.TLast < r.TStar || r.TLast > 3*r.TStar {
		t.Errorf("t_last %.3f s, T* %.3f s: want T* ≤ t_last ≤ 3 T*", r.TLast, r.TStar)
	}
	for i, v := range r.WANInOverSize {
		if v < 1 || v > 1.25 {
			t.Errorf("site %d took in %.3f × the package, want 1 to 1.25", i+1, v)
		}
	}
}
