package scan

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/internal/debrepo"
)

// fixture: foo and bar 1.0 installed; the stable suite has foo 1.1 and a
// package not installed (baz); the security suite has bar 1.0+sec1.
func fixture(t *testing.T) (*debrepo.Root, Config) {
	t.Helper()
	debrepo.Need(t)
	dir := t.TempDir()
	r := debrepo.New(t, dir,
		[]debrepo.Pkg{{Name: "foo", Version: "1.0"}, {Name: "bar", Version: "1.0"}},
		debrepo.Suite{Name: "stable", Pkgs: []debrepo.Pkg{{Name: "foo", Version: "1.1"}, {Name: "baz", Version: "2.0"}}},
		debrepo.Suite{Name: "stable-security", Label: "Test-Security", Pkgs: []debrepo.Pkg{{Name: "bar", Version: "1.0+sec1"}}},
	)
	osr := filepath.Join(dir, "os-release")
	if err := os.WriteFile(osr, []byte("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nID=debian\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	kern := filepath.Join(dir, "osrelease")
	if err := os.WriteFile(kern, []byte("6.1.0-18-amd64\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	c.DpkgAdmindir, c.AptRoot, c.OSRelease, c.KernelRelease = r.Admindir, r.Dir, osr, kern
	c.RebootRequired = filepath.Join(dir, "reboot-required")
	return r, c
}

func TestScanFindsUpdates(t *testing.T) {
	t.Parallel()
	_, c := fixture(t)
	if err := os.WriteFile(c.RebootRequired, []byte("*** System restart required ***\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.RebootRequired+".pkgs", []byte("linux-image-6.1.0-18-amd64\nlinux-image-6.1.0-18-amd64\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	inv, err := Scan(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if inv.Error != "" {
		t.Fatalf("scan error: %s", inv.Error)
	}
	want := []core.Update{
		{Name: "bar", Arch: "all", Installed: "1.0", Candidate: "1.0+sec1", Security: true, Suites: []string{"stable-security"}},
		{Name: "foo", Arch: "all", Installed: "1.0", Candidate: "1.1", Suites: []string{"stable"}},
	}
	if !reflect.DeepEqual(inv.Updates, want) {
		t.Fatalf("updates:\n got %+v\nwant %+v", inv.Updates, want)
	}
	if inv.InstalledCount != 2 || len(inv.Installed) != 2 || inv.Installed[0].Name != "foo" || inv.Installed[1].Version != "1.0" {
		t.Fatalf("installed: %d %+v", inv.InstalledCount, inv.Installed)
	}
	if inv.OS != (core.OSRelease{ID: "debian", VersionID: "12", Codename: "bookworm", PrettyName: "Debian GNU/Linux 12 (bookworm)"}) {
		t.Fatalf("os: %+v", inv.OS)
	}
	if inv.Kernel != "6.1.0-18-amd64" || !inv.RebootRequired || !reflect.DeepEqual(inv.RebootPackages, []string{"linux-image-6.1.0-18-amd64"}) {
		t.Fatalf("kernel %q reboot %v %v", inv.Kernel, inv.RebootRequired, inv.RebootPackages)
	}
	if inv.ListsTime.IsZero() || inv.SecurityCount() != 1 {
		t.Fatalf("lists time %v, security %d", inv.ListsTime, inv.SecurityCount())
	}
}

// TestScanNothingMissing: a node that has the candidates has no updates
// (apt's same-version reinstall lines are not updates), in upgrade mode
// too.
func TestScanNothingMissing(t *testing.T) {
	t.Parallel()
	r, c := fixture(t)
	debrepo.WriteStatus(t, r.Admindir, []debrepo.Pkg{{Name: "foo", Version: "1.1"}, {Name: "bar", Version: "1.0+sec1"}})
	c.Upgrade = "upgrade"
	inv, err := Scan(context.Background(), c)
	if err != nil || inv.Error != "" {
		t.Fatalf("scan: %v %q", err, inv.Error)
	}
	if len(inv.Updates) != 0 || inv.RebootRequired {
		t.Fatalf("updates %+v, reboot %v: want none", inv.Updates, inv.RebootRequired)
	}
}

func TestScanCorruptStatus(t *testing.T) {
	t.Parallel()
	r, c := fixture(t)
	st := string(debrepo.StatusFile([]debrepo.Pkg{{Name: "foo", Version: "1.0"}, {Name: "bar", Version: "1.0"}}))
	st = strings.Replace(st, "Package: bar\n", "Package: bar\nthis line is garbage\n", 1)
	if err := os.WriteFile(filepath.Join(r.Admindir, "status"), []byte(st), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Scan(context.Background(), c)
	if !errors.Is(err, ErrInventory) {
		t.Fatalf("err %v: want ErrInventory", err)
	}
	for _, s := range []string{filepath.Join(r.Admindir, "status"), "entry 2 (after package foo)", "this line is garbage", "dpkg --audit"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
}

func TestScanBadStatusFields(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, status, msg string
	}{
		{"bad version", "Package: foo\nStatus: install ok installed\nVersion: 1.0 beta\n\n", `package foo: version "1.0 beta"`},
		{"no version", "Package: foo\nStatus: install ok installed\n\n", `package foo: version ""`},
		{"two-word status", "Package: foo\nStatus: install installed\nVersion: 1\n\n", `status "install installed"`},
		{"unknown state", "Package: foo\nStatus: install ok sideways\nVersion: 1\n\n", `unknown state "sideways"`},
		{"no package field", "Version: 1\n\n", "entry 1 has no Package field"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := parseDpkgStatus(strings.NewReader(tt.status), "status")
			if !errors.Is(err, ErrInventory) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err %v: want ErrInventory saying %q", err, tt.msg)
			}
		})
	}
	inst, broken, err := parseDpkgStatus(strings.NewReader(
		"Package: a\nStatus: install ok half-configured\nVersion: 1:2.0-1\n\nPackage: b\nStatus: deinstall ok config-files\nVersion: 1\n\nPackage: c\nStatus: install ok triggers-pending\nVersion: 3\n"), "status")
	if err != nil || len(inst) != 1 || inst[0].Name != "c" || len(broken) != 1 || broken[0] != (core.Package{Name: "a", Version: "1:2.0-1", Status: "half-configured"}) {
		t.Fatalf("inst %+v broken %+v err %v", inst, broken, err)
	}
}

func TestScanMissingLists(t *testing.T) {
	t.Parallel()
	r, c := fixture(t)
	for name, setup := range map[string]func() string{
		"no dir":   func() string { return filepath.Join(t.TempDir(), "nolists") },
		"no index": func() string { d := t.TempDir(); return d },
	} {
		c := c
		c.AptListsDir = setup()
		inv, err := Scan(context.Background(), c)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !strings.Contains(inv.Error, ErrNoLists.Error()) || !strings.Contains(inv.Error, c.AptListsDir) || !strings.Contains(inv.Error, "run apt-get update") {
			t.Errorf("%s: error %q: want the lists dir and what to do", name, inv.Error)
		}
		if inv.InstalledCount != 2 || inv.Updates != nil {
			t.Errorf("%s: installed %d, updates %v: want the inventory and no updates", name, inv.InstalledCount, inv.Updates)
		}
	}
	_ = r
}

func TestScanAptFails(t *testing.T) {
	t.Parallel()
	r, c := fixture(t)
	// A sources.list apt cannot read: apt-get exits 100 and says why.
	if err := os.WriteFile(filepath.Join(r.Dir, "etc/apt/sources.list"), []byte("deb\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	inv, err := Scan(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(inv.Error, ErrApt.Error()) || !strings.Contains(inv.Error, "exit status 100") || !strings.Contains(inv.Error, "E: ") {
		t.Fatalf("error %q: want apt's exit status and its message", inv.Error)
	}
	c.AptGet = filepath.Join(t.TempDir(), "no-apt-get")
	inv, err = Scan(context.Background(), c)
	if err != nil || !strings.Contains(inv.Error, c.AptGet) {
		t.Fatalf("missing apt-get: %v %q", err, inv.Error)
	}
}

func TestScanConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		mut func(*Config)
		msg string
	}{
		{func(c *Config) { c.Upgrade = "full-upgrade" }, `upgrade "full-upgrade"`},
		{func(c *Config) { c.Timeout = 0 }, "timeout 0s"},
		{func(c *Config) { c.AptOptions = []string{"Dir"} }, `apt option "Dir"`},
		{func(c *Config) { c.DpkgAdmindir = "" }, "dpkg_admindir"},
	} {
		c := DefaultConfig()
		tt.mut(&c)
		if err := c.Validate(); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("err %v: want %q", err, tt.msg)
		}
	}
}

func TestParseInst(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		line string
		want core.Update
		ok   bool
	}{
		{"openssl [3.0.11-1~deb12u1] (3.0.11-1~deb12u2 Debian:12.5/stable, Debian-Security:12/stable-security [amd64])",
			core.Update{Name: "openssl", Arch: "amd64", Installed: "3.0.11-1~deb12u1", Candidate: "3.0.11-1~deb12u2", Security: true, Suites: []string{"stable", "stable-security"}}, true},
		{"libc6:i386 [2.35-0ubuntu3.5] (2.35-0ubuntu3.6 Ubuntu:22.04/jammy-updates, Ubuntu:22.04/jammy-security [i386]) []",
			core.Update{Name: "libc6", Arch: "i386", Installed: "2.35-0ubuntu3.5", Candidate: "2.35-0ubuntu3.6", Security: true, Suites: []string{"jammy-updates", "jammy-security"}}, true},
		{"tzdata [2024a-0+deb12u1] (2024a-0+deb12u2 Debian:12.6/stable-updates [all])",
			core.Update{Name: "tzdata", Arch: "all", Installed: "2024a-0+deb12u1", Candidate: "2024a-0+deb12u2", Suites: []string{"stable-updates"}}, true},
		{"linux-image-6.1.0-19-amd64 (6.1.76-1 Debian:12.5/stable [amd64])", core.Update{}, false},
		{"foo [1.1] (1.1 Test:stable [all])", core.Update{}, false},
		{"foo [1:1.0] (2.0 Test:stable [all])", core.Update{}, false},
	} {
		got, ok, err := parseInst(tt.line, defaultSecurity)
		if err != nil || ok != tt.ok || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s:\n got %+v %v %v\nwant %+v %v", tt.line, got, ok, err, tt.want, tt.ok)
		}
	}
	for _, bad := range []string{"foo [1.0", "foo [1.0] 1.1", "foo [1.0] (1.1", "foo [a b] (1 x [all])"} {
		if _, _, err := parseInst(bad, defaultSecurity); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func FuzzParseSimulation(f *testing.F) {
	f.Add("Inst bar [1.0] (1.0+sec1 Test-Security:stable-security [all])\nConf bar (1.0+sec1 Test-Security:stable-security [all])\n")
	f.Add("Inst x [1] (2 a:b/c, d:e [amd64]) []\nRemv y [1]\n")
	f.Fuzz(func(t *testing.T, s string) {
		ups, err := parseSimulation(strings.NewReader(s), defaultSecurity)
		if err != nil {
			return
		}
		for _, u := range ups {
			if u.Name == "" || u.Candidate == "" {
				t.Fatalf("update without name or candidate: %+v", u)
			}
		}
	})
}

func FuzzParseDpkgStatus(f *testing.F) {
	f.Add(string(debrepo.StatusFile([]debrepo.Pkg{{Name: "a", Version: "1"}})))
	f.Add("Package: a\nStatus: install ok unpacked\nVersion: 1\n")
	f.Fuzz(func(t *testing.T, s string) {
		inst, broken, err := parseDpkgStatus(strings.NewReader(s), "status")
		if err != nil {
			return
		}
		for _, p := range append(inst, broken...) {
			if p.Name == "" || p.Version == "" {
				t.Fatalf("package without name or version: %+v", p)
			}
		}
	})
}

// benchRoot is an apt root whose dpkg status lists n installed packages,
// with a repository offering a newer version of every tenth.
func benchRoot(b *testing.B, n int) Config {
	b.Helper()
	debrepo.Need(b)
	dir := b.TempDir()
	pkgs := make([]debrepo.Pkg, n)
	var newer []debrepo.Pkg
	for i := range pkgs {
		pkgs[i] = debrepo.Pkg{Name: fmt.Sprintf("pkg%04d", i), Version: fmt.Sprintf("1.%d-1", i)}
		if i%200 == 0 {
			newer = append(newer, debrepo.Pkg{Name: pkgs[i].Name, Version: pkgs[i].Version + "+deb12u1"})
		}
	}
	r := debrepo.New(b, dir, pkgs, debrepo.Suite{Name: "stable-security", Pkgs: newer})
	c := DefaultConfig()
	c.DpkgAdmindir, c.AptRoot = r.Admindir, r.Dir
	c.OSRelease, c.KernelRelease, c.RebootRequired = "/nonexistent", "/nonexistent", "/nonexistent"
	return c
}

// BenchmarkScan2000 is a whole scan of a node with 2,000 installed
// packages: dpkg status parse in this process, apt's simulation in a
// child, whose CPU time and peak RSS are reported besides the Go figures.
func BenchmarkScan2000(b *testing.B) {
	c := benchRoot(b, 2000)
	var before, after syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &before)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		inv, err := Scan(context.Background(), c)
		if err != nil || inv.Error != "" || inv.InstalledCount != 2000 || len(inv.Updates) != 10 {
			b.Fatalf("scan: %v %q installed %d updates %d", err, inv.Error, inv.InstalledCount, len(inv.Updates))
		}
	}
	b.StopTimer()
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &after)
	cpu := func(r syscall.Rusage) float64 {
		return float64(r.Utime.Nano()+r.Stime.Nano()) / 1e6
	}
	b.ReportMetric((cpu(after)-cpu(before))/float64(b.N), "apt-cpu-ms/op")
	b.ReportMetric(float64(after.Maxrss)/1024, "apt-maxrss-MiB")
}

// BenchmarkParseStatus2000 is the in-process part alone.
func BenchmarkParseStatus2000(b *testing.B) {
	pkgs := make([]debrepo.Pkg, 2000)
	for i := range pkgs {
		pkgs[i] = debrepo.Pkg{Name: fmt.Sprintf("pkg%04d", i), Version: fmt.Sprintf("1.%d-1", i)}
	}
	st := debrepo.StatusFile(pkgs)
	b.SetBytes(int64(len(st)))
	b.ReportAllocs()
	for b.Loop() {
		inst, _, err := parseDpkgStatus(strings.NewReader(string(st)), "status")
		if err != nil || len(inst) != 2000 {
			b.Fatal(err, len(inst))
		}
	}
}

// TestParseNew: the packages a simulated upgrade newly installs (a new
// dependency of an update) are kept with their candidate version; updates
// and Conf lines are not.
func TestParseNew(t *testing.T) {
	t.Parallel()
	out := "Inst libhello (1.1 Test:stable [all])\nInst hello [1.0] (1.1 Test:stable [all])\nInst libc6:amd64 (2.36-9 Debian:12/stable [amd64])\nConf libhello (1.1 Test:stable [all])\nInst bad (notaversion!)\n"
	got := parseNew([]byte(out))
	want := []core.Package{{Name: "libhello", Version: "1.1", Arch: "all"}, {Name: "libc6", Version: "2.36-9", Arch: "amd64"}}
	if !slices.Equal(got, want) {
		t.Fatalf("parseNew = %+v, want %+v", got, want)
	}
}
