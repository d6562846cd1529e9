package coordinator

import (
	"bytes"
	"slices"
	"testing"

	"github.com/relaymesh/relaymesh/core"
)

// TestMemberListsAtEnrollAndSync: enrollment hands the node its site's
// signed list (itself included, no other site's members); each
// enrollment and each change of a relay flag is a new version; a sync
// carries the list only to a node whose version is behind; the other
// sites' relays are listed; a restart keeps the version.
func TestMemberListsAtEnrollAndSync(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tokA, tokB := h.token(TokenRequest{Site: "a", Uses: 2}), h.token(TokenRequest{Site: "b", Uses: 1})
	a1, a2, b1 := newFakeNode(t, h, "a1"), newFakeNode(t, h, "a2"), newFakeNode(t, h, "b1")
	r1 := a1.mustEnroll(tokA)
	open := func(n *fakeNode, env *core.Envelope) *core.MemberList {
		t.Helper()
		l, err := core.OpenMemberList(env, n.ver.Keys)
		if err != nil {
			t.Fatalf("%s: member list: %v", n.name, err)
		}
		return l
	}
	l1 := open(a1, r1.MemberList)
	if l1.Site != "a" || len(l1.Members) != 1 || !l1.Has(a1.ID()) || l1.Members[0].Name != "a1" {
		t.Fatalf("a1's list at enrollment: %+v, want site a with a1 alone", l1)
	}
	l2 := open(a2, a2.mustEnroll(tokA).MemberList)
	lb := open(b1, b1.mustEnroll(tokB).MemberList)
	if l2.Version <= l1.Version || !l2.Has(a1.ID()) || !l2.Has(a2.ID()) || l2.Has(b1.ID()) {
		t.Fatalf("a2's list (version %d after %d): %+v, want a1 and a2 only", l2.Version, l1.Version, l2.Members)
	}
	if lb.Site != "b" || len(lb.Members) != 1 || lb.Has(a1.ID()) {
		t.Fatalf("b1's list: %+v, want b1 alone", lb)
	}

	sync := func(n *fakeNode, held uint64, relay bool) *core.SyncResponse {
		t.Helper()
		info := n.info()
		info.Relay = relay
		resp, err := h.c.Sync(n.ID(), &core.SyncRequest{Info: info, MembersVersion: held})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	cur := h.c.MembersVersion()
	if resp := sync(a1, cur, false); resp.MemberList != nil {
		t.Fatal("a node holding the current version was sent the list again")
	}
	resp := sync(a1, l1.Version, false)
	if resp.MemberList == nil {
		t.Fatal("a node behind was not sent the list")
	}
	if l := open(a1, resp.MemberList); l.Version != cur || !l.Has(a2.ID()) {
		t.Fatalf("a1's list on sync: version %d (want %d), members %+v", l.Version, cur, l.Members)
	}

	// b1 becomes its site's relay: a new version, and site a's list names
	// it among the other sites' relays.
	resp = sync(b1, cur, true)
	if resp.MemberList == nil || h.c.MembersVersion() <= cur {
		t.Fatalf("a relay flag change did not make a new version (%d, was %d)", h.c.MembersVersion(), cur)
	}
	la := open(a1, sync(a1, cur, false).MemberList)
	if !la.HasRelay(b1.ID()) || la.Has(b1.ID()) || la.Relays[0].Site != "b" {
		t.Fatalf("site a's list after b1 relays: relays %+v, members %+v", la.Relays, la.Members)
	}
	if lb := open(b1, resp.MemberList); lb.HasRelay(b1.ID()) {
		t.Fatal("site b's list names its own member among other sites' relays")
	}
	// An unchanged relay flag is no new version.
	v := h.c.MembersVersion()
	sync(b1, v, true)
	if h.c.MembersVersion() != v {
		t.Fatalf("a sync that changed nothing listed moved the version from %d to %d", v, h.c.MembersVersion())
	}

	h.restart()
	if got := h.c.MembersVersion(); got != v {
		t.Fatalf("after a restart the membership version is %d, want %d", got, v)
	}
}

// TestGossipKeysPerSite: the nodes of one site get one keyring, another
// site gets another, neither is the fleet keyring, and a restart keeps
// them; a site whose nodes enrolled under the fleet keyring keeps it.
func TestGossipKeysPerSite(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tokA, tokB := h.token(TokenRequest{Site: "a", Uses: 3}), h.token(TokenRequest{Site: "b", Uses: 1})
	a1, a2, b1 := newFakeNode(t, h, "a1"), newFakeNode(t, h, "a2"), newFakeNode(t, h, "b1")
	ka1, ka2, kb1 := a1.mustEnroll(tokA).GossipKeys, a2.mustEnroll(tokA).GossipKeys, b1.mustEnroll(tokB).GossipKeys
	fleet := h.c.gossipKeys
	if len(ka1) != 1 || len(ka1[0]) != 32 || !slices.EqualFunc(ka1, ka2, bytes.Equal) {
		t.Fatalf("site a's nodes got different or bad keyrings: %x, %x", ka1, ka2)
	}
	if slices.EqualFunc(ka1, kb1, bytes.Equal) {
		t.Fatal("sites a and b got the same gossip keyring")
	}
	if slices.EqualFunc(ka1, fleet, bytes.Equal) || slices.EqualFunc(kb1, fleet, bytes.Equal) {
		t.Fatal("a new site got the fleet keyring")
	}
	h.restart()
	a3 := newFakeNode(t, h, "a3")
	if k := a3.mustEnroll(tokA).GossipKeys; !slices.EqualFunc(k, ka1, bytes.Equal) {
		t.Fatal("after a restart site a's next node got another keyring")
	}

	// A site with nodes from before per-site keyrings: its keyring is the
	// fleet's, which they hold.
	h.c.st.mu.Lock()
	delete(h.c.st.siteKeys, "b")
	h.c.st.mu.Unlock()
	b2 := newFakeNode(t, h, "b2")
	if k := b2.mustEnroll(h.token(TokenRequest{Site: "b"})).GossipKeys; !slices.EqualFunc(k, fleet, bytes.Equal) {
		t.Fatal("a site of older nodes did not get the fleet keyring they hold")
	}
}
