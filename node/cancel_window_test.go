package node

import (
	"crypto/ed25519"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/relaymesh/relaymesh/core"
)

// TestDeployAfterItsCancelIsNotRun: the push of a deploy order was lost
// (or a relay held it back) and the deployment was cancelled. The node
// takes the cancel order in first and reports the order CANCELLED; when
// the signed deploy order comes later, inside the replay window and
// before it expires, the node records its sequence, reports it CANCELLED
// again and never runs it. Redelivery of it is ignored, another order
// with its sequence is a replay, a copy of it that arrives expired is not
// reported over the CANCELLED, and none of this changes after a restart.
func TestDeployAfterItsCancelIsNotRun(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	dir := enrollNode(t, f)
	inst := &countingInstaller{}
	opts := func(c *Config) { c.Installer, c.SyncInterval = inst, time.Hour }
	n := startNode(t, dir, opts)
	self := n.ID().String()
	pkg := f.addPackage("exit 0", 10)
	keyID := core.KeyID(f.key.Public().(ed25519.PublicKey))
	seqIs := func(s uint64) func(o *core.Order) { return func(o *core.Order) { o.Seq = s } }
	cancelOf := func(id string, seq uint64) *core.Envelope {
		return f.sign(f.order("cancel-"+id, self, pkg, func(o *core.Order) {
			o.Kind, o.Cancels, o.Packages, o.Mode, o.Reboot, o.Seq = core.KindCancel, id, nil, "", "", seq
		}))
	}

	deploy := f.sign(f.order("late", self, pkg, seqIs(10)))
	if acc, err := f.push(testCtx(t), n, cancelOf("late", 11)); err != nil || acc != 1 {
		t.Fatalf("push of the cancel order: accepted %d, %v", acc, err)
	}
	if acc, err := f.push(testCtx(t), n, deploy); err != nil || acc != 1 {
		t.Fatalf("push of the deploy order after its cancel: accepted %d, %v (want taken in, not run)", acc, err)
	}
	eventually(t, 30*time.Second, "two reports for the cancelled order", func() bool { return len(f.statuses("late")) >= 2 })
	// Intake starts a job before the push returns: none may exist.
	noJob(t, n, "late")
	if got := statesOf(f.statuses("late")); !slices.Equal(got, []core.State{core.StateCancelled, core.StateCancelled}) {
		t.Errorf("reports for the order cancelled before it arrived: %v, want CANCELLED twice (on the cancel, on the order)", got)
	} else {
		for _, s := range f.statuses("late") {
			if want := "cancelled by order cancel-late before it arrived"; s.Detail != want {
				t.Errorf("report %s detail %q, want %q", s.State, s.Detail, want)
			}
		}
	}
	if seen, err := n.seqs.Seen(keyID, 10); err != nil || !seen {
		t.Errorf("the cancelled order's sequence recorded: %v, %v", seen, err)
	}
	if h, err := n.seqs.HighestSeq(keyID); err != nil || h != 11 {
		t.Errorf("highest %d, %v; want 11", h, err)
	}

	// Redelivered: ignored. Another order with its sequence: a replay.
	if acc, err := f.push(testCtx(t), n, deploy); err != nil || acc != 0 {
		t.Errorf("the cancelled order again: accepted %d, %v", acc, err)
	}
	if acc, err := f.push(testCtx(t), n, f.sign(f.order("reused-seq", self, pkg, seqIs(10)))); err != nil || acc != 0 {
		t.Errorf("another order with the cancelled order's sequence: accepted %d, %v", acc, err)
	}
	if got := f.waitState(t, "reused-seq", core.ErrReplaySt); !strings.Contains(got.Detail, replayedMsg) {
		t.Errorf("refusal detail %q", got.Detail)
	}

	// An order cancelled before it arrives, delivered expired: refused,
	// and not reported over the CANCELLED.
	if acc, err := f.push(testCtx(t), n, cancelOf("gone", 12)); err != nil || acc != 1 {
		t.Fatalf("push of the second cancel order: accepted %d, %v", acc, err)
	}
	f.waitState(t, "gone", core.StateCancelled)
	expired := f.sign(f.order("gone", self, pkg, func(o *core.Order) {
		o.Seq, o.IssuedAt, o.NotBefore, o.Expires = 9, o.IssuedAt.Add(-2*time.Hour), o.IssuedAt.Add(-2*time.Hour), o.IssuedAt.Add(-time.Hour)
	}))
	if acc, err := f.push(testCtx(t), n, expired); err != nil || acc != 0 {
		t.Errorf("expired copy of a cancelled order: accepted %d, %v", acc, err)
	}
	if acc, err := f.push(testCtx(t), n, f.sign(f.order("marker", self, pkg, seqIs(11)))); err != nil || acc != 0 {
		t.Errorf("marker replay: accepted %d, %v", acc, err)
	}
	f.waitState(t, "marker", core.ErrReplaySt) // reports go in sequence: one for "gone" would be in by now
	if got := statesOf(f.statuses("gone")); !slices.Equal(got, []core.State{core.StateCancelled}) {
		t.Errorf("reports for the expired cancelled order: %v, want only the CANCELLED", got)
	}

	// After a restart the cancelled job is not resumed and the order is
	// still known.
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n = startNode(t, dir, opts)
	if acc, err := f.push(testCtx(t), n, deploy); err != nil || acc != 0 {
		t.Errorf("after a restart, the cancelled order again: accepted %d, %v", acc, err)
	}
	// Start resumed what it would resume before it returned.
	noJob(t, n, "late")
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if c := inst.calls.Load(); c != 0 {
		t.Errorf("installer ran %d times for orders cancelled before they arrived", c)
	}
	if s := f.servedCount()[pkg.id]; s != 0 {
		t.Errorf("the node fetched the manifest of a cancelled order %d times", s)
	}
	if got := statesOf(f.statuses("late")); len(got) != 2 {
		t.Errorf("reports for the cancelled order after a restart: %v", got)
	}
}

// noJob fails when n has a job running for order.
func noJob(t *testing.T, n *Node, order string) {
	t.Helper()
	n.jobsMu.Lock()
	defer n.jobsMu.Unlock()
	if n.jobs[order] != nil {
		t.Errorf("a job runs for order %s, cancelled before it arrived", order)
	}
}
