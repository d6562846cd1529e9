package coordinator

import (
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/p2p"
)

// offloadFleet opens a coordinator (not started) whose state holds the
// given nodes: name → site, relay.
func offloadFleet(t *testing.T, busy int, nodes map[string]struct {
	site  string
	relay bool
}) (*Coordinator, map[string]peer.ID) {
	t.Helper()
	dir := t.TempDir()
	if _, err := Init(dir); err != nil {
		t.Fatal(err)
	}
	cfg := TestConfig(dir)
	cfg.Logger = testLogger(t)
	cfg.RedirectBusy = busy
	c, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.offload.maxWait = 20 * time.Millisecond
	ids := map[string]peer.ID{}
	now := c.now()
	c.st.mu.Lock()
	for name, n := range nodes {
		k, _ := p2p.GenerateIdentity()
		id, _ := peer.IDFromPrivateKey(k)
		ids[name] = id
		c.st.nodes[id.String()] = &NodeRecord{ID: id.String(), Name: name, Site: n.site, Relay: n.relay,
			Addrs: []string{"/ip4/127.0.0.1/tcp/4001"}, FirstSeen: now, LastSeen: now}
		c.st.known.Store(id.String(), struct{}{})
	}
	c.st.mu.Unlock()
	return c, ids
}

func TestOriginRedirectsBusyRelaysToOtherSites(t *testing.T) {
	t.Parallel()
	type n = struct {
		site  string
		relay bool
	}
	c, ids := offloadFleet(t, 2, map[string]n{
		"a": {"s1", true}, "a2": {"s1", true}, "b": {"s2", true}, "d": {"s3", true},
		"x": {"s1", false}, "y": {"s2", false},
	})
	f := core.FragmentCID([]byte("fragment"))
	names := func(ais []peer.AddrInfo) []string {
		var out []string
		for _, ai := range ais {
			for name, id := range ids {
				if id == ai.ID && len(ai.Addrs) > 0 {
					out = append(out, name)
				}
			}
		}
		return out
	}
	c.served(ids["a"], f)
	c.served(ids["x"], f) // not a relay: not a holder
	if got := c.redirect(ids["b"], f); got != nil {
		t.Fatalf("an idle origin redirected: %v", names(got))
	}
	c.offload.active.Store(2) // two uploads running: busy
	if got := names(c.redirect(ids["b"], f)); len(got) != 1 || got[0] != "a" {
		t.Fatalf("relay b sent to %v, want [a]", got)
	}
	// b was served f by the idle origin above, so b holds it (or soon
	// will): a2 is sent there, never to a, which is in its own site.
	if got := names(c.redirect(ids["a2"], f)); len(got) != 1 || got[0] != "b" {
		t.Fatalf("relay a2 sent to %v, want [b] (not a, its own site)", got)
	}
	if got := c.redirect(ids["y"], f); got != nil {
		t.Fatalf("non-relay y redirected: %v", names(got))
	}
	if got := c.redirect(ids["b"], core.FragmentCID([]byte("other"))); got != nil {
		t.Fatalf("redirected for a fragment nobody holds: %v", names(got))
	}
	// A request for a fragment nobody holds waits for a holder.
	g := core.FragmentCID([]byte("soon held"))
	c.offload.maxWait = time.Minute
	got := make(chan []peer.AddrInfo, 1)
	go func() { got <- c.redirect(ids["b"], g) }()
	c.served(ids["a2"], g)
	if h := names(<-got); len(h) != 1 || h[0] != "a2" {
		t.Fatalf("waiting request sent to %v, want [a2]", h)
	}
	// ... or for an upload slot.
	go func() { got <- c.redirect(ids["b"], core.FragmentCID([]byte("unheld"))) }()
	c.offload.active.Store(1)
	c.offload.mu.Lock()
	c.offload.poke()
	c.offload.mu.Unlock()
	if h := <-got; h != nil {
		t.Fatalf("request waiting for a slot was redirected to %v", names(h))
	}
	c.offload.active.Store(2)
	c.offload.maxWait = 20 * time.Millisecond
	// Holders outside s2 now: a and a2 (redirected above, so a holder
	// too), each named once so far, and d, never named: d comes first.
	c.served(ids["d"], f)
	if got := names(c.redirect(ids["b"], f)); len(got) != 2 || got[0] != "d" || got[1] != "a" {
		t.Fatalf("relay b sent to %v, want [d a] (a and a2 were named already)", got)
	}
	// A holder that went silent is not named.
	c.st.mu.Lock()
	c.st.nodes[ids["d"].String()].LastSeen = c.now().Add(-time.Hour)
	c.st.mu.Unlock()
	if got := names(c.redirect(ids["b"], f)); len(got) != 2 || slices.Contains(got, "d") {
		t.Fatalf("relay b sent to %v, want a and a2 once d is offline", got)
	}
	// The relays pushed to a relay of s2 are those of the other sites.
	c.st.mu.RLock()
	others := c.otherRelaysLocked("s2")
	c.st.mu.RUnlock()
	if len(others) != 2 { // a, a2 (d is offline)
		t.Fatalf("other relays for s2 = %v, want a and a2", others)
	}
}

func TestOriginNeverRedirectsWhenTurnedOff(t *testing.T) {
	t.Parallel()
	type n = struct {
		site  string
		relay bool
	}
	c, ids := offloadFleet(t, -1, map[string]n{"a": {"s1", true}, "b": {"s2", true}})
	f := core.FragmentCID([]byte("fragment"))
	c.served(ids["a"], f)
	c.offload.active.Store(1000)
	if got := c.redirect(ids["b"], f); got != nil {
		t.Fatalf("redirect_busy -1 still redirected to %v", got)
	}
}
