//go:build unix

package runner

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/internal/debrepo"
)

// aptFixture is a runner whose apt installs go to a private apt and dpkg
// root (hello 1.0 and openssl 1.0 installed) whose sources name a signed
// repository on loopback that offers hello 1.1 (depending on the new
// libhello) and openssl 1.1. lists are the files apt-get update wrote
// for those sources in another root: what the coordinator mirrors.
type aptFixture struct {
	*fixture
	root   *debrepo.Root
	lists  []file
	debs   map[string]string // name -> .deb path of its newest version in the repository
	suites []string
	check  func(context.Context, []AptWant) (string, error)
}

func newAptFixture(t *testing.T) *aptFixture {
	t.Helper()
	debrepo.Need(t)
	dir := t.TempDir()
	repos := filepath.Join(dir, "repos")
	suites := debrepo.BuildSuites(t, repos,
		debrepo.Suite{Name: "stable", Pkgs: []debrepo.Pkg{{Name: "hello", Version: "1.0"}, {Name: "hello", Version: "1.1", Depends: "libhello (>= 1.1)"},
			{Name: "libhello", Version: "1.1"}, {Name: "grumpy", Version: "1.0"}, {Name: "grumpy", Version: "1.1", Postinst: "#!/bin/sh\nexit 1\n"}}},
		debrepo.Suite{Name: "stable-security", Pkgs: []debrepo.Pkg{{Name: "openssl", Version: "1.1"}}})
	signer := debrepo.NewSigner(t, dir)
	signer.Sign(t, suites...)
	srv := httptest.NewServer(http.FileServer(http.Dir(repos)))
	t.Cleanup(srv.Close)
	var sources string
	for _, s := range []string{"stable", "stable-security"} {
		sources += "deb [signed-by=" + signer.Keyring + "] " + srv.URL + "/" + s + " ./\n"
	}
	ref := debrepo.NewEmpty(t, filepath.Join(dir, "ref"), nil, sources)
	if out, err := exec.Command("apt-get", ref.AptArgs("-o", "Acquire::GzipIndexes=false", "update")...).CombinedOutput(); err != nil {
		t.Fatalf("apt-get update: %v: %s", err, out)
	}
	af := &aptFixture{debs: map[string]string{}, suites: suites}
	ents, _ := os.ReadDir(ref.Lists)
	for _, e := range ents {
		if e.Type().IsRegular() && e.Name() != "lock" {
			b, _ := os.ReadFile(filepath.Join(ref.Lists, e.Name()))
			af.lists = append(af.lists, file{name: "lists/" + e.Name(), body: string(b)})
		}
	}
	for _, sd := range suites {
		ds, _ := filepath.Glob(filepath.Join(sd, "*.deb"))
		for _, d := range ds {
			af.debs[strings.SplitN(filepath.Base(d), "_", 2)[0]] = d
		}
	}
	srv.Close() // from here on, nothing may come from the repository
	af.root = debrepo.NewEmpty(t, filepath.Join(dir, "node"), []debrepo.Pkg{{Name: "hello", Version: "1.0"}, {Name: "openssl", Version: "1.0"}}, sources)
	// The synthetic 1.0 packages have no file lists; give dpkg empty ones.
	for _, n := range []string{"hello", "openssl"} {
		_ = os.MkdirAll(filepath.Join(af.root.Admindir, "info"), 0o755)
		_ = os.WriteFile(filepath.Join(af.root.Admindir, "info", n+".list"), nil, 0o644)
	}
	r := af.root
	af.fixture = newFixtureWith(t, func(c *Config) {
		c.AptInstall = append(r.AptArgs("-o", "DPkg::Options::=--root="+r.Dir, "-o", "DPkg::Options::=--admindir="+r.Admindir,
			"-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"), "install", "-y", "--no-download", "--no-install-recommends")
		c.AptInstall = append([]string{"apt-get"}, c.AptInstall...)
		c.AptLists = r.Lists
		c.AptArchives = filepath.Join(r.Dir, "var/cache/apt/archives")
		c.AptCheck = func(ctx context.Context, w []AptWant, _ bool) (string, error) { return af.check(ctx, w) }
	})
	af.check = func(_ context.Context, w []AptWant) (string, error) {
		var missing []string
		for _, x := range w {
			if v := debrepo.Installed(t, r.Dir, x.Name); v != x.Version {
				missing = append(missing, x.Name+" is at "+v)
			}
		}
		if len(missing) > 0 {
			return "", errors.New(strings.Join(missing, "; "))
		}
		return "rescan: all there", nil
	}
	return af
}

func (af *aptFixture) pkg(name, version string, files ...file) Package {
	af.t.Helper()
	return af.fixture.pkg(core.Manifest{Name: name, Version: version, Action: core.ActionApt, OS: "linux"}, tarGz(af.t, files...))
}

func (af *aptFixture) deb(name string) file {
	af.t.Helper()
	b, err := os.ReadFile(af.debs[name])
	if err != nil {
		af.t.Fatal(err)
	}
	return file{name: "debs/" + filepath.Base(af.debs[name]), body: string(b)}
}

// TestAptPackageInstallsUpdates: the lists package places the indexes the
// coordinator mirrored into the node's lists dir; each update package
// installs its .debs (with the new dependency they carry) in one apt run
// that downloads nothing (the repository is down), and the row says what
// the rescan found.
func TestAptPackageInstallsUpdates(t *testing.T) {
	af := newAptFixture(t)
	lists := af.pkg("apt-lists", "20261202", af.lists...)
	hello := af.pkg("hello", "1.1", af.deb("hello"), af.deb("libhello"))
	openssl := af.pkg("openssl", "1.1", af.deb("openssl"))
	got := af.install(t.Context(), Request{OrderID: "apt-1", Packages: []Package{lists, hello, openssl}, Mode: core.ModeOneByOne})
	assertStates(t, got.results, core.StateSuccess, core.StateSuccess, core.StateSuccess)
	if d := got.results[0].Detail; !strings.Contains(d, "4 repository index files placed") {
		t.Errorf("lists detail %q", d)
	}
	if d := got.results[1].Detail; d != "rescan: all there" {
		t.Errorf("hello detail %q (output %s)", d, got.results[1].Output)
	}
	for n, v := range map[string]string{"hello": "1.1", "libhello": "1.1", "openssl": "1.1"} {
		if got := debrepo.Installed(t, af.root.Dir, n); got != v {
			t.Errorf("%s at %q, want %s", n, got, v)
		}
	}
	if _, err := os.Stat(filepath.Join(af.root.Lists, strings.TrimPrefix(af.lists[0].name, "lists/"))); err != nil {
		t.Errorf("list not placed: %v", err)
	}
}

// TestAptPackageFailures: an update whose dependency is not in the
// package fails (apt may not download it), a maintainer script that fails
// is ERR_EXECUTE with apt's exit code, and apt exiting 0 while the rescan
// does not find the version is ERR_EXECUTE saying what the scan found.
func TestAptPackageFailures(t *testing.T) {
	af := newAptFixture(t)
	lists := af.pkg("apt-lists", "20261202", af.lists...)
	af.check = func(context.Context, []AptWant) (string, error) { return "", errors.New("openssl is at 1.0, not 1.1") }
	openssl := af.pkg("openssl", "1.1", af.deb("openssl"))
	got := af.install(t.Context(), Request{OrderID: "apt-3", Packages: []Package{lists, openssl}})
	assertStates(t, got.results, core.StateSuccess, core.ErrExecute)
	if d := got.results[1].Detail; !strings.Contains(d, "exited 0, but the rescan says: openssl is at 1.0, not 1.1") {
		t.Errorf("detail %q", d)
	}

	noDep := af.pkg("hello", "1.1", af.deb("hello"))
	grumpy := af.pkg("grumpy", "1.1", af.deb("grumpy"))
	af.check = func(_ context.Context, w []AptWant) (string, error) { return "rescan: fine", nil }
	got = af.install(t.Context(), Request{OrderID: "apt-2", Packages: []Package{noDep, grumpy}, Mode: core.ModeOneByOne})
	assertStates(t, got.results, core.ErrExecute, core.ErrExecute)
	for i, want := range []string{"installing hello 1.1", "installing grumpy 1.1"} {
		if r := got.results[i]; !strings.Contains(r.Detail, want) || r.ExitCode != 100 {
			t.Errorf("result %d: detail %q exit %d (output %s)", i, r.Detail, r.ExitCode, r.Output)
		}
	}
	if v := debrepo.Installed(t, af.root.Dir, "hello"); v != "1.0" {
		t.Errorf("hello at %q after a failed install, want 1.0", v)
	}

}

// TestAptPackageDebNotInIndex: a .deb in an apt package whose bytes are
// not the ones the indexes list (one byte changed, same size) is refused
// before apt runs (apt itself takes a cached .deb of the right size
// without hashing it), and nothing is installed.
func TestAptPackageDebNotInIndex(t *testing.T) {
	af := newAptFixture(t)
	b := []byte(af.deb("openssl").body)
	b[len(b)-1] ^= 1
	lists := af.pkg("apt-lists", "20261202", af.lists...)
	forged := af.pkg("openssl", "1.1", file{name: "debs/openssl_1.1_all.deb", body: string(b)})
	got := af.install(t.Context(), Request{OrderID: "apt-4", Packages: []Package{lists, forged}})
	assertStates(t, got.results, core.StateSuccess, core.ErrBadDigestSt)
	if v := debrepo.Installed(t, af.root.Dir, "openssl"); v != "1.0" {
		t.Errorf("openssl at %q, want 1.0 still", v)
	}
	if d := got.results[1].Detail; !strings.Contains(d, "openssl 1.1: the .deb's SHA256") || !strings.Contains(d, "is not the one the repository index lists") {
		t.Errorf("detail %q", d)
	}
}

// TestAptPackageDpkgLockBound: apt waits for the dpkg lock at most
// DPkg::Lock::Timeout; a lock held longer is ERR_EXECUTE saying so, and
// nothing is installed.
func TestAptPackageDpkgLockBound(t *testing.T) {
	af := newAptFixture(t)
	r := af.root
	// This apt takes the locks (in the private root: its admin dir).
	af.r.cfg.AptInstall = []string{"apt-get", "-q", "-o", "Dir=" + r.Dir, "-o", "Dir::State::status=" + filepath.Join(r.Admindir, "status"),
		"-o", "DPkg::Options::=--root=" + r.Dir, "-o", "DPkg::Options::=--admindir=" + r.Admindir, "-o", "DPkg::Lock::Timeout=1",
		"install", "-y", "--no-download"}
	f, err := os.OpenFile(filepath.Join(r.Admindir, "lock-frontend"), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0}); err != nil {
		t.Fatal(err)
	}
	lists := af.pkg("apt-lists", "20261202", af.lists...)
	openssl := af.pkg("openssl", "1.1", af.deb("openssl"))
	got := af.install(t.Context(), Request{OrderID: "apt-5", Packages: []Package{lists, openssl}})
	assertStates(t, got.results, core.StateSuccess, core.ErrExecute)
	if d := got.results[1].Detail; !strings.Contains(d, "the dpkg lock stayed held by another process beyond the bound") {
		t.Errorf("detail %q (output %s)", d, got.results[1].Output)
	}
	if v := debrepo.Installed(t, r.Dir, "openssl"); v != "1.0" {
		t.Errorf("openssl at %q", v)
	}
}

// TestAptPackageAppliedAgain: an apt package installed by an earlier
// order is applied again (not ERR_ALREADY_SETUP): the host's apt-get
// update may have replaced the lists it placed.
func TestAptPackageAppliedAgain(t *testing.T) {
	af := newAptFixture(t)
	lists := af.pkg("apt-lists", "20261202", af.lists...)
	got := af.install(t.Context(), Request{OrderID: "apt-6", Packages: []Package{lists}})
	assertStates(t, got.results, core.StateSuccess)
	placed := filepath.Join(af.root.Lists, strings.TrimPrefix(af.lists[0].name, "lists/"))
	if err := os.Remove(placed); err != nil {
		t.Fatal(err)
	}
	got = af.install(t.Context(), Request{OrderID: "apt-7", Packages: []Package{lists}})
	assertStates(t, got.results, core.StateSuccess)
	if _, err := os.Stat(placed); err != nil {
		t.Errorf("list not placed again: %v", err)
	}
}

// debAt is the repository's .deb of name at version, under dir in the
// package.
func (af *aptFixture) debAt(dir, name, version string) file {
	af.t.Helper()
	path := filepath.Join(af.suites[0], name+"_"+version+"_all.deb")
	b, err := os.ReadFile(path)
	if err != nil {
		af.t.Fatal(err)
	}
	return file{name: dir + "/" + filepath.Base(path), body: string(b)}
}

// TestAptBulkRollsBack: a bulk transaction that fails (grumpy 1.1's
// postinst exits 1) installs again the versions it replaced, which the
// package carries (rollback/), checked against the indexes like the
// updates: hello and grumpy are back at 1.0.
func TestAptBulkRollsBack(t *testing.T) {
	af := newAptFixture(t)
	r := af.root
	debrepo.WriteStatus(t, r.Admindir, []debrepo.Pkg{{Name: "hello", Version: "1.0"}, {Name: "openssl", Version: "1.0"}, {Name: "grumpy", Version: "1.0"}})
	_ = os.WriteFile(filepath.Join(r.Admindir, "info", "grumpy.list"), nil, 0o644)
	af.r.cfg.DpkgStatus = filepath.Join(r.Admindir, "status")
	lists := af.pkg("apt-lists", "20261202", af.lists...)
	bulk := af.pkg("updates", "20261202", af.debAt("debs", "hello", "1.1"), af.deb("libhello"), af.debAt("debs", "grumpy", "1.1"),
		af.debAt("rollback", "hello", "1.0"), af.debAt("rollback", "grumpy", "1.0"))
	got := af.install(t.Context(), Request{OrderID: "apt-8", Packages: []Package{lists, bulk}, Mode: core.ModeBulk})
	if st := got.results[1].State; st != core.ErrExecute {
		t.Fatalf("bulk package %s: %s", st, got.results[1].Detail)
	}
	if d := got.results[1].Detail; !strings.Contains(d, "rolled back to grumpy=1.0, hello=1.0") {
		t.Errorf("detail %q (output %s)", d, got.results[1].Output)
	}
	for n, v := range map[string]string{"hello": "1.0", "grumpy": "1.0"} {
		if got := debrepo.Installed(t, r.Dir, n); got != v {
			t.Errorf("%s at %q after the rollback, want %s", n, got, v)
		}
	}
}

// TestDpkgLockHeld: each way apt says it gave up on the dpkg lock counts
// (under load apt printed only the frontend-lock line, which the bound
// test then missed), and other failures do not.
func TestDpkgLockHeld(t *testing.T) {
	for out, want := range map[string]bool{
		"E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 7 (apt-get)\n":                      true,
		"E: Unable to acquire the dpkg frontend lock (/x/var/lib/dpkg/lock-frontend), is another process using it?\n": true,
		"E: Unable to lock the administration directory (/var/lib/dpkg/), is another process using it?\n":             true,
		"E: Unable to locate package openssl\n": false,
		"":                                      false,
	} {
		if got := dpkgLockHeld([]byte(out)); got != want {
			t.Errorf("dpkgLockHeld(%q) = %v, want %v", out, got, want)
		}
	}
}
