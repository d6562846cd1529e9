package node

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/relaymesh/relaymesh/cache"
	"github.com/relaymesh/relaymesh/core"
)

// KV key layout; see the package documentation.
const (
	keyTrustSeq  = "trust/seq/"
	keyTrustSeen = "trust/seen/"
	keyOrder     = "order/"
	keyRefused   = "refused/"
	keyCancelled = "cancelled/"
	keyJob       = "job/"
	keyStatusSeq = "status/seq"
	keyOutbox    = "outbox/"
)

func outboxKey(seq uint64) string { return fmt.Sprintf("%s%020d", keyOutbox, seq) }

// seenPrefix holds the accepted sequences of keyID inside the replay
// window, one key each, in sequence order.
func seenPrefix(keyID string) string { return keyTrustSeen + keyID + "/" }

func seenKey(keyID string, seq uint64) string { return fmt.Sprintf("%s%020d", seenPrefix(keyID), seq) }

// kvReader is what both cache.KV and cache.KVTx offer for reading.
type kvReader interface {
	Get(key string) ([]byte, error)
}

// getUint reads a decimal counter; an absent key is 0.
func getUint(r kvReader, key string) (uint64, error) {
	b, err := r.Get(key)
	if errors.Is(err, cache.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: kv %s holds %q: %w", cache.ErrCorruptDB, key, b, err)
	}
	return v, nil
}

func putUint(tx cache.KVTx, key string, v uint64) error {
	return tx.Set(key, []byte(strconv.FormatUint(v, 10)))
}

// seqStore is the Verifier's SeqStore over the node's KV: the highest
// accepted sequence per order key under trust/seq/<keyid>, and each
// accepted sequence inside the replay window (core.ReplayWindow) under
// trust/seen/<keyid>/<%020d seq>. Each write is durable when Update
// returns. The node itself records in the transaction that stores the
// order (intake.go, recordSeq); RecordSeq is the same write on its own.
type seqStore struct{ kv cache.KV }

var _ core.SeqStore = seqStore{}

func (s seqStore) HighestSeq(keyID string) (uint64, error) {
	return getUint(s.kv, keyTrustSeq+keyID)
}

func (s seqStore) Seen(keyID string, seq uint64) (bool, error) {
	_, err := s.kv.Get(seenKey(keyID, seq))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, cache.ErrNotFound):
		return false, nil
	}
	return false, err
}

func (s seqStore) RecordSeq(keyID string, seq uint64) error {
	stale, err := s.stale(keyID, seq)
	if err != nil {
		return err
	}
	return s.kv.Update(func(tx cache.KVTx) error { return recordSeq(tx, keyID, seq, stale) })
}

// stale lists the accepted sequences of keyID that recording seq pushes
// out of the replay window (at or below the new highest minus the
// window), for recordSeq to delete: KVTx cannot scan, so the list is read
// before the transaction. The caller serialises recording (intakeMu), so
// nothing adds records in between; a record missed here is harmless (it is
// below the window, refused whether it is there or not) and goes with the
// next one.
func (s seqStore) stale(keyID string, seq uint64) ([]uint64, error) {
	high, err := s.HighestSeq(keyID)
	if err != nil {
		return nil, err
	}
	floor := core.WindowFloor(max(high, seq))
	if floor == 0 {
		return nil, nil
	}
	var out []uint64
	prefix := seenPrefix(keyID)
	err = s.kv.Scan(prefix, func(key string, _ []byte) error {
		v, err := strconv.ParseUint(key[len(prefix):], 10, 64)
		if err != nil {
			return fmt.Errorf("%w: kv key %s", cache.ErrCorruptDB, key)
		}
		if v > floor {
			return errStopScan // keys are in sequence order: the rest are in the window
		}
		out = append(out, v)
		return nil
	})
	if errors.Is(err, errStopScan) {
		err = nil
	}
	return out, err
}

// recordSeq records in tx that seq from keyID was accepted: the highest
// sequence becomes max(highest, seq) and never goes down, seq is marked
// seen, and the stale records (from seqStore.stale) at or below the new
// window's floor are deleted.
func recordSeq(tx cache.KVTx, keyID string, seq uint64, stale []uint64) error {
	cur, err := getUint(tx, keyTrustSeq+keyID)
	if err != nil {
		return err
	}
	high := max(cur, seq)
	floor := core.WindowFloor(high)
	if high > cur {
		if err := putUint(tx, keyTrustSeq+keyID, high); err != nil {
			return err
		}
	}
	if seq > floor {
		if err := tx.Set(seenKey(keyID, seq), []byte("1")); err != nil {
			return err
		}
	}
	for _, old := range stale {
		if old <= floor {
			if err := tx.Delete(seenKey(keyID, old)); err != nil {
				return err
			}
		}
	}
	return nil
}

// maxSeq is the highest order sequence accepted from any pinned key: the
// AfterSeq of a sync.
func (s seqStore) maxSeq() (uint64, error) {
	var hi uint64
	err := s.kv.Scan(keyTrustSeq, func(key string, val []byte) error {
		v, err := strconv.ParseUint(string(val), 10, 64)
		if err != nil {
			return fmt.Errorf("%w: kv %s holds %q", cache.ErrCorruptDB, key, val)
		}
		hi = max(hi, v)
		return nil
	})
	return hi, err
}
