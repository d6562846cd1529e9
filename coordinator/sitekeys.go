package coordinator

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"slices"
)

// One gossip keyring per site. A site's nodes get its keyring at
// enrollment, so a node of one site (or whoever copied its keyring) cannot
// read or join another site's gossip. A site's keyring is made when its
// first node enrolls: a fresh random key, or, for a site whose nodes
// enrolled before keyrings were per site, the fleet keyring (gossip.key)
// they hold, so they keep talking to its new members.

// keySiteKeys holds a site's keyring: gk/<site> → JSON list of keys,
// primary first.
const keySiteKeys = "gk/"

// siteKeysLocked returns the keyring of site, making it (and the pair
// that stores it, to write with the enrollment) when the site has none.
// st.mu is held for writing; self is the enrolling node.
func (c *Coordinator) siteKeysLocked(site, self string) ([][]byte, *kvPair, error) {
	if keys := c.st.siteKeys[site]; len(keys) > 0 {
		return keys, nil, nil
	}
	older := false
	for _, n := range c.st.nodes {
		older = older || n.Site == site && n.ID != self
	}
	var keys [][]byte
	if older {
		keys = slices.Clone(c.gossipKeys)
	} else {
		k := make([]byte, 32)
		if _, err := rand.Read(k); err != nil {
			return nil, nil, fmt.Errorf("coordinator: gossip key for site %s: %w", site, err)
		}
		keys = [][]byte{k}
	}
	b, err := json.Marshal(keys)
	if err != nil {
		return nil, nil, err
	}
	return keys, &kvPair{keySiteKeys + site, b}, nil
}
