package node

import (
	"strings"
	"testing"

	"github.com/relaymesh/relaymesh/core"
)

// A properly signed order for a 1 TiB package (one 64 MiB fragment listed
// 16,384 times) is refused with ERR_DOWNLOAD_PACK and the numbers, and not
// one fragment is asked for.
func TestHugeManifestRefusedBeforeFetching(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	n := startNode(t, enrollNode(t, f), nil)
	blob := []byte("one fragment, listed 16,384 times")
	frag := core.FragmentCID(blob)
	if err := f.store.Put(frag, blob); err != nil {
		t.Fatal(err)
	}
	const count = 16384
	pkg := f.addPackageWith(markerScript(t.TempDir()+"/ran", 0), 10, func(m *core.Manifest) {
		m.FragmentSize = core.MaxFragmentSize
		m.Size = count * core.MaxFragmentSize
		m.Fragments = make([]string, count)
		for i := range m.Fragments {
			m.Fragments[i] = frag.String()
		}
	})
	env := f.sign(f.order("huge", n.ID().String(), pkg, nil))
	if acc, err := f.push(testCtx(t), n, env); err != nil || acc != 1 {
		t.Fatalf("push: accepted %d, %v", acc, err)
	}
	got := f.waitState(t, "huge", core.ErrDownloadPack)
	for _, want := range []string{"1099511627776 bytes", "at most 8589934592"} {
		if !strings.Contains(got.Detail, want) {
			t.Errorf("detail %q does not say %q", got.Detail, want)
		}
	}
	if c := f.servedCount()[frag.String()]; c != 0 {
		t.Errorf("the fragment was served %d times before the refusal", c)
	}
}

func TestTooManyFragmentsRefused(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	n := startNode(t, enrollNode(t, f), func(c *Config) { c.MaxPackageFragments = 2 })
	pkg := f.addPackage(markerScript(t.TempDir()+"/ran", 0), 300<<10) // 5+ fragments at 64 KiB
	env := f.sign(f.order("many", n.ID().String(), pkg, nil))
	if acc, err := f.push(testCtx(t), n, env); err != nil || acc != 1 {
		t.Fatalf("push: accepted %d, %v", acc, err)
	}
	got := f.waitState(t, "many", core.ErrDownloadPack)
	if !strings.Contains(got.Detail, "at most 2 (max_package_fragments)") {
		t.Errorf("detail %q does not name the fragment limit", got.Detail)
	}
	for _, c := range pkg.frags {
		if f.servedCount()[c] != 0 {
			t.Errorf("fragment %s was served before the refusal", c)
		}
	}
}
