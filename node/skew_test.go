package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relaymesh/relaymesh/core"
)

// A node whose clock is behind refuses an order issued in its future, tells
// the coordinator once (not on every redelivery) and takes the order in
// when its clock catches up.
func TestNotYetValidIsReportedOnceAndAcceptedLater(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	clock := &fakeClock{t: time.Now().Add(-time.Hour)}
	n := startNode(t, enrollNode(t, f), func(c *Config) { c.Now = clock.Now })
	self := n.ID().String()
	marker := filepath.Join(t.TempDir(), "ran")
	pkg := f.addPackage(markerScript(marker, 0), 10)
	env := f.sign(f.order("future", self, pkg, func(o *core.Order) { o.Seq = 10 }))

	for range 3 {
		if acc, err := f.push(testCtx(t), n, env); err != nil || acc != 0 {
			t.Fatalf("push accepted %d, %v", acc, err)
		}
	}
	got := f.waitState(t, "future", core.StateWaiting)
	if !strings.Contains(got.Detail, "not yet valid") || !strings.Contains(got.Detail, "node clock") {
		t.Errorf("report detail %q does not name the node's clock", got.Detail)
	}
	if k := len(f.statuses("future")); k != 1 {
		t.Errorf("%d reports for three deliveries, want 1", k)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("an order not yet valid ran")
	}
	clock.Advance(time.Hour)
	if acc, err := f.push(testCtx(t), n, env); err != nil || acc != 1 {
		t.Fatalf("after the clock caught up: push accepted %d, %v", acc, err)
	}
	f.waitState(t, "future", core.StateSuccess)
}
