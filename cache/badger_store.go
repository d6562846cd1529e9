package cache

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/dgraph-io/badger/v4"
	"github.com/ipfs/go-cid"

	"github.com/relaymesh/relaymesh/core"
)

func (b *Badger) Put(c cid.Cid, data []byte) error {
	v, err := core.Verify(c, data)
	if err != nil {
		return fmt.Errorf("cache: put: %w", err)
	}
	return b.put(v)
}

// PutVerified stores bytes hashed already (VerifiedPutter).
func (b *Badger) PutVerified(v core.Verified) error { return b.put(v) }

func (b *Badger) put(v core.Verified) error {
	c, data := v.CID(), v.Bytes()
	unlock, err := b.enter()
	if err != nil {
		return err
	}
	defer unlock()
	b.wmu.Lock()
	defer b.wmu.Unlock()
	if b.idx.touch(c) {
		return nil
	}
	size := int64(len(data))
	victims, err := b.idx.plan(size)
	if err != nil {
		return fmt.Errorf("cache: put %s: %w", c, err)
	}
	if err := b.disk.fragment(size); err != nil {
		return fmt.Errorf("cache: put %s: %w", c, err)
	}
	err = b.db.Update(func(txn *badger.Txn) error {
		if err := deleteFrags(txn, victims); err != nil {
			return err
		}
		if err := txn.Set(fragKey(c), data); err != nil {
			return err
		}
		return txn.Set(sizeKey(c), encodeSize(size))
	})
	if err != nil {
		return fmt.Errorf("cache: put %s (%d bytes): %w", c, size, err)
	}
	b.idx.remove(victims...)
	b.idx.add(c, size)
	b.hot.remove(victims...)
	b.hot.add(v.Clone()) // the caller may reuse data
	if len(victims) > 0 {
		b.log.Debug("evicted for quota", "count", len(victims), "for", c)
	}
	return nil
}

// read fetches and re-hashes a fragment. Bytes that no longer match their
// CID (disk corruption, tampering) are deleted and reported as a digest
// mismatch, so they are never served. A fragment in the hot set was hashed
// when it entered and comes from memory; the returned slice may be shared
// and must not be written to.
func (b *Badger) read(op string, c cid.Cid) (core.Verified, error) {
	var none core.Verified
	if err := core.CheckCID(c); err != nil {
		return none, fmt.Errorf("cache: %s: %w", op, err)
	}
	unlock, err := b.enter()
	if err != nil {
		return none, err
	}
	defer unlock()
	if v, ok := b.hot.get(c); ok && b.idx.has(c) {
		b.idx.touch(c)
		return v, nil
	}
	var data []byte
	err = b.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(fragKey(c))
		if err != nil {
			return err
		}
		data, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return none, fmt.Errorf("cache: %s %s: %w", op, c, ErrNotFound)
	}
	if err != nil {
		return none, fmt.Errorf("cache: %s %s: %w", op, c, err)
	}
	v, err := core.Verify(c, data)
	if err != nil {
		b.log.Warn("stored fragment is corrupt, deleting it", "cid", c, "err", err)
		if derr := b.deleteLocked(c); derr != nil {
			err = errors.Join(err, derr)
		}
		return none, fmt.Errorf("cache: %s: %w", op, err)
	}
	b.idx.touch(c)
	b.hot.add(v)
	return v, nil
}

// Get returns a copy: read's bytes may be shared with the hot set.
func (b *Badger) Get(c cid.Cid) ([]byte, error) {
	v, err := b.read("get", c)
	if err != nil {
		return nil, err
	}
	return bytes.Clone(v.Bytes()), nil
}

// GetVerified returns the fragment as read checked it (VerifiedGetter):
// hashed against c now, or when it entered the hot set. Its bytes may be
// shared and must not be written to.
func (b *Badger) GetVerified(c cid.Cid) (core.Verified, error) { return b.read("get", c) }

// Open returns the verified fragment behind a reader; the bytes are read
// and hashed in full first, since a fragment must be verified before any
// of it is served.
func (b *Badger) Open(c cid.Cid) (io.ReadCloser, int64, error) {
	v, err := b.read("open", c)
	if err != nil {
		return nil, 0, err
	}
	return io.NopCloser(bytes.NewReader(v.Bytes())), int64(len(v.Bytes())), nil
}

// Has answers from the in-memory index.
func (b *Badger) Has(c cid.Cid) (bool, error) {
	if err := core.CheckCID(c); err != nil {
		return false, fmt.Errorf("cache: has: %w", err)
	}
	unlock, err := b.enter()
	if err != nil {
		return false, err
	}
	defer unlock()
	return b.idx.has(c), nil
}

func (b *Badger) Delete(c cid.Cid) error {
	if err := core.CheckCID(c); err != nil {
		return fmt.Errorf("cache: delete: %w", err)
	}
	unlock, err := b.enter()
	if err != nil {
		return err
	}
	defer unlock()
	return b.deleteLocked(c)
}

// deleteLocked deletes c; the caller holds the close guard.
func (b *Badger) deleteLocked(c cid.Cid) error {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	err := b.db.Update(func(txn *badger.Txn) error { return deleteFrags(txn, []cid.Cid{c}) })
	if err != nil {
		return fmt.Errorf("cache: delete %s: %w", c, err)
	}
	b.idx.remove(c)
	b.hot.remove(c)
	return nil
}

// Pin records the pins durably (synced) before they take effect.
func (b *Badger) Pin(owner string, cids ...cid.Cid) error {
	if err := checkPin(owner, cids); err != nil {
		return err
	}
	unlock, err := b.enter()
	if err != nil {
		return err
	}
	defer unlock()
	b.wmu.Lock()
	defer b.wmu.Unlock()
	if err := b.disk.kv(); err != nil {
		return fmt.Errorf("cache: pin %q: %w", owner, err)
	}
	wb := b.db.NewWriteBatch()
	defer wb.Cancel()
	for _, c := range cids {
		if err := wb.Set(pinKey(owner, c), nil); err != nil {
			return fmt.Errorf("cache: pin %q: %w", owner, err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("cache: pin %q: %w", owner, err)
	}
	if err := b.db.Sync(); err != nil {
		return fmt.Errorf("cache: pin %q: sync: %w", owner, err)
	}
	b.idx.pin(owner, cids...)
	return nil
}

func (b *Badger) Unpin(owner string) error {
	if owner == "" {
		return fmt.Errorf("cache: unpin: %w", ErrBadOwner)
	}
	unlock, err := b.enter()
	if err != nil {
		return err
	}
	defer unlock()
	b.wmu.Lock()
	defer b.wmu.Unlock()
	var keys [][]byte
	err = b.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pinOwnerPrefix(owner)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			keys = append(keys, it.Item().KeyCopy(nil))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("cache: unpin %q: %w", owner, err)
	}
	wb := b.db.NewWriteBatch()
	defer wb.Cancel()
	for _, k := range keys {
		if err := wb.Delete(k); err != nil {
			return fmt.Errorf("cache: unpin %q: %w", owner, err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("cache: unpin %q: %w", owner, err)
	}
	if err := b.db.Sync(); err != nil {
		return fmt.Errorf("cache: unpin %q: sync: %w", owner, err)
	}
	b.idx.unpin(owner)
	return nil
}

// Usage counts fragment bytes, not the space badger takes on disk.
func (b *Badger) Usage() (used, quota int64) { return b.idx.usage() }

func (b *Badger) List(fn func(c cid.Cid, size int64) error) error {
	unlock, err := b.enter()
	if err != nil {
		return err
	}
	snap := b.idx.snapshot()
	unlock()
	for _, e := range snap {
		if err := fn(e.c, e.size); err != nil {
			return err
		}
	}
	return nil
}
