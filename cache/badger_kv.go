package cache

import (
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// badgerKV is the KV area of a Badger cache, under its own key prefix.
type badgerKV struct{ b *Badger }

// KV returns the cache's durable key-value area. It shares the cache's
// lifetime: after Close its calls fail with ErrClosed.
func (b *Badger) KV() KV { return badgerKV{b} }

func (k badgerKV) Get(key string) ([]byte, error) {
	if key == "" {
		return nil, fmt.Errorf("cache: kv get: %w", ErrBadKey)
	}
	unlock, err := k.b.enter()
	if err != nil {
		return nil, err
	}
	defer unlock()
	var v []byte
	err = k.b.db.View(func(txn *badger.Txn) error {
		v, err = badgerTx{txn}.Get(key)
		return err
	})
	return v, err
}

func (k badgerKV) Set(key string, val []byte) error {
	return k.Update(func(tx KVTx) error { return tx.Set(key, val) })
}

func (k badgerKV) Delete(key string) error {
	return k.Update(func(tx KVTx) error { return tx.Delete(key) })
}

// Scan iterates a consistent snapshot; fn may write to the KV meanwhile.
func (k badgerKV) Scan(prefix string, fn func(key string, val []byte) error) error {
	unlock, err := k.b.enter()
	if err != nil {
		return err
	}
	defer unlock()
	var fnErr error
	err = k.b.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: kvKey(prefix), PrefetchValues: true, PrefetchSize: 16})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			v, err := item.ValueCopy(nil)
			if err != nil {
				return fmt.Errorf("cache: kv scan %q: %w", prefix, err)
			}
			if fnErr = fn(string(item.Key()[len(kvPrefix):]), v); fnErr != nil {
				return fnErr
			}
		}
		return nil
	})
	if fnErr != nil {
		return fnErr
	}
	return err
}

// Update commits fn's writes atomically and syncs them to disk before
// returning. KV writers are serialised, so fn runs exactly once.
func (k badgerKV) Update(fn func(tx KVTx) error) error {
	unlock, err := k.b.enter()
	if err != nil {
		return err
	}
	defer unlock()
	k.b.kvMu.Lock()
	defer k.b.kvMu.Unlock()
	if err := k.b.disk.kv(); err != nil {
		return fmt.Errorf("cache: kv update: %w", err)
	}
	var fnErr error
	err = k.b.db.Update(func(txn *badger.Txn) error {
		fnErr = fn(badgerTx{txn})
		return fnErr
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("cache: kv update: %w", err)
	}
	if err := k.b.db.Sync(); err != nil {
		return fmt.Errorf("cache: kv update: sync: %w", err)
	}
	return nil
}

type badgerTx struct{ txn *badger.Txn }

func (t badgerTx) Get(key string) ([]byte, error) {
	if key == "" {
		return nil, fmt.Errorf("cache: kv get: %w", ErrBadKey)
	}
	item, err := t.txn.Get(kvKey(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, fmt.Errorf("cache: kv get %q: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("cache: kv get %q: %w", key, err)
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return nil, fmt.Errorf("cache: kv get %q: %w", key, err)
	}
	return v, nil
}

func (t badgerTx) Set(key string, val []byte) error {
	if key == "" {
		return fmt.Errorf("cache: kv set: %w", ErrBadKey)
	}
	// badger keeps the slice until commit; copy so the caller may reuse it.
	v := make([]byte, len(val))
	copy(v, val)
	if err := t.txn.Set(kvKey(key), v); err != nil {
		return fmt.Errorf("cache: kv set %q: %w", key, err)
	}
	return nil
}

func (t badgerTx) Delete(key string) error {
	if key == "" {
		return fmt.Errorf("cache: kv delete: %w", ErrBadKey)
	}
	if err := t.txn.Delete(kvKey(key)); err != nil {
		return fmt.Errorf("cache: kv delete %q: %w", key, err)
	}
	return nil
}
