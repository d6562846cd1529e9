package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/relaymesh/relaymesh/cache"
	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/p2p"
)

// The coordinator's signed member list (core.MemberList) decides who is
// in this node's site: the gater admits the coordinator and the peers the
// list names (the site's members, the other sites' relays), and the site
// view (relay election, fragment sources, messages) holds only listed
// members. Gossip says where a listed member is and what it has, never
// who is a member.
//
// The node keeps the newest list it verified (highest Version) in its KV,
// synced. A new enrollment brings one (node.json); a sync brings a newer
// one when the coordinator's version moved, and so does every push. Until
// a node holds a list (a node enrolled before lists existed, for its
// first sync) it admits only the coordinator and does not stand as relay.

// keyMemberList holds the newest verified member list envelope (JSON).
const keyMemberList = "members/list"

// unlistedSyncGap is the shortest time between two syncs asked for early
// because an unlisted member showed up in gossip (a node enrolled a
// moment ago appears on the list at the next sync).
const unlistedSyncGap = 5 * time.Second

// maxUnlistedSeen bounds the unlisted node IDs remembered between lists.
const maxUnlistedSeen = 1024

// listed is the member list in force, decoded for lookups.
type listed struct {
	list *core.MemberList
	env  *core.Envelope
}

// loadMemberList takes in, at start, the newest of the list kept in the
// KV and the one enrollment brought.
func (n *Node) loadMemberList() error {
	b, err := n.kv.Get(keyMemberList)
	switch {
	case errors.Is(err, cache.ErrNotFound):
	case err != nil:
		return fmt.Errorf("node: read member list: %w", err)
	default:
		var env core.Envelope
		if err := json.Unmarshal(b, &env); err != nil {
			return fmt.Errorf("%w: kv %s: %w", cache.ErrCorruptDB, keyMemberList, err)
		}
		l, err := n.openMemberList(&env)
		if err != nil {
			return fmt.Errorf("node: member list kept in the KV: %w", err)
		}
		n.listed.Store(&listed{list: l, env: &env})
		n.applyMemberList()
	}
	if n.enr.MemberList != nil {
		if _, err := n.adoptMemberList(n.enr.MemberList); err != nil {
			n.log.Warn("the member list of the enrollment does not check out; waiting for the coordinator's", "err", err)
		}
	}
	return nil
}

// openMemberList verifies env against the pinned order keys and checks
// that it is this node's site's.
func (n *Node) openMemberList(env *core.Envelope) (*core.MemberList, error) {
	l, err := core.OpenMemberList(env, n.verifier.Keys)
	if err != nil {
		return nil, err
	}
	if l.Site != n.enr.Site {
		return nil, fmt.Errorf("%w: list of site %q, this node is in %q", core.ErrBadMemberList, l.Site, n.enr.Site)
	}
	return l, nil
}

// adoptMemberList verifies env and, when it is newer than the list held,
// keeps it (durably) and applies it. It reports whether it took env.
func (n *Node) adoptMemberList(env *core.Envelope) (bool, error) {
	if env == nil {
		return false, nil
	}
	l, err := n.openMemberList(env)
	if err != nil {
		return false, err
	}
	took, err := n.keepMemberList(env, l)
	if took {
		// Outside listMu: republishing the meta waits (memberlist's
		// UpdateNode, up to its timeout) for the broadcast, and a lock held
		// across a timed wait stalls a synctest bubble's clock.
		n.refreshSite()
	}
	return took, err
}

// keepMemberList stores l (from env) and sets the gater, unless the list
// held is as new.
func (n *Node) keepMemberList(env *core.Envelope, l *core.MemberList) (bool, error) {
	n.listMu.Lock()
	defer n.listMu.Unlock()
	if cur := n.listed.Load(); cur != nil && cur.list.Version >= l.Version {
		return false, nil
	}
	b, err := json.Marshal(env)
	if err != nil {
		return false, err
	}
	if err := n.kv.Set(keyMemberList, b); err != nil {
		return false, fmt.Errorf("node: keep member list: %w", err)
	}
	n.listed.Store(&listed{list: l, env: env})
	n.unlistedMu.Lock()
	n.unlistedSeen = nil
	n.unlistedMu.Unlock()
	n.log.Debug("member list", "version", l.Version, "members", len(l.Members), "relays", len(l.Relays))
	n.setGater()
	return true, nil
}

// applyMemberList sets the gater to the coordinator and the listed peers
// and refreshes the site view.
func (n *Node) applyMemberList() {
	n.setGater()
	n.refreshSite()
}

// setGater admits the coordinator and the peers of the list held.
func (n *Node) setGater() {
	cur := n.listed.Load()
	if n.gater == nil || cur == nil {
		return
	}
	ids := []peer.ID{n.coord.ID}
	for _, ns := range [][]core.ListedNode{cur.list.Members, cur.list.Relays} {
		for _, m := range ns {
			if id, err := p2p.DecodePeerID(m.NodeID); err == nil && m.NodeID != n.enr.NodeID {
				ids = append(ids, id)
			}
		}
	}
	n.gater.Replace(ids...)
}

// refreshSite republishes the node's meta (it says relay-eligible only
// once a list is held) and refreshes the site view.
func (n *Node) refreshSite() {
	if m := n.members.Load(); m != nil && n.listed.Load() != nil {
		n.republishMeta()
		m.Refresh()
	}
}

// membersVersion is the version of the list held, 0 for none.
func (n *Node) membersVersion() uint64 {
	if cur := n.listed.Load(); cur != nil {
		return cur.list.Version
	}
	return 0
}

// hasList reports whether the node holds a member list.
func (n *Node) hasList() bool { return n.listed.Load() != nil }

// admitMember is the site's Config.Admit: a member of this node's site on
// the list held. An unlisted ID seen for the first time asks for an early
// sync (at most one per unlistedSyncGap): it may be a node enrolled a
// moment ago.
func (n *Node) admitMember(id string) bool {
	if cur := n.listed.Load(); cur != nil && cur.list.Has(id) {
		return true
	}
	n.unlistedMu.Lock()
	defer n.unlistedMu.Unlock()
	if n.unlistedSeen[id] || len(n.unlistedSeen) >= maxUnlistedSeen {
		return false
	}
	if n.unlistedSeen == nil {
		n.unlistedSeen = map[string]bool{}
	}
	n.unlistedSeen[id] = true
	if now := time.Now(); now.Sub(n.unlistedSync) >= unlistedSyncGap {
		n.unlistedSync = now
		signal(n.syncKick)
	}
	return false
}

// listedPeer reports whether id is on the list held: a member of the site
// or another site's relay.
func (n *Node) listedPeer(id string) bool {
	cur := n.listed.Load()
	return cur != nil && (cur.list.Has(id) || cur.list.HasRelay(id))
}

// MemberList returns the member list the node holds, nil for none.
func (n *Node) MemberList() *core.MemberList {
	if cur := n.listed.Load(); cur != nil {
		return cur.list
	}
	return nil
}
