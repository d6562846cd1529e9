package runner

import (
	"strings"
	"testing"

	"github.com/relaymesh/relaymesh/core"
)

// TestDowngradeRefusedUnlessAllowed: with 1.10 of a name installed, 1.9 of
// the same name fails ERR_DOWNGRADE and runs nothing; an order that allows
// the downgrade installs it, and a newer version installs without asking.
func TestDowngradeRefusedUnlessAllowed(t *testing.T) {
	f := newFixture(t)
	newer := f.pkg(core.Manifest{Name: "agent", Version: "1.10", Action: core.ActionExecute, Command: f.sh(`touch "$1/v1.10"`)}, nil)
	older := f.pkg(core.Manifest{Name: "agent", Version: "1.9", Action: core.ActionExecute, Command: f.sh(`touch "$1/v1.9"`)}, nil)
	newest := f.pkg(core.Manifest{Name: "agent", Version: "1.10.1", Action: core.ActionExecute, Command: f.sh(`touch "$1/v1.10.1"`)}, nil)
	other := f.pkg(core.Manifest{Name: "tool", Version: "0.1", Action: core.ActionExecute, Command: f.sh(`touch "$1/tool"`)}, nil)

	if got := f.install(t.Context(), Request{OrderID: "up", Packages: []Package{newer}}); got.results[0].State != core.StateSuccess {
		t.Fatalf("install 1.10: %+v", got.results[0])
	}
	got := f.install(t.Context(), Request{OrderID: "down", Packages: []Package{older, other}})
	if r := got.results[0]; r.State != core.ErrDowngrade || !strings.Contains(r.Detail, "1.9 is older than agent 1.10") || !strings.Contains(r.Detail, "--allow-downgrade") {
		t.Fatalf("1.9 over 1.10: %+v, want ERR_DOWNGRADE naming both versions and --allow-downgrade", r)
	}
	if f.exists("v1.9") {
		t.Fatal("the refused downgrade ran its command")
	}
	if r := got.results[1]; r.State != core.StateSuccess {
		t.Fatalf("another name in the same one-by-one order: %+v, want SUCCESS", r)
	}
	if v, pkg, _ := f.inst.InstalledVersion("agent"); v != "1.10" || pkg != newer.ID {
		t.Fatalf("installed version after the refusal: %q (%s), want 1.10 (%s)", v, pkg, newer.ID)
	}

	got = f.install(t.Context(), Request{OrderID: "down-ok", Packages: []Package{older}, AllowDowngrade: true})
	if r := got.results[0]; r.State != core.StateSuccess || !f.exists("v1.9") {
		t.Fatalf("1.9 with AllowDowngrade: %+v", r)
	}
	if v, _, _ := f.inst.InstalledVersion("agent"); v != "1.9" {
		t.Fatalf("installed version after the allowed downgrade: %q, want 1.9", v)
	}
	got = f.install(t.Context(), Request{OrderID: "up-again", Packages: []Package{newest}})
	if r := got.results[0]; r.State != core.StateSuccess {
		t.Fatalf("1.10.1 over 1.9: %+v, want SUCCESS", r)
	}
}

// TestDowngradeStopsBulk: a refused downgrade is a failure of a bulk order,
// so the packages it installed before are rolled back.
func TestDowngradeStopsBulk(t *testing.T) {
	f := newFixture(t)
	cur := f.pkg(core.Manifest{Name: "lib", Version: "3.0", Action: core.ActionExecute, Command: f.sh(`true`)}, nil)
	if got := f.install(t.Context(), Request{OrderID: "base", Packages: []Package{cur}}); got.results[0].State != core.StateSuccess {
		t.Fatalf("install lib 3.0: %+v", got.results[0])
	}
	first := f.pkg(core.Manifest{Name: "app", Version: "1.0", Action: core.ActionExecute, Command: f.sh(`touch "$1/app"`),
		Uninstall: f.sh(`touch "$1/app-removed"`)}, nil)
	old := f.pkg(core.Manifest{Name: "lib", Version: "2.0", Action: core.ActionExecute, Command: f.sh(`touch "$1/lib2"`)}, nil)
	got := f.install(t.Context(), Request{OrderID: "bulk", Mode: core.ModeBulk, Packages: []Package{first, old}})
	if r := got.results[1]; r.State != core.ErrDowngrade {
		t.Fatalf("lib 2.0 over 3.0 in bulk: %+v, want ERR_DOWNGRADE", r)
	}
	if !f.exists("app-removed") || f.exists("lib2") {
		t.Fatalf("bulk order with a refused downgrade: app rolled back %v, lib 2.0 ran %v; want true, false", f.exists("app-removed"), f.exists("lib2"))
	}
}
