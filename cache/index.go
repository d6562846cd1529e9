package cache

import (
	"container/list"
	"fmt"
	"sync"

	"github.com/ipfs/go-cid"
)

// index is the in-memory bookkeeping both stores share: which fragments
// are stored and their sizes, their LRU order, pins, and usage against the
// quota. It has its own lock; callers serialise mutations (add, remove,
// pin, unpin) with their own write lock so that a plan stays valid until
// it is applied.
type index struct {
	mu      sync.Mutex
	quota   int64
	used    int64
	lru     *list.List // of *entry; front is most recently used
	entries map[cid.Cid]*list.Element
	pins    map[cid.Cid]map[string]struct{} // fragment -> owners
	owners  map[string]map[cid.Cid]struct{} // owner -> fragments
}

type entry struct {
	c    cid.Cid
	size int64
}

func newIndex(quota int64) *index {
	return &index{
		quota:   quota,
		lru:     list.New(),
		entries: make(map[cid.Cid]*list.Element),
		pins:    make(map[cid.Cid]map[string]struct{}),
		owners:  make(map[string]map[cid.Cid]struct{}),
	}
}

func (x *index) has(c cid.Cid) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	_, ok := x.entries[c]
	return ok
}

// touch marks c as just used and reports whether it is stored.
func (x *index) touch(c cid.Cid) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	el, ok := x.entries[c]
	if ok {
		x.lru.MoveToFront(el)
	}
	return ok
}

// plan returns the unpinned fragments to evict, least recently used first,
// so that extra more bytes fit in the quota. It changes nothing.
func (x *index) plan(extra int64) ([]cid.Cid, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.quota == 0 {
		return nil, nil
	}
	need := x.used + extra - x.quota
	if need <= 0 {
		return nil, nil
	}
	var victims []cid.Cid
	var freed int64
	for el := x.lru.Back(); el != nil && freed < need; el = el.Prev() {
		e := el.Value.(*entry)
		if len(x.pins[e.c]) > 0 {
			continue
		}
		victims = append(victims, e.c)
		freed += e.size
	}
	if freed < need {
		return nil, fmt.Errorf("%w: %d bytes needed, %d of %d used, only %d evictable (the rest is pinned)",
			ErrQuotaExceeded, extra, x.used, x.quota, freed)
	}
	return victims, nil
}

// add records c as stored and most recently used; a no-op if present.
func (x *index) add(c cid.Cid, size int64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if el, ok := x.entries[c]; ok {
		x.lru.MoveToFront(el)
		return
	}
	x.entries[c] = x.lru.PushFront(&entry{c: c, size: size})
	x.used += size
}

func (x *index) remove(cids ...cid.Cid) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, c := range cids {
		el, ok := x.entries[c]
		if !ok {
			continue
		}
		x.used -= el.Value.(*entry).size
		x.lru.Remove(el)
		delete(x.entries, c)
	}
}

func (x *index) pin(owner string, cids ...cid.Cid) {
	x.mu.Lock()
	defer x.mu.Unlock()
	mine := x.owners[owner]
	if mine == nil {
		mine = make(map[cid.Cid]struct{})
		x.owners[owner] = mine
	}
	for _, c := range cids {
		mine[c] = struct{}{}
		by := x.pins[c]
		if by == nil {
			by = make(map[string]struct{})
			x.pins[c] = by
		}
		by[owner] = struct{}{}
	}
}

func (x *index) unpin(owner string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for c := range x.owners[owner] {
		by := x.pins[c]
		delete(by, owner)
		if len(by) == 0 {
			delete(x.pins, c)
		}
	}
	delete(x.owners, owner)
}

func (x *index) usage() (used, quota int64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.used, x.quota
}

// snapshot returns the stored fragments, least recently used first.
func (x *index) snapshot() []entry {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := make([]entry, 0, len(x.entries))
	for el := x.lru.Back(); el != nil; el = el.Prev() {
		out = append(out, *el.Value.(*entry))
	}
	return out
}

// evictableAll returns every unpinned fragment, least recently used first.
func (x *index) evictableAll() []cid.Cid {
	x.mu.Lock()
	defer x.mu.Unlock()
	var out []cid.Cid
	for el := x.lru.Back(); el != nil; el = el.Prev() {
		if e := el.Value.(*entry); len(x.pins[e.c]) == 0 {
			out = append(out, e.c)
		}
	}
	return out
}
