package cache

import (
	"fmt"
	"io"

	"github.com/ipfs/go-cid"

	"github.com/relaymesh/relaymesh/core"
)

// Store holds fragments by CID. Implementations are safe for concurrent use.
// Every method that takes a CID refuses CIDs core.CheckCID refuses, with an
// error wrapping core.ErrBadCID.
type Store interface {
	// Put verifies data against c and stores it. Bytes that do not match
	// return an error wrapping core.ErrDigestMismatch and nothing is stored.
	// Putting a CID already stored only refreshes its LRU position.
	// If the quota cannot be met without evicting pinned fragments it
	// returns ErrQuotaExceeded and changes nothing.
	Put(c cid.Cid, data []byte) error
	// Get returns a copy of the fragment, or ErrNotFound.
	Get(c cid.Cid) ([]byte, error)
	// Has reports whether the fragment is stored.
	Has(c cid.Cid) (bool, error)
	// Open returns a reader over the fragment and its size, or ErrNotFound.
	Open(c cid.Cid) (io.ReadCloser, int64, error)
	// Delete removes the fragment, pinned or not. Deleting an absent
	// fragment is not an error. Pins on c stay in place.
	Delete(c cid.Cid) error

	// Pin protects cids from eviction on behalf of owner (a deployment or
	// order ID), durably. CIDs not stored yet are protected once they arrive.
	Pin(owner string, cids ...cid.Cid) error
	// Unpin drops every pin owner holds. A fragment stays pinned while any
	// other owner pins it. Unpinning an unknown owner is not an error.
	Unpin(owner string) error

	// Usage returns the stored fragment bytes and the quota (0 = unlimited).
	Usage() (used, quota int64)
	// List calls fn for every stored fragment, in no particular order,
	// and stops at the first error fn returns, returning it.
	List(fn func(c cid.Cid, size int64) error) error
	Close() error
}

// KV is a small durable key-value area. Store and KV both have Get and
// Delete with different argument types, so one type cannot be both: a
// cache hands out its KV through a KV() method, sharing the same database
// (and, for badger, a separate key prefix). A write has reached stable storage
// when the call returns.
type KV interface {
	// Get returns a copy of the value under key, or ErrNotFound.
	Get(key string) ([]byte, error)
	Set(key string, val []byte) error
	// Delete removes key; deleting an absent key is not an error.
	Delete(key string) error
	// Scan calls fn for every key with prefix, in byte-wise key order, and
	// stops at the first error fn returns, returning it. fn may call the
	// KV's methods.
	Scan(prefix string, fn func(key string, val []byte) error) error
	// Update runs fn in a transaction: its writes become visible and
	// durable together if fn returns nil, and are dropped otherwise (fn's
	// error is returned). fn must use only tx, not the KV itself.
	Update(fn func(tx KVTx) error) error
}

// KVTx is the view of a KV inside Update. Get sees the transaction's own
// writes.
type KVTx interface {
	Get(key string) ([]byte, error)
	Set(key string, val []byte) error
	Delete(key string) error
}

var (
	_ Store          = (*Badger)(nil)
	_ KV             = (*badgerKV)(nil)
	_ Store          = (*Memory)(nil)
	_ VerifiedGetter = (*Badger)(nil)
	_ KV             = (*memoryKV)(nil)
)

// VerifiedPutter is a Store that can take bytes hashed against their CID
// already (a fragment fetched from a peer was, as it arrived) without
// hashing them again.
type VerifiedPutter interface {
	PutVerified(v core.Verified) error
}

// PutVerified stores v in s: through PutVerified when s has it, else Put
// (which hashes again).
func PutVerified(s Store, v core.Verified) error {
	if vp, ok := s.(VerifiedPutter); ok {
		return vp.PutVerified(v)
	}
	return s.Put(v.CID(), v.Bytes())
}

// VerifiedGetter is a Store that hands out fragments as core.Verified: it
// checked them against their CID itself (Badger hashes on every read from
// disk, and kept the hot set's bytes hashed when they entered).
type VerifiedGetter interface {
	GetVerified(c cid.Cid) (core.Verified, error)
}

// GetVerified returns c's fragment from s as core.Verified: through
// GetVerified when s has it, else Get and a hash.
func GetVerified(s Store, c cid.Cid) (core.Verified, error) {
	if vg, ok := s.(VerifiedGetter); ok {
		return vg.GetVerified(c)
	}
	data, err := s.Get(c)
	if err != nil {
		return core.Verified{}, err
	}
	v, err := core.Verify(c, data)
	if err != nil {
		return core.Verified{}, fmt.Errorf("cache: get: %w", err)
	}
	return v, nil
}

var (
	_ VerifiedPutter = (*Badger)(nil)
	_ VerifiedPutter = (*Memory)(nil)
)
