package cli

import (
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/ipfs/go-cid"
)

// tamperFragment flips one byte of fragment c inside the badger store in
// dir, behind the cache's back (its Put verifies, so tampering has to go
// under it). The key layout is the cache's: "f/" + CID bytes.
func tamperFragment(t *testing.T, dir string, c cid.Cid) {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithValueLogFileSize(64 << 20))
	if err != nil {
		t.Fatalf("open badger %s: %v", dir, err)
	}
	defer func() {
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}()
	key := append([]byte("f/"), c.Bytes()...)
	err = db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		v[len(v)/2] ^= 0xff
		return txn.Set(key, v)
	})
	if err != nil {
		t.Fatalf("tamper with %s: %v", c, err)
	}
}
