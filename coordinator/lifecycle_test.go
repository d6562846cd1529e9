package coordinator

import (
	"bytes"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/internal/testlog"
	"github.com/relaymesh/relaymesh/p2p"
)

// newRecordedFleet is newFleet whose coordinator logs into a recorder.
func newRecordedFleet(t *testing.T) (*fleet, *testlog.Recorder) {
	t.Helper()
	rec := testlog.NewRecorder(slog.LevelInfo)
	h := newHarnessLog(t, slog.New(testlog.Tee(rec, testlogHandler(t))))
	f := &fleet{harness: h}
	tokA, tokB := h.token(TokenRequest{Site: "a", Uses: 2}), h.token(TokenRequest{Site: "b", Uses: 2})
	f.a1, f.a2, f.b1 = newFakeNode(t, h, "a1"), newFakeNode(t, h, "a2"), newFakeNode(t, h, "b1")
	f.a1.mustEnroll(tokA)
	f.a2.mustEnroll(tokA)
	f.b1.mustEnroll(tokB)
	f.pkg = h.publishExecute("restart-spooler")
	return f, rec
}

// listed returns the node IDs of site's member list as node n receives it
// on a sync, checked with the order key.
func (f *fleet) listed(n *fakeNode) []string {
	f.t.Helper()
	resp, err := n.sync(0)
	if err != nil {
		f.t.Fatalf("%s: sync: %v", n.name, err)
	}
	l, err := core.OpenMemberList(resp.MemberList, core.PinnedKeys(f.c.OrderPublicKey()))
	if err != nil {
		f.t.Fatalf("%s: member list: %v", n.name, err)
	}
	var ids []string
	for _, m := range l.Members {
		ids = append(ids, m.NodeID)
	}
	for _, m := range l.Relays {
		ids = append(ids, m.NodeID)
	}
	return ids
}

// TestRevokeNode: a revoked node's key is refused for sync, status (its own
// or forwarded by a relay), fragments and enrollment, also after a
// restart; it drops out of its site's member list; its unfinished rows are
// ERR_ABORTED; revoking it again or an unknown node is refused.
func TestRevokeNode(t *testing.T) {
	t.Parallel()
	f, rec := newRecordedFleet(t)
	m, frags := randomPackage(t, "agent", 70<<10, 64<<10)
	pkg, err := f.c.BuildPackage(m, bytes.NewReader(joinFragments(m, frags)), 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	d := f.deploy(DeployRequest{All: true, Packages: []string{pkg.ID}})
	for _, n := range f.nodes() {
		n.syncOrders(0)
	}
	f.a1.report(d.ID, core.StateNotified)
	f.a2.report(d.ID, core.StateNotified, core.StateDownloading)
	if ids := f.listed(f.a1); !slices.Contains(ids, f.a2.ID()) {
		t.Fatalf("a2 not in site a's list before the revocation: %v", ids)
	}
	version := f.c.MembersVersion()

	r, err := f.cl.RevokeNode(f.ctx, "a2")
	if err != nil {
		t.Fatalf("RevokeNode: %v", err)
	}
	if r.ID != f.a2.ID() || r.Name != "a2" || r.Site != "a" || r.Aborted != 1 {
		t.Errorf("revocation = %+v", r)
	}
	if row := rowOf(t, f.deployment(d.ID), f.a2.ID()); row.State != core.ErrAborted || !strings.Contains(row.Detail, "node revoked") {
		t.Errorf("a2's row = %s %q, want ERR_ABORTED node revoked", row.State, row.Detail)
	}
	if f.c.MembersVersion() <= version {
		t.Errorf("membership version %d after the revocation, was %d", f.c.MembersVersion(), version)
	}
	if ids := f.listed(f.a1); slices.Contains(ids, f.a2.ID()) {
		t.Errorf("a2 still in site a's member list: %v", ids)
	}
	if ids := f.listed(f.b1); slices.Contains(ids, f.a2.ID()) {
		t.Errorf("a2 still in site b's member list: %v", ids)
	}

	refused := func() {
		t.Helper()
		f.a2.connect(f.harness)
		if _, err := f.a2.sync(0); err == nil {
			t.Error("revoked node's sync answered")
		}
		if _, err := f.a2.send(f.a2.sign(f.a2.status(d.ID, core.StateSuccess, 0), f.a2.key)); err == nil {
			t.Error("revoked node's status stream answered")
		}
		if _, err := p2p.FetchFragment(f.ctx, f.a2.h, f.a2.coord, cid.MustParse(m.Fragments[0]), core.MaxFragmentSize); err == nil {
			t.Error("revoked node fetched a fragment")
		}
		// Its report forwarded by a relay of its site is dropped too.
		ack, err := f.a1.send(f.a2.sign(f.a2.status(d.ID, core.StateSuccess, 0), f.a2.key))
		if err != nil || ack.Results[0] != core.AckRejected || !strings.Contains(ack.Errors[0], "revoked") {
			t.Errorf("forwarded report of a revoked node = %+v, %v; want rejected as revoked", ack, err)
		}
		_, err = f.a2.enroll(f.token(TokenRequest{Site: "a"}))
		remoteErr(t, err, "revoked", "new identity")
	}
	refused()
	if n := len(rec.Messages("revoked node refused: its status report is dropped")); n == 0 {
		t.Error("no log line for the revoked node's dropped report")
	}
	if row := rowOf(t, f.deployment(d.ID), f.a2.ID()); row.State != core.ErrAborted {
		t.Errorf("a2's row moved to %s after the revocation", row.State)
	}
	if _, err := f.cl.CreateDeployment(f.ctx, DeployRequest{Nodes: []string{"a2"}, Packages: []string{f.pkg}}); err == nil {
		t.Error("a deployment targeted the revoked node")
	}

	// Bad input.
	_, err = f.cl.RevokeNode(f.ctx, "a2")
	checkErr(t, err, ErrConflict, `"a2"`, "already revoked")
	_, err = f.cl.RevokeNode(f.ctx, f.a2.ID())
	checkErr(t, err, ErrConflict, "already revoked")
	_, err = f.cl.RevokeNode(f.ctx, "nosuch")
	checkErr(t, err, ErrNotFound, `"nosuch"`, "nodes list")

	// The revocation survives a restart.
	f.restart()
	for _, n := range f.nodes() {
		n.connect(f.harness)
	}
	refused()
	if rs := f.c.Revoked(); len(rs) != 1 || rs[0].ID != f.a2.ID() {
		t.Errorf("revoked after restart = %+v", rs)
	}
	for _, n := range f.c.Nodes() {
		if n.ID == f.a2.ID() {
			t.Error("nodes list shows the revoked node")
		}
	}
	// The others carry on.
	f.a1.report(d.ID, core.StateDownloading, core.StateInstalling, core.StateSuccess)
}

// TestDeleteNode: a node with an unfinished row in a running deployment
// is kept unless forced; a deleted node is out of the fleet but may enroll
// again; history rows stay; unknown and revoked nodes are refused.
func TestDeleteNode(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	d := f.deploy(DeployRequest{All: true})
	for _, n := range f.nodes() {
		n.syncOrders(0)
	}
	f.a1.report(d.ID, core.StateNotified, core.StateInstalling, core.StateSuccess)
	f.b1.report(d.ID, core.StateNotified)

	_, err := f.cl.DeleteNode(f.ctx, "b1", false)
	checkErr(t, err, ErrConflict, `"b1"`, d.ID, "--force")
	if _, err := f.c.Node("b1"); err != nil {
		t.Fatalf("a refused delete removed b1: %v", err)
	}

	res, err := f.cl.DeleteNode(f.ctx, "a1", false)
	if err != nil || res.Node.ID != f.a1.ID() || res.Aborted != 0 {
		t.Fatalf("DeleteNode(a1) = %+v, %v", res, err)
	}
	if _, err := f.c.Node("a1"); err == nil {
		t.Error("a1 still listed after delete")
	}
	if row := rowOf(t, f.deployment(d.ID), f.a1.ID()); row.State != core.StateSuccess {
		t.Errorf("a1's finished row = %s, want SUCCESS kept", row.State)
	}
	f.a1.connect(f.harness)
	if _, err := f.a1.sync(0); err == nil {
		t.Error("deleted node's sync answered")
	}
	if ids := f.listed(f.a2); slices.Contains(ids, f.a1.ID()) {
		t.Errorf("a1 still in site a's member list: %v", ids)
	}

	res, err = f.cl.DeleteNode(f.ctx, "b1", true)
	if err != nil || res.Aborted != 1 {
		t.Fatalf("DeleteNode(b1, force) = %+v, %v", res, err)
	}
	if row := rowOf(t, f.deployment(d.ID), f.b1.ID()); row.State != core.ErrAborted || !strings.Contains(row.Detail, "node deleted") {
		t.Errorf("b1's row = %s %q, want ERR_ABORTED node deleted", row.State, row.Detail)
	}

	// Delete is not revoke: the machine may enroll again.
	f.a1.mustEnroll(f.token(TokenRequest{Site: "a"}))
	if _, err := f.c.Node("a1"); err != nil {
		t.Errorf("a1 enrolled again: %v", err)
	}

	_, err = f.cl.DeleteNode(f.ctx, "b1", false)
	checkErr(t, err, ErrNotFound, `"b1"`)
	if _, err := f.cl.RevokeNode(f.ctx, "a2"); err != nil {
		t.Fatal(err)
	}
	_, err = f.cl.DeleteNode(f.ctx, "a2", false)
	checkErr(t, err, ErrConflict, "is revoked", "stays refused")
	_, err = f.cl.DeleteNode(f.ctx, "", false)
	checkErr(t, err, nil)
}
