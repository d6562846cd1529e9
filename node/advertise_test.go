package node

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// The defaults are for a real LAN: every interface, fixed ports. Before
// this, a node with no config.yaml listened on 127.0.0.1 at a random port
// and its site peers could not reach it.
func TestDefaultsListenOnTheLAN(t *testing.T) {
	t.Parallel()
	c, err := LoadConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Listen, []string{"/ip4/0.0.0.0/tcp/4711"}) || c.GossipBind != "0.0.0.0" || c.GossipPort != 4712 {
		t.Errorf("defaults: listen %v gossip %s:%d, want /ip4/0.0.0.0/tcp/4711 and 0.0.0.0:4712", c.Listen, c.GossipBind, c.GossipPort)
	}
	tc := TestConfig("x")
	if !slices.Equal(tc.Listen, []string{LoopbackListen}) || tc.GossipBind != "127.0.0.1" || tc.GossipPort != 0 {
		t.Errorf("test config: listen %v gossip %s:%d, want loopback with system ports", tc.Listen, tc.GossipBind, tc.GossipPort)
	}
}

func TestValidateAdvertise(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		adv  string
		want string // "" = valid
	}{
		{"/ip4/10.0.0.17/tcp/4711", ""},
		{"/dns4/pos-17.example/tcp/4711", ""},
		{"/ip4/0.0.0.0/tcp/4711", "cannot be dialed"},
		{"/ip4/10.0.0.17/tcp/0", "port 0"},
		{"/ip4/10.0.0.17/udp/4711", "no /tcp/PORT"},
		{"10.0.0.17:4711", "advertise[0]"},
	} {
		c := DefaultConfig("x")
		c.Advertise = []string{tc.adv}
		err := c.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrBadConfig)) {
			t.Errorf("advertise %q: %v, want %q", tc.adv, err, tc.want)
		}
	}
	c := DefaultConfig("x")
	c.GossipAdvertise = "pos-17"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "gossip_advertise") {
		t.Errorf("gossip_advertise pos-17: %v", err)
	}
}

func addrs(t *testing.T, ss ...string) []ma.Multiaddr {
	t.Helper()
	out := make([]ma.Multiaddr, len(ss))
	for i, s := range ss {
		out[i] = ma.StringCast(s)
	}
	return out
}

func strs(ms []ma.Multiaddr) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.String()
	}
	return out
}

// A node on 0.0.0.0 advertises the address on its route to the
// coordinator, not every interface (docker bridges, loopback).
func TestAdvertiseRouteAddress(t *testing.T) {
	t.Parallel()
	expanded := addrs(t, "/ip4/127.0.0.1/tcp/4711", "/ip4/172.17.0.1/tcp/4711", "/ip4/10.0.0.17/tcp/4711")
	a := &advertiser{route: net.ParseIP("10.0.0.17")}
	if got := strs(a.addrs(expanded)); !slices.Equal(got, []string{"/ip4/10.0.0.17/tcp/4711"}) {
		t.Errorf("route 10.0.0.17: advertise %v", got)
	}
	if got := a.expand([]string{"/ip4/0.0.0.0/tcp/4711", "/ip4/192.168.5.5/tcp/4800"}); !slices.Equal(got, []string{"/ip4/10.0.0.17/tcp/4711", "/ip4/192.168.5.5/tcp/4800"}) {
		t.Errorf("expand: %v", got)
	}
	// No route known: every non-loopback address; loopback only as a last resort.
	none := &advertiser{}
	if got := strs(none.addrs(expanded)); !slices.Equal(got, []string{"/ip4/172.17.0.1/tcp/4711", "/ip4/10.0.0.17/tcp/4711"}) {
		t.Errorf("no route: advertise %v", got)
	}
	if got := strs(none.addrs(addrs(t, "/ip4/127.0.0.1/tcp/4711"))); !slices.Equal(got, []string{"/ip4/127.0.0.1/tcp/4711"}) {
		t.Errorf("only loopback: advertise %v", got)
	}
	// Explicit settings win.
	ex, err := newAdvertiser([]string{"/ip4/203.0.113.9/tcp/14711"}, peer.AddrInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if got := strs(ex.addrs(expanded)); !slices.Equal(got, []string{"/ip4/203.0.113.9/tcp/14711"}) {
		t.Errorf("explicit: advertise %v", got)
	}
	if got := ex.expand([]string{"/ip4/0.0.0.0/tcp/4711"}); !slices.Equal(got, []string{"/ip4/203.0.113.9/tcp/14711"}) {
		t.Errorf("explicit expand: %v", got)
	}
}

func TestRouteIPToLoopbackCoordinator(t *testing.T) {
	t.Parallel()
	ip, err := routeIP(peer.AddrInfo{Addrs: addrs(t, "/ip4/127.0.0.1/tcp/7471")})
	if err != nil || !ip.IsLoopback() {
		t.Fatalf("route to 127.0.0.1: %v %v", ip, err)
	}
	if _, err := routeIP(peer.AddrInfo{Addrs: addrs(t, "/dns4/coord.example/tcp/7471")}); err == nil {
		t.Error("a DNS-only coordinator address gave a route IP")
	}
	c := DefaultConfig("x")
	if got := gossipAdvertise(c, ip); got != ip.String() {
		t.Errorf("gossip advertise on 0.0.0.0: %q, want %s", got, ip)
	}
	c.GossipBind = "10.0.0.5"
	if got := gossipAdvertise(c, ip); got != "" {
		t.Errorf("gossip advertise on a specific bind: %q, want memberlist's own", got)
	}
}

// enroll --listen and node run flags are written into config.yaml, keeping
// the rest of the file; a bad value changes nothing.
func TestSaveSettings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, ConfigFile)
	orig := "# fleet defaults\nsync_interval: 5s # faster\nlisten: [/ip4/127.0.0.1/tcp/0]\n"
	if err := os.WriteFile(path, []byte(orig), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := SaveSettings(dir, Settings{Listen: []string{"/ip4/0.0.0.0/tcp/4800"}, Advertise: []string{"/ip4/10.0.0.17/tcp/4800"}, GossipPort: 4801}); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Listen, []string{"/ip4/0.0.0.0/tcp/4800"}) || !slices.Equal(c.Advertise, []string{"/ip4/10.0.0.17/tcp/4800"}) ||
		c.GossipPort != 4801 || c.SyncInterval != 5*time.Second {
		t.Errorf("after save: listen %v advertise %v gossip port %d sync %s", c.Listen, c.Advertise, c.GossipPort, c.SyncInterval)
	}
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), "# fleet defaults") || !strings.Contains(string(b), "# faster") {
		t.Errorf("comments lost:\n%s", b)
	}
	before := string(b)
	err = SaveSettings(dir, Settings{Advertise: []string{"/ip4/0.0.0.0/tcp/4800"}})
	if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), "advertise") {
		t.Errorf("bad advertise: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != before {
		t.Errorf("a refused setting changed the file:\n%s", b)
	}
	// No file yet: one is created with just the settings.
	dir2 := t.TempDir()
	if err := SaveSettings(dir2, Settings{GossipBind: "10.0.0.5"}); err != nil {
		t.Fatal(err)
	}
	if c, err := LoadConfig(dir2); err != nil || c.GossipBind != "10.0.0.5" || c.Listen[0] != DefaultListen {
		t.Errorf("new file: %+v %v", c, err)
	}
	if err := (Settings{}).Check(t.TempDir()); err != nil {
		t.Errorf("empty settings: %v", err)
	}
}

func TestReachabilityList(t *testing.T) {
	t.Parallel()
	var r reachability
	now := time.Unix(1e9, 0)
	a, b, c := peer.ID("a"), peer.ID("b"), peer.ID("c")
	r.note(a, now, errors.New("dial tcp4 10.0.0.9:4711: i/o timeout"))
	r.note(b, now, nil)
	r.note(c, now.Add(-20*time.Minute), errors.New("old"))
	member := func(id peer.ID) bool { return id != "gone" }
	if got := r.unreachable(now, member); !slices.Equal(got, []string{a.String()}) {
		t.Errorf("unreachable: %v, want only a (b answered, c's failure is old)", got)
	}
	if due := r.due([]peer.ID{a, b, "d"}, now.Add(time.Minute), 5); !slices.Equal(due, []peer.ID{"d"}) {
		t.Errorf("due: %v, want only the unchecked d", due)
	}
	r.note(a, now.Add(time.Minute), nil)
	if got := r.unreachable(now.Add(time.Minute), member); len(got) != 0 {
		t.Errorf("after a good dial: %v", got)
	}
}
