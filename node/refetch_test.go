package node

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/relaymesh/relaymesh/cache"
	"github.com/relaymesh/relaymesh/core"
)

// flippingStore is the node's real badger cache with a bad day injected
// under it: Get of one fragment returns its bytes with one bit flipped,
// the next `times` times (-1: always), as a flipped byte in the value log
// does.
type flippingStore struct {
	StoreKV
	mu    sync.Mutex
	c     cid.Cid
	times int
}

func (s *flippingStore) Get(c cid.Cid) ([]byte, error) {
	b, err := s.StoreKV.Get(c)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil || !c.Equals(s.c) || s.times == 0 {
		return b, err
	}
	if s.times > 0 {
		s.times--
	}
	b[len(b)/2] ^= 0x10
	return b, nil
}

func startFlipping(t *testing.T, f *fakeCoord, frag string, times int) (*Node, *flippingStore) {
	t.Helper()
	c, err := cid.Decode(frag)
	if err != nil {
		t.Fatal(err)
	}
	dir := enrollNode(t, f)
	cc := cache.DefaultConfig(filepath.Join(dir, cacheSubdir))
	cc.Logger = testLogger(t)
	b, err := cache.OpenBadger(cc)
	if err != nil {
		t.Fatal(err)
	}
	s := &flippingStore{StoreKV: b, c: c, times: times}
	return startNode(t, dir, func(cfg *Config) { cfg.Store = s }), s
}

// A fragment that reads back wrong at reassembly is dropped and fetched
// again from the mesh, and the order succeeds.
func TestCorruptFragmentAtReassemblyIsFetchedAgain(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	marker := filepath.Join(t.TempDir(), "ran")
	pkg := f.addPackage(markerScript(marker, 0), 300<<10) // 5+ fragments at 64 KiB
	bad := pkg.frags[2]
	n, _ := startFlipping(t, f, bad, 1)
	env := f.sign(f.order("o1", n.ID().String(), pkg, nil))
	if acc, err := f.push(testCtx(t), n, env); err != nil || acc != 1 {
		t.Fatalf("push: accepted %d, %v", acc, err)
	}
	f.waitState(t, "o1", core.StateSuccess)
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("install did not run: %v", err)
	}
	if c := f.servedCount()[bad]; c != 2 {
		t.Errorf("the corrupt fragment was served %d times, want 2 (download, then again at reassembly)", c)
	}
	if c := f.servedCount()[pkg.frags[0]]; c != 1 {
		t.Errorf("a good fragment was served %d times, want 1", c)
	}
}

// Bytes that are wrong again after fetching them once more fail the job,
// and nothing is installed.
func TestFragmentBadAgainFailsTheJob(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	marker := filepath.Join(t.TempDir(), "ran")
	pkg := f.addPackage(markerScript(marker, 0), 300<<10)
	bad := pkg.frags[1]
	n, _ := startFlipping(t, f, bad, -1)
	env := f.sign(f.order("o1", n.ID().String(), pkg, nil))
	if acc, err := f.push(testCtx(t), n, env); err != nil || acc != 1 {
		t.Fatalf("push: accepted %d, %v", acc, err)
	}
	got := f.waitState(t, "o1", core.ErrBadDigestSt)
	if !strings.Contains(got.Detail, "after fetching it again") {
		t.Errorf("detail %q does not say the fragment was fetched again", got.Detail)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the install ran on bytes that failed their CID")
	}
	if c := f.servedCount()[bad]; c != 2 {
		t.Errorf("the corrupt fragment was served %d times, want 2", c)
	}
}
