package runner

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/relaymesh/relaymesh/core"
)

// watchedFrags is memFrags calling onGet before it answers.
type watchedFrags struct {
	*memFrags
	mu    sync.Mutex
	onGet func(c cid.Cid)
}

func (w *watchedFrags) Get(c cid.Cid) ([]byte, error) {
	w.mu.Lock()
	fn := w.onGet
	w.mu.Unlock()
	if fn != nil {
		fn(c)
	}
	return w.memFrags.Get(c)
}

// filesUnder lists the regular files under dir, relative to it.
func filesUnder(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

// TestTarGzStreamsFromFragments: a launch package's tar.gz is extracted
// while its fragments are read — the first file is on disk before the last
// fragment is asked for — and no reassembled archive is ever written; the
// command runs after the whole archive was checked.
func TestTarGzStreamsFromFragments(t *testing.T) {
	f := newFixture(t)
	w := &watchedFrags{memFrags: f.frags}
	r, err := New(f.r.cfg, w, f.inst)
	if err != nil {
		t.Fatal(err)
	}
	f.r = r
	p := f.pkg(core.Manifest{Name: "streamed", Action: core.ActionLaunch, Command: f.sh(`test -s first.txt && test -s big.bin && touch "$1/ran"`)},
		tarGz(t, file{name: "first.txt", body: "hello"}, file{name: "big.bin", body: noise(300 << 10)}))
	frags := p.Manifest.FragmentCIDs()
	if len(frags) < 3 {
		t.Fatalf("archive spans %d fragments, want at least 3", len(frags))
	}
	last := frags[len(frags)-1]
	var sawFirst, sawArchive bool
	var seen []string
	w.onGet = func(c cid.Cid) {
		if !c.Equals(last) {
			return
		}
		seen = filesUnder(t, f.tmp)
		for _, name := range seen {
			sawFirst = sawFirst || strings.HasSuffix(name, "pkg/first.txt")
			sawArchive = sawArchive || filepath.Base(name) == "archive"
		}
	}
	got := f.install(t.Context(), Request{OrderID: "s", Packages: []Package{p}})
	if res := got.results[0]; res.State != core.StateSuccess || !f.exists("ran") {
		t.Fatalf("streamed install: %+v (ran %v)", res, f.exists("ran"))
	}
	if !sawFirst || sawArchive {
		t.Errorf("files in the temp dir when the last fragment was read: %v; want pkg/first.txt already extracted and no archive file", seen)
	}
}

// TestStoreIsNotStreamed: a store package whose fragment is lost midway
// fails ERR_BUILD and leaves nothing in its store path: the store path only
// ever gets a whole, checked archive.
func TestStoreIsNotStreamed(t *testing.T) {
	f := newFixture(t)
	p := f.pkg(core.Manifest{Name: "store", Action: core.ActionStore, StorePath: f.path("store")},
		tarGz(t, file{name: "first.txt", body: "hello"}, file{name: "big.bin", body: noise(300 << 10)}))
	f.frags.del(p.Manifest.FragmentCIDs()[2])
	got := f.install(t.Context(), Request{OrderID: "st", Packages: []Package{p}})
	if res := got.results[0]; res.State != core.ErrBuild {
		t.Fatalf("store with a lost fragment: %+v, want ERR_BUILD", res)
	}
	if files := filesUnder(t, f.path("store")); len(files) != 0 {
		t.Errorf("store path holds %v after the failed install, want nothing", files)
	}
	if _, err := os.Stat(f.path("store")); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
}
