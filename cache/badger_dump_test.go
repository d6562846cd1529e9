package cache

import (
	"bytes"
	"path/filepath"
	"testing"
)

// TestSnapshotIsOneMoment: writes after Snapshot are not in it, and a
// Loader fed with its entries opens as the same cache (fragments, pins,
// KV).
func TestSnapshotIsOneMoment(t *testing.T) {
	t.Parallel()
	b := openTestBadger(t, Config{Dir: t.TempDir()})
	c0, d0 := testFragment(t, 0, 4<<10)
	c1, d1 := testFragment(t, 1, 4<<10)
	if err := b.Put(c0, d0); err != nil {
		t.Fatal(err)
	}
	if err := b.Pin("order-1", c0); err != nil {
		t.Fatal(err)
	}
	if err := b.KV().Set("a", []byte("before")); err != nil {
		t.Fatal(err)
	}
	snap, err := b.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.KV().Set("a", []byte("after")); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(c1, d1); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "restored")
	ld, err := NewLoader(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Each(ld.Set); err != nil {
		t.Fatal(err)
	}
	snap.Close()
	if err := ld.Finish(); err != nil {
		t.Fatal(err)
	}
	r := openTestBadger(t, Config{Dir: dir})
	if v, err := r.KV().Get("a"); err != nil || string(v) != "before" {
		t.Errorf("restored a = %q, %v; want the value at the snapshot", v, err)
	}
	if got, err := r.Get(c0); err != nil || !bytes.Equal(got, d0) {
		t.Errorf("restored fragment: %v", err)
	}
	if ok, _ := r.Has(c1); ok {
		t.Error("a fragment stored after the snapshot is in it")
	}
	if err := r.Unpin("order-1"); err != nil {
		t.Error(err)
	}
	if _, err := NewLoader(dir, nil); err == nil {
		t.Error("NewLoader into a directory holding a database: no error")
	}
	ld2, err := NewLoader(filepath.Join(t.TempDir(), "x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ld2.Abort()
	if err := ld2.Set([]byte("zz/what"), []byte("x")); err == nil {
		t.Error("a key outside the layout was loaded")
	}
}
