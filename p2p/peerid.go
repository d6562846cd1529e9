package p2p

import (
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
)

// idCacheMax bounds DecodePeerID's memo; it is emptied when full.
const idCacheMax = 1 << 16

var idCache struct {
	sync.RWMutex
	m map[string]peer.ID
}

// DecodePeerID is peer.Decode with a memo of the IDs decoded so far. Site
// views name members by their text peer ID and are read on every fetch
// decision; base58 decoding each time was a visible share of the CPU in
// the 1,000-node simulation. Only IDs that decode are remembered.
func DecodePeerID(s string) (peer.ID, error) {
	idCache.RLock()
	id, ok := idCache.m[s]
	idCache.RUnlock()
	if ok {
		return id, nil
	}
	id, err := peer.Decode(s)
	if err != nil {
		return "", err
	}
	idCache.Lock()
	if idCache.m == nil || len(idCache.m) >= idCacheMax {
		idCache.m = make(map[string]peer.ID)
	}
	idCache.m[s] = id
	idCache.Unlock()
	return id, nil
}
