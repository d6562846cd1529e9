package coordinator

import (
	"strings"
	"testing"
	"time"

	"github.com/relaymesh/relaymesh/core"
)

// TestSyncMeasuresClockOffset: the coordinator compares the clock a node
// puts in its sync request, corrected by half its previous round trip,
// with its own, keeps the offset per node and warns beyond the skew.
func TestSyncMeasuresClockOffset(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	n := f.nodes()[0]
	behind := f.clk.Now().Add(-time.Hour - time.Second)
	if _, err := f.c.Sync(n.ID(), &core.SyncRequest{Info: n.info(), Clock: behind, LastRTT: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	v, err := f.c.Node(n.ID())
	if err != nil {
		t.Fatal(err)
	}
	if !v.ClockKnown || v.ClockOffset != -time.Hour || v.ClockBound != time.Second {
		t.Fatalf("offset %v ±%v (known %v), want -1h0m0s ±1s", v.ClockOffset, v.ClockBound, v.ClockKnown)
	}
	if !strings.Contains(v.ClockWarning, "1h0m0s behind") {
		t.Errorf("warning %q does not say the clock is 1h behind", v.ClockWarning)
	}
	// A clock within the skew: measured, no warning.
	if _, err := f.c.Sync(n.ID(), &core.SyncRequest{Info: n.info(), Clock: f.clk.Now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if v, _ = f.c.Node(n.ID()); v.ClockOffset != time.Minute || v.ClockWarning != "" {
		t.Errorf("offset %v warning %q, want 1m0s and none", v.ClockOffset, v.ClockWarning)
	}
}
