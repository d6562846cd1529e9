package core

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
)

// Gossip key rotation. A site's memberlist keyring changes in three steps,
// each ordered by a signed gossip-key order that names the keyring the
// site's nodes must hold by fingerprints, primary first: add the new key
// (old one primary), use it (new primary, old still accepted), remove the
// old one. The keys themselves never travel in an order (relays and site
// peers see orders): a node fetches them on its own sync stream with the
// coordinator (authenticated by Noise against the pinned peer ID), in
// SyncResponse.GossipRing, and tells the coordinator the fingerprints of
// the keyring it holds in SyncRequest.GossipKeys.

// KindGossipKey is an order that sets its targets' gossip keyring to the
// keys named in GossipKeys.
const KindGossipKey = "gossip-key"

// MaxGossipKeys bounds a keyring.
const MaxGossipKeys = 4

// GossipKeySize is the size of a gossip key (AES-256).
const GossipKeySize = 32

// GossipKeyID is the fingerprint of a gossip key: 64 hex digits of a
// domain-separated SHA-256. It names the key without revealing it.
func GossipKeyID(key []byte) string {
	h := sha256.New()
	h.Write([]byte("relaymesh gossip key\x00"))
	h.Write(key)
	return hex.EncodeToString(h.Sum(nil))
}

// GossipKeyIDs fingerprints a keyring, in its order.
func GossipKeyIDs(keys [][]byte) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = GossipKeyID(k)
	}
	return out
}

// GossipRing is a site's keyring as the coordinator hands it to one node
// over its sync stream: Version is the sequence of the gossip-key order
// that set it (0: the keyring of enrollment), Keys are primary first.
type GossipRing struct {
	Version uint64   `json:"version"`
	Keys    [][]byte `json:"keys"`
}

// CheckGossipKeyring checks a keyring's shape: 1 to MaxGossipKeys keys of
// GossipKeySize bytes, no two alike.
func CheckGossipKeyring(keys [][]byte) error {
	if len(keys) == 0 || len(keys) > MaxGossipKeys {
		return fmt.Errorf("%w: gossip keyring of %d keys: want 1 to %d", ErrBadOrder, len(keys), MaxGossipKeys)
	}
	ids := GossipKeyIDs(keys)
	for i, k := range keys {
		if len(k) != GossipKeySize {
			return fmt.Errorf("%w: gossip key %d has %d bytes, want %d", ErrBadOrder, i, len(k), GossipKeySize)
		}
		if slices.Index(ids, ids[i]) != i {
			return fmt.Errorf("%w: gossip key %d appears twice", ErrBadOrder, i)
		}
	}
	return nil
}

func validGossipKeyIDs(ids []string) error {
	if len(ids) == 0 || len(ids) > MaxGossipKeys {
		return fmt.Errorf("%d gossip keys: want 1 to %d", len(ids), MaxGossipKeys)
	}
	for i, id := range ids {
		if b, err := hex.DecodeString(id); err != nil || len(b) != sha256.Size || hex.EncodeToString(b) != id {
			return fmt.Errorf("gossip key %d %q: want 64 lower-case hex digits", i, id)
		}
		if slices.Index(ids, id) != i {
			return fmt.Errorf("gossip key %d appears twice", i)
		}
	}
	return nil
}
