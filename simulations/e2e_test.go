package simulations

import (
	"context"
	"log/slog"
	"os"
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
	rep, err := Run(ctx, sc, Options{Logger: testLogger(t), TempDir: t.TempDir()})
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
}
