//go:build unix

package runner

import (
	"os"
	"strings"
	"testing"

	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/internal/debrepo"
)

// debFixture is a runner whose .deb installs and removals go to a dpkg
// root of its own (dpkg --root), never the host's.
func debFixture(t *testing.T) (*fixture, string) {
	t.Helper()
	debrepo.Need(t)
	root := debrepo.DpkgRoot(t, t.TempDir())
	f := newFixtureWith(t, func(c *Config) {
		c.DebInstall = []string{"dpkg", "--root", root, "--install"}
		c.DebRemove = []string{"dpkg", "--root", root, "--remove"}
	})
	return f, root
}

func (f *fixture) debPkg(p debrepo.Pkg) Package {
	f.t.Helper()
	b, err := os.ReadFile(debrepo.BuildDeb(f.t, f.t.TempDir(), p))
	if err != nil {
		f.t.Fatal(err)
	}
	return f.pkg(core.Manifest{Name: p.Name, Version: p.Version, Action: core.ActionDeb}, b)
}

func TestDebInstallsWithDpkg(t *testing.T) {
	t.Parallel()
	f, root := debFixture(t)
	p := f.debPkg(debrepo.Pkg{Name: "hello-rm", Version: "1:2.10-3"})
	got := f.install(t.Context(), Request{OrderID: "deb-1", Packages: []Package{p}, Mode: core.ModeOneByOne})
	assertStates(t, got.results, core.StateSuccess)
	if v := debrepo.Installed(t, root, "hello-rm"); v != "1:2.10-3" {
		t.Fatalf("dpkg says hello-rm %q, want 1:2.10-3", v)
	}
	if !strings.Contains(got.results[0].Output, "Setting up hello-rm (1:2.10-3)") {
		t.Errorf("output %q", got.results[0].Output)
	}
	if _, ok := f.inst.order(p.ID); !ok {
		t.Error("not recorded as installed")
	}
}

// TestDebBulkRollbackRemoves: in a bulk order whose second package fails,
// the .deb installed first is removed again with dpkg.
func TestDebBulkRollbackRemoves(t *testing.T) {
	t.Parallel()
	f, root := debFixture(t)
	deb := f.debPkg(debrepo.Pkg{Name: "tool", Version: "1.0"})
	failing := f.pkg(core.Manifest{Name: "bad", Action: core.ActionExecute, Command: f.sh(`exit 2`)}, nil)
	got := f.install(t.Context(), Request{OrderID: "deb-2", Packages: []Package{deb, failing}, Mode: core.ModeBulk})
	assertStates(t, got.results, core.ErrAborted, core.ErrExecute)
	if d := got.results[0].Detail; d != "rolled back" {
		t.Errorf("detail %q", d)
	}
	if v := debrepo.Installed(t, root, "tool"); v != "" {
		t.Fatalf("tool still installed (%s) after the rollback", v)
	}
}

// TestDebInstallFailure: a .deb whose dependency is missing, or whose
// maintainer script fails, is ERR_EXECUTE naming dpkg's exit code, with
// dpkg's output.
func TestDebInstallFailure(t *testing.T) {
	t.Parallel()
	f, root := debFixture(t)
	for _, p := range []debrepo.Pkg{
		{Name: "needy", Version: "1.0", Depends: "no-such-package"},
		{Name: "grumpy", Version: "1.0", Postinst: "#!/bin/sh\necho postinst fails >&2\nexit 1\n"},
	} {
		got := f.install(t.Context(), Request{OrderID: "deb-" + p.Name, Packages: []Package{f.debPkg(p)}, Mode: core.ModeOneByOne})
		assertStates(t, got.results, core.ErrExecute)
		r := got.results[0]
		if !strings.Contains(r.Detail, "dpkg exited 1") || r.ExitCode != 1 {
			t.Errorf("%s: detail %q exit %d", p.Name, r.Detail, r.ExitCode)
		}
		if v := debrepo.Installed(t, root, p.Name); v != "" {
			t.Errorf("%s: dpkg says installed %q", p.Name, v)
		}
	}
}
