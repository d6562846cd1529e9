package core

import (
	"crypto/ed25519"
	"fmt"
	"slices"
	"strings"
)

// A member list is the coordinator's signed word on who belongs to a site:
// the site's enrolled nodes, and the relays of the other sites its nodes
// may fetch from. A node admits through its connection gater, and takes
// as site members (relay candidates, fragment sources), only the peers
// the newest list it holds names; gossip can tell it where a listed
// member is and what it has, never who is a member. Whoever holds the
// gossip key but is not enrolled stays outside.

// TypeMemberList is the payload type of a signed member list.
const TypeMemberList = "relaymesh/member-list/v1"

// MemberListSchema is the member list format version.
const MemberListSchema = 1

// Bounds of a member list.
const (
	MaxListedMembers = 1 << 16
	MaxListedRelays  = MaxPushRelays
	maxListedName    = 255
	maxListedID      = 128
	maxListedSite    = 64
)

// MemberList is one site's membership at one version of the coordinator's
// fleet membership. Version grows with every change of membership
// (an enrollment, a relay elected or stepping down anywhere): a node keeps
// the list with the highest version it verified and ignores older ones, so
// a list replayed from the past cannot shrink or grow what it admits.
type MemberList struct {
	Schema  int    `json:"schema"`
	Site    string `json:"site"`
	Version uint64 `json:"version"`
	Issued  int64  `json:"issued"` // unix seconds, for people: Version orders lists
	// Members are the site's enrolled nodes, sorted by node ID.
	Members []ListedNode `json:"members"`
	// Relays are the nodes of other sites that last said they relay,
	// sorted by node ID: this site's relays may fetch from them and serve
	// them.
	Relays []ListedNode `json:"relays,omitempty"`
}

// ListedNode is one node of a member list.
type ListedNode struct {
	NodeID string `json:"node"`
	Name   string `json:"name,omitempty"`
	Site   string `json:"site,omitempty"` // set for Relays
}

// Has reports whether id is one of the site's members.
func (l *MemberList) Has(id string) bool {
	_, ok := slices.BinarySearchFunc(l.Members, id, func(n ListedNode, id string) int { return strings.Compare(n.NodeID, id) })
	return ok
}

// HasRelay reports whether id is one of the other sites' relays listed.
func (l *MemberList) HasRelay(id string) bool {
	_, ok := slices.BinarySearchFunc(l.Relays, id, func(n ListedNode, id string) int { return strings.Compare(n.NodeID, id) })
	return ok
}

func (l *MemberList) validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrBadMemberList, fmt.Sprintf(format, a...))
	}
	switch {
	case l.Schema != MemberListSchema:
		return bad("schema %d: want %d", l.Schema, MemberListSchema)
	case l.Site == "" || len(l.Site) > maxListedSite:
		return bad("site %q: want 1 to %d bytes", l.Site, maxListedSite)
	case l.Version == 0:
		return bad("version 0: versions start at 1")
	case len(l.Members) > MaxListedMembers:
		return bad("%d members, at most %d", len(l.Members), MaxListedMembers)
	case len(l.Relays) > MaxListedRelays:
		return bad("%d relays, at most %d", len(l.Relays), MaxListedRelays)
	}
	for what, ns := range map[string][]ListedNode{"member": l.Members, "relay": l.Relays} {
		for i, n := range ns {
			if n.NodeID == "" || len(n.NodeID) > maxListedID || strings.Trim(n.NodeID, alnum) != "" {
				return bad("%s %d: node ID %q: want 1 to %d letters and digits", what, i, short(n.NodeID), maxListedID)
			}
			if len(n.Name) > maxListedName || len(n.Site) > maxListedSite {
				return bad("%s %s: name or site too long", what, short(n.NodeID))
			}
			if i > 0 && ns[i-1].NodeID >= n.NodeID {
				return bad("%s %s: not sorted by node ID, or listed twice", what, short(n.NodeID))
			}
		}
	}
	return nil
}

const alnum = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

// SignMemberList encodes and signs a member list with the coordinator's
// order key.
func SignMemberList(l *MemberList, priv ed25519.PrivateKey) (*Envelope, error) {
	if err := l.validate(); err != nil {
		return nil, err
	}
	b, err := encodeCanonical(l)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadMemberList, err)
	}
	return Seal(TypeMemberList, b, priv), nil
}

// OpenMemberList checks a member list envelope against the pinned keys
// and decodes it.
func OpenMemberList(e *Envelope, keys map[string]ed25519.PublicKey) (*MemberList, error) {
	if e == nil {
		return nil, fmt.Errorf("%w: no member list", ErrBadMemberList)
	}
	pub, ok := keys[e.KeyID]
	if !ok {
		return nil, fmt.Errorf("%w: member list signed by %s, which is not pinned on this node", ErrUnknownKey, short(e.KeyID))
	}
	b, err := e.Open(TypeMemberList, pub)
	if err != nil {
		return nil, err
	}
	var l MemberList
	if err := decodeCanonical(b, &l, "member list"); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadMemberList, err)
	}
	if err := l.validate(); err != nil {
		return nil, err
	}
	return &l, nil
}
