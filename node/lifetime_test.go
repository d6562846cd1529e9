package node

import (
	"strings"
	"testing"
	"time"

	"github.com/relaymesh/relaymesh/core"
)

// TestOrderLifetimePinnedAtEnrollment: the node stores the coordinator's
// maximum order lifetime from its enrollment and refuses (and reports) a
// deploy order valid for longer; a normal order still runs.
func TestOrderLifetimePinnedAtEnrollment(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	f.maxLife.Store(int64(7 * 24 * time.Hour / time.Second))
	dir := enrollNode(t, f)
	if e, err := LoadEnrollment(dir); err != nil || e.MaxOrderLifetime != 604800 {
		t.Fatalf("stored enrollment: max order lifetime %v (%v), want 604800", e, err)
	}
	n := startNode(t, dir, nil)
	self := n.ID().String()
	pkg := f.addPackage(markerScript(t.TempDir()+"/ran", 0), 10)
	long := f.sign(f.order("ten-years", self, pkg, func(o *core.Order) { o.Expires = o.NotBefore.Add(10 * 365 * 24 * time.Hour) }))
	if acc, err := f.push(testCtx(t), n, long); err != nil || acc != 0 {
		t.Fatalf("push of a 10-year order: accepted %d, %v", acc, err)
	}
	got := f.waitState(t, "ten-years", core.ErrBadID)
	if !strings.Contains(got.Detail, "pinned at enrollment") {
		t.Errorf("refusal detail %q does not name the pinned maximum", got.Detail)
	}
	if acc, err := f.push(testCtx(t), n, f.sign(f.order("normal", self, pkg, nil))); err != nil || acc != 1 {
		t.Fatalf("push of a normal order: accepted %d, %v", acc, err)
	}
	f.waitState(t, "normal", core.StateSuccess)
}
