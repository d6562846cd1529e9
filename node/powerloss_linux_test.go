//go:build linux

package node

import (
	"crypto/ed25519"
	"testing"

	"github.com/relaymesh/relaymesh/cache"
	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/internal/powerloss"
)

// TestPowerLossKeepsSyncedWrites cuts the power (powerloss.Disk.Cut: the
// disk as the kernel has written it, without what only the page cache
// holds) right after the node's two writes that must survive it returned:
// an accepted order's sequence (a replayed order must stay refused) and a
// status report in the outbox (a report is never lost). Both must be in the
// database opened from the cut disk. It fails when KV.Update does not sync.
func TestPowerLossKeepsSyncedWrites(t *testing.T) {
	disk := powerloss.New(t)
	cfg := cache.DefaultConfig(disk.Dir() + "/db")
	cfg.Logger = testLogger(t)
	b, err := cache.OpenBadger(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	kv := b.KV()

	const keyID, seq = "key-1", 42
	if err := (seqStore{kv}).RecordSeq(keyID, seq); err != nil {
		t.Fatal(err)
	}
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	out := newOutbox(kv, priv, nil, "node-1", TestConfig(t.TempDir()), testLogger(t))
	if err := kv.Update(func(tx cache.KVTx) error {
		return out.add(tx, core.Status{OrderID: "order-1", State: core.StateNotified})
	}); err != nil {
		t.Fatal(err)
	}

	after := disk.Cut()
	cfg.Dir = after + "/db"
	b2, err := cache.OpenBadger(cfg)
	if err != nil {
		t.Fatalf("open the database after the power loss: %v", err)
	}
	t.Cleanup(func() { _ = b2.Close() })
	kv2 := b2.KV()
	high, err := (seqStore{kv2}).HighestSeq(keyID)
	if err != nil {
		t.Fatal(err)
	}
	if high != seq {
		t.Errorf("highest sequence after power loss = %d, want %d: an accepted order's sequence was not synced (a replay would be accepted)", high, seq)
	}
	if _, err := kv2.Get(outboxKey(1)); err != nil {
		t.Errorf("outbox report 1 after power loss: %v: the report was not synced and is lost", err)
	}
}
