//go:build unix

package runner

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"go.uber.org/goleak"

	"github.com/relaymesh/relaymesh/core"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var errNotFound = errors.New("fake: fragment not found")

// memFrags is an in-memory Fragments that, unlike the real store, does not
// verify what it is given, so tests can tamper with it.
type memFrags struct {
	mu sync.Mutex
	m  map[cid.Cid][]byte
}

func (s *memFrags) Get(c cid.Cid) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.m[c]
	if !ok {
		return nil, fmt.Errorf("%w: %s", errNotFound, c)
	}
	return b, nil
}

func (s *memFrags) put(c cid.Cid, b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[c] = bytes.Clone(b)
}

func (s *memFrags) del(c cid.Cid) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, c)
}

// memInstalled is a map-based Installed: package ID to order ID, and
// package name to the version installed and its package ID.
type memInstalled struct {
	mu       sync.Mutex
	m        map[string]string
	versions map[string][2]string
}

func (s *memInstalled) IsInstalled(pkg string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.m[pkg]
	return ok, nil
}

func (s *memInstalled) MarkInstalled(p Package, order string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[p.ID] = order
	if s.versions == nil {
		s.versions = map[string][2]string{}
	}
	s.versions[p.Manifest.Name] = [2]string{p.Manifest.Version, p.ID}
	return nil
}

func (s *memInstalled) Unmark(p Package) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, p.ID)
	if v, ok := s.versions[p.Manifest.Name]; ok && v[1] == p.ID {
		delete(s.versions, p.Manifest.Name)
	}
	return nil
}

func (s *memInstalled) InstalledVersion(name string) (string, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.versions[name]
	return v[0], v[1], nil
}

func (s *memInstalled) order(pkg string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.m[pkg]
	return o, ok
}

// fixture is one test's node: fragments, installed record, a runner with its
// own TempDir, and a directory (out) where commands leave marker files.
type fixture struct {
	t     *testing.T
	frags *memFrags
	inst  *memInstalled
	base  string // parent of tmp and out
	tmp   string // Config.TempDir
	out   string
	r     *Runner
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureWith(t, nil)
}

// newFixtureWith is newFixture with mut changing the runner's config.
func newFixtureWith(t *testing.T, mut func(*Config)) *fixture {
	t.Helper()
	base := t.TempDir()
	f := &fixture{
		t:     t,
		frags: &memFrags{m: make(map[cid.Cid][]byte)},
		inst:  &memInstalled{m: make(map[string]string)},
		base:  base,
		tmp:   filepath.Join(base, "node", "tmp"),
		out:   filepath.Join(base, "out"),
	}
	if err := os.MkdirAll(f.out, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		TempDir:            f.tmp,
		RebootCommand:      []string{"sh", "-c", `touch "$MARKER"`},
		RebootRequiredFile: filepath.Join(base, "out", "reboot-required"),
		Env:                []string{"MARKER=" + f.path("rebooted"), "RELAYMESH_NODE_ID=node-1"},
		DefaultTimeout:     time.Minute,
		Logger:             slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mut != nil {
		mut(&cfg)
	}
	r, err := New(cfg, f.frags, f.inst)
	if err != nil {
		t.Fatal(err)
	}
	f.r = r
	return f
}

// path is a path under out.
func (f *fixture) path(name string) string { return filepath.Join(f.out, name) }

// pkg completes m (schema, version, platform), chunks archive (if not nil)
// into the fragment store and returns the package.
func (f *fixture) pkg(m core.Manifest, archive []byte) Package {
	f.t.Helper()
	m.Schema = core.ManifestSchema
	if m.Version == "" {
		m.Version = "1.0"
	}
	m.OS, m.Arch = "linux", "any"
	if archive != nil {
		info, err := core.Chunk(bytes.NewReader(archive), core.MinFragmentSize, func(c cid.Cid, data []byte) error {
			f.frags.put(c, data)
			return nil
		})
		if err != nil {
			f.t.Fatal(err)
		}
		m.Size, m.Digest, m.FragmentSize = info.Size, info.Digest, core.MinFragmentSize
		for _, c := range info.Fragments {
			m.Fragments = append(m.Fragments, c.String())
		}
	}
	return pkgOf(f.t, &m)
}

// pkgOf names m by its CID.
func pkgOf(t *testing.T, m *core.Manifest) Package {
	t.Helper()
	id, _, err := m.ID()
	if err != nil {
		t.Fatal(err)
	}
	return Package{ID: id.String(), Manifest: m}
}

// run is one Install call and what its callbacks saw.
type run struct {
	results  []Result
	rebooted bool
	started  []string
	reported []Result
}

func (f *fixture) install(ctx context.Context, req Request) run {
	f.t.Helper()
	var r run
	r.results, r.rebooted = f.r.Install(ctx, req,
		func(pkg string) { r.started = append(r.started, pkg) },
		func(res Result) { r.reported = append(r.reported, res) })
	f.assertTempEmpty()
	return r
}

// assertTempEmpty checks that every per-install temp dir was removed.
func (f *fixture) assertTempEmpty() {
	f.t.Helper()
	ents, err := os.ReadDir(f.tmp)
	if err != nil {
		f.t.Fatal(err)
	}
	if len(ents) != 0 {
		f.t.Errorf("TempDir %s not empty afterwards: %v", f.tmp, ents)
	}
}

func (f *fixture) exists(name string) bool {
	_, err := os.Stat(f.path(name))
	return err == nil
}

func (f *fixture) read(name string) string {
	f.t.Helper()
	b, err := os.ReadFile(f.path(name))
	if err != nil {
		f.t.Fatalf("marker %s: %v", name, err)
	}
	return strings.TrimSpace(string(b))
}

// file is one tar entry.
type file struct {
	name string
	body string
	mode int64
	typ  byte // tar.TypeReg when 0
	link string
}

// tarGz builds a tar.gz archive.
func tarGz(t testing.TB, files ...file) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, fl := range files {
		h := &tar.Header{Name: fl.name, Mode: fl.mode, Typeflag: fl.typ, Linkname: fl.link, Size: int64(len(fl.body))}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(fl.body)); err != nil && h.Size > 0 {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// noise is n incompressible bytes, so an archive holding them spans several
// fragments.
func noise(n int) string {
	r := rand.New(rand.NewChaCha8([32]byte{1}))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return string(b)
}

// sh is a command running script with sh; $1 is the fixture's out dir.
func (f *fixture) sh(script string) []string {
	return []string{"sh", "-c", script, "sh", f.out}
}

// tWriter sends log lines to t.Log.
type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func states(rs []Result) []core.State {
	out := make([]core.State, len(rs))
	for i, r := range rs {
		out[i] = r.State
	}
	return out
}

func assertStates(t *testing.T, rs []Result, want ...core.State) {
	t.Helper()
	if got := states(rs); !slices.Equal(got, want) {
		for _, r := range rs {
			t.Logf("result %s: %s exit %d detail %q output %q", r.Package, r.State, r.ExitCode, r.Detail, r.Output)
		}
		t.Fatalf("states %v, want %v", got, want)
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "") == s }
