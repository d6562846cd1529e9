package cache

import (
	"container/list"
	"sync"

	"github.com/ipfs/go-cid"

	"github.com/relaymesh/relaymesh/core"
)

// DefaultHotBytes is the memory a node's cache keeps of the fragments it
// stored or read last (Config.HotBytes).
const DefaultHotBytes = 8 << 20

// hot holds the bytes of recently stored or read fragments, each hashed
// against its CID when it entered (on put, or on a read from disk), so
// serving the same fragment to a site's members again and again costs
// neither a disk read nor another hash. Its slices are never written to
// after they enter: readers may share them. Deleting a fragment drops it
// here too.
type hot struct {
	mu    sync.Mutex
	limit int64
	size  int64
	lru   *list.List // of *hotEntry, most recent first
	byCID map[cid.Cid]*list.Element
}

type hotEntry struct{ v core.Verified }

func newHot(limit int64) *hot {
	return &hot{limit: limit, lru: list.New(), byCID: map[cid.Cid]*list.Element{}}
}

// get returns the shared, verified bytes of c.
func (h *hot) get(c cid.Cid) (core.Verified, bool) {
	if h == nil || h.limit <= 0 {
		return core.Verified{}, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.byCID[c]
	if e == nil {
		return core.Verified{}, false
	}
	h.lru.MoveToFront(e)
	return e.Value.(*hotEntry).v, true
}

// add keeps v, whose bytes no one may write to again.
func (h *hot) add(v core.Verified) {
	c, data := v.CID(), v.Bytes()
	if h == nil || int64(len(data)) > h.limit {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if e := h.byCID[c]; e != nil {
		h.lru.MoveToFront(e)
		return
	}
	h.byCID[c] = h.lru.PushFront(&hotEntry{v: v})
	h.size += int64(len(data))
	for h.size > h.limit {
		last := h.lru.Back()
		ent := last.Value.(*hotEntry)
		h.lru.Remove(last)
		delete(h.byCID, ent.v.CID())
		h.size -= int64(len(ent.v.Bytes()))
	}
}

func (h *hot) remove(cids ...cid.Cid) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range cids {
		if e := h.byCID[c]; e != nil {
			h.lru.Remove(e)
			delete(h.byCID, c)
			h.size -= int64(len(e.Value.(*hotEntry).v.Bytes()))
		}
	}
}
