package coordinator

import (
	"slices"
	"testing"

	"github.com/relaymesh/relaymesh/core"
)

// syncIDs syncs as node n whose highest accepted sequence is after and
// which keeps a replay window of window sequences (0: a node that predates
// the window), and returns the IDs of the orders sent, in their order.
func (f *fleet) syncIDs(n *fakeNode, after, window uint64) []string {
	f.t.Helper()
	resp, err := f.c.Sync(n.ID(), &core.SyncRequest{AfterSeq: after, Window: window, Info: n.info()})
	if err != nil {
		f.t.Fatalf("%s: sync: %v", n.name, err)
	}
	ids := []string{}
	for _, e := range resp.Orders {
		o, err := n.ver.Check(e)
		if err != nil && o == nil {
			f.t.Fatalf("%s: order refused: %v", n.name, err)
		}
		ids = append(ids, o.ID)
	}
	return ids
}

// TestSyncResendsOrdersMissedInsideWindow: a node whose highest sequence
// passed an order it never got (its push was lost while a later one got
// through) is sent that order on sync, as long as its row is still
// WAITING_NOTIFICATION and the order is inside the node's window; orders
// it reported on are not sent again, and a node that sends no window gets
// only what is above its highest, as before.
func TestSyncResendsOrdersMissedInsideWindow(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	for _, n := range f.nodes() {
		n.h.RemoveStreamHandler(core.ProtoOrders) // sync only: pushes fail
	}
	a1 := f.a1
	only := DeployRequest{Nodes: []string{a1.ID()}}
	missed := f.deploy(only) // its push to a1 was lost
	got := f.deploy(only)    // a1 took it in
	done := f.deploy(only)   // a1 took it in and finished
	a1.report(got.ID, core.StateNotified)
	a1.report(done.ID, core.StateNotified, core.StateDownloading, core.StateDownloaded, core.StateInstalling, core.StateSuccess)
	w := core.ReplayWindow

	check := func(what string, ids []string, want ...string) {
		t.Helper()
		if want == nil {
			want = []string{}
		}
		if !slices.Equal(ids, want) {
			t.Errorf("%s: orders %v, want %v", what, ids, want)
		}
	}
	check("highest past the missed order", f.syncIDs(a1, done.Seq, w), missed.ID)
	check("a node without a window", f.syncIDs(a1, done.Seq, 0))
	check("highest between", f.syncIDs(a1, got.Seq, w), missed.ID, done.ID)
	check("a node without a window, highest between", f.syncIDs(a1, got.Seq, 0), done.ID)
	check("missed order at the oldest in the window", f.syncIDs(a1, missed.Seq+w-1, w), missed.ID)
	check("missed order at the window's floor", f.syncIDs(a1, missed.Seq+w, w))
	check("another node", f.syncIDs(f.a2, done.Seq, w))

	// A cancel order a node has not acted on is sent again too.
	cancelled := f.deploy(only)
	a1.report(cancelled.ID, core.StateNotified)
	if _, err := f.cl.CancelDeployment(f.ctx, cancelled.ID); err != nil {
		t.Fatal(err)
	}
	later := f.deploy(only)
	a1.report(later.ID, core.StateNotified)
	ids := f.syncIDs(a1, later.Seq, w)
	if len(ids) != 2 || ids[0] != missed.ID {
		t.Fatalf("after a cancel: orders %v, want %s and the cancel order", ids, missed.ID)
	}
	if ids[1] == cancelled.ID || ids[1] == later.ID {
		t.Fatalf("after a cancel: orders %v, want the cancel order second", ids)
	}
	check("a node without a window, after a cancel", f.syncIDs(a1, later.Seq, 0))
	a1.report(cancelled.ID, core.StateCancelled)
	check("after the node reported the cancel", f.syncIDs(a1, later.Seq, w), missed.ID)
	check("cancel order reported on, above the highest", f.syncIDs(a1, later.Seq-2, w), missed.ID, later.ID)
	a1.report(later.ID, core.StateSuccess)
	check("above the highest, sent whatever its row, as before", f.syncIDs(a1, later.Seq-3, w), missed.ID, later.ID)

	// Once the node reports on the missed order, it is not sent again.
	a1.report(missed.ID, core.StateNotified)
	check("after the node reported the missed order", f.syncIDs(a1, later.Seq, w))
}
