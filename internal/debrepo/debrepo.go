// Package debrepo makes real Debian repositories and dpkg/apt roots for
// tests: .deb files built with dpkg-deb, indexed with apt-ftparchive, and
// an apt root of its own (apt -o Dir=…) whose lists apt-get update filled,
// with a private dpkg status file. The host's dpkg and apt are never
// touched.
package debrepo

import (
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Pkg is one binary package.
type Pkg struct {
	Name, Version string
	Arch          string // "all" when empty
	Depends       string // the Depends field, if any
	// Postinst, when set, is the package's postinst maintainer script.
	Postinst string
	// Payload, when set, adds a file of that many pseudo-random
	// (incompressible, but the same for the same package) bytes.
	Payload int
}

// Suite is one repository (a flat one: "deb file:DIR ./").
type Suite struct {
	Name  string // Release's Suite, such as stable or stable-security
	Label string
	Pkgs  []Pkg
}

// Root is an apt and dpkg root.
type Root struct {
	Dir      string // apt's Dir
	Admindir string // dpkg's admin dir (holds status)
	Lists    string // apt's lists dir
	Repos    string // where the suites' files are
}

// Need skips the test unless the Debian tools it uses are installed; in CI
// (CI set) it fails instead: .ci/run installs them.
func Need(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"dpkg-deb", "apt-ftparchive", "apt-get"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s not found: .ci/run installs dpkg-dev and apt-utils", tool)
			}
			t.Skipf("%s not found: apt-get install dpkg-dev apt-utils", tool)
		}
	}
}

func run(t testing.TB, dir, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, stderr)
	}
	return out
}

// BuildDeb writes the .deb of p into dir and returns its path.
func BuildDeb(t testing.TB, dir string, p Pkg) string {
	t.Helper()
	arch := p.Arch
	if arch == "" {
		arch = "all"
	}
	src := filepath.Join(t.TempDir(), p.Name)
	if err := os.MkdirAll(filepath.Join(src, "DEBIAN"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(src, "usr/share/doc", p.Name), 0o755); err != nil {
		t.Fatal(err)
	}
	ctl := fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: %s\nMaintainer: relaymesh tests <tests@example.org>\nDescription: test package %s\n",
		p.Name, p.Version, arch, p.Name)
	if p.Depends != "" {
		ctl += "Depends: " + p.Depends + "\n"
	}
	if p.Postinst != "" {
		if err := os.WriteFile(filepath.Join(src, "DEBIAN/postinst"), []byte(p.Postinst), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(src, "DEBIAN/control"), []byte(ctl), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "usr/share/doc", p.Name, "README"), []byte(p.Name+" "+p.Version+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if p.Payload > 0 {
		b := make([]byte, p.Payload)
		_, _ = rand.NewChaCha8(sha256.Sum256([]byte(p.Name + "_" + p.Version))).Read(b)
		if err := os.WriteFile(filepath.Join(src, "usr/share/doc", p.Name, "payload"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, fmt.Sprintf("%s_%s_%s.deb", p.Name, strings.ReplaceAll(p.Version, ":", "%3a"), arch))
	run(t, dir, "dpkg-deb", "--root-owner-group", "-Zgzip", "--build", src, out)
	return out
}

// New makes an apt root under dir with the suites as its repositories and
// installed as dpkg's installed packages, and runs apt-get update in it.
func New(t testing.TB, dir string, installed []Pkg, suites ...Suite) *Root {
	t.Helper()
	r := &Root{Dir: filepath.Join(dir, "root"), Repos: filepath.Join(dir, "repos")}
	r.Admindir = filepath.Join(r.Dir, "var/lib/dpkg")
	r.Lists = filepath.Join(r.Dir, "var/lib/apt/lists")
	for _, d := range []string{r.Admindir, filepath.Join(r.Lists, "partial"), filepath.Join(r.Dir, "var/cache/apt/archives/partial"),
		filepath.Join(r.Dir, "etc/apt/apt.conf.d"), filepath.Join(r.Dir, "etc/apt/preferences.d"), filepath.Join(r.Dir, "etc/apt/sources.list.d"),
		filepath.Join(r.Dir, "var/log/apt")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	WriteStatus(t, r.Admindir, installed)
	var sources strings.Builder
	for _, sd := range BuildSuites(t, r.Repos, suites...) {
		fmt.Fprintf(&sources, "deb [trusted=yes] file:%s ./\n", sd)
	}
	if err := os.WriteFile(filepath.Join(r.Dir, "etc/apt/sources.list"), []byte(sources.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if len(suites) > 0 {
		run(t, dir, "apt-get", r.AptArgs("update")...)
	}
	return r
}

// BuildSuites writes each suite as a flat repository under repos/NAME
// (the .debs, Packages and Release) and returns the suites' dirs.
func BuildSuites(t testing.TB, repos string, suites ...Suite) []string {
	t.Helper()
	var dirs []string
	for _, s := range suites {
		sd := filepath.Join(repos, s.Name)
		if err := os.MkdirAll(sd, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, p := range s.Pkgs {
			BuildDeb(t, sd, p)
		}
		idx := run(t, sd, "apt-ftparchive", "packages", ".")
		if err := os.WriteFile(filepath.Join(sd, "Packages"), idx, 0o644); err != nil {
			t.Fatal(err)
		}
		label := s.Label
		if label == "" {
			label = "Test"
		}
		rel := run(t, sd, "apt-ftparchive", "-o", "APT::FTPArchive::Release::Suite="+s.Name,
			"-o", "APT::FTPArchive::Release::Origin=Test", "-o", "APT::FTPArchive::Release::Label="+label, "release", ".")
		if err := os.WriteFile(filepath.Join(sd, "Release"), rel, 0o644); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, sd)
	}
	return dirs
}

// Signer is an OpenPGP test key in a private GNUPGHOME; Keyring is its
// public key, as apt's signed-by and gpgv --keyring take it.
type Signer struct {
	Home, Keyring string
}

// NewSigner makes a fresh signing key under dir (gpg, no passphrase).
func NewSigner(t testing.TB, dir string) *Signer {
	t.Helper()
	for _, tool := range []string{"gpg", "gpgv"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s not found: .ci/run installs gnupg and gpgv", tool)
			}
			t.Skipf("%s not found: apt-get install gnupg gpgv", tool)
		}
	}
	s := &Signer{Home: filepath.Join(dir, "gnupg"), Keyring: filepath.Join(dir, "repo-key.gpg")}
	if err := os.MkdirAll(s.Home, 0o700); err != nil {
		t.Fatal(err)
	}
	s.gpg(t, dir, "--quick-gen-key", "relaymesh test repository <repo@example.org>", "ed25519", "sign", "never")
	s.gpg(t, dir, "--output", s.Keyring, "--export", "repo@example.org")
	return s
}

func (s *Signer) gpg(t testing.TB, dir string, args ...string) {
	t.Helper()
	run(t, dir, "gpg", append([]string{"--homedir", s.Home, "--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", ""}, args...)...)
}

// Sign writes InRelease, the clearsigned Release, in each suite dir.
func (s *Signer) Sign(t testing.TB, suiteDirs ...string) {
	t.Helper()
	for _, d := range suiteDirs {
		_ = os.Remove(filepath.Join(d, "InRelease"))
		s.gpg(t, d, "--yes", "--output", filepath.Join(d, "InRelease"), "--clearsign", filepath.Join(d, "Release"))
	}
}

// NewEmpty makes an apt and dpkg root under dir whose sources.list is
// sources and whose lists dir is empty (apt-get update never ran): a
// node that gets its lists through the mesh.
func NewEmpty(t testing.TB, dir string, installed []Pkg, sources string) *Root {
	t.Helper()
	r := New(t, dir, installed)
	if err := os.WriteFile(filepath.Join(r.Dir, "etc/apt/sources.list"), []byte(sources), 0o644); err != nil {
		t.Fatal(err)
	}
	return r
}

// AptArgs are apt-get's arguments for cmd in this root.
func (r *Root) AptArgs(cmd ...string) []string {
	return append([]string{"-q", "-o", "Dir=" + r.Dir, "-o", "Dir::State::status=" + filepath.Join(r.Admindir, "status"),
		"-o", "Debug::NoLocking=1"}, cmd...)
}

// WriteStatus writes a dpkg status file listing pkgs as installed.
func WriteStatus(t testing.TB, admindir string, pkgs []Pkg) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(admindir, "status"), StatusFile(pkgs), 0o644); err != nil {
		t.Fatal(err)
	}
}

// StatusFile is the text of a dpkg status file listing pkgs as installed.
func StatusFile(pkgs []Pkg) []byte {
	var b strings.Builder
	for _, p := range pkgs {
		arch := p.Arch
		if arch == "" {
			arch = "all"
		}
		fmt.Fprintf(&b, "Package: %s\nStatus: install ok installed\nPriority: optional\nSection: misc\nInstalled-Size: 12\n"+
			"Maintainer: relaymesh tests <tests@example.org>\nArchitecture: %s\nVersion: %s\nDescription: test package %s\n"+
			" A longer description\n .\n over two lines.\n\n", p.Name, arch, p.Version, p.Name)
	}
	return []byte(b.String())
}

// Clone makes another apt and dpkg root under dir with r's repositories
// and package lists (as if apt-get update had run there too) and
// installed as its installed packages.
func (r *Root) Clone(t testing.TB, dir string, installed []Pkg) *Root {
	t.Helper()
	c := &Root{Dir: filepath.Join(dir, "root"), Repos: r.Repos}
	c.Admindir = filepath.Join(c.Dir, "var/lib/dpkg")
	c.Lists = filepath.Join(c.Dir, "var/lib/apt/lists")
	if err := os.CopyFS(c.Dir, os.DirFS(r.Dir)); err != nil {
		t.Fatal(err)
	}
	WriteStatus(t, c.Admindir, installed)
	return c
}

// DpkgRoot makes an empty dpkg root (dpkg --root DIR) under dir and
// returns it; its status file is DIR/var/lib/dpkg/status.
func DpkgRoot(t testing.TB, dir string) string {
	t.Helper()
	root := filepath.Join(dir, "dpkgroot")
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"var/lib/dpkg/status", "var/lib/dpkg/available"} {
		if err := os.WriteFile(filepath.Join(root, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// Installed returns the version dpkg's status file under root says name
// is installed at, "" when it is not installed.
func Installed(t testing.TB, root, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "var/lib/dpkg/status"))
	if err != nil {
		t.Fatal(err)
	}
	for _, para := range strings.Split(string(b), "\n\n") {
		if !strings.Contains(para, "Package: "+name+"\n") || !strings.Contains(para, "Status: install ok installed\n") {
			continue
		}
		for _, l := range strings.Split(para, "\n") {
			if v, ok := strings.CutPrefix(l, "Version: "); ok {
				return v
			}
		}
	}
	return ""
}
