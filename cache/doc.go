// Package cache is the node's content-addressed fragment store plus a small
// durable key-value area (trust state, status outboxes).
//
// Fragments are addressed by CIDv1/raw/sha2-256 (see core.CheckCID). Every
// fragment is hashed against its CID before it is stored (Put) and, in the
// badger store, again before it is served (Get, Open): bad bytes never leave
// the cache.
//
// Quota. Config.QuotaBytes counts fragment payload bytes (not disk usage).
// Usage never exceeds the quota: a Put that would exceed it first evicts the
// least recently used unpinned fragments (access = Put, Get, Open). If the
// unpinned fragments cannot free enough room, the Put fails with
// ErrQuotaExceeded and neither stores the fragment nor evicts anything.
// Pinned fragments are never evicted; an explicit Delete still removes them.
//
// Two implementations: Badger (durable, the node's cache) and Memory (tests
// and the simulator). Both pass the conformance suite in cache/cachetest.
package cache
