package coordinator

import (
	"testing"
	"time"

	"github.com/relaymesh/relaymesh/core"
)

// deploy show: each row's duration from its first report past
// WAITING_NOTIFICATION to its final one (to now while it works), and the
// deployment's elapsed time and bytes fetched of the total.
func TestDeploymentDurationsAndProgress(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a := newFakeNode(t, h, "a1")
	a.mustEnroll(h.token(TokenRequest{Site: "s"}))
	b := newFakeNode(t, h, "a2")
	b.mustEnroll(h.token(TokenRequest{Site: "s"}))
	m, frags := randomPackage(t, "agent", 2<<20, 1<<20)
	for c, data := range frags {
		if err := h.cl.PutFragment(h.ctx, c, data); err != nil {
			t.Fatal(err)
		}
	}
	mb, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	rec, err := h.cl.Publish(h.ctx, mb)
	if err != nil {
		t.Fatal(err)
	}
	d, err := h.cl.CreateDeployment(h.ctx, DeployRequest{Packages: []string{rec.ID}, All: true})
	if err != nil {
		t.Fatal(err)
	}
	h.clk.Advance(10 * time.Second)
	a.report(d.ID, core.StateNotified) // a1 starts at +10s
	b.report(d.ID, core.StateNotified) // a2 too
	h.clk.Advance(30 * time.Second)
	a.report(d.ID, core.StateDownloading, core.StateSuccess) // a1 done at +40s, 3 MiB fetched (the fake's figure)
	h.clk.Advance(5 * time.Second)

	v := h.deployment(d.ID)
	if v.Done {
		t.Fatalf("deployment done with a2 still working: %+v", v)
	}
	if got := rowOf(t, v, a.ID()).DurationS; got != 30 {
		t.Errorf("a1 took %vs, want 30 (NOTIFIED at +10s to SUCCESS at +40s)", got)
	}
	if got := rowOf(t, v, b.ID()).DurationS; got != 35 {
		t.Errorf("a2, still working, shows %vs, want 35 (since +10s, now +45s)", got)
	}
	if v.ElapsedS != 45 {
		t.Errorf("elapsed %vs, want 45 while it runs", v.ElapsedS)
	}
	if v.BytesTotal != 2*m.Size || v.BytesFetched != 3<<20+3<<20 {
		t.Errorf("bytes %d of %d, want %d of %d", v.BytesFetched, v.BytesTotal, 6<<20, 2*m.Size)
	}

	b.report(d.ID, core.StateSuccess) // a2 done at +45s
	h.clk.Advance(time.Hour)
	v = h.deployment(d.ID)
	if !v.Done || v.ElapsedS != 45 {
		t.Errorf("done %v, elapsed %vs: want done, 45s (to the last report, not now)", v.Done, v.ElapsedS)
	}
	if got := rowOf(t, v, b.ID()).DurationS; got != 35 {
		t.Errorf("a2 took %vs, want 35", got)
	}
}

// deploy validate archives: SUCCESS rows and (with all) never-notified
// rows leave the counts but stay readable, also after a restart.
func TestValidateArchives(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a := newFakeNode(t, h, "a1")
	a.mustEnroll(h.token(TokenRequest{Site: "s"}))
	b := newFakeNode(t, h, "a2")
	b.mustEnroll(h.token(TokenRequest{Site: "s"}))
	pkg := h.publishExecute("tool")
	d, err := h.cl.CreateDeployment(h.ctx, DeployRequest{Packages: []string{pkg}, All: true})
	if err != nil {
		t.Fatal(err)
	}
	a.report(d.ID, core.StateNotified, core.StateSuccess)
	h.clk.Advance(time.Minute)
	if n, err := h.cl.ValidateDeployment(h.ctx, d.ID, true); err != nil || n != 2 {
		t.Fatalf("validate --all cleared %d (%v), want 2", n, err)
	}
	check := func(when string) {
		t.Helper()
		v := h.deployment(d.ID)
		if len(v.Nodes) != 0 || len(v.Archived) != 0 || len(v.Counts) != 0 {
			t.Errorf("%s: deploy show lists %d rows, %d archived, counts %v; want none", when, len(v.Nodes), len(v.Archived), v.Counts)
		}
		av, err := h.cl.DeploymentArchive(h.ctx, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(av.Archived) != 2 {
			t.Fatalf("%s: %d archived rows, want 2: %+v", when, len(av.Archived), av.Archived)
		}
		for _, r := range av.Archived {
			want := map[string]core.State{a.ID(): core.StateSuccess, b.ID(): core.StateWaiting}[r.Node]
			if r.State != want || !r.Validated || r.ValidatedAt.IsZero() || r.Name == "" {
				t.Errorf("%s: archived row %+v: want %s, validated, with a time and a name", when, r, want)
			}
			if r.Node == a.ID() && r.Output != "ok\n" {
				t.Errorf("%s: archived SUCCESS row lost its output: %q", when, r.Output)
			}
		}
	}
	check("after validate")
	h.restart()
	check("after restart")
	if _, err := h.cl.DeploymentArchive(h.ctx, "d-nope"); err == nil {
		t.Error("DeploymentArchive of an unknown deployment: no error")
	}
}
