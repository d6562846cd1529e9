package simulations

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"log/slog"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	if os.Getenv("RELAYMESH_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

const tinyScenario = `
name: tiny
seed: 7
package_size: 2MiB
fragment_size: 256KiB
coordinator_up: 80Mbit/s
strategies: [mesh]
timeout: 90s
sites: {count: 2, nodes: 3, wan_up: 40Mbit/s, wan_down: 40Mbit/s, lan: 400Mbit/s, latency: 5ms, heterogeneity: 0.2}
bounds:
  - {metric: wan_in_over_size, max: 1.25}
  - {metric: unfinished, max: 0}
`

// TestTinyMesh runs the real coordinator and six nodes in two sites over
// the shaped network: every node ends SUCCESS and each site takes the
// package in about once.
func TestTinyMesh(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a fleet")
	}
	sc, err := ParseScenario([]byte(tinyScenario))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var tl bytes.Buffer
	tw, err := NewTimelineWriter(&tl)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(ctx, sc, Options{Logger: testLogger(t), TempDir: t.TempDir(), Timeline: tw})
	if err != nil {
		t.Fatal(err)
	}
	r := rep.Results[0]
	t.Logf("%+v", r)
	if r.Error != "" {
		t.Fatal(r.Error)
	}
	if r.Succeeded != 6 || r.CorruptInstalls != 0 {
		t.Errorf("succeeded %d of 6, corrupt installs %d", r.Succeeded, r.CorruptInstalls)
	}
	for i, v := range r.WANInOverSize {
		if v > 1.25 || v < 0.99 {
			t.Errorf("site %d took in %.2f × the package, want 1 to 1.25", i+1, v)
		}
	}
	if r.TLast <= 0 || r.TStar <= 0 {
		t.Errorf("t_last %v T* %v", r.TLast, r.TStar)
	}
	checkTimeline(t, tl.Bytes(), r, 8)
	if len(rep.Bounds) != 2 || !rep.Bounds[0].OK || !rep.Bounds[1].OK {
		t.Errorf("bounds %+v, want both checked and ok", rep.Bounds)
	}
}

// TestRunFailsOnBrokenBound: a run whose result breaks a bound returns
// ErrBoundBroken with the whole report, the broken bound marked.
func TestRunFailsOnBrokenBound(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a fleet")
	}
	sc, err := ParseScenario([]byte(`
name: broken
seed: 1
package_size: 512KiB
fragment_size: 128KiB
coordinator_up: 80Mbit/s
strategies: [mesh]
timeout: 60s
sites: {count: 1, nodes: 2, wan_up: 40Mbit/s, wan_down: 40Mbit/s, lan: 400Mbit/s}
bounds:
  - {metric: succeeded, min: 3, why: "more nodes than the fleet has"}
  - {metric: failed, max: 0}
`))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, sc, Options{Logger: testLogger(t), TempDir: t.TempDir()})
	if !errors.Is(err, ErrBoundBroken) || !strings.Contains(err.Error(), "1 of 2 bounds") {
		t.Fatalf("Run: %v, want ErrBoundBroken naming 1 of 2 bounds", err)
	}
	if rep == nil || len(rep.Results) != 1 || rep.Results[0].Succeeded != 2 {
		t.Fatalf("report %+v, want the run's result (2 succeeded)", rep)
	}
	if len(rep.Bounds) != 2 || rep.Bounds[0].OK || !rep.Bounds[1].OK || rep.Bounds[0].Value != 2 {
		t.Errorf("bounds %+v, want the first broken at 2, the second ok", rep.Bounds)
	}
}

// checkTimeline checks a timeline file against its run: per node one
// start, one manifest, every fragment once and one done row, in that
// order of time; the done rows are the report's completion times.
func checkTimeline(t *testing.T, file []byte, r Result, frags int) {
	t.Helper()
	rows, err := csv.NewReader(bytes.NewReader(file)).ReadAll()
	if err != nil || len(rows) == 0 || !slices.Equal(rows[0], TimelineHeader) {
		t.Fatalf("timeline: %v, %q", err, file)
	}
	type seen struct {
		start, manifest, done float64
		frags                 map[string]float64
	}
	nodes := map[string]*seen{}
	var done []float64
	last := 0.0
	for _, row := range rows[1:] {
		ts, err := strconv.ParseFloat(row[6], 64)
		if err != nil || row[0] != r.Strategy || ts < last {
			t.Fatalf("timeline row %q: %v (previous time %v)", row, err, last)
		}
		last = ts
		n := nodes[row[1]]
		if n == nil {
			n = &seen{start: -1, manifest: -1, done: -1, frags: map[string]float64{}}
			nodes[row[1]] = n
		}
		switch row[4] {
		case "start":
			n.start = ts
		case "manifest":
			n.manifest = ts
		case "fragment":
			if _, dup := n.frags[row[5]]; dup {
				t.Errorf("%s: fragment %s twice", row[1], row[5])
			}
			n.frags[row[5]] = ts
		case "done":
			n.done = ts
			done = append(done, ts)
		default:
			t.Errorf("unknown event %q", row[4])
		}
	}
	if len(nodes) != r.Nodes {
		t.Errorf("timeline has %d nodes, want %d", len(nodes), r.Nodes)
	}
	for name, n := range nodes {
		if n.start < 0 || n.manifest < n.start || len(n.frags) != frags || n.done < n.manifest {
			t.Errorf("%s: start %v manifest %v fragments %d done %v", name, n.start, n.manifest, len(n.frags), n.done)
		}
		for f, ts := range n.frags {
			if ts > n.done+0.001 {
				t.Errorf("%s: fragment %s at %v, after done at %v", name, f, ts, n.done)
			}
		}
	}
	if len(done) != len(r.CompletionS) {
		t.Fatalf("done rows %v, completions %v", done, r.CompletionS)
	}
	for i := range done {
		if math.Abs(done[i]-r.CompletionS[i]) > 0.001 {
			t.Errorf("done rows %v, completions %v", done, r.CompletionS)
			break
		}
	}
}
