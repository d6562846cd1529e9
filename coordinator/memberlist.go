package coordinator

import (
	"encoding/binary"
	"slices"
	"strings"
	"sync"

	"github.com/relaymesh/relaymesh/core"
)

// Signed member lists (core.MemberList): every node gets its site's list
// at enrollment, on a sync when the version it holds is behind, and with
// every push. One version counter covers the fleet; it grows, durably, in
// the same write as the change it stands for (a node enrolled, a node's
// relay flag changed), so a list is never signed twice with one version
// and different contents. Lists are signed once per site and version.

// memberLists caches the signed list of each site at one version.
type memberLists struct {
	mu    sync.Mutex
	sites map[string]signedList
}

type signedList struct {
	version uint64
	env     *core.Envelope
}

func membersPair(v uint64) kvPair {
	return kvPair{keyMembers, binary.BigEndian.AppendUint64(nil, v)}
}

// bumpMembersLocked returns the next membership version and the pair that
// stores it; the caller writes the pair with its change and then sets
// st.members. st.mu is held for writing.
func (c *Coordinator) bumpMembersLocked() (uint64, kvPair) {
	v := c.st.members + 1
	return v, membersPair(v)
}

// memberListLocked returns the signed member list of site at the current
// version; st.mu is held (read or write).
func (c *Coordinator) memberListLocked(site string) (*core.Envelope, error) {
	v := max(c.st.members, 1) // a fleet from before member lists starts at 1
	c.lists.mu.Lock()
	defer c.lists.mu.Unlock()
	if l, ok := c.lists.sites[site]; ok && l.version == v {
		return l.env, nil
	}
	l := &core.MemberList{Schema: core.MemberListSchema, Site: site, Version: v, Issued: c.now().Unix(),
		Members: []core.ListedNode{}}
	for _, n := range c.st.nodes {
		switch {
		case n.Site == site:
			l.Members = append(l.Members, core.ListedNode{NodeID: n.ID, Name: n.Name})
		case n.Relay && len(l.Relays) < core.MaxListedRelays:
			l.Relays = append(l.Relays, core.ListedNode{NodeID: n.ID, Name: n.Name, Site: n.Site})
		}
	}
	byID := func(a, b core.ListedNode) int { return strings.Compare(a.NodeID, b.NodeID) }
	slices.SortFunc(l.Members, byID)
	slices.SortFunc(l.Relays, byID)
	if len(l.Members) > core.MaxListedMembers {
		l.Members = l.Members[:core.MaxListedMembers]
	}
	env, err := core.SignMemberList(l, c.orderKey)
	if err != nil {
		return nil, err
	}
	if c.lists.sites == nil {
		c.lists.sites = map[string]signedList{}
	}
	c.lists.sites[site] = signedList{v, env}
	return env, nil
}

// MembersVersion is the current fleet membership version.
func (c *Coordinator) MembersVersion() uint64 {
	c.st.mu.RLock()
	defer c.st.mu.RUnlock()
	return max(c.st.members, 1)
}
