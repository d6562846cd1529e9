package p2p

import (
	"sync"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/relaymesh/relaymesh/core"
)

func TestMeterClasses(t *testing.T) {
	t.Parallel()
	classes := map[peer.ID]Class{"lan": ClassSameSite, "wan": ClassOtherSite, "coord": ClassCoordinator, "bogus": 42}
	m := &Meter{Classify: func(p peer.ID) Class { return classes[p] }}
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			m.AddSent("lan", 100)
			m.AddRecv("wan", 7)
			m.AddRecv("coord", 1)
			m.AddSent("stranger", 3) // not classified: ClassUnknown (0)
			m.AddSent("bogus", 5)    // out of range: ClassUnknown
			m.AddSent("lan", -4)     // ignored
		})
	}
	wg.Wait()
	want := map[Class]Counts{
		ClassSameSite:    {Sent: 1000},
		ClassOtherSite:   {Recv: 70},
		ClassCoordinator: {Recv: 10},
		ClassUnknown:     {Sent: 80},
	}
	got := m.Snapshot()
	if len(got) != len(want) {
		t.Fatalf("snapshot has %d classes, want %d", len(got), len(want))
	}
	for c, w := range want {
		if got[c] != w {
			t.Errorf("%s: got %+v, want %+v", c, got[c], w)
		}
	}

	var nilMeter *Meter
	nilMeter.AddSent("lan", 1)
	if nilMeter.Snapshot()[ClassSameSite] != (Counts{}) {
		t.Fatal("nil meter counted")
	}
}

// TestHostMeterCountsWireBytes checks HostConfig.Meter: every stream byte,
// so at least the fragment payload, lands in the peer's class.
func TestHostMeterCountsWireBytes(t *testing.T) {
	t.Parallel()
	serverWire, clientWire := &Meter{}, &Meter{}
	var serverID peer.ID
	clientWire.Classify = func(p peer.ID) Class {
		if p == serverID {
			return ClassCoordinator
		}
		return ClassUnknown
	}
	server := newTestHost(t, func(c *HostConfig) { c.Meter = serverWire })
	serverID = server.ID()
	client := newTestHost(t, func(c *HostConfig) { c.Meter = clientWire })
	data := randomBytes(t, 200<<10)
	if err := ServeFragments(server, FragmentServerConfig{Source: newMemSource(data)}); err != nil {
		t.Fatal(err)
	}
	connect(t, client, server)
	if _, err := FetchFragment(testCtx(t), client, server.ID(), core.FragmentCID(data), 1<<20); err != nil {
		t.Fatal(err)
	}
	if got := clientWire.Snapshot()[ClassCoordinator].Recv; got < int64(len(data)) {
		t.Fatalf("client wire meter received %d bytes from the coordinator class, want >= %d", got, len(data))
	}
	if got := serverWire.Snapshot()[ClassUnknown].Sent; got < int64(len(data)) {
		t.Fatalf("server wire meter sent %d bytes, want >= %d", got, len(data))
	}
}
