package cache

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/dgraph-io/badger/v4"
)

// Snapshot is a read-only view of a Badger cache at one moment: every
// fragment, size, pin and KV value committed before Snapshot returned, and
// nothing committed after. It is one badger read transaction; badger's own
// Backup reads each key range in a transaction of its own, which is not one
// moment while writes go on.
type Snapshot struct {
	txn    *badger.Txn
	unlock func()
}

// Snapshot fixes the moment. Close it when done: it holds the cache open
// (Close waits for it) and keeps the versions it sees from compaction.
func (b *Badger) Snapshot() (*Snapshot, error) {
	unlock, err := b.enter()
	if err != nil {
		return nil, err
	}
	return &Snapshot{txn: b.db.NewTransaction(false), unlock: unlock}, nil
}

// Each calls fn with every key and value of the snapshot, in key order.
// The slices are valid only during the call. An error from fn stops the
// walk and is returned.
func (s *Snapshot) Each(fn func(key, val []byte) error) error {
	it := s.txn.NewIterator(badger.IteratorOptions{PrefetchValues: false})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		var fnErr error
		err := item.Value(func(v []byte) error {
			fnErr = fn(item.Key(), v)
			return fnErr
		})
		if fnErr != nil {
			return fnErr
		}
		if err != nil {
			return fmt.Errorf("cache: snapshot %q: %w", item.Key(), err)
		}
	}
	return nil
}

// Close releases the snapshot.
func (s *Snapshot) Close() {
	if s.txn != nil {
		s.txn.Discard()
		s.txn = nil
		s.unlock()
	}
}

// Loader fills a new Badger cache directory with the entries of a
// snapshot (Snapshot.Each), for OpenBadger to open afterwards.
type Loader struct {
	db *badger.DB
	wb *badger.WriteBatch
	n  int
}

// NewLoader creates the database in dir, which must not hold one yet.
func NewLoader(dir string, log *slog.Logger) (*Loader, error) {
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return nil, fmt.Errorf("cache: load into %s: directory is not empty", dir)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg := DefaultConfig(dir)
	db, err := badger.Open(badgerOptions(cfg, log.With("component", "badger")))
	if err != nil {
		return nil, fmt.Errorf("cache: load into %s: %w", dir, err)
	}
	return &Loader{db: db, wb: db.NewWriteBatch()}, nil
}

// Set stores one entry. Keys outside the cache's layout are refused.
func (l *Loader) Set(key, val []byte) error {
	known := false
	for _, p := range [][]byte{fragPrefix, sizePrefix, pinPrefix, kvPrefix} {
		if bytes.HasPrefix(key, p) && len(key) > len(p) {
			known = true
		}
	}
	if !known {
		return fmt.Errorf("%w: key %q is not one of a relaymesh cache", ErrCorruptDB, key)
	}
	if bytes.HasPrefix(key, sizePrefix) {
		if _, _, err := parseSize(key, val); err != nil {
			return err
		}
	}
	if bytes.HasPrefix(key, pinPrefix) {
		if _, _, err := parsePinKey(key); err != nil {
			return err
		}
	}
	// The write batch keeps the slices until it commits.
	if err := l.wb.Set(bytes.Clone(key), bytes.Clone(val)); err != nil {
		return fmt.Errorf("cache: load %q: %w", key, err)
	}
	l.n++
	return nil
}

// Entries is how many entries Set stored.
func (l *Loader) Entries() int { return l.n }

// Finish writes what is pending, syncs and closes the database.
func (l *Loader) Finish() error {
	err := l.wb.Flush()
	if err == nil {
		err = l.db.Sync()
	}
	return errors.Join(err, l.db.Close())
}

// Abort drops what is pending and closes the database; the caller removes
// the directory.
func (l *Loader) Abort() {
	l.wb.Cancel()
	_ = l.db.Close()
}
