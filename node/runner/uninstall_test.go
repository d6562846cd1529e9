package runner

import (
	"testing"

	"github.com/relaymesh/relaymesh/core"
)

// An uninstall order runs each package's uninstall command (in the
// package's extracted archive, like its install), reports SUCCESS and
// clears the installed record; a failing uninstall is ERR_EXECUTE with its
// exit code, and in bulk stops the order without rolling anything back.
func TestUninstallOrder(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	first := f.pkg(core.Manifest{Name: "first", Action: core.ActionLaunch, Command: f.sh(`true`),
		Uninstall: []string{"sh", "-c", `cp remove.me "$1/first-removed"`, "sh", f.out}},
		tarGz(t, file{name: "remove.me", body: "bye"}))
	bad := f.pkg(core.Manifest{Name: "bad", Action: core.ActionExecute, Command: f.sh(`true`), Uninstall: f.sh(`exit 4`)}, nil)
	third := f.pkg(core.Manifest{Name: "third", Action: core.ActionExecute, Command: f.sh(`true`), Uninstall: f.sh(`touch "$1/third-removed"`)}, nil)
	for _, p := range []Package{first, bad, third} {
		if err := f.inst.MarkInstalled(p, "earlier"); err != nil {
			t.Fatal(err)
		}
	}

	got := f.install(t.Context(), Request{OrderID: "u-1", Packages: []Package{first, bad, third}, Uninstall: true})
	assertStates(t, got.results, core.StateSuccess, core.ErrExecute, core.StateSuccess)
	if f.read("first-removed") != "bye" || !f.exists("third-removed") {
		t.Error("the uninstall commands did not run in the packages' workspaces")
	}
	if r := got.results[1]; r.ExitCode != 4 || r.Detail != "uninstall exited 4" {
		t.Errorf("failing uninstall: %+v, want exit 4", r)
	}
	if r := got.results[0]; r.Detail != "uninstalled" || r.ExitCode != 0 {
		t.Errorf("first: %+v", r)
	}
	for p, want := range map[Package]bool{first: false, bad: true, third: false} {
		if _, ok := f.inst.order(p.ID); ok != want {
			t.Errorf("%s installed record: %v, want %v", p.Manifest.Name, ok, want)
		}
	}
	if len(got.started) != 3 {
		t.Errorf("onStart called for %v, want the 3 packages", got.started)
	}

	// Bulk: the failure stops the order; nothing is reinstalled.
	f2 := newFixture(t)
	bad2 := f2.pkg(core.Manifest{Name: "bad", Action: core.ActionExecute, Command: f2.sh(`touch "$1/reinstalled"`), Uninstall: f2.sh(`exit 4`)}, nil)
	ok2 := f2.pkg(core.Manifest{Name: "ok", Action: core.ActionExecute, Command: f2.sh(`true`), Uninstall: f2.sh(`touch "$1/ok-removed"`)}, nil)
	got = f2.install(t.Context(), Request{OrderID: "u-2", Packages: []Package{bad2, ok2}, Uninstall: true, Mode: core.ModeBulk})
	assertStates(t, got.results, core.ErrExecute, core.ErrAborted)
	if f2.exists("ok-removed") || f2.exists("reinstalled") {
		t.Error("bulk uninstall went on after a failure, or reinstalled")
	}

	// A package without an uninstall command (the coordinator refuses such
	// orders; a node says so if one arrives).
	f3 := newFixture(t)
	none := f3.pkg(core.Manifest{Name: "none", Action: core.ActionExecute, Command: f3.sh(`true`)}, nil)
	got = f3.install(t.Context(), Request{OrderID: "u-3", Packages: []Package{none}, Uninstall: true})
	assertStates(t, got.results, core.ErrExecute)
	if d := got.results[0].Detail; d != "not uninstalled: the package has no uninstall command" {
		t.Errorf("detail %q", d)
	}
}
