package aptmirror

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/relaymesh/relaymesh/internal/debrepo"
)

// testRepo is two signed flat suites served over HTTP on loopback.
type testRepo struct {
	repos   string
	suites  []string
	signer  *debrepo.Signer
	srv     *httptest.Server
	cfg     Config
	sources string
}

func newTestRepo(t *testing.T) *testRepo {
	t.Helper()
	debrepo.Need(t)
	dir := t.TempDir()
	tr := &testRepo{repos: filepath.Join(dir, "repos")}
	tr.suites = debrepo.BuildSuites(t, tr.repos,
		debrepo.Suite{Name: "stable", Pkgs: []debrepo.Pkg{
			{Name: "hello", Version: "1.0"}, {Name: "hello", Version: "1.1", Depends: "libhello (>= 1.1)"}, {Name: "libhello", Version: "1.1"},
		}},
		debrepo.Suite{Name: "stable-security", Pkgs: []debrepo.Pkg{{Name: "openssl", Version: "1.1"}}},
	)
	tr.signer = debrepo.NewSigner(t, dir)
	tr.signer.Sign(t, tr.suites...)
	tr.srv = httptest.NewServer(http.FileServer(http.Dir(tr.repos)))
	t.Cleanup(tr.srv.Close)
	for _, s := range []string{"stable", "stable-security"} {
		tr.cfg.Repositories = append(tr.cfg.Repositories, Repo{URL: tr.srv.URL + "/" + s, Suite: "./", Keyring: tr.signer.Keyring})
		tr.sources += "deb [signed-by=" + tr.signer.Keyring + "] " + tr.srv.URL + "/" + s + " ./\n"
	}
	return tr
}

func TestMirrorVerifiesAndFetches(t *testing.T) {
	tr := newTestRepo(t)
	m, err := New(tr.cfg, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	snap, err := m.Refresh(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	e, err := snap.Find("hello", "", "amd64")
	if err != nil || e.Version != "1.1" || !slices.Contains(e.Depends, "libhello") {
		t.Fatalf("Find hello = %+v, %v; want 1.1 depending on libhello", e, err)
	}
	b, err := m.FetchDeb(context.Background(), e)
	if err != nil || int64(len(b)) != e.Size {
		t.Fatalf("FetchDeb: %d bytes, %v", len(b), err)
	}

	// The lists are named as apt names them: a root whose apt-get update
	// ran over the same sources has the same files.
	ref := debrepo.NewEmpty(t, t.TempDir(), nil, tr.sources)
	if out, err := exec.Command("apt-get", ref.AptArgs("-o", "Acquire::GzipIndexes=false", "update")...).CombinedOutput(); err != nil {
		t.Fatalf("apt-get update: %v: %s", err, out)
	}
	var want []string
	ents, _ := os.ReadDir(ref.Lists)
	for _, de := range ents {
		if de.Type().IsRegular() && de.Name() != "lock" {
			want = append(want, de.Name())
		}
	}
	var got []string
	for _, l := range snap.Lists {
		got = append(got, l.Name)
		ref, err := os.ReadFile(filepath.Join(ref.Lists, l.Name))
		if err != nil || string(ref) != string(l.Data) {
			t.Errorf("list %s differs from apt's own (%v)", l.Name, err)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("list names %q, apt-get update wrote %q", got, want)
	}

	// A second fetch comes from the cache of verified .debs; a cached
	// file that changed is not taken.
	tr.srv.Close()
	if b2, err := m.FetchDeb(context.Background(), e); err != nil || string(b2) != string(b) {
		t.Fatalf("FetchDeb from the cache: %v", err)
	}
	cached := filepath.Join(m.cache, e.SHA256+".deb")
	b[0] ^= 1
	if err := os.WriteFile(cached, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := m.FetchDeb(context.Background(), e); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("FetchDeb with a changed cached file and the repository down: %v", err)
	}
}

func TestMirrorBadInput(t *testing.T) {
	t.Run("name no repository has", func(t *testing.T) {
		tr := newTestRepo(t)
		m, _ := New(tr.cfg, "")
		snap, err := m.Refresh(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := snap.Find("nosuch", "", ""); !errors.Is(err, ErrNoPackage) || !strings.Contains(err.Error(), `"nosuch"`) {
			t.Fatalf("Find nosuch: %v", err)
		}
		if _, err := snap.Find("hello", "9.9", ""); !errors.Is(err, ErrNoVersion) || !strings.Contains(err.Error(), "1.0, 1.1") {
			t.Fatalf("Find hello 9.9: %v", err)
		}
	})
	t.Run("bad signature", func(t *testing.T) {
		tr := newTestRepo(t)
		other := debrepo.NewSigner(t, t.TempDir())
		for i := range tr.cfg.Repositories {
			tr.cfg.Repositories[i].Keyring = other.Keyring
		}
		m, _ := New(tr.cfg, "")
		if _, err := m.Refresh(context.Background()); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("Refresh with another key: %v", err)
		}
	})
	t.Run("index changed after signing", func(t *testing.T) {
		tr := newTestRepo(t)
		p := filepath.Join(tr.suites[0], "Packages")
		b, _ := os.ReadFile(p)
		if err := os.WriteFile(p, append(b, "\n"...), 0o644); err != nil {
			t.Fatal(err)
		}
		m, _ := New(tr.cfg, "")
		if _, err := m.Refresh(context.Background()); !errors.Is(err, ErrHashMismatch) || !strings.Contains(err.Error(), "Packages") {
			t.Fatalf("Refresh: %v", err)
		}
	})
	t.Run("deb whose hash does not match the index", func(t *testing.T) {
		tr := newTestRepo(t)
		m, _ := New(tr.cfg, "")
		snap, err := m.Refresh(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		e, _ := snap.Find("openssl", "1.1", "")
		deb := filepath.Join(tr.suites[1], filepath.Base(e.Filename))
		b, _ := os.ReadFile(deb)
		b[len(b)-1] ^= 1
		if err := os.WriteFile(deb, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := m.FetchDeb(context.Background(), e); !errors.Is(err, ErrHashMismatch) || !strings.Contains(err.Error(), "openssl 1.1") {
			t.Fatalf("FetchDeb: %v", err)
		}
		if err := os.WriteFile(deb, b[:len(b)/2], 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := m.FetchDeb(context.Background(), e); !errors.Is(err, ErrHashMismatch) {
			t.Fatalf("FetchDeb of a truncated .deb: %v", err)
		}
	})
	t.Run("repository down", func(t *testing.T) {
		tr := newTestRepo(t)
		tr.srv.Close()
		m, _ := New(tr.cfg, "")
		if _, err := m.Refresh(context.Background()); !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), tr.srv.URL) {
			t.Fatalf("Refresh: %v", err)
		}
	})
	t.Run("config", func(t *testing.T) {
		for _, r := range []Repo{{URL: "ftp://x", Suite: "./", Keyring: "/dev/null"}, {URL: "http://x", Suite: "stable", Keyring: "/dev/null"},
			{URL: "http://x", Suite: "./"}, {URL: "http://x", Suite: "./", Keyring: "/nonexistent"}} {
			if _, err := New(Config{Repositories: []Repo{r}}, ""); !errors.Is(err, ErrConfig) {
				t.Errorf("New(%+v): %v", r, err)
			}
		}
	})
}
