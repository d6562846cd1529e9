package coordinator

import (
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/relaymesh/relaymesh/cache"
	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/p2p"
)

// KV key layout of the coordinator's state.
const (
	keyNode    = "n/" // n/<node id> → NodeRecord
	keyToken   = "t/" // t/<token hash> → TokenRecord
	keyPackage = "p/" // p/<package id> → PackageRecord
	keyDeploy  = "d/" // d/<deployment id> → Deployment
	keyRow     = "r/" // r/<deployment id>/<node id> → Row
	keyArchive = "a/" // a/<deployment id>/<node id> → Row that deploy validate --all took out of the deployment
	keySeq     = "meta/order-seq"
	keyMembers = "meta/members-version"
)

// maxTxnBytes keeps one KV transaction well under badger's batch limit.
const maxTxnBytes = 512 << 10

// state is the coordinator's memory of everything, written through to KV.
// One RWMutex guards it; writes to KV happen under the lock so memory and
// disk change together.
type state struct {
	mu       sync.RWMutex
	kv       cache.KV
	nodes    map[string]*NodeRecord
	pubkeys  map[string]ed25519.PublicKey
	tokens   map[string]*TokenRecord
	packages map[string]*PackageRecord
	deps     map[string]*Deployment
	rows     map[string]map[string]*Row // deployment → node → row
	archived map[string]map[string]*Row // deployment → node → row validate --all took out (readable, never counted)
	scans    map[string]*ScanRecord     // node → latest scan (without the inventory list)
	revoked  map[string]*RevokedNode    // node → its revocation (lifecycle.go)
	seq      uint64
	// siteKeys are the gossip keyrings per site, primary first
	// (sitekeys.go).
	siteKeys map[string][][]byte
	// rotations are the sites' latest gossip key rotations (keyrotate.go).
	rotations map[string]*KeyRotation
	// members is the fleet membership version: it grows with every change
	// a member list shows (an enrollment, a relay flag), see memberlist.go.
	members uint64
	// savedSeen is the last-seen time last written per node, so heartbeats
	// are persisted about once a minute, not on every sync.
	savedSeen map[string]time.Time
	// known holds the ID of every node in nodes (removed with it by
	// delete and revoke), read without mu: the byte meter asks on every stream read
	// and write, and waiting for mu there stalled the origin's uploads
	// behind every status write.
	known sync.Map
}

type kvPair struct {
	key string
	val []byte // nil deletes
}

func jsonPair(key string, v any) kvPair {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("coordinator: encode %s: %v", key, err)) // our own types always encode
	}
	return kvPair{key, b}
}

func rowKey(dep, node string) string { return keyRow + dep + "/" + node }

func archiveKey(dep, node string) string { return keyArchive + dep + "/" + node }

// archiveLocked keeps r among dep's archived rows (in memory).
func (s *state) archiveLocked(dep string, r *Row) {
	if s.archived[dep] == nil {
		s.archived[dep] = map[string]*Row{}
	}
	s.archived[dep][r.Node] = r
}

// write stores pairs durably, in as few transactions as the size limit allows.
func (s *state) write(pairs ...kvPair) error {
	for len(pairs) > 0 {
		n, size := 0, 0
		for n < len(pairs) && (n == 0 || size+len(pairs[n].val)+len(pairs[n].key) < maxTxnBytes) {
			size += len(pairs[n].val) + len(pairs[n].key)
			n++
		}
		batch := pairs[:n]
		pairs = pairs[n:]
		err := s.kv.Update(func(tx cache.KVTx) error {
			for _, p := range batch {
				if p.val == nil {
					if err := tx.Delete(p.key); err != nil {
						return err
					}
					continue
				}
				if err := tx.Set(p.key, p.val); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("coordinator: write state: %w", err)
		}
	}
	return nil
}

func loadState(kv cache.KV) (*state, error) {
	s := &state{
		kv:        kv,
		nodes:     map[string]*NodeRecord{},
		pubkeys:   map[string]ed25519.PublicKey{},
		tokens:    map[string]*TokenRecord{},
		packages:  map[string]*PackageRecord{},
		deps:      map[string]*Deployment{},
		rows:      map[string]map[string]*Row{},
		archived:  map[string]map[string]*Row{},
		siteKeys:  map[string][][]byte{},
		rotations: map[string]*KeyRotation{},
		scans:     map[string]*ScanRecord{},
		revoked:   map[string]*RevokedNode{},

		savedSeen: map[string]time.Time{},
	}
	scan := func(prefix string, fn func(key string, val []byte) error) error {
		return kv.Scan(prefix, func(key string, val []byte) error {
			if err := fn(key, val); err != nil {
				return fmt.Errorf("coordinator: state %s: %w", key, err)
			}
			return nil
		})
	}
	err := errors.Join(
		scan(keyNode, func(_ string, v []byte) error {
			var n NodeRecord
			if err := json.Unmarshal(v, &n); err != nil {
				return err
			}
			pub, err := nodeKey(n.ID)
			if err != nil {
				return err
			}
			s.nodes[n.ID], s.pubkeys[n.ID] = &n, pub
			s.known.Store(n.ID, struct{}{})
			return nil
		}),
		scan(keySiteKeys, func(k string, v []byte) error {
			var keys [][]byte
			if err := json.Unmarshal(v, &keys); err != nil {
				return err
			}
			for i, key := range keys {
				if len(key) != 32 {
					return fmt.Errorf("key %d has %d bytes, want 32", i, len(key))
				}
			}
			s.siteKeys[strings.TrimPrefix(k, keySiteKeys)] = keys
			return nil
		}),
		scan(keyRotation, func(k string, v []byte) error { return loadRotation(s, k, v) }),
		scan(keyToken, func(_ string, v []byte) error {
			var t TokenRecord
			if err := json.Unmarshal(v, &t); err != nil {
				return err
			}
			s.tokens[t.Hash] = &t
			return nil
		}),
		scan(keyPackage, func(_ string, v []byte) error {
			var p PackageRecord
			if err := json.Unmarshal(v, &p); err != nil {
				return err
			}
			if err := p.Manifest.Validate(); err != nil {
				return err
			}
			s.packages[p.ID] = &p
			return nil
		}),
		scan(keyScan, func(_ string, v []byte) error {
			r, err := loadScan(v)
			if err != nil {
				return err
			}
			s.scans[r.Node] = r
			return nil
		}),
		scan(keyRevoked, func(_ string, v []byte) error { return loadRevoked(s, v) }),
		scan(keyDeploy, func(_ string, v []byte) error {
			var d Deployment
			if err := json.Unmarshal(v, &d); err != nil {
				return err
			}
			s.deps[d.ID] = &d
			rows := make(map[string]*Row, len(d.Targets))
			for _, t := range d.Targets {
				rows[t] = &Row{Node: t, State: core.StateWaiting, Updated: d.Created}
			}
			for _, u := range d.Unaffected {
				delete(rows, u)
			}
			s.rows[d.ID] = rows
			return nil
		}),
	)
	if err != nil {
		return nil, err
	}
	err = scan(keyRow, func(key string, v []byte) error {
		dep, _, _ := strings.Cut(strings.TrimPrefix(key, keyRow), "/")
		var r Row
		if err := json.Unmarshal(v, &r); err != nil {
			return err
		}
		if rows := s.rows[dep]; rows != nil {
			rows[r.Node] = &r
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = scan(keyArchive, func(key string, v []byte) error {
		dep, _, _ := strings.Cut(strings.TrimPrefix(key, keyArchive), "/")
		var r Row
		if err := json.Unmarshal(v, &r); err != nil {
			return err
		}
		if s.deps[dep] != nil {
			s.archiveLocked(dep, &r)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if v, err := kv.Get(keySeq); err == nil && len(v) == 8 {
		s.seq = binary.BigEndian.Uint64(v)
	} else if err != nil && !errors.Is(err, cache.ErrNotFound) {
		return nil, fmt.Errorf("coordinator: state %s: %w", keySeq, err)
	}
	if v, err := kv.Get(keyMembers); err == nil && len(v) == 8 {
		s.members = binary.BigEndian.Uint64(v)
	} else if err != nil && !errors.Is(err, cache.ErrNotFound) {
		return nil, fmt.Errorf("coordinator: state %s: %w", keyMembers, err)
	}
	return s, nil
}

func seqPair(seq uint64) kvPair {
	return kvPair{keySeq, binary.BigEndian.AppendUint64(nil, seq)}
}

func nodeKey(id string) (ed25519.PublicKey, error) {
	pid, err := peer.Decode(id)
	if err != nil {
		return nil, fmt.Errorf("node id %q: %w", id, err)
	}
	return p2p.PeerPublicKey(pid)
}

// sortedNodes returns the nodes sorted by site, then name, then ID.
func (s *state) sortedNodes() []*NodeRecord {
	out := make([]*NodeRecord, 0, len(s.nodes))
	for _, n := range s.nodes {
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b *NodeRecord) int {
		return strings.Compare(a.Site+"\x00"+a.Name+"\x00"+a.ID, b.Site+"\x00"+b.Name+"\x00"+b.ID)
	})
	return out
}
