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
	keyOrder     = "order/"
	keyRefused   = "refused/"
	keyJob       = "job/"
	keyStatusSeq = "status/seq"
	keyOutbox    = "outbox/"
)

func outboxKey(seq uint64) string { return fmt.Sprintf("%s%020d", keyOutbox, seq) }

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

// seqStore is the Verifier's SeqStore over the node's KV: each write is
// durable when Update returns.
type seqStore struct{ kv cache.KV }

var _ core.SeqStore = seqStore{}

func (s seqStore) HighestSeq(keyID string) (uint64, error) {
	return getUint(s.kv, keyTrustSeq+keyID)
}

func (s seqStore) SetHighestSeq(keyID string, seq uint64) error {
	return s.kv.Update(func(tx cache.KVTx) error {
		cur, err := getUint(tx, keyTrustSeq+keyID)
		if err != nil {
			return err
		}
		if seq <= cur {
			return nil
		}
		return putUint(tx, keyTrustSeq+keyID, seq)
	})
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
