package coordinator

import (
	"testing"

	"github.com/relaymesh/relaymesh/core"
)

// An already installed package is what the order wants: the deployment
// completes and the statistics count it with the successes. A command
// that failed (ERR_EXECUTE with its exit code) leaves it incomplete.
func TestAlreadyInstalledIsNotAnError(t *testing.T) {
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
	b.report(d.ID, core.StateNotified, core.ErrAlreadySetup)
	v := h.deployment(d.ID)
	if v.State != DeployCompleted || len(v.Sites) != 1 || v.Sites[0].Success != 2 || v.Sites[0].Failed != 0 {
		t.Errorf("deployment %s, sites %+v: want COMPLETED with 2 successes", v.State, v.Sites)
	}
	if n, err := h.c.ValidateDeployment(d.ID, false); err != nil || n != 2 {
		t.Errorf("validate cleared %d rows (%v), want both", n, err)
	}

	d2, err := h.cl.CreateDeployment(h.ctx, DeployRequest{Packages: []string{pkg}, All: true})
	if err != nil {
		t.Fatal(err)
	}
	a.report(d2.ID, core.StateNotified, core.StateSuccess)
	fail := a.status(d2.ID, core.ErrExecute, 3)
	fail.NodeID = b.ID()
	b.seq++
	fail.Seq = b.seq
	if _, err := b.send(b.sign(fail, b.key)); err != nil {
		t.Fatal(err)
	}
	v = h.deployment(d2.ID)
	if v.State != DeployIncomplete || v.Sites[0].Failed != 1 || rowOf(t, v, b.ID()).ExitCode != 3 {
		t.Errorf("deployment %s, sites %+v, row %+v: want INCOMPLETE, 1 failed with exit 3", v.State, v.Sites, rowOf(t, v, b.ID()))
	}
}

func TestSummariseAlreadyInstalled(t *testing.T) {
	t.Parallel()
	want := []string{"p1", "p2"}
	for _, tc := range []struct {
		got   map[string]PackageRow
		state core.State
		exit  int
	}{
		{map[string]PackageRow{"p1": {State: core.StateSuccess, ExitCode: 3010}, "p2": {State: core.ErrAlreadySetup, ExitCode: -1}}, core.StateSuccess, 3010},
		{map[string]PackageRow{"p1": {State: core.ErrAlreadySetup, ExitCode: -1}, "p2": {State: core.ErrAlreadySetup, ExitCode: -1}}, core.ErrAlreadySetup, -1},
		{map[string]PackageRow{"p1": {State: core.ErrAlreadySetup, ExitCode: -1}, "p2": {State: core.ErrExecute, ExitCode: 3}}, core.ErrExecute, 3},
		{map[string]PackageRow{"p1": {State: core.ErrAlreadySetup}}, core.StateInstalling, 0},
	} {
		if st, exit := summarise(tc.got, want); st != tc.state || exit != tc.exit {
			t.Errorf("summarise(%v) = %s %d, want %s %d", tc.got, st, exit, tc.state, tc.exit)
		}
	}
}

// --force is signed into the order.
func TestForceIsSigned(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a := newFakeNode(t, h, "a1")
	a.mustEnroll(h.token(TokenRequest{Site: "s"}))
	pkg := h.publishExecute("tool")
	for _, force := range []bool{false, true} {
		d, err := h.cl.CreateDeployment(h.ctx, DeployRequest{Packages: []string{pkg}, All: true, Force: force})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, o := range a.syncOrders(d.Seq - 1) {
			if o.ID == d.ID {
				found = true
				if o.Force != force {
					t.Errorf("order %s: force %v, want %v", o.ID, o.Force, force)
				}
			}
		}
		if !found {
			t.Errorf("order %s not synced", d.ID)
		}
	}
}
