package coordinator

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/relaymesh/relaymesh/core"
)

// cancelOrderOf returns the cancel order of deployment id, decoded, and
// its envelope.
func (f *fleet) cancelOrderOf(id string) (*core.Order, *core.Envelope) {
	f.t.Helper()
	f.c.st.mu.RLock()
	d := f.c.st.deps[id]
	f.c.st.mu.RUnlock()
	if d == nil || d.CancelOrder == nil {
		f.t.Fatalf("deployment %s has no cancel order", id)
	}
	o, err := core.DecodeOrder(d.CancelOrder.Payload)
	if err != nil {
		f.t.Fatal(err)
	}
	return o, d.CancelOrder
}

// TestCancelReachesNodesNeverNotified: a node whose push of a deploy order
// was lost (its row WAITING_NOTIFICATION) when the deployment is cancelled
// is a target of the cancel order: the cancel is pushed to it and is in
// its sync answer, above its highest sequence and inside its replay
// window, until the node reports on the order, so that a node later
// handed the signed deploy order by a relay or a peer does not run it.
// Its row shows CANCELLED before and after the node's report, and the
// deployment stays CANCELLED.
func TestCancelReachesNodesNeverNotified(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	for _, n := range []*fakeNode{f.a2, f.b1} {
		n.h.RemoveStreamHandler(core.ProtoOrders) // sync only: pushes fail
	}
	a1, a2 := f.a1, f.a2
	w := core.ReplayWindow
	// a1's push is "lost": its fake host records it but reports nothing, so
	// its row stays WAITING_NOTIFICATION; a2 syncs and is notified.
	d := f.deploy(DeployRequest{Nodes: []string{a1.ID(), a2.ID()}})
	if ids := f.syncIDs(a2, 0, w); !slices.Equal(ids, []string{d.ID}) {
		t.Fatalf("a2 orders %v", ids)
	}
	a2.report(d.ID, core.StateNotified)
	if r := rowOf(t, f.deployment(d.ID), a1.ID()); r.State != core.StateWaiting {
		t.Fatalf("a1 row %s before the cancel, want WAITING_NOTIFICATION", r.State)
	}
	if _, err := f.cl.CancelDeployment(f.ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	v := f.deployment(d.ID)
	if r := rowOf(t, v, a1.ID()); v.State != DeployCancelled || r.State != core.StateCancelled || r.Detail == "" {
		t.Errorf("after the cancel: deployment %s, a1 row %s %q; want CANCELLED, CANCELLED with a detail", v.State, r.State, r.Detail)
	}
	co, cenv := f.cancelOrderOf(d.ID)
	if !slices.Contains(co.Targets, a1.ID()) || !slices.Contains(co.Targets, a2.ID()) {
		t.Fatalf("cancel order targets %v: want a1 (never notified) and a2", co.Targets)
	}
	if _, err := a1.ver.Check(cenv); err != nil {
		t.Fatalf("a1 would refuse the cancel order: %v", err)
	}

	// The push path: the cancel order is pushed to a1.
	eventually(t, "the cancel order pushed to a1", func() bool {
		return slices.ContainsFunc(a1.pushedOrders(), func(e *core.Envelope) bool { return bytes.Equal(e.Payload, cenv.Payload) })
	})
	// The sync answer: above a1's highest, and inside its window below it.
	later := f.deploy(DeployRequest{Nodes: []string{a1.ID()}})
	check := func(what string, ids []string, want ...string) {
		t.Helper()
		if want == nil {
			want = []string{}
		}
		if !slices.Equal(ids, want) {
			t.Errorf("%s: orders %v, want %v", what, ids, want)
		}
	}
	check("a1 above nothing", f.syncIDs(a1, 0, w), co.ID, later.ID)
	a1.report(later.ID, core.StateNotified)
	check("a1 past the cancel order, inside the window", f.syncIDs(a1, later.Seq, w), co.ID)
	check("a1 past the cancel order, no window", f.syncIDs(a1, later.Seq, 0))
	check("a1 at the window's floor", f.syncIDs(a1, co.Seq+w, w))
	f.c.st.mu.RLock()
	pending := f.c.ordersForLocked(a1.ID(), 0, true)
	f.c.st.mu.RUnlock()
	if !slices.ContainsFunc(pending, func(e *core.Envelope) bool { return bytes.Equal(e.Payload, cenv.Payload) }) {
		t.Errorf("a1's pending orders (pushes) lack the cancel order: %d orders", len(pending))
	}

	// a1 reports the order CANCELLED (it took the cancel in): shown
	// CANCELLED, the deployment stays CANCELLED, and the cancel order is
	// not sent again.
	a1.report(d.ID, core.StateCancelled)
	v = f.deployment(d.ID)
	if r := rowOf(t, v, a1.ID()); v.State != DeployCancelled || !v.Done || r.State != core.StateCancelled {
		t.Errorf("after a1's report: deployment %s done %v, a1 row %s", v.State, v.Done, r.State)
	}
	check("after a1 reported the order", f.syncIDs(a1, later.Seq, w))
	check("after a1 reported the order, above the highest", f.syncIDs(a1, d.Seq, w), later.ID)

	// A deployment whose nodes were all never notified (here: scheduled)
	// gets a cancel order too, and its node is sent it.
	sched := f.deploy(DeployRequest{Nodes: []string{f.b1.ID()}, NotBefore: f.clk.Now().Add(time.Hour).Format(time.RFC3339)})
	if _, err := f.cl.CancelDeployment(f.ctx, sched.ID); err != nil {
		t.Fatal(err)
	}
	so, _ := f.cancelOrderOf(sched.ID)
	if !slices.Equal(so.Targets, []string{f.b1.ID()}) {
		t.Errorf("scheduled deployment's cancel order targets %v, want b1", so.Targets)
	}
	check("b1 inside the window", f.syncIDs(f.b1, so.Seq+10, w), so.ID)
}
