//go:build linux

package cache_test

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"

	"github.com/relaymesh/relaymesh/cache"
	"github.com/relaymesh/relaymesh/internal/smalldisk"
)

func randFragment(t *testing.T, n int) (cid.Cid, []byte) {
	t.Helper()
	b := make([]byte, n)
	_, _ = rand.Read(b)
	h, err := multihash.Sum(b, multihash.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(cid.Raw, h), b
}

// TestBadgerFullDisk fills the cache's filesystem (a real 160 MiB tmpfs)
// from outside, as another program would. Writing to badger's mmapped
// files on a full tmpfs is a SIGBUS that kills the process; the cache must
// instead refuse fragment writes with ErrDiskFull and the numbers, still
// take the small state writes that report the failure (the ballast it gave
// up makes room), and work again once space is freed.
func TestBadgerFullDisk(t *testing.T) {
	mnt := smalldisk.Tmpfs(t, 160<<20)
	cfg := cache.DefaultConfig(filepath.Join(mnt, "db"))
	cfg.ReserveBytes, cfg.BallastBytes = 32<<20, 8<<20
	b, err := cache.OpenBadger(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })

	c1, d1 := randFragment(t, 1<<20)
	if err := b.Put(c1, d1); err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(mnt, "filler")
	smalldisk.Fill(t, filler)

	// The node's state writes (job failed, the report) after the disk filled.
	for i := range 200 {
		if err := b.KV().Set(fmt.Sprintf("outbox/%03d", i), make([]byte, 512)); err != nil {
			t.Fatalf("state write %d on a full disk: %v (the ballast should have made room)", i, err)
		}
	}
	c2, d2 := randFragment(t, 4<<20)
	err = b.Put(c2, d2)
	if !errors.Is(err, cache.ErrDiskFull) || !strings.Contains(err.Error(), "MiB free") {
		t.Fatalf("Put on a full disk: %v, want ErrDiskFull with the free space", err)
	}
	t.Logf("refused as expected: %v", err)
	if got, err := b.Get(c1); err != nil || len(got) != len(d1) {
		t.Fatalf("fragment stored before the disk filled: %d bytes, %v", len(got), err)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(c2, d2); err != nil {
		t.Fatalf("Put after space returned: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, "BALLAST")); err != nil {
		t.Errorf("ballast not allocated again once space returned: %v", err)
	}
	// Close flushes the memtable into a table: it must not fault either.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b2, err := cache.OpenBadger(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	if v, err := b2.KV().Get("outbox/199"); err != nil || len(v) != 512 {
		t.Errorf("state written on the full disk, after reopen: %d bytes, %v", len(v), err)
	}
}
