package cache

import (
	"errors"
	"io"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/relaymesh/relaymesh/core"
)

// The hot set serves bytes hashed when they entered; a fragment that left
// it is read from disk and hashed again, so disk corruption is still
// caught before anything is served.
func TestHotSetServesVerifiedBytesAndForgets(t *testing.T) {
	t.Parallel()
	b := openTestBadger(t, Config{Dir: t.TempDir(), HotBytes: 64 << 10})
	c, d := testFragment(t, 1, 32<<10)
	if err := b.Put(c, d); err != nil {
		t.Fatal(err)
	}
	d[0] ^= 0xff // the caller reuses its buffer: the cache kept its own copy
	bad := append([]byte(nil), d...)
	if err := b.db.Update(func(txn *badger.Txn) error { return txn.Set(fragKey(c), bad) }); err != nil {
		t.Fatal(err)
	}
	got, err := b.Get(c)
	if err != nil || core.VerifyBytes(c, got) != nil {
		t.Fatalf("hot fragment: %v (verify %v)", err, core.VerifyBytes(c, got))
	}
	got[1] ^= 0xff // Get's copy is the caller's
	rc, _, err := b.Open(c)
	if err != nil {
		t.Fatal(err)
	}
	served, _ := io.ReadAll(rc)
	if core.VerifyBytes(c, served) != nil {
		t.Fatal("Open served bytes that do not match the CID after a caller wrote to a Get copy")
	}
	// Push it out of the 64 KiB hot set; the corrupt disk copy is found.
	for i := 2; i < 6; i++ {
		ci, di := testFragment(t, byte(i), 32<<10)
		if err := b.Put(ci, di); err != nil {
			t.Fatal(err)
		}
	}
	if b.hot.size > 64<<10 {
		t.Errorf("hot set holds %d bytes, limit %d", b.hot.size, 64<<10)
	}
	if _, err := b.Get(c); !errors.Is(err, core.ErrDigestMismatch) {
		t.Fatalf("evicted, corrupt on disk: %v, want ErrDigestMismatch", err)
	}
	if ok, _ := b.Has(c); ok {
		t.Error("corrupt fragment still listed")
	}
	// Delete drops it from memory too.
	c7, d7 := testFragment(t, 7, 1<<10)
	if err := b.Put(c7, d7); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(c7); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(c7); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted fragment: %v, want ErrNotFound", err)
	}
}
