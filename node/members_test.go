package node

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/p2p"
)

func signList(t *testing.T, key ed25519.PrivateKey, site string, version uint64, members ...string) *core.Envelope {
	t.Helper()
	l := &core.MemberList{Schema: core.MemberListSchema, Site: site, Version: version, Issued: time.Now().Unix(),
		Members: []core.ListedNode{}}
	for _, m := range members {
		l.Members = append(l.Members, core.ListedNode{NodeID: m})
	}
	// sorted, as the coordinator signs them
	for i := 1; i < len(l.Members); i++ {
		for j := i; j > 0 && l.Members[j].NodeID < l.Members[j-1].NodeID; j-- {
			l.Members[j], l.Members[j-1] = l.Members[j-1], l.Members[j]
		}
	}
	env, err := core.SignMemberList(l, key)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func newPeerID(t *testing.T) peer.ID {
	t.Helper()
	k, err := p2p.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestMemberListNewestWinsAndIsKept: the node adopts a list signed by its
// pinned key for its own site, admits exactly the listed peers (and the
// coordinator) through its gater, never goes back to an older version,
// refuses lists of another site or another key, and holds the newest
// across a restart.
func TestMemberListNewestWinsAndIsKept(t *testing.T) {
	f := newFakeCoord(t)
	dir := enrollNode(t, f)
	n := startNode(t, dir, nil)
	self := n.ID().String()
	a, b := newPeerID(t), newPeerID(t)

	if took, err := n.adoptMemberList(signList(t, f.key, "branch-1", 5, self, a.String())); err != nil || !took {
		t.Fatalf("version 5: took %v, err %v", took, err)
	}
	if !n.gater.Allowed(a) || n.gater.Allowed(b) || !n.gater.Allowed(f.host().ID()) {
		t.Fatalf("gater after version 5: a %v (want true), b %v (want false), coordinator %v (want true)",
			n.gater.Allowed(a), n.gater.Allowed(b), n.gater.Allowed(f.host().ID()))
	}
	// An older list, validly signed (a replay), changes nothing.
	if took, err := n.adoptMemberList(signList(t, f.key, "branch-1", 4, self, b.String())); err != nil || took {
		t.Fatalf("version 4 after 5: took %v, err %v", took, err)
	}
	if n.gater.Allowed(b) || n.membersVersion() != 5 {
		t.Fatalf("an older list moved the gater (b %v) or the version (%d)", n.gater.Allowed(b), n.membersVersion())
	}
	other, err := core.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.adoptMemberList(signList(t, other, "branch-1", 9, self, b.String())); !errors.Is(err, core.ErrUnknownKey) {
		t.Fatalf("list signed by another key: err %v, want ErrUnknownKey", err)
	}
	if _, err := n.adoptMemberList(signList(t, f.key, "branch-2", 9, self, b.String())); !errors.Is(err, core.ErrBadMemberList) {
		t.Fatalf("list of another site: err %v, want ErrBadMemberList", err)
	}
	tampered := signList(t, f.key, "branch-1", 7, self, a.String())
	tampered.Payload = bytes.Replace(tampered.Payload, []byte(`"version":7`), []byte(`"version":9`), 1)
	if _, err := n.adoptMemberList(tampered); !errors.Is(err, core.ErrBadSignature) {
		t.Fatalf("a list with its version changed after signing: err %v, want ErrBadSignature", err)
	}
	if took, err := n.adoptMemberList(signList(t, f.key, "branch-1", 6, self, b.String())); err != nil || !took {
		t.Fatalf("version 6: took %v, err %v", took, err)
	}
	if n.gater.Allowed(a) || !n.gater.Allowed(b) {
		t.Fatalf("gater after version 6: a %v (want false), b %v (want true)", n.gater.Allowed(a), n.gater.Allowed(b))
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	n = startNode(t, dir, nil)
	if v := n.membersVersion(); v != 6 {
		t.Fatalf("after restart the node holds version %d, want 6", v)
	}
	if !n.gater.Allowed(b) || n.gater.Allowed(a) {
		t.Fatalf("after restart: gater a %v (want false), b %v (want true)", n.gater.Allowed(a), n.gater.Allowed(b))
	}
}

// TestUnlistedMemberAsksForEarlySync: an unlisted ID seen in gossip asks
// for one early sync (it may have enrolled a moment ago); the same ID
// again, or another within unlistedSyncGap, does not.
func TestUnlistedMemberAsksForEarlySync(t *testing.T) {
	t.Parallel()
	n := &Node{syncKick: make(chan struct{}, 1)}
	kicked := func() bool {
		select {
		case <-n.syncKick:
			return true
		default:
			return false
		}
	}
	if n.admitMember("12D3KooWnew") || !kicked() {
		t.Fatal("a first unlisted ID was admitted or did not ask for a sync")
	}
	if n.admitMember("12D3KooWnew") || kicked() {
		t.Fatal("the same unlisted ID asked for a second sync")
	}
	if n.admitMember("12D3KooWother") || kicked() {
		t.Fatalf("another unlisted ID within %v asked for a sync", unlistedSyncGap)
	}
	n.unlistedSync = n.unlistedSync.Add(-unlistedSyncGap)
	if n.admitMember("12D3KooWthird") || !kicked() {
		t.Fatalf("an unlisted ID after %v did not ask for a sync", unlistedSyncGap)
	}
}
