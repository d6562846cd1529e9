package mesh

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/goleak"

	"github.com/relaymesh/relaymesh/cache"
	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/internal/poll"
	"github.com/relaymesh/relaymesh/node/site"
	"github.com/relaymesh/relaymesh/p2p"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeSite is a Membership with a fixed view.
type fakeSite struct {
	members []string
	relays  []string
	self    bool
	sent    [][]byte

	mu     sync.Mutex
	direct []string // SendTo calls: "nodeID:CIDs"
}

func (f *fakeSite) Members() []site.Member {
	var out []site.Member
	for _, m := range f.members {
		out = append(out, site.Member{Meta: site.Meta{NodeID: m}})
	}
	return out
}
func (f *fakeSite) Relays() []string           { return f.relays }
func (f *fakeSite) IsRelay() bool              { return f.self }
func (f *fakeSite) Broadcast(msg []byte) error { f.sent = append(f.sent, msg); return nil }
func (f *fakeSite) Gossip(msg []byte) error    { f.sent = append(f.sent, msg); return nil }
func (f *fakeSite) SendTo(id string, msg []byte) error {
	var in message
	if err := json.Unmarshal(msg, &in); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.direct = append(f.direct, fmt.Sprintf("%s:%d", id, len(in.Have)))
	return nil
}

func (f *fakeSite) sentTo() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.direct)
}

func newTestMesh(t *testing.T, fs *fakeSite) (*Mesh, []peer.ID) {
	t.Helper()
	var ids []peer.ID
	for range 4 {
		k, err := p2p.GenerateIdentity()
		if err != nil {
			t.Fatal(err)
		}
		id, _ := peer.IDFromPrivateKey(k)
		ids = append(ids, id)
	}
	k, _ := p2p.GenerateIdentity()
	h, err := p2p.NewHost(p2p.HostConfig{Identity: k, ListenAddrs: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	for _, id := range ids[:3] {
		fs.members = append(fs.members, id.String())
	}
	m, err := New(Config{Host: h, Coordinator: ids[3], Store: cache.NewMemory(0), Members: fs})
	if err != nil {
		t.Fatal(err)
	}
	return m, ids
}

func TestHaveMessagesBuildTheDirectory(t *testing.T) {
	t.Parallel()
	m, ids := newTestMesh(t, &fakeSite{})
	c := core.FragmentCID([]byte("fragment"))
	if m.Available(c) {
		t.Fatal("available before any announcement")
	}
	if orders := m.HandleMessage(ids[0].String(), encodeHave([]cid.Cid{c})); orders != nil {
		t.Fatalf("have message returned orders %v", orders)
	}
	if !m.Available(c) {
		t.Fatal("not available after a live member announced it")
	}
	if got := m.peersWith(c, nil); len(got) != 1 || got[0] != ids[0] {
		t.Fatalf("peersWith = %v, want [%s]", got, ids[0])
	}
	// An announcement from a node that is not a live member steers nothing.
	c2 := core.FragmentCID([]byte("other"))
	m.HandleMessage(ids[3].String(), encodeHave([]cid.Cid{c2}))
	if m.Available(c2) {
		t.Fatal("a non-member's announcement made a fragment available")
	}
	// A banned source is not offered.
	m.mu.Lock()
	m.sources[ids[0]] = &source{banned: farFuture}
	m.mu.Unlock()
	if m.Available(c) {
		t.Fatal("a banned member still offered")
	}
}

func TestHandleMessageGarbage(t *testing.T) {
	t.Parallel()
	m, ids := newTestMesh(t, &fakeSite{})
	for _, msg := range [][]byte{nil, []byte("{"), []byte(`{"k":"have","h":["not-a-cid","bafyfoo"]}`), []byte(`{"k":"what"}`), []byte(`[1,2]`)} {
		if got := m.HandleMessage(ids[0].String(), msg); got != nil {
			t.Errorf("%q returned %v", msg, got)
		}
	}
	if got := m.HandleMessage("not a peer id", encodeHave([]cid.Cid{core.FragmentCID([]byte("x"))})); got != nil {
		t.Errorf("bad sender returned %v", got)
	}
	if len(m.dir) != 0 {
		t.Errorf("garbage entered the directory: %v", m.dir)
	}
}

func TestOrdersMessagePassesEnvelopesThrough(t *testing.T) {
	t.Parallel()
	fs := &fakeSite{}
	m, ids := newTestMesh(t, fs)
	env := &core.Envelope{Type: core.TypeOrder, KeyID: string(make([]byte, 0)), Payload: []byte("x"), Sig: make([]byte, 64)}
	if err := m.BroadcastOrders([]*core.Envelope{env}); err != nil {
		t.Fatal(err)
	}
	if len(fs.sent) != 1 {
		t.Fatalf("broadcasts: %d", len(fs.sent))
	}
	// The envelope's key id is invalid, so decoding drops it: orders are
	// checked by the node's verifier anyway, the mesh only carries them.
	var raw map[string]any
	if err := json.Unmarshal(fs.sent[0], &raw); err != nil || raw["k"] != "orders" {
		t.Fatalf("broadcast %s: %v", fs.sent[0], err)
	}
	_ = m.HandleMessage(ids[1].String(), fs.sent[0])
}

func TestRelayBypass(t *testing.T) {
	t.Parallel()
	fs := &fakeSite{}
	m, ids := newTestMesh(t, fs)
	// A site seen without relays for a moment is waited for; one without
	// relays for noRelayGrace is bypassed.
	if m.mayBypassRelays() {
		t.Fatal("bypassed the relays the moment none was seen")
	}
	m.noRelaySince.Store(time.Now().Add(-noRelayGrace).UnixNano())
	if !m.mayBypassRelays() {
		t.Fatal("a site without relays for noRelayGrace must fetch from the coordinator")
	}
	fs.relays = []string{ids[1].String()}
	if m.mayBypassRelays() {
		t.Fatal("bypassed a healthy relay")
	}
	fs.relays = nil
	if m.mayBypassRelays() {
		t.Fatal("a relay seen again restarts the grace")
	}
	fs.relays = []string{ids[1].String()}
	m.relayFailSince.Store(1) // failing since 1970
	if !m.mayBypassRelays() {
		t.Fatal("a relay failing for longer than RelayGiveUp is not bypassed")
	}
	if got := m.relays(core.FragmentCID([]byte("f"))); len(got) != 1 || got[0] != ids[1] {
		t.Fatalf("relays = %v", got)
	}
}

func TestFetchFromCoordinatorWhenAlone(t *testing.T) {
	t.Parallel()
	m, _ := newTestMesh(t, &fakeSite{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Fetch(ctx, core.FragmentCID([]byte("f")), 10); err == nil {
		t.Fatal("fetch with a cancelled context succeeded")
	}
}

func FuzzHandleMessage(f *testing.F) {
	f.Add([]byte(`{"k":"have","h":["bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"]}`))
	f.Add([]byte(`{"k":"orders","o":[null]}`))
	f.Add([]byte(`{`))
	k, _ := p2p.GenerateIdentity()
	from, _ := peer.IDFromPrivateKey(k)
	f.Fuzz(func(t *testing.T, msg []byte) {
		m := &Mesh{dir: map[cid.Cid]map[peer.ID]struct{}{}, sources: map[peer.ID]*source{}, log: discard, cfg: Config{Host: nilHost{}}}
		_ = m.HandleMessage(from.String(), msg)
	})
}

func TestNewMembersAreToldWhatThisNodeHas(t *testing.T) {
	t.Parallel()
	fs := &fakeSite{}
	m, ids := newTestMesh(t, fs)
	idle := func() {
		poll.Until(t, 10*time.Second, 5*time.Millisecond, "the sender to stop", poll.Bool(func() bool {
			m.mu.Lock()
			defer m.mu.Unlock()
			return !m.sending
		}))
	}
	// Nothing stored: nobody is told anything, but the members are known.
	m.MembersChanged()
	idle()
	if got := fs.sentTo(); len(got) != 0 {
		t.Fatalf("sends with nothing stored = %v", got)
	}
	for i := range 300 {
		b := []byte{byte(i), byte(i >> 8)}
		if err := m.cfg.Store.Put(core.FragmentCID(b), b); err != nil {
			t.Fatal(err)
		}
	}
	// ids[3] joins: it alone is sent the 300 CIDs, in batches of at most
	// maxHaveBatch.
	fs.mu.Lock()
	fs.members = append(fs.members, ids[3].String())
	fs.mu.Unlock()
	m.MembersChanged()
	want := []string{fmt.Sprintf("%s:%d", ids[3], maxHaveBatch), fmt.Sprintf("%s:%d", ids[3], 300-maxHaveBatch)}
	poll.Until(t, 10*time.Second, 5*time.Millisecond, "two sends to the newcomer", poll.Bool(func() bool { return len(fs.sentTo()) >= 2 }))
	if got := fs.sentTo(); !slices.Equal(got, want) {
		t.Fatalf("sends = %v, want %v", got, want)
	}
	// A view change without newcomers sends nothing more.
	m.MembersChanged()
	idle()
	if got := fs.sentTo(); len(got) != 2 {
		t.Fatalf("sends after a change without newcomers = %v", got)
	}
}

func TestDistrustedListsCurrentBans(t *testing.T) {
	t.Parallel()
	m, ids := newTestMesh(t, &fakeSite{})
	if got := m.Distrusted(); got != nil {
		t.Fatalf("Distrusted = %v with no ban", got)
	}
	now := time.Now()
	m.mu.Lock()
	m.sources[ids[0]] = &source{banned: now.Add(time.Minute)}
	m.sources[ids[1]] = &source{banned: now.Add(3 * time.Minute)}
	m.sources[ids[2]] = &source{banned: now.Add(2 * time.Minute)}
	m.sources[ids[3]] = &source{banned: now.Add(-time.Minute)} // over
	m.mu.Unlock()
	want := []string{ids[1].String(), ids[2].String()} // the latest, at most site.MaxDistrust
	if got := m.Distrusted(); !slices.Equal(got, want) {
		t.Fatalf("Distrusted = %v, want %v", got, want)
	}
}
