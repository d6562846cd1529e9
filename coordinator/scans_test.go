package coordinator

import (
	"encoding/csv"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/relaymesh/relaymesh/core"
)

// scanEnv signs a scan report of n with the node's next sequence.
func (n *fakeNode) scanEnv(order string, at time.Time, updates ...core.Update) *core.Envelope {
	n.t.Helper()
	n.seq++
	r := &core.ScanReport{Schema: core.ScanSchema, NodeID: n.ID(), Seq: n.seq, Time: at.UTC().Truncate(time.Second), Order: order,
		Inventory: core.Inventory{Manager: "dpkg", OS: core.OSRelease{ID: "debian", VersionID: "12"}, Kernel: "6.1.0-18-amd64",
			InstalledCount: 2, Installed: []core.Package{{Name: "bar", Version: "1.0", Arch: "all"}, {Name: "foo", Version: "1.0", Arch: "all"}},
			Updates: updates}}
	e, err := core.SignScan(r, n.key)
	if err != nil {
		n.t.Fatal(err)
	}
	return e
}

func (n *fakeNode) sendScan(want string, envs ...*core.Envelope) {
	n.t.Helper()
	ack, err := n.send(envs...)
	if err != nil {
		n.t.Fatalf("%s: send scan: %v", n.name, err)
	}
	for i, r := range ack.Results {
		if r != want {
			n.t.Fatalf("%s: scan report %d = %s %v, want %s", n.name, i, r, ack.Errors, want)
		}
	}
}

var (
	updFoo = core.Update{Name: "foo", Arch: "all", Installed: "1.0", Candidate: "1.1", Suites: []string{"stable"}}
	updBar = core.Update{Name: "bar", Arch: "all", Installed: "1.0", Candidate: "1.0+sec1", Security: true, Suites: []string{"stable-security"}}
)

func TestScanOrderAndReports(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tokA := h.token(TokenRequest{Site: "a", Unlimited: true})
	tokB := h.token(TokenRequest{Site: "b", Unlimited: true})
	a1, a2, b1 := newFakeNode(t, h, "a1"), newFakeNode(t, h, "a2"), newFakeNode(t, h, "b1")
	a1.mustEnroll(tokA)
	a2.mustEnroll(tokA)
	b1.mustEnroll(tokB)

	// A signed scan order reaches every target; its rows track it.
	v, err := h.cl.CreateScan(h.ctx, ScanRequest{All: true})
	if err != nil {
		t.Fatal(err)
	}
	if v.Kind != DeployKindScan || v.Targets != 3 || v.Counts[core.StateWaiting] != 3 {
		t.Fatalf("scan order view %+v", v)
	}
	os := a1.syncOrders(0)
	if len(os) != 1 || os[0].Kind != core.KindScan || os[0].ID != v.ID || len(os[0].Packages) != 0 {
		t.Fatalf("a1 got %+v", os)
	}
	if _, err := h.cl.CreateScan(h.ctx, ScanRequest{Sites: []string{"nowhere"}}); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("scan of no node: %v, want a bad request", err)
	}

	now := h.clk.Now()
	a1.report(v.ID, core.StateNotified)
	a1.sendScan(core.AckApplied, a1.scanEnv(v.ID, now, updBar, updFoo))
	a1.report(v.ID, core.StateSuccess)
	a2.sendScan(core.AckApplied, a2.scanEnv("", now))
	if got := rowOf(t, h.deployment(v.ID), a1.ID()); got.State != core.StateSuccess {
		t.Fatalf("a1 row %+v", got)
	}

	// Redelivery is a duplicate; a report signed by another key, or
	// naming another node, is rejected; an older scan delivered late
	// does not replace the newer one.
	dup := a2.scanEnv("", now.Add(time.Minute))
	a2.sendScan(core.AckApplied, dup)
	a2.sendScan(core.AckDuplicate, dup)
	forged := a2.scanEnv("", now.Add(2*time.Minute), updFoo)
	forged.Sig[0] ^= 1
	a2.sendScan(core.AckRejected, forged)
	a2.sendScan(core.AckApplied, a2.scanEnv("", now.Add(-time.Hour), updFoo, updBar))

	check := func(when string) {
		t.Helper()
		rep, err := h.cl.Updates(h.ctx, UpdatesFilter{})
		if err != nil {
			t.Fatal(err)
		}
		want := Compliance{Nodes: 3, Scanned: 2, Compliant: 1, SecurityCompliant: 1, Percent: 33, SecurityPercent: 33, MissingUpdates: 2, MissingSecurity: 1}
		if rep.Fleet != want {
			t.Errorf("%s: fleet %+v, want %+v", when, rep.Fleet, want)
		}
		if len(rep.Updates) != 2 || rep.Updates[0].Package != "bar" || !rep.Updates[0].Security || rep.Updates[1].Package != "foo" ||
			rep.Updates[1].Missing != 1 || !slices.Equal(rep.Updates[1].Installed, []string{"1.0"}) || rep.Updates[1].Candidate != "1.1" ||
			len(rep.Updates[1].Nodes) != 1 || rep.Updates[1].Nodes[0].Name != "a1" || rep.Updates[1].Sites[0] != (SiteMissing{"a", 1}) {
			t.Errorf("%s: updates %+v", when, rep.Updates)
		}
		if len(rep.Sites) != 2 || rep.Sites[0].Site != "a" || rep.Sites[0].Percent != 50 || rep.Sites[1].Scanned != 0 {
			t.Errorf("%s: sites %+v", when, rep.Sites)
		}
		sec, err := h.cl.Updates(h.ctx, UpdatesFilter{Security: true, Site: "a"})
		if err != nil || len(sec.Updates) != 1 || sec.Updates[0].Package != "bar" || sec.Fleet.Nodes != 2 {
			t.Errorf("%s: security updates of site a: %+v %v", when, sec, err)
		}
		nu, err := h.cl.NodeUpdates(h.ctx, "a2")
		if err != nil || nu.Scan == nil || len(nu.Scan.Report.Updates) != 0 || len(nu.Scan.History) != 1 || nu.Scan.Report.Installed != nil {
			t.Errorf("%s: a2 updates %+v %v", when, nu, err)
		}
		if nu, err := h.cl.NodeUpdates(h.ctx, "b1"); err != nil || nu.Scan != nil {
			t.Errorf("%s: b1 (never scanned) %+v %v", when, nu, err)
		}
		inv, err := h.cl.Inventory(h.ctx, "a1")
		if err != nil || len(inv.Report.Installed) != 2 || inv.Report.Kernel != "6.1.0-18-amd64" {
			t.Errorf("%s: a1 inventory %+v %v", when, inv, err)
		}
		if _, err := h.cl.Inventory(h.ctx, "b1"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "relaymesh scan --node b1") {
			t.Errorf("%s: b1 inventory: %v", when, err)
		}
		ss, err := h.cl.Sites(h.ctx)
		if err != nil || len(ss) != 2 || ss[0].Compliance.Compliant != 1 || ss[0].Compliance.Nodes != 2 || ss[1].Compliance.Scanned != 0 {
			t.Errorf("%s: sites %+v %v", when, ss, err)
		}
		b, err := h.cl.UpdatesCSV(h.ctx, UpdatesFilter{})
		if err != nil {
			t.Fatal(err)
		}
		rows, err := csv.NewReader(strings.NewReader(string(b))).ReadAll()
		if err != nil {
			t.Fatalf("%s: csv: %v\n%s", when, err, b)
		}
		var got []string
		for _, r := range rows[1:] {
			got = append(got, strings.Join([]string{r[0], r[1], r[3], r[4], r[6], r[7], r[8]}, " "))
		}
		wantRows := []string{"a a1 missing bar 1.0 1.0+sec1 true", "a a1 missing foo 1.0 1.1 false", "a a2 compliant    ", "b b1 not scanned    "}
		if rows[0][0] != "site" || !slices.Equal(got, wantRows) {
			t.Errorf("%s: csv rows\n%s\nwant\n%s", when, strings.Join(got, "\n"), strings.Join(wantRows, "\n"))
		}
	}
	check("live")
	h.restart()
	check("after restart")
}

func TestScanRequestBad(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for _, tt := range []struct {
		req ScanRequest
		msg string
	}{
		{ScanRequest{}, "give targets"},
		{ScanRequest{All: true, Expires: "soon"}, `expires "soon"`},
		{ScanRequest{All: true, Expires: "1000h"}, "maximum order lifetime"},
	} {
		_, err := h.cl.CreateScan(h.ctx, tt.req)
		if err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%+v: %v, want %q", tt.req, err, tt.msg)
		}
	}
	if _, err := h.cl.Updates(h.ctx, UpdatesFilter{}); err != nil {
		t.Fatal(err)
	}
	var out []byte
	if err := h.cl.doJSON(h.ctx, "GET", "/v1/updates?security=maybe", nil, &out); !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), `security="maybe"`) {
		t.Errorf("security=maybe: %v", err)
	}
}
