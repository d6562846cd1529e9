package node

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/relaymesh/relaymesh/cache"
	"github.com/relaymesh/relaymesh/core"
)

// The site's gossip keyring and its rotation (see core/gossipkey.go). The
// keyring in use is DIR/gossip.keys, written atomically before memberlist
// is switched, so a restart keeps it; its version (the sequence of the
// gossip-key order that set it, 0 for enrollment's) is in the KV. A
// gossip-key order names a keyring by fingerprints: the node switches to
// it when it holds every key named, else asks its sync for them; a
// keyring its own sync stream with the coordinator brings (the only way a
// key reaches it after enrollment) is taken when its version is newer. An
// order is reported SUCCESS once the node holds its keyring or a newer one.

const (
	keyGossipVersion = "gossip/version"
	keyGossipPending = "gossip/pending/" // + 20-digit seq → gossipPending
)

// gossipPending is an accepted gossip-key order not settled yet.
type gossipPending struct {
	Order string   `json:"order"`
	Seq   uint64   `json:"seq"`
	Keys  []string `json:"keys"`
}

// gossipState is the keyring held; mu serialises its changes.
type gossipState struct {
	mu      sync.Mutex
	keys    [][]byte
	version uint64
	loaded  bool
}

// loadGossipLocked reads the keyring and its version once.
func (n *Node) loadGossipLocked() error {
	if n.ring.loaded {
		return nil
	}
	keys, err := ReadGossipKeys(n.cfg.Dir)
	if err != nil {
		return err
	}
	var ver uint64
	switch b, err := n.kv.Get(keyGossipVersion); {
	case err == nil && len(b) == 8:
		ver = binary.BigEndian.Uint64(b)
	case err != nil && !errors.Is(err, cache.ErrNotFound):
		return err
	}
	n.ring.keys, n.ring.version, n.ring.loaded = keys, ver, true
	return nil
}

// gossipKeyIDs are the fingerprints of the keyring held, for the sync
// request; nil when it cannot be read.
func (n *Node) gossipKeyIDs() []string {
	n.ring.mu.Lock()
	defer n.ring.mu.Unlock()
	if err := n.loadGossipLocked(); err != nil {
		return nil
	}
	return core.GossipKeyIDs(n.ring.keys)
}

// GossipKeyring returns the gossip keyring held, primary first, and its
// version.
func (n *Node) GossipKeyring() ([][]byte, uint64, error) {
	n.ring.mu.Lock()
	defer n.ring.mu.Unlock()
	if err := n.loadGossipLocked(); err != nil {
		return nil, 0, err
	}
	return slices.Clone(n.ring.keys), n.ring.version, nil
}

// acceptGossipKey stores a gossip-key order, its sequence and the
// pending record, reports NOTIFIED, then settles what it can.
func (n *Node) acceptGossipKey(env *core.Envelope, o *core.Order) {
	b, err := env.Encode()
	var stale []uint64
	if err == nil {
		stale, err = n.seqs.stale(o.KeyID, o.Seq)
	}
	var p []byte
	if err == nil {
		p, err = json.Marshal(gossipPending{Order: o.ID, Seq: o.Seq, Keys: o.GossipKeys})
	}
	if err == nil {
		err = n.commit(func(tx cache.KVTx) error {
			if err := tx.Set(keyOrder+o.ID, b); err != nil {
				return err
			}
			if err := recordSeq(tx, o.KeyID, o.Seq, stale); err != nil {
				return err
			}
			if err := tx.Set(pendingKey(o.Seq), p); err != nil {
				return err
			}
			return n.out.add(tx, core.Status{OrderID: o.ID, State: core.StateNotified})
		})
	}
	if err != nil {
		n.log.Error("cannot store accepted gossip-key order: it is lost until sent again", "order", o.ID, "err", err)
		return
	}
	n.settleGossip(nil)
}

func pendingKey(seq uint64) string {
	return keyGossipPending + fmt.Sprintf("%020d", seq)
}

// settleGossip takes ring (from this node's sync with the coordinator;
// nil for none) when it is newer than the keyring held, switches to the
// newest pending order's keyring when it holds every key of it, and
// reports the pending orders the keyring held now covers. An order whose
// keys are missing asks for an early sync, which brings them.
func (n *Node) settleGossip(ring *core.GossipRing) {
	n.ring.mu.Lock()
	defer n.ring.mu.Unlock()
	if err := n.loadGossipLocked(); err != nil {
		n.log.Error("gossip keyring unreadable: rotation not applied", "err", err)
		return
	}
	var pending []gossipPending
	err := n.kv.Scan(keyGossipPending, func(_ string, v []byte) error {
		var p gossipPending
		if err := json.Unmarshal(v, &p); err != nil {
			return err
		}
		pending = append(pending, p)
		return nil
	})
	if err != nil {
		n.log.Error("cannot read pending gossip-key orders", "err", err)
		return
	}
	if ring != nil && ring.Version > n.ring.version {
		if err := core.CheckGossipKeyring(ring.Keys); err != nil {
			n.log.Warn("the coordinator's gossip keyring does not check out; keeping the one held", "err", err)
		} else if i := slices.IndexFunc(pending, func(p gossipPending) bool { return p.Seq == ring.Version }); i >= 0 &&
			!slices.Equal(pending[i].Keys, core.GossipKeyIDs(ring.Keys)) {
			n.log.Warn("the coordinator's gossip keyring is not the one its order names; keeping the one held", "order", pending[i].Order)
		} else {
			n.switchGossipLocked(ring.Keys, ring.Version)
		}
	}
	// The newest pending order this node can follow with the keys it holds.
	missing := false
	for _, p := range slices.Backward(pending) {
		if p.Seq <= n.ring.version {
			break
		}
		if keys, ok := pickKeys(n.ring.keys, p.Keys); ok {
			n.switchGossipLocked(keys, p.Seq)
			break
		}
		missing = true
	}
	for _, p := range pending {
		if p.Seq > n.ring.version {
			continue
		}
		detail := fmt.Sprintf("gossip keyring of %d keys held, primary %s (version %d)", len(n.ring.keys), core.GossipKeyID(n.ring.keys[0])[:16], n.ring.version)
		err := n.commit(func(tx cache.KVTx) error {
			if err := tx.Delete(pendingKey(p.Seq)); err != nil {
				return err
			}
			return n.out.add(tx, core.Status{OrderID: p.Order, State: core.StateSuccess, Detail: detail})
		})
		if err != nil {
			n.log.Error("cannot report the gossip-key order", "order", p.Order, "err", err)
		}
	}
	if missing {
		signal(n.syncKick)
	}
}

// pickKeys returns the keys of have named by ids, in the order of ids;
// false when one is missing.
func pickKeys(have [][]byte, ids []string) ([][]byte, bool) {
	out := make([][]byte, 0, len(ids))
	for _, id := range ids {
		i := slices.IndexFunc(have, func(k []byte) bool { return core.GossipKeyID(k) == id })
		if i < 0 {
			return nil, false
		}
		out = append(out, have[i])
	}
	return out, true
}

// switchGossipLocked makes keys (version ver) the keyring: the file and
// its version first, then the running memberlist. A failure is logged and
// leaves the keyring held as it was.
func (n *Node) switchGossipLocked(keys [][]byte, ver uint64) {
	if slices.EqualFunc(keys, n.ring.keys, bytes.Equal) && ver == n.ring.version {
		return
	}
	if err := writeGossipKeys(n.cfg.Dir, keys); err != nil {
		n.log.Error("cannot write the gossip keyring: rotation not applied", "err", err)
		return
	}
	err := n.commit(func(tx cache.KVTx) error {
		return tx.Set(keyGossipVersion, binary.BigEndian.AppendUint64(nil, ver))
	})
	if err != nil {
		// The file holds the keys: a restart uses them, under the old
		// version, and a newer keyring still replaces them.
		n.log.Error("cannot store the gossip keyring version", "err", err)
	}
	if m := n.members.Load(); m != nil && m.Keyring() != nil {
		if err := m.SetKeyring(keys); err != nil {
			n.log.Error("cannot switch the running gossip keyring; the next start uses the new one", "err", err)
		}
	}
	ids := core.GossipKeyIDs(keys)
	short := make([]string, len(ids))
	for i, id := range ids {
		short[i] = id[:16]
	}
	n.log.Info("gossip keyring switched", "version", ver, "keys", strings.Join(short, ","), "was", strconv.FormatUint(n.ring.version, 10))
	n.ring.keys, n.ring.version = slices.Clone(keys), ver
	signal(n.syncKick) // tell the coordinator at once
}
