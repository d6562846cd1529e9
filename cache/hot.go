package cache

import (
	"container/list"
	"sync"

	"github.com/ipfs/go-cid"
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

type hotEntry struct {
	c    cid.Cid
	data []byte
}

func newHot(limit int64) *hot {
	return &hot{limit: limit, lru: list.New(), byCID: map[cid.Cid]*list.Element{}}
}

// get returns the shared, verified bytes of c, or nil.
func (h *hot) get(c cid.Cid) []byte {
	if h == nil || h.limit <= 0 {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.byCID[c]
	if e == nil {
		return nil
	}
	h.lru.MoveToFront(e)
	return e.Value.(*hotEntry).data
}

// add keeps data, verified against c, which no one may write to again.
func (h *hot) add(c cid.Cid, data []byte) {
	if h == nil || int64(len(data)) > h.limit {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if e := h.byCID[c]; e != nil {
		h.lru.MoveToFront(e)
		return
	}
	h.byCID[c] = h.lru.PushFront(&hotEntry{c: c, data: data})
	h.size += int64(len(data))
	for h.size > h.limit {
		last := h.lru.Back()
		ent := last.Value.(*hotEntry)
		h.lru.Remove(last)
		delete(h.byCID, ent.c)
		h.size -= int64(len(ent.data))
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
			h.size -= int64(len(e.Value.(*hotEntry).data))
		}
	}
}
