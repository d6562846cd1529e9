package coordinator

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/p2p"
)

// remoteErr fails unless err is a *p2p.RemoteError whose message holds
// every string of contains.
func remoteErr(t testing.TB, err error, contains ...string) {
	t.Helper()
	var re *p2p.RemoteError
	if !errors.As(err, &re) {
		t.Fatalf("error = %v, want a p2p.RemoteError", err)
	}
	for _, s := range contains {
		if !strings.Contains(re.Msg, s) {
			t.Errorf("remote error %q does not mention %q", re.Msg, s)
		}
	}
}

func TestEnrollment(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tokA := h.token(TokenRequest{Site: "a", Tags: []string{"web"}, Unlimited: true})
	tokB := h.token(TokenRequest{Site: "b", Uses: 1})
	tokExp := h.token(TokenRequest{Site: "a", Expires: "1h"})

	a1, a2, b1 := newFakeNode(t, h, "a1"), newFakeNode(t, h, "a2"), newFakeNode(t, h, "b1")
	r1 := a1.mustEnroll(tokA)
	r2 := a2.mustEnroll(tokA)
	r3 := b1.mustEnroll(tokB)

	for _, c := range []struct {
		n    *fakeNode
		r    *core.EnrollResponse
		site string
	}{{a1, r1, "a"}, {a2, r2, "a"}, {b1, r3, "b"}} {
		if c.r.NodeID != c.n.ID() || c.r.Site != c.site || c.r.Coordinator != h.c.Host().ID().String() {
			t.Errorf("%s: response node %s site %s coordinator %s", c.n.name, c.r.NodeID, c.r.Site, c.r.Coordinator)
		}
		if len(c.r.OrderKeys) != 1 {
			t.Fatalf("%s: %d order keys, want 1", c.n.name, len(c.r.OrderKeys))
		}
		k, err := core.ParsePublicKey([]byte(c.r.OrderKeys[0]))
		if err != nil {
			t.Fatalf("%s: order key PEM: %v", c.n.name, err)
		}
		if !k.Equal(h.c.OrderPublicKey()) {
			t.Errorf("%s: pinned order key differs from the coordinator's", c.n.name)
		}
		if len(c.r.GossipKeys) != 1 || len(c.r.GossipKeys[0]) != 32 {
			t.Errorf("%s: gossip keys %d, want one of 32 bytes", c.n.name, len(c.r.GossipKeys))
		}
	}
	if !slices.Equal(r1.Tags, []string{"web"}) {
		t.Errorf("tags = %v, want [web]", r1.Tags)
	}
	if len(r2.SiteMembers) != 1 || r2.SiteMembers[0].NodeID != a1.ID() || len(r2.SiteMembers[0].Addrs) == 0 {
		t.Errorf("a2's site members = %+v, want a1 with addresses", r2.SiteMembers)
	}
	if len(r3.SiteMembers) != 0 {
		t.Errorf("b1's site members = %+v, want none", r3.SiteMembers)
	}

	// Refusals name their reason.
	x := newFakeNode(t, h, "x")
	_, err := x.enroll("rmj_0000")
	remoteErr(t, err, "join token refused", "unknown token")
	_, err = x.enroll(tokB)
	remoteErr(t, err, "join token refused", "already used 1 of 1")

	// Listings through the admin API.
	nodes, err := h.cl.Nodes(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range nodes {
		got = append(got, n.Site+"/"+n.Name)
		if !n.Alive || n.OS != "linux" || len(n.Addrs) == 0 {
			t.Errorf("node %s: alive %v os %q addrs %v", n.Name, n.Alive, n.OS, n.Addrs)
		}
	}
	if want := []string{"a/a1", "a/a2", "b/b1"}; !slices.Equal(got, want) {
		t.Errorf("nodes list = %v, want %v", got, want)
	}
	for _, key := range []string{a2.ID(), "a2"} {
		n, err := h.cl.Node(h.ctx, key)
		if err != nil || n.ID != a2.ID() || n.Site != "a" {
			t.Errorf("node show %s = %+v, %v", key, n, err)
		}
	}
	sites, err := h.cl.Sites(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(sites) != 2 || sites[0].Site != "a" || sites[0].Members != 2 || sites[0].Alive != 2 ||
		sites[1].Site != "b" || sites[1].Members != 1 {
		t.Errorf("sites = %+v", sites)
	}

	// An hour later the one-hour token is refused; nodes look offline.
	h.clk.Advance(time.Hour)
	_, err = x.enroll(tokExp)
	remoteErr(t, err, "join token refused", "expired")
	if n, err := h.cl.Node(h.ctx, "a1"); err != nil || n.Alive {
		t.Errorf("a1 after an hour of silence: %+v, %v; want not alive", n, err)
	}
	// The unlimited token still works, and re-enrolling keeps the node.
	x.mustEnroll(tokA)
	a1.mustEnroll(tokA)
	if st := h.c.Stats(); st.Nodes != 4 {
		t.Errorf("stats nodes = %d, want 4", st.Nodes)
	}
}

func TestPackagePublishAndFetch(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	m, frags := randomPackage(t, "agent", 3<<20, 1<<20)
	cids := m.Fragments
	if len(cids) != 3 {
		t.Fatalf("%d fragments, want 3", len(cids))
	}
	mb, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	frag := func(s string) (cid.Cid, []byte) {
		c := cid.MustParse(s)
		return c, frags[c]
	}

	missing, err := h.cl.Missing(h.ctx, cids)
	if err != nil || !slices.Equal(missing, cids) {
		t.Fatalf("missing = %v, %v; want all", missing, err)
	}
	for _, s := range cids[:2] {
		c, b := frag(s)
		if err := h.cl.PutFragment(h.ctx, c, b); err != nil {
			t.Fatalf("PutFragment: %v", err)
		}
	}
	// Bytes that are not the CID's are refused.
	c2, b2 := frag(cids[2])
	bad := bytes.Clone(b2)
	bad[0] ^= 1
	checkErr(t, h.cl.PutFragment(h.ctx, c2, bad), ErrBadRequest, cids[2])

	if missing, err = h.cl.Missing(h.ctx, cids); err != nil || !slices.Equal(missing, cids[2:]) {
		t.Fatalf("missing = %v, %v; want %v", missing, err, cids[2:])
	}
	_, err = h.cl.Publish(h.ctx, mb)
	checkErr(t, err, ErrBadRequest, "1 of 3 fragments not uploaded", cids[2])

	if err := h.cl.PutFragment(h.ctx, c2, b2); err != nil {
		t.Fatal(err)
	}
	rec, err := h.cl.Publish(h.ctx, mb)
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if want := core.FragmentCID(mb).String(); rec.ID != want || rec.Manifest.Name != "agent" {
		t.Fatalf("published %s %q, want %s agent", rec.ID, rec.Manifest.Name, want)
	}
	again, err := h.cl.Publish(h.ctx, mb)
	if err != nil || again.ID != rec.ID || !again.Created.Equal(rec.Created) {
		t.Fatalf("second publish = %+v, %v; want the same record", again, err)
	}
	if pkgs, err := h.cl.Packages(h.ctx); err != nil || len(pkgs) != 1 {
		t.Fatalf("packages = %d, %v; want 1", len(pkgs), err)
	}
	if p, err := h.cl.Package(h.ctx, rec.ID); err != nil || p.Manifest.Size != 3<<20 {
		t.Fatalf("package show = %+v, %v", p, err)
	}

	// An enrolled node fetches the manifest and fragments over libp2p.
	n := newFakeNode(t, h, "n1")
	n.mustEnroll(h.token(TokenRequest{Site: "a"}))
	pkgID := cid.MustParse(rec.ID)
	b, err := p2p.FetchFragment(h.ctx, n.h, n.coord, pkgID, core.MaxManifestBytes)
	if err != nil {
		t.Fatalf("fetch manifest: %v", err)
	}
	if got, err := core.DecodeManifestFor(pkgID, b); err != nil || got.Digest != m.Digest {
		t.Fatalf("fetched manifest: %v", err)
	}
	for _, s := range cids {
		c, want := frag(s)
		got, err := p2p.FetchFragment(h.ctx, n.h, n.coord, c, core.MaxFragmentSize)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("fetch fragment %s: %d bytes, %v", s, len(got), err)
		}
	}
	if st := h.c.Stats(); st.BytesSent < 3<<20 {
		t.Errorf("bytes sent = %d, want at least the 3 MiB served", st.BytesSent)
	}
	// A host that never enrolled is refused.
	stranger := newFakeNode(t, h, "stranger")
	if _, err := p2p.FetchFragment(h.ctx, stranger.h, stranger.coord, pkgID, core.MaxManifestBytes); err == nil {
		t.Fatal("unenrolled host fetched the manifest")
	}
	// Nor may it sync or report: both streams are reset unread.
	if _, err = stranger.sync(0); err == nil || !strings.Contains(err.Error(), "reset") {
		t.Errorf("unenrolled sync: err = %v, want a stream reset", err)
	}
	_, err = stranger.send(stranger.sign(stranger.status("d-x", core.StateNotified, 0), stranger.key))
	if err == nil || !strings.Contains(err.Error(), "reset") {
		t.Errorf("unenrolled status: err = %v, want a stream reset", err)
	}
	if got := h.c.Counters().NotEnrolled.Load(); got != 2 {
		t.Errorf("not-enrolled counter = %d, want 2 (the sync and the status stream)", got)
	}
}

// fleet is a harness with enrolled nodes: a1, a2 in site a, b1 in site b.
type fleet struct {
	*harness
	a1, a2, b1 *fakeNode
	pkg        string
}

func newFleet(t *testing.T) *fleet {
	h := newHarness(t)
	f := &fleet{harness: h}
	tokA, tokB := h.token(TokenRequest{Site: "a", Uses: 2}), h.token(TokenRequest{Site: "b", Uses: 2})
	f.a1, f.a2, f.b1 = newFakeNode(t, h, "a1"), newFakeNode(t, h, "a2"), newFakeNode(t, h, "b1")
	f.a1.mustEnroll(tokA)
	f.a2.mustEnroll(tokA)
	f.b1.mustEnroll(tokB)
	f.pkg = h.publishExecute("restart-spooler")
	return f
}

func (f *fleet) nodes() []*fakeNode { return []*fakeNode{f.a1, f.a2, f.b1} }

func (f *fleet) deploy(req DeployRequest) *DeploymentView {
	f.t.Helper()
	if req.Packages == nil {
		req.Packages = []string{f.pkg}
	}
	v, err := f.cl.CreateDeployment(f.ctx, req)
	if err != nil {
		f.t.Fatalf("CreateDeployment(%+v): %v", req, err)
	}
	return v
}

func TestDeploymentLifecycle(t *testing.T) {
	t.Parallel()
	f := newFleet(t)

	// Targets matching nothing: refused, nothing signed.
	_, err := f.cl.CreateDeployment(f.ctx, DeployRequest{Packages: []string{f.pkg}, Sites: []string{"nope"}})
	checkErr(t, err, ErrBadRequest, "targets match no node")
	if deps, err := f.cl.Deployments(f.ctx); err != nil || len(deps) != 0 {
		t.Fatalf("deployments after refused create = %d, %v; want 0", len(deps), err)
	}

	d := f.deploy(DeployRequest{All: true})
	if d.Seq != 1 {
		t.Errorf("first order's seq = %d, want 1: the refused create must not use a sequence number", d.Seq)
	}
	if d.Targets != 3 || d.Counts[core.StateWaiting] != 3 || d.State != DeployRunning {
		t.Fatalf("new deployment: %d targets, counts %v, state %s", d.Targets, d.Counts, d.State)
	}
	for _, r := range f.deployment(d.ID).Nodes {
		if r.State != core.StateWaiting {
			t.Errorf("row %s = %s, want WAITING_NOTIFICATION", r.Name, r.State)
		}
	}

	// The order is pushed to the reachable nodes, and every node gets it on sync.
	for _, n := range f.nodes() {
		eventually(t, n.name+" pushed the order", func() bool { return len(n.pushedOrders()) > 0 })
		if _, err := n.ver.Check(n.pushedOrders()[0]); err != nil {
			t.Errorf("%s: pushed order: %v", n.name, err)
		}
		orders := n.syncOrders(0)
		if len(orders) != 1 {
			t.Fatalf("%s: %d orders on sync, want 1", n.name, len(orders))
		}
		o := orders[0]
		if o.ID != d.ID || o.Kind != core.KindDeploy || o.Seq != d.Seq || !slices.Equal(o.Packages, []string{f.pkg}) || o.Priority != 5 {
			t.Errorf("%s: order %+v", n.name, o)
		}
		if more := n.syncOrders(o.Seq); len(more) != 0 {
			t.Errorf("%s: sync after %d returned %d orders", n.name, o.Seq, len(more))
		}
	}

	f.a1.report(d.ID, core.StateNotified, core.StateDownloading)
	v := f.deployment(d.ID)
	if r := rowOf(t, v, f.a1.ID()); r.State != core.StateDownloading || r.Name != "a1" || r.Site != "a" || r.LastSeq != 2 {
		t.Errorf("a1 row = %+v, want DOWNLOADING at seq 2", r)
	}
	f.a1.report(d.ID, core.StateInstalling)
	f.a1.report(d.ID, core.StateSuccess)
	f.a2.report(d.ID, core.StateNotified, core.StateDownloading)
	v = f.deployment(d.ID)
	want := map[core.State]int{core.StateSuccess: 1, core.StateDownloading: 1, core.StateWaiting: 1}
	if !mapsEqual(v.Counts, want) || v.State != DeployRunning || v.Done {
		t.Errorf("mid-way: counts %v state %s done %v; want %v RUNNING", v.Counts, v.State, v.Done, want)
	}
	wantSites := []SiteCount{{Site: "a", Total: 2, Success: 1, Pending: 1}, {Site: "b", Total: 1, Pending: 1}}
	if !slices.Equal(v.Sites, wantSites) {
		t.Errorf("sites = %+v, want %+v", v.Sites, wantSites)
	}

	f.a2.report(d.ID, core.StateInstalling, core.StateSuccess)
	f.b1.report(d.ID, core.StateNotified, core.StateDownloading, core.StateInstalling)
	f.b1.report(d.ID, core.StateSuccess)
	v = f.deployment(d.ID)
	if v.State != DeployCompleted || !v.Done || v.Counts[core.StateSuccess] != 3 || len(v.Counts) != 1 {
		t.Errorf("end: state %s done %v counts %v; want COMPLETED with 3 SUCCESS", v.State, v.Done, v.Counts)
	}
	wantSites = []SiteCount{{Site: "a", Total: 2, Success: 2}, {Site: "b", Total: 1, Success: 1}}
	if !slices.Equal(v.Sites, wantSites) {
		t.Errorf("sites = %+v, want %+v", v.Sites, wantSites)
	}
	if r := rowOf(t, v, f.b1.ID()); r.ExitCode != 0 || r.Output != "ok\n" || r.BytesFetched != 3<<20 {
		t.Errorf("b1 row = %+v", r)
	}
	st, err := f.cl.Stats(f.ctx)
	if err != nil || st.ReportsApplied != 12 || st.Deployments != 1 || st.Nodes != 3 || st.Packages != 1 {
		t.Errorf("stats = %+v, %v; want 12 applied", st, err)
	}
	// Sync answers by sequence; a node past the order gets nothing.
	if ids := f.a1.orderIDs(d.Seq); len(ids) != 0 {
		t.Errorf("a1 sync after %d: %v", d.Seq, ids)
	}
	// A completed deployment cannot be cancelled.
	_, err = f.cl.CancelDeployment(f.ctx, d.ID)
	checkErr(t, err, ErrConflict, "completed")
	// The list shows it too, and a failed node makes the next one INCOMPLETE.
	d2 := f.deploy(DeployRequest{Nodes: []string{"a1"}})
	if d2.Seq != 2 || d2.Targets != 1 {
		t.Fatalf("second deployment seq %d targets %d", d2.Seq, d2.Targets)
	}
	ack, err := f.a1.send(f.a1.sign(f.a1.status(d2.ID, core.ErrExecute, 3), f.a1.key))
	if err != nil || ack.Results[0] != core.AckApplied {
		t.Fatalf("error report: %+v, %v", ack, err)
	}
	v = f.deployment(d2.ID)
	if v.State != DeployIncomplete || !v.Done || v.Sites[0].Failed != 1 || rowOf(t, v, f.a1.ID()).ExitCode != 3 {
		t.Errorf("failed deployment: %+v", v)
	}
	deps, err := f.cl.Deployments(f.ctx)
	if err != nil || len(deps) != 2 || deps[0].ID != d2.ID || deps[1].ID != d.ID || deps[0].Nodes != nil {
		t.Errorf("deployments list = %+v, %v; want newest first without rows", deps, err)
	}
}

func mapsEqual[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestStatusReportEdgeCases(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	d := f.deploy(DeployRequest{All: true})
	n := f.a1
	cnt := f.c.Counters()

	// Signed by another key, or by another node in n's name. Forgers pick
	// their own sequence numbers.
	_, stranger, _ := ed25519.GenerateKey(nil)
	for i, key := range []ed25519.PrivateKey{stranger, f.a2.key} {
		forged := n.status(d.ID, core.StateNotified, 0)
		n.seq--
		ack, err := n.send(n.sign(forged, key))
		if err != nil {
			t.Fatal(err)
		}
		if ack.Results[0] != core.AckRejected || ack.Errors[0] == "" {
			t.Errorf("forged report %d: %+v, want rejected with a reason", i, ack)
		}
		if got := cnt.BadSignature.Load(); got != int64(i+1) {
			t.Errorf("bad signature counter = %d, want %d", got, i+1)
		}
	}
	// An order the node is not part of.
	ack, err := n.send(n.sign(n.status("d-unknown", core.StateNotified, 0), n.key))
	if err != nil {
		t.Fatal(err)
	}
	if ack.Results[0] != core.AckRejected || !strings.Contains(ack.Errors[0], "unknown order d-unknown") || cnt.UnknownOrder.Load() != 1 {
		t.Errorf("unknown order: %+v, counter %d", ack, cnt.UnknownOrder.Load())
	}
	// A replay of an applied report is a duplicate.
	e := n.sign(n.status(d.ID, core.StateNotified, 0), n.key)
	for i, want := range []string{core.AckApplied, core.AckDuplicate, core.AckDuplicate} {
		ack, err := n.send(e)
		if err != nil || ack.Results[0] != want || ack.Errors != nil {
			t.Fatalf("send %d = %+v, %v; want %s", i, ack, err, want)
		}
	}
	if cnt.Duplicate.Load() != 2 {
		t.Errorf("duplicate counter = %d, want 2", cnt.Duplicate.Load())
	}
	// Duplicates inside one batch too.
	e2 := n.sign(n.status(d.ID, core.StateDownloading, 0), n.key)
	ack, err = n.send(e2, e2)
	if err != nil || !slices.Equal(ack.Results, []string{core.AckApplied, core.AckDuplicate}) {
		t.Fatalf("batch with a duplicate = %+v, %v", ack, err)
	}
	// Out of order: seq k+1 arrives before seq k; both apply, the row keeps the newer.
	older := n.sign(n.status(d.ID, core.StateDownloaded, 0), n.key)
	newer := n.sign(n.status(d.ID, core.StateInstalling, 0), n.key)
	for _, e := range []*core.Envelope{newer, older} {
		if ack, err := n.send(e); err != nil || ack.Results[0] != core.AckApplied {
			t.Fatalf("out-of-order report = %+v, %v", ack, err)
		}
	}
	r := rowOf(t, f.deployment(d.ID), n.ID())
	if r.State != core.StateInstalling || r.LastSeq != n.seq {
		t.Errorf("row after out-of-order delivery = %s seq %d, want INSTALLING seq %d", r.State, r.LastSeq, n.seq)
	}
	// Authentic reports, applied or refused, leave no gap in the node's
	// sequence record.
	f.c.st.mu.RLock()
	rec := *f.c.st.nodes[n.ID()]
	f.c.st.mu.RUnlock()
	if rec.Watermark != n.seq || len(rec.Above) != 0 {
		t.Errorf("node sequence record = %d + %v, want %d + []", rec.Watermark, rec.Above, n.seq)
	}
	// A relay may carry other nodes' reports: a2's report sent by a1 applies.
	ack, err = n.send(f.a2.sign(f.a2.status(d.ID, core.StateNotified, 0), f.a2.key))
	if err != nil || ack.Results[0] != core.AckApplied {
		t.Errorf("relayed report = %+v, %v", ack, err)
	}
	// Garbage and oversized batches.
	ack, err = n.send(core.Seal(core.TypeOrder, []byte("{}"), n.key))
	if err != nil || ack.Results[0] != core.AckRejected || cnt.Malformed.Load() != 1 {
		t.Errorf("malformed report = %+v, %v, counter %d", ack, err, cnt.Malformed.Load())
	}
	big := make([]*core.Envelope, MaxBatch+1)
	for i := range big {
		big[i] = e
	}
	if ack := f.c.Intake(big); ack.Results[0] != core.AckRejected || !strings.Contains(ack.Errors[0], "larger than") {
		t.Errorf("oversized batch = %v", ack.Errors[0])
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	for _, n := range f.nodes() {
		n.h.RemoveStreamHandler(core.ProtoOrders) // sync only: pushes fail
	}

	d1 := f.deploy(DeployRequest{All: true})
	if o := f.a1.syncOrders(0); len(o) != 1 || o[0].ID != d1.ID {
		t.Fatalf("a1 orders = %+v", o)
	}
	f.a1.report(d1.ID, core.StateNotified, core.StateDownloading, core.StateInstalling)
	_, err := f.cl.CancelDeployment(f.ctx, d1.ID)
	checkErr(t, err, ErrConflict, "is installing", f.a1.ID())
	if v := f.deployment(d1.ID); v.State != DeployRunning {
		t.Errorf("refused cancel changed the state to %s", v.State)
	}

	d2 := f.deploy(DeployRequest{All: true})
	if o := f.a1.syncOrders(d1.Seq); len(o) != 1 || o[0].ID != d2.ID {
		t.Fatalf("a1 orders = %+v", o)
	}
	f.a1.report(d2.ID, core.StateNotified)
	v, err := f.cl.CancelDeployment(f.ctx, d2.ID)
	if err != nil {
		t.Fatalf("cancel: %v", err)
	}
	if v.State != DeployCancelled || !v.Done || v.Counts[core.StateCancelled] != 2 || v.Counts[core.StateNotified] != 1 {
		t.Errorf("cancelled view: state %s counts %v", v.State, v.Counts)
	}
	v = f.deployment(d2.ID)
	for _, n := range []*fakeNode{f.a2, f.b1} {
		if r := rowOf(t, v, n.ID()); r.State != core.StateCancelled || r.Detail == "" {
			t.Errorf("%s row = %s %q, want CANCELLED with a detail", n.name, r.State, r.Detail)
		}
	}
	// Every target that has not finished gets the signed cancel order,
	// the never-notified ones too: the deploy order may still reach them
	// (a lost push delivered late, inside the replay window), and they must
	// know it is cancelled. Their deploy order is not sent.
	orders := f.a1.syncOrders(d2.Seq)
	if len(orders) != 1 {
		t.Fatalf("a1 got %d orders after cancel, want 1", len(orders))
	}
	c := orders[0]
	want := []string{f.a1.ID(), f.a2.ID(), f.b1.ID()}
	slices.Sort(want)
	got := slices.Sorted(slices.Values(c.Targets))
	if c.Kind != core.KindCancel || c.Cancels != d2.ID || !slices.Equal(got, want) || c.Seq != d2.Seq+1 {
		t.Errorf("cancel order = %+v, want targets %v", c, want)
	}
	for _, n := range []*fakeNode{f.a2, f.b1} {
		if ids := n.orderIDs(0); !slices.Equal(ids, []string{d1.ID, c.ID}) {
			t.Errorf("%s orders = %v, want %s and the cancel order %s", n.name, ids, d1.ID, c.ID)
		}
	}
	_, err = f.cl.CancelDeployment(f.ctx, d2.ID)
	checkErr(t, err, ErrConflict, "already cancelled")
	_, err = f.cl.CancelDeployment(f.ctx, "d-nope")
	checkErr(t, err, ErrNotFound, "d-nope")

	// A deployment not due yet is SCHEDULED and can be cancelled outright.
	d3 := f.deploy(DeployRequest{All: true, NotBefore: f.clk.Now().Add(time.Hour).Format(time.RFC3339)})
	if d3.State != DeployScheduled {
		t.Errorf("future deployment state = %s, want SCHEDULED", d3.State)
	}
	if v, err := f.cl.CancelDeployment(f.ctx, d3.ID); err != nil || v.Counts[core.StateCancelled] != 3 {
		t.Errorf("cancel scheduled = %+v, %v", v, err)
	}
	// b1 never gets d2's or d3's deploy order, only their cancel orders.
	if ids := f.b1.orderIDs(0); len(ids) != 3 || ids[0] != d1.ID || ids[1] != c.ID || slices.Contains(ids, d2.ID) || slices.Contains(ids, d3.ID) {
		t.Errorf("b1 orders = %v, want %s, then the cancel orders of %s and %s", ids, d1.ID, d2.ID, d3.ID)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	d := f.deploy(DeployRequest{All: true})
	f.a1.syncOrders(0)
	f.a1.report(d.ID, core.StateNotified, core.StateInstalling, core.StateSuccess)
	f.a2.syncOrders(0)
	f.a2.report(d.ID, core.StateNotified)

	n, err := f.cl.ValidateDeployment(f.ctx, d.ID, false)
	if err != nil || n != 1 {
		t.Fatalf("validate --success = %d, %v; want 1", n, err)
	}
	v := f.deployment(d.ID)
	if v.Validated != 1 || v.Targets != 3 || v.Counts[core.StateSuccess] != 0 || v.Counts[core.StateNotified] != 1 || v.Counts[core.StateWaiting] != 1 {
		t.Errorf("after validate --success: validated %d targets %d counts %v", v.Validated, v.Targets, v.Counts)
	}
	if n, err := f.cl.ValidateDeployment(f.ctx, d.ID, false); err != nil || n != 0 {
		t.Errorf("second validate --success = %d, %v; want 0", n, err)
	}

	n, err = f.cl.ValidateDeployment(f.ctx, d.ID, true)
	if err != nil || n != 1 {
		t.Fatalf("validate --all = %d, %v; want 1 (b1, never notified)", n, err)
	}
	v = f.deployment(d.ID)
	if v.Targets != 2 || v.Counts[core.StateWaiting] != 0 {
		t.Errorf("after validate --all: targets %d counts %v", v.Targets, v.Counts)
	}
	if ids := f.b1.orderIDs(0); len(ids) != 0 {
		t.Errorf("unaffected b1 still gets orders %v", ids)
	}
	if ids := f.a2.orderIDs(0); !slices.Equal(ids, []string{d.ID}) {
		t.Errorf("notified a2 gets orders %v, want %s", ids, d.ID)
	}
	ack, err := f.b1.send(f.b1.sign(f.b1.status(d.ID, core.StateNotified, 0), f.b1.key))
	if err != nil || ack.Results[0] != core.AckRejected {
		t.Errorf("report from an unaffected node = %+v, %v; want rejected", ack, err)
	}
	_, err = f.cl.ValidateDeployment(f.ctx, "d-nope", true)
	checkErr(t, err, ErrNotFound, "d-nope")
}

func TestPackageDelete(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	m, frags := randomPackage(t, "agent", 200<<10, 64<<10)
	for c, b := range frags {
		if err := f.cl.PutFragment(f.ctx, c, b); err != nil {
			t.Fatal(err)
		}
	}
	mb, _ := m.Encode()
	rec, err := f.cl.Publish(f.ctx, mb)
	if err != nil {
		t.Fatal(err)
	}
	d := f.deploy(DeployRequest{Packages: []string{rec.ID}, Sites: []string{"a"}})
	f.a1.syncOrders(0)
	f.a1.report(d.ID, core.StateNotified, core.StateInstalling)

	err = f.cl.DeletePackage(f.ctx, rec.ID, false)
	checkErr(t, err, ErrConflict, "active deployment", d.ID)
	if _, err := f.cl.Package(f.ctx, rec.ID); err != nil {
		t.Fatalf("refused delete removed the package: %v", err)
	}

	if err := f.cl.DeletePackage(f.ctx, rec.ID, true); err != nil {
		t.Fatalf("delete --force: %v", err)
	}
	if v := f.deployment(d.ID); v.State != DeployCancelled {
		t.Errorf("deployment after delete --force = %s, want CANCELLED", v.State)
	}
	// Even mid-install, the node is told to stop.
	if o := f.a1.syncOrders(d.Seq); len(o) != 1 || o[0].Cancels != d.ID {
		t.Errorf("a1 orders after delete --force = %+v", o)
	}
	_, err = f.cl.Package(f.ctx, rec.ID)
	checkErr(t, err, ErrNotFound, rec.ID)
	missing, err := f.cl.Missing(f.ctx, append([]string{rec.ID}, m.Fragments...))
	if err != nil || len(missing) != 1+len(m.Fragments) {
		t.Errorf("stored after delete: missing %d of %d, %v", len(missing), 1+len(m.Fragments), err)
	}
	// The other package, used by nothing active, goes without --force.
	d2 := f.deploy(DeployRequest{Nodes: []string{"b1"}})
	f.b1.report(d2.ID, core.StateSuccess)
	if err := f.cl.DeletePackage(f.ctx, f.pkg, false); err != nil {
		t.Errorf("delete of a package whose deployments completed: %v", err)
	}
	checkErr(t, f.cl.DeletePackage(f.ctx, f.pkg, false), ErrNotFound)
}

func TestRestart(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	tok2 := f.token(TokenRequest{Site: "c", Uses: 2})
	c1 := newFakeNode(t, f.harness, "c1")
	c1.mustEnroll(tok2)
	m, frags := randomPackage(t, "agent", 130<<10, 64<<10)
	rec, err := f.c.BuildPackage(m, bytes.NewReader(joinFragments(m, frags)), 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	d1 := f.deploy(DeployRequest{All: true, Packages: []string{rec.ID, f.pkg}})
	for _, n := range f.nodes() {
		n.syncOrders(0)
	}
	f.a1.report(d1.ID, core.StateNotified, core.StateSuccess)
	f.a2.report(d1.ID, core.StateNotified, core.StateDownloading)
	d2 := f.deploy(DeployRequest{Sites: []string{"a"}})
	f.a2.syncOrders(d1.Seq)
	f.a2.report(d2.ID, core.StateNotified)
	if _, err := f.cl.CancelDeployment(f.ctx, d2.ID); err != nil {
		t.Fatal(err)
	}
	resent := f.a2.sign(f.a2.status(d1.ID, core.StateDownloaded, 0), f.a2.key)
	if ack, err := f.a2.send(resent); err != nil || ack.Results[0] != core.AckApplied {
		t.Fatal(ack, err)
	}

	nodesBefore := f.c.Nodes()
	depsBefore := f.c.Deployments()
	v1Before, _ := f.c.Deployment(d1.ID)
	v2Before, _ := f.c.Deployment(d2.ID)

	f.restart()
	for _, n := range append(f.nodes(), c1) {
		n.connect(f.harness)
	}

	nodesAfter := f.c.Nodes()
	if len(nodesAfter) != len(nodesBefore) {
		t.Fatalf("%d nodes after restart, want %d", len(nodesAfter), len(nodesBefore))
	}
	for i, a := range nodesAfter {
		b := nodesBefore[i]
		if a.ID != b.ID || a.Name != b.Name || a.Site != b.Site || a.Watermark != b.Watermark || !slices.Equal(a.Addrs, b.Addrs) {
			t.Errorf("node %d after restart = %+v, want %+v", i, a.NodeRecord, b.NodeRecord)
		}
	}
	depsAfter := f.c.Deployments()
	if len(depsAfter) != len(depsBefore) {
		t.Fatalf("%d deployments after restart, want %d", len(depsAfter), len(depsBefore))
	}
	for i := range depsAfter {
		a, b := depsAfter[i], depsBefore[i]
		if a.ID != b.ID || a.State != b.State || a.Seq != b.Seq || !mapsEqual(a.Counts, b.Counts) || !slices.Equal(a.Sites, b.Sites) {
			t.Errorf("deployment after restart = %+v, want %+v", a, b)
		}
	}
	for _, before := range []*DeploymentView{v1Before, v2Before} {
		after, err := f.c.Deployment(before.ID)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range after.Nodes {
			b := before.Nodes[i]
			if r.Node != b.Node || r.State != b.State || r.LastSeq != b.LastSeq || r.Detail != b.Detail || !r.LastReport.Equal(b.LastReport) {
				t.Errorf("%s row %s after restart = %+v, want %+v", before.ID, r.Name, r.Row, b.Row)
			}
		}
	}
	if p, err := f.cl.Package(f.ctx, rec.ID); err != nil || p.Manifest.Digest != m.Digest {
		t.Errorf("package after restart: %v", err)
	}
	// Token use counts survived: one use left of two.
	c2, c3 := newFakeNode(t, f.harness, "c2"), newFakeNode(t, f.harness, "c3")
	c2.mustEnroll(tok2)
	_, err = c3.enroll(tok2)
	remoteErr(t, err, "already used 2 of 2")
	// The order sequence continues past the cancel order.
	d3 := f.deploy(DeployRequest{Nodes: []string{"b1"}})
	if d3.Seq != d2.Seq+2 {
		t.Errorf("seq after restart = %d, want %d", d3.Seq, d2.Seq+2)
	}
	// Nodes carry on: the cancel order and the new one arrive, reports apply,
	// and a report sent before the restart is still a duplicate.
	if o := f.a2.syncOrders(d2.Seq); len(o) != 1 || o[0].Cancels != d2.ID {
		t.Errorf("a2 orders after restart = %+v", o)
	}
	if o := f.b1.syncOrders(d1.Seq); len(o) != 1 || o[0].ID != d3.ID {
		t.Errorf("b1 orders after restart = %+v", o)
	}
	if ack, err := f.a2.send(resent); err != nil || ack.Results[0] != core.AckDuplicate {
		t.Errorf("resent report after restart = %+v, %v; want duplicate", ack, err)
	}
	f.a2.report(d1.ID, core.StateInstalling, core.StateSuccess)
	if r := rowOf(t, f.deployment(d1.ID), f.a2.ID()); r.State != core.StateSuccess {
		t.Errorf("a2 row = %s, want SUCCESS", r.State)
	}
	if _, err := p2p.FetchFragment(f.ctx, f.b1.h, f.b1.coord, cid.MustParse(m.Fragments[1]), core.MaxFragmentSize); err != nil {
		t.Errorf("fetch after restart: %v", err)
	}
}

func joinFragments(m core.Manifest, frags map[cid.Cid][]byte) []byte {
	var b []byte
	for _, s := range m.Fragments {
		b = append(b, frags[cid.MustParse(s)]...)
	}
	return b
}

func TestNoFeedback(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	noFeedback := f.c.cfg.NoFeedback
	d := f.deploy(DeployRequest{Nodes: []string{"a1", "a2"}, Timeout: "10m"})
	f.a1.report(d.ID, core.StateNotified, core.StateDownloading)
	f.a2.report(d.ID, core.StateNotified, core.StateInstalling)

	row := func(n *fakeNode) RowView { return rowOf(t, f.deployment(d.ID), n.ID()) }
	f.clk.Advance(noFeedback - time.Second)
	if n := f.c.Sweep(); n != 0 {
		t.Errorf("sweep before the limit timed out %d rows", n)
	}
	if r := row(f.a1); r.State != core.StateDownloading {
		t.Fatalf("a1 before the limit = %s", r.State)
	}
	f.clk.Advance(2 * time.Second)
	f.c.Sweep() // the background sweep may have run first: check the rows
	r := row(f.a1)
	if r.State != core.ErrTimeout || !r.NoFeedback || !strings.HasPrefix(r.Detail, "no feedback") {
		t.Errorf("a1 after %s of silence = %s %q no_feedback=%v", noFeedback, r.State, r.Detail, r.NoFeedback)
	}
	// Installing nodes also get the order's own timeout.
	if r := row(f.a2); r.State != core.StateInstalling {
		t.Errorf("installing a2 timed out before no-feedback + order timeout: %s", r.State)
	}
	f.clk.Advance(10 * time.Minute)
	f.c.Sweep()
	if r := row(f.a2); r.State != core.ErrTimeout {
		t.Errorf("a2 after no-feedback + timeout = %s", r.State)
	}
	if v := f.deployment(d.ID); v.State != DeployIncomplete {
		t.Errorf("deployment with timed-out rows = %s, want INCOMPLETE", v.State)
	}
	// A late report still lands.
	f.a1.report(d.ID, core.StateSuccess)
	f.a2.report(d.ID, core.StateSuccess)
	r = row(f.a1)
	if r.State != core.StateSuccess || r.NoFeedback {
		t.Errorf("a1 after a late report = %s no_feedback=%v", r.State, r.NoFeedback)
	}
	if v := f.deployment(d.ID); v.State != DeployCompleted {
		t.Errorf("deployment = %s, want COMPLETED", v.State)
	}
	if n := f.c.Sweep(); n != 0 {
		t.Errorf("sweep after success timed out %d rows", n)
	}
}
