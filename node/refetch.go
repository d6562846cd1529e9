package node

import (
	"context"
	"fmt"

	"github.com/ipfs/go-cid"

	"github.com/relaymesh/relaymesh/cache"
	"github.com/relaymesh/relaymesh/core"
)

// refetchingStore is the fragment source the installer reassembles from:
// the node's cache, and, for a fragment the cache lost or holds wrong at
// that moment (a flipped byte in badger's value log, a file removed under
// it), the mesh again. The bytes are checked against their CID once either
// way (by the store as it reads them, or by the reassembly), so a source
// that serves bad bytes still fails the job.
type refetchingStore struct{ n *Node }

func (s refetchingStore) Get(c cid.Cid) ([]byte, error) { return s.n.store.Get(c) }

// GetVerified hands reassembly the fragment as the store checked it (a
// badger store hashes every read), or hashes it here for a store that
// does not vouch for its bytes.
func (s refetchingStore) GetVerified(c cid.Cid) (core.Verified, error) {
	return cache.GetVerified(s.n.store, c)
}

// Refetch drops what the cache holds under c and fetches it again from the
// mesh (the fragment's pins stay in place).
func (s refetchingStore) Refetch(ctx context.Context, c cid.Cid, size int64) error {
	n := s.n
	n.log.Warn("fragment lost or corrupt in the cache at reassembly; fetching it again", "cid", c)
	if err := n.store.Delete(c); err != nil {
		return fmt.Errorf("node: drop fragment %s: %w", c, err)
	}
	return n.fetchFragment(ctx, c, size, nil)
}
