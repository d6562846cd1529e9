package cache

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/ipfs/go-cid"
)

// Badger is the durable cache: a Store, and through KV() a KV, in one
// badger database.
type Badger struct {
	db   *badger.DB
	log  *slog.Logger
	idx  *index
	hot  *hot       // recently stored or read fragments, verified
	disk *diskGuard // nil in memory

	wmu  sync.Mutex // serialises fragment and pin writes, so index plans stay valid
	kvMu sync.Mutex // serialises KV writes, so transactions never conflict

	closeMu sync.RWMutex // read-held by every operation, write-held by Close
	closed  bool

	stopGC context.CancelFunc
	gcDone sync.WaitGroup
	stop   sync.Once
}

// Value log files are rotated at this size. It also caps one fragment:
// badger refuses a value larger than a value log file.
const valueLogFileSize = 64 << 20

// badgerOptions are tuned for a small idle footprint (badger's defaults
// reserve about 100 MiB up front): fragments live in the value log, the LSM
// holds only keys, pins, sizes and small KV values.
func badgerOptions(cfg Config, log *slog.Logger) badger.Options {
	threshold := int64(1 << 10)
	if cfg.InMemory {
		// Without a value log every value must fit under the threshold,
		// whose maximum is 1 MiB: larger fragments are refused.
		threshold = 1 << 20
	}
	return badger.DefaultOptions(cfg.Dir).
		WithInMemory(cfg.InMemory).
		WithLogger(badgerLogger{l: log}).
		WithMemTableSize(8 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(4).
		WithBaseTableSize(1 << 20).
		WithBaseLevelSize(4 << 20).
		WithBlockCacheSize(0).
		WithIndexCacheSize(0).
		WithCompression(options.None). // fragments are compressed archives already
		WithValueThreshold(threshold).
		WithValueLogFileSize(valueLogFileSize).
		WithNumCompactors(2).
		WithNumGoroutines(2).
		WithMetricsEnabled(false).
		WithDetectConflicts(false) // writers are serialised (wmu, kvMu)
}

// OpenBadger opens (or creates) the cache in cfg.Dir and rebuilds the LRU
// index from the stored keys. If the quota is now below the usage,
// least recently written unpinned fragments are evicted.
func OpenBadger(cfg Config) (*Badger, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	db, err := badger.Open(badgerOptions(cfg, log.With("component", "badger")))
	log = log.With("component", "cache")
	if err != nil {
		return nil, fmt.Errorf("cache: open badger in %q: %w", cfg.Dir, err)
	}
	b := &Badger{db: db, log: log, idx: newIndex(cfg.QuotaBytes), hot: newHot(cfg.HotBytes), disk: newDiskGuard(cfg, log)}
	if err := b.load(); err != nil {
		return nil, errors.Join(err, db.Close())
	}
	if err := b.trim(); err != nil {
		return nil, errors.Join(err, db.Close())
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.stopGC = cancel
	if cfg.GCInterval > 0 && !cfg.InMemory {
		b.gcDone.Go(func() { b.gcLoop(ctx, cfg.GCInterval) })
	}
	used, quota := b.idx.usage()
	log.Debug("cache opened", "dir", cfg.Dir, "used", used, "quota", quota)
	return b, nil
}

// load rebuilds the index from the size and pin keys (small values kept in
// the LSM tree; fragment bytes are not read). There is no stored access
// time, so the LRU order starts as write order (badger commit version).
func (b *Badger) load() error {
	type loaded struct {
		entry
		version uint64
	}
	var frags []loaded
	err := b.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: sizePrefix, PrefetchValues: false})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			c, n, err := parseSize(item.Key(), v)
			if err != nil {
				return err
			}
			frags = append(frags, loaded{entry{c, n}, item.Version()})
		}
		it.Close()

		pit := txn.NewIterator(badger.IteratorOptions{Prefix: pinPrefix, PrefetchValues: false})
		defer pit.Close()
		for pit.Rewind(); pit.Valid(); pit.Next() {
			owner, c, err := parsePinKey(pit.Item().Key())
			if err != nil {
				return err
			}
			b.idx.pin(owner, c)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("cache: load index: %w", err)
	}
	slices.SortStableFunc(frags, func(x, y loaded) int {
		if c := cmp.Compare(x.version, y.version); c != 0 {
			return c
		}
		return bytes.Compare(x.c.Bytes(), y.c.Bytes())
	})
	for _, f := range frags {
		b.idx.add(f.c, f.size)
	}
	return nil
}

// trim evicts unpinned fragments while usage is above the quota (the quota
// may have shrunk since the last run). Pinned data over quota stays, with
// a warning.
func (b *Badger) trim() error {
	used, quota := b.idx.usage()
	if quota == 0 || used <= quota {
		return nil
	}
	victims, err := b.idx.plan(0)
	if err != nil {
		b.log.Warn("cache over quota with pinned fragments", "used", used, "quota", quota, "err", err)
		victims = b.idx.evictableAll()
	}
	if err := b.db.Update(func(txn *badger.Txn) error { return deleteFrags(txn, victims) }); err != nil {
		return fmt.Errorf("cache: trim to quota: %w", err)
	}
	b.idx.remove(victims...)
	b.hot.remove(victims...)
	return nil
}

func deleteFrags(txn *badger.Txn, cids []cid.Cid) error {
	for _, c := range cids {
		if err := txn.Delete(fragKey(c)); err != nil {
			return err
		}
		if err := txn.Delete(sizeKey(c)); err != nil {
			return err
		}
	}
	return nil
}

// enter guards an operation against a concurrent Close.
func (b *Badger) enter() (func(), error) {
	b.closeMu.RLock()
	if b.closed {
		b.closeMu.RUnlock()
		return nil, ErrClosed
	}
	return b.closeMu.RUnlock, nil
}

func (b *Badger) gcLoop(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := b.disk.fragment(0); err != nil {
				b.log.Warn("value log GC skipped", "err", err) // a rewrite needs room
				continue
			}
			if err := b.GC(); err != nil && !errors.Is(err, ErrClosed) {
				b.log.Warn("value log GC failed", "err", err)
			}
		}
	}
}

// GC rewrites value log files until badger finds none worth rewriting
// (more than half of a file discarded). The space of deleted and evicted
// fragments only returns to the disk this way.
func (b *Badger) GC() error {
	unlock, err := b.enter()
	if err != nil {
		return err
	}
	defer unlock()
	for rewrites := 0; ; rewrites++ {
		err := b.db.RunValueLogGC(0.5)
		switch {
		case err == nil:
			continue
		case errors.Is(err, badger.ErrNoRewrite), errors.Is(err, badger.ErrRejected),
			errors.Is(err, badger.ErrGCInMemoryMode):
			if rewrites > 0 {
				b.log.Debug("value log GC", "rewrites", rewrites)
			}
			return nil
		default:
			return fmt.Errorf("cache: value log GC: %w", err)
		}
	}
}

// Close stops the background GC and closes the database. Later calls fail
// with ErrClosed; closing twice is not an error.
func (b *Badger) Close() error {
	b.stop.Do(func() {
		b.stopGC()
		b.gcDone.Wait()
	})
	b.closeMu.Lock()
	defer b.closeMu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	if err := b.db.Close(); err != nil {
		return fmt.Errorf("cache: close: %w", err)
	}
	return nil
}
