package coordinator

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/relaymesh/relaymesh/coordinator/aptmirror"
	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/internal/debrepo"
)

// patchRepo is a signed repository on loopback: hello 1.0 and 1.1 (which
// needs the new libhello) in stable, openssl 1.1 in stable-security; and
// a coordinator configured with it, with node a1 enrolled and scanned
// (hello 1.0 and openssl 1.0 installed, both updates offered).
type patchRepo struct {
	h      *harness
	a1     *fakeNode
	suites []string
	srv    *httptest.Server
	signer *debrepo.Signer
}

func newPatchRepo(t *testing.T) *patchRepo {
	t.Helper()
	debrepo.Need(t)
	dir := t.TempDir()
	p := &patchRepo{}
	p.suites = debrepo.BuildSuites(t, filepath.Join(dir, "repos"),
		debrepo.Suite{Name: "stable", Pkgs: []debrepo.Pkg{{Name: "hello", Version: "1.0"}, {Name: "hello", Version: "1.1", Depends: "libhello (>= 1.1)"},
			{Name: "libhello", Version: "1.1"}}},
		debrepo.Suite{Name: "stable-security", Pkgs: []debrepo.Pkg{{Name: "openssl", Version: "1.1"}}})
	p.signer = debrepo.NewSigner(t, dir)
	p.signer.Sign(t, p.suites...)
	p.srv = httptest.NewServer(http.FileServer(http.Dir(filepath.Join(dir, "repos"))))
	t.Cleanup(p.srv.Close)
	var repos []aptmirror.Repo
	for _, s := range []string{"stable", "stable-security"} {
		repos = append(repos, aptmirror.Repo{URL: p.srv.URL + "/" + s, Suite: "./", Keyring: p.signer.Keyring})
	}
	p.h = newHarnessWith(t, func(c *Config) { c.Apt.Repositories = repos })
	p.a1 = newFakeNode(t, p.h, "a1")
	p.a1.mustEnroll(p.h.token(TokenRequest{Site: "a"}))
	n := p.a1
	n.seq++
	r := &core.ScanReport{Schema: core.ScanSchema, NodeID: n.ID(), Seq: n.seq, Time: p.h.clk.Now().UTC().Truncate(1e9),
		Inventory: core.Inventory{Manager: "dpkg", InstalledCount: 2,
			Installed: []core.Package{{Name: "hello", Version: "1.0", Arch: "all"}, {Name: "openssl", Version: "1.0", Arch: "all"}},
			Updates: []core.Update{{Name: "hello", Arch: "all", Installed: "1.0", Candidate: "1.1", Suites: []string{"stable"}},
				{Name: "openssl", Arch: "all", Installed: "1.0", Candidate: "1.1", Security: true, Suites: []string{"stable-security"}}},
			New: []core.Package{{Name: "libhello", Version: "1.1", Arch: "all"}}}}
	e, err := core.SignScan(r, n.key)
	if err != nil {
		t.Fatal(err)
	}
	n.sendScan(core.AckApplied, e)
	return p
}

// archiveFiles lists the files of a published apt package's archive.
func (p *patchRepo) archiveFiles(id string) []string {
	p.h.t.Helper()
	rec, err := p.h.c.Package(id)
	if err != nil {
		p.h.t.Fatal(err)
	}
	pr, pw := io.Pipe()
	go func() {
		for _, f := range rec.Manifest.Fragments {
			c, _ := core.ParseCID(f)
			b, err := p.h.c.store.Get(c)
			if err != nil {
				pw.CloseWithError(err)
				return
			}
			_, _ = pw.Write(b)
		}
		pw.Close()
	}()
	zr, err := gzip.NewReader(pr)
	if err != nil {
		p.h.t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var names []string
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, h.Name)
	}
	_, _ = io.Copy(io.Discard, pr)
	return names
}

// TestPatchDeploymentResolves: --updates security makes the indexes
// package and one apt package with openssl's .deb (an upgrade: only where
// installed); hello by name carries its new dependency libhello.
func TestPatchDeploymentResolves(t *testing.T) {
	p := newPatchRepo(t)
	v, err := p.h.cl.CreateDeployment(p.h.ctx, DeployRequest{Updates: []string{"security"}, All: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Packages) != 2 {
		t.Fatalf("packages %v, want the indexes and openssl", v.Packages)
	}
	lists := p.archiveFiles(v.Packages[0])
	if len(lists) != 4 || !strings.HasPrefix(lists[0], "lists/") {
		t.Errorf("indexes package holds %q", lists)
	}
	if got := p.archiveFiles(v.Packages[1]); !slices.Equal(got, []string{"upgrade-only", "debs/openssl_1.1_all.deb"}) {
		t.Errorf("openssl package holds %q", got)
	}
	rec, _ := p.h.c.Package(v.Packages[1])
	if m := rec.Manifest; m.Name != "openssl" || m.Version != "1.1" || m.Action != core.ActionApt || m.OS != "linux" {
		t.Errorf("manifest %+v", m)
	}
	v, err = p.h.cl.CreateDeployment(p.h.ctx, DeployRequest{Updates: []string{"hello"}, All: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.archiveFiles(v.Packages[1]); !slices.Equal(got, []string{"upgrade-only", "debs/hello_1.1_all.deb", "debs/libhello_1.1_all.deb"}) {
		t.Errorf("hello package holds %q", got)
	}
	// Bulk: one package, with the replaced versions the repository still
	// offers (hello 1.0; openssl 1.0 is gone) for the node's rollback.
	v, err = p.h.cl.CreateDeployment(p.h.ctx, DeployRequest{Updates: []string{"all"}, All: true, Bulk: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"upgrade-only", "debs/hello_1.1_all.deb", "debs/libhello_1.1_all.deb", "debs/openssl_1.1_all.deb", "rollback/hello_1.0_all.deb"}
	if got := p.archiveFiles(v.Packages[1]); len(v.Packages) != 2 || !slices.Equal(got, want) {
		t.Errorf("bulk: %d packages, the second holds %q, want %q", len(v.Packages), got, want)
	}
}

// TestPatchDeploymentBadInput: each refusal says what was wrong, with the
// value, and signs nothing.
func TestPatchDeploymentBadInput(t *testing.T) {
	p := newPatchRepo(t)
	create := func(sel ...string) error {
		_, err := p.h.cl.CreateDeployment(p.h.ctx, DeployRequest{Updates: sel, All: true})
		return err
	}
	for _, tt := range []struct {
		name string
		sel  []string
		is   error
		want string
	}{
		{"name no repository has", []string{"nosuch"}, ErrBadRequest, `no configured repository has a package "nosuch"`},
		{"version not available", []string{"hello=9.9"}, ErrBadRequest, "hello 9.9: the repositories offer 1.0, 1.1"},
		{"not a selector", []string{"Bad Name"}, ErrBadRequest, `update "Bad Name": want security, all, lists, NAME or NAME=VERSION`},
		{"lists with others", []string{"lists", "security"}, ErrBadRequest, "lists goes alone"},
	} {
		if err := create(tt.sel...); !errors.Is(err, tt.is) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}

	// A .deb whose bytes do not match the index.
	deb := filepath.Join(p.suites[1], "openssl_1.1_all.deb")
	good, _ := os.ReadFile(deb)
	bad := slices.Clone(good)
	bad[len(bad)-1] ^= 1
	if err := os.WriteFile(deb, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := create("security"); !errors.Is(err, ErrUpstream) || !strings.Contains(err.Error(), "hash mismatch: openssl 1.1") {
		t.Errorf("tampered .deb: %v", err)
	}
	_ = os.WriteFile(deb, good, 0o644)

	// An InRelease signed by another key.
	inrel := filepath.Join(p.suites[0], "InRelease")
	signed, _ := os.ReadFile(inrel)
	debrepo.NewSigner(t, t.TempDir()).Sign(t, p.suites[0])
	if err := create("security"); !errors.Is(err, ErrUpstream) || !strings.Contains(err.Error(), "signature does not verify") {
		t.Errorf("foreign signature: %v", err)
	}
	_ = os.WriteFile(inrel, signed, 0o644)

	// A target never scanned.
	b1 := newFakeNode(t, p.h, "b1")
	b1.mustEnroll(p.h.token(TokenRequest{Site: "b"}))
	if err := create("security"); !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "1 targets have no good scan (b1)") {
		t.Errorf("unscanned target: %v", err)
	}
	if _, err := p.h.cl.CreateDeployment(p.h.ctx, DeployRequest{Updates: []string{"openssl"}, Nodes: []string{"a1"}}); err != nil {
		t.Errorf("a1 alone: %v", err)
	}

	// The repository down.
	p.srv.Close()
	if err := create("lists"); !errors.Is(err, ErrUpstream) || !strings.Contains(err.Error(), "repository unreachable: "+p.srv.URL) {
		t.Errorf("repository down: %v", err)
	}

	// No repository configured.
	h := newHarness(t)
	if _, err := h.cl.CreateDeployment(h.ctx, DeployRequest{Updates: []string{"security"}, All: true}); !errors.Is(err, ErrBadRequest) ||
		!strings.Contains(err.Error(), "apt: repositories:") {
		t.Errorf("no repositories: %v", err)
	}
	if n := len(p.h.c.Deployments()); n != 1 {
		t.Errorf("%d deployments recorded, want only a1's", n)
	}
}

// TestLoadConfigApt: the repositories come from config.yaml's apt:
// section; one without a keyring is refused naming the field.
func TestLoadConfigApt(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := Init(dir); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "debian.gpg")
	if err := os.WriteFile(key, []byte("key"), 0o644); err != nil {
		t.Fatal(err)
	}
	write := func(s string) {
		if err := os.WriteFile(filepath.Join(dir, FileConfig), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("apt:\n  repositories:\n    - url: http://deb.debian.org/debian-security\n      suite: bookworm-security\n      components: [main]\n      keyring: " + key + "\n  timeout: 2m\n")
	c, err := LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Apt.Repositories; len(r) != 1 || r[0].Suite != "bookworm-security" || r[0].Components[0] != "main" || c.Apt.Timeout != 2*60e9 {
		t.Fatalf("apt config %+v", c.Apt)
	}
	write("apt:\n  repositories:\n    - url: http://deb.debian.org/debian-security\n      suite: bookworm-security\n      components: [main]\n")
	if _, err := LoadConfig(dir); !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), "keyring: required") {
		t.Fatalf("no keyring: %v", err)
	}
}
