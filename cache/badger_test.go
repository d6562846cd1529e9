package cache

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/ipfs/go-cid"

	"github.com/relaymesh/relaymesh/core"
)

func testFragment(t testing.TB, seed byte, size int) (cid.Cid, []byte) {
	t.Helper()
	data := bytes.Repeat([]byte{seed, seed ^ 0x5a, 0x17}, size/3+1)[:size]
	return core.FragmentCID(data), data
}

func reopen(t *testing.T, b *Badger, cfg Config) *Badger {
	t.Helper()
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return openTestBadger(t, cfg)
}

func TestBadgerSurvivesReopen(t *testing.T) {
	t.Parallel()
	cfg := Config{Dir: t.TempDir(), QuotaBytes: 3 << 10}
	b := openTestBadger(t, cfg)
	c0, d0 := testFragment(t, 0, 1<<10)
	c1, d1 := testFragment(t, 1, 1<<10)
	c2, d2 := testFragment(t, 2, 1<<10)
	for i, c := range []cid.Cid{c0, c1, c2} {
		if err := b.Put(c, [][]byte{d0, d1, d2}[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Pin("order-1", c0); err != nil {
		t.Fatal(err)
	}
	if err := b.KV().Set("trust/seq", []byte("42")); err != nil {
		t.Fatal(err)
	}

	b = reopen(t, b, cfg)
	if used, _ := b.Usage(); used != 3<<10 {
		t.Fatalf("usage after reopen = %d, want %d", used, 3<<10)
	}
	if got, err := b.Get(c1); err != nil || !bytes.Equal(got, d1) {
		t.Fatalf("Get after reopen: %d bytes, %v", len(got), err)
	}
	if v, err := b.KV().Get("trust/seq"); err != nil || string(v) != "42" {
		t.Fatalf("KV after reopen = %q, %v", v, err)
	}
	// The pin survived: c0 is the oldest write but c2 is evicted instead
	// (c1 was just read).
	c3, d3 := testFragment(t, 3, 1<<10)
	if err := b.Put(c3, d3); err != nil {
		t.Fatal(err)
	}
	for c, want := range map[cid.Cid]bool{c0: true, c1: true, c2: false, c3: true} {
		if has, _ := b.Has(c); has != want {
			t.Errorf("Has(%s) = %v, want %v", c, has, want)
		}
	}

	if err := b.Unpin("order-1"); err != nil {
		t.Fatal(err)
	}
	b = reopen(t, b, cfg)
	if len(b.idx.pins) != 0 {
		t.Fatalf("pins after Unpin and reopen: %v", b.idx.pins)
	}
}

func TestBadgerReopenWithSmallerQuota(t *testing.T) {
	t.Parallel()
	cfg := Config{Dir: t.TempDir()}
	b := openTestBadger(t, cfg)
	var cids []cid.Cid
	for i := range 4 {
		c, d := testFragment(t, byte(i), 1<<10)
		if err := b.Put(c, d); err != nil {
			t.Fatal(err)
		}
		cids = append(cids, c)
	}
	if err := b.Pin("order-1", cids[0]); err != nil {
		t.Fatal(err)
	}
	cfg.QuotaBytes = 2 << 10
	b = reopen(t, b, cfg)
	// Oldest unpinned writes go first: cids[1], cids[2].
	for i, want := range []bool{true, false, false, true} {
		if has, _ := b.Has(cids[i]); has != want {
			t.Errorf("Has(cids[%d]) = %v, want %v", i, has, want)
		}
	}
}

func TestBadgerDetectsCorruptFragment(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		garbage []byte
		reopen  bool
	}{
		{"flipped byte", nil, false},
		{"other bytes on disk after reopen", []byte("not the fragment"), true},
		{"empty value", []byte{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := Config{Dir: t.TempDir()}
			b := openTestBadger(t, cfg)
			c, d := testFragment(t, 9, 8<<10)
			if err := b.Put(c, d); err != nil {
				t.Fatal(err)
			}
			garbage := tt.garbage
			if garbage == nil {
				garbage = bytes.Clone(d)
				garbage[100] ^= 0xff
			}
			err := b.db.Update(func(txn *badger.Txn) error { return txn.Set(fragKey(c), garbage) })
			if err != nil {
				t.Fatal(err)
			}
			if tt.reopen {
				b = reopen(t, b, cfg)
			}
			_, err = b.Get(c)
			if !errors.Is(err, core.ErrDigestMismatch) {
				t.Fatalf("Get of corrupt fragment: %v, want ErrDigestMismatch", err)
			}
			if has, _ := b.Has(c); has {
				t.Fatal("corrupt fragment still listed after Get")
			}
			if used, _ := b.Usage(); used != 0 {
				t.Fatalf("usage = %d after dropping the corrupt fragment", used)
			}
			_, err = b.Get(c)
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("second Get: %v, want ErrNotFound", err)
			}
			// A good copy can be stored again.
			if err := b.Put(c, d); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestBadgerOpenVerifies(t *testing.T) {
	t.Parallel()
	b := openTestBadger(t, Config{})
	c, d := testFragment(t, 7, 4<<10)
	if err := b.Put(c, d); err != nil {
		t.Fatal(err)
	}
	if err := b.db.Update(func(txn *badger.Txn) error { return txn.Set(fragKey(c), d[1:]) }); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Open(c); !errors.Is(err, core.ErrDigestMismatch) {
		t.Fatalf("Open of corrupt fragment: %v, want ErrDigestMismatch", err)
	}
}

// A KV write is on disk when Set returns: a copy of the directory taken
// while the cache is still open (as after a crash) has it.
func TestBadgerKVSetSurvivesCrash(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b := openTestBadger(t, Config{Dir: dir})
	if err := b.KV().Set("trust/seq", []byte("7")); err != nil {
		t.Fatal(err)
	}
	err := b.KV().Update(func(tx KVTx) error {
		if err := tx.Set("outbox/1", []byte("report")); err != nil {
			return err
		}
		return tx.Set("outbox/2", []byte("report"))
	})
	if err != nil {
		t.Fatal(err)
	}
	crashed := t.TempDir()
	copyDir(t, dir, crashed)

	c := openTestBadger(t, Config{Dir: crashed})
	for _, k := range []string{"trust/seq", "outbox/1", "outbox/2"} {
		if _, err := c.KV().Get(k); err != nil {
			t.Errorf("after crash: Get(%q): %v", k, err)
		}
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == "LOCK" || e.IsDir() {
			continue
		}
		src, err := os.Open(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		dst, err := os.Create(filepath.Join(to, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.Copy(dst, src)
		src.Close()
		if cerr := dst.Close(); err != nil || cerr != nil {
			t.Fatalf("copy %s: %v %v", e.Name(), err, cerr)
		}
	}
}

func TestBadgerGC(t *testing.T) {
	t.Parallel()
	cfg := Config{Dir: t.TempDir(), GCInterval: time.Millisecond} // background GC races the test
	b := openTestBadger(t, cfg)
	for i := range 8 {
		c, d := testFragment(t, byte(i), 64<<10)
		if err := b.Put(c, d); err != nil {
			t.Fatal(err)
		}
		if err := b.Delete(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.GC(); err != nil {
		t.Fatalf("GC: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.GC(); !errors.Is(err, ErrClosed) {
		t.Fatalf("GC after Close: %v, want ErrClosed", err)
	}
	// goleak in TestMain checks that Close stopped the GC goroutine.
}

func TestBadgerInMemoryStore(t *testing.T) {
	t.Parallel()
	b := openTestBadger(t, TestConfig(0))
	c, d := testFragment(t, 1, 64<<10)
	if err := b.Put(c, d); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(c); err != nil || !bytes.Equal(got, d) {
		t.Fatalf("Get: %d bytes, %v", len(got), err)
	}
	if err := b.GC(); err != nil {
		t.Fatalf("GC in memory: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"default", DefaultConfig("/var/lib/relaymesh/cache"), true},
		{"test", TestConfig(1 << 20), true},
		{"no dir", Config{}, false},
		{"negative quota", Config{Dir: "d", QuotaBytes: -1}, false},
		{"negative GC interval", Config{Dir: "d", GCInterval: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.cfg.Validate()
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrBadConfig)) {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
	if _, err := OpenBadger(Config{}); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("OpenBadger(Config{}) = %v, want ErrBadConfig", err)
	}
}

func TestKeyLayout(t *testing.T) {
	t.Parallel()
	c, _ := testFragment(t, 1, 10)
	for _, owner := range []string{"a", "ab", "order/7", string(make([]byte, 300))} {
		o, got, err := parsePinKey(pinKey(owner, c))
		if err != nil || o != owner || got != c {
			t.Errorf("parsePinKey(pinKey(%q)) = %q, %s, %v", owner, o, got, err)
		}
	}
	if bytes.HasPrefix(pinKey("ab", c), pinOwnerPrefix("a")) {
		t.Error(`pins of owner "ab" match owner "a"'s prefix`)
	}
	if _, _, err := parsePinKey([]byte("p/\x09ab")); !errors.Is(err, ErrCorruptDB) {
		t.Errorf("short pin key: %v, want ErrCorruptDB", err)
	}
}
