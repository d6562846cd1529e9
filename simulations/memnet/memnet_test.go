package memnet

import (
	"errors"
	"fmt"
	"github.com/relaymesh/relaymesh/internal/poll"
	"io"
	"log"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

func newList(t *testing.T, n *Network, name string) (*memberlist.Memberlist, *Transport) {
	t.Helper()
	tr := n.NewTransport(name)
	c := memberlist.DefaultLocalConfig()
	c.Name = name
	c.Transport = tr
	c.ProbeInterval = 50 * time.Millisecond
	c.ProbeTimeout = 25 * time.Millisecond
	c.GossipInterval = 10 * time.Millisecond
	c.PushPullInterval = 200 * time.Millisecond
	c.SuspicionMult = 1
	c.Logger = log.New(io.Discard, "", 0)
	ml, err := memberlist.Create(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ml.Shutdown() })
	return ml, tr
}

// alive is how many members ml sees alive.
func alive(ml *memberlist.Memberlist) int {
	k := 0
	for _, m := range ml.Members() {
		if m.State == memberlist.StateAlive {
			k++
		}
	}
	return k
}

func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	poll.Until(t, 20*time.Second, 20*time.Millisecond, what, cond)
}

func seesAlive(mls []*memberlist.Memberlist, want int) func() (bool, string) {
	return func() (bool, string) {
		for i, ml := range mls {
			if k := alive(ml); k != want {
				return false, fmt.Sprintf("member %d sees %d alive, want %d", i, k, want)
			}
		}
		return true, ""
	}
}

func TestJoinThenCrash(t *testing.T) {
	t.Parallel()
	var n Network
	a, _ := newList(t, &n, "a")
	b, _ := newList(t, &n, "b")
	c, tc := newList(t, &n, "c")
	for _, ml := range []*memberlist.Memberlist{b, c} {
		if _, err := ml.Join([]string{a.LocalNode().Address()}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "all three alive", seesAlive([]*memberlist.Memberlist{a, b, c}, 3))

	if err := n.Crash(tc.Addr()); err != nil {
		t.Fatal(err)
	}
	// Writes to a crashed host fail at once instead of blocking.
	if _, err := n.NewTransport("probe").WriteTo([]byte{1}, tc.Addr()); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("packet to a crashed host: %v", err)
	}
	if _, err := n.NewTransport("probe2").DialTimeout(tc.Addr(), time.Second); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("stream to a crashed host: %v", err)
	}
	waitFor(t, "the crashed member dead", seesAlive([]*memberlist.Memberlist{a, b}, 2))
}

func TestPartitionAndHeal(t *testing.T) {
	t.Parallel()
	var n Network
	a, ta := newList(t, &n, "a")
	b, tb := newList(t, &n, "b")
	c, tc := newList(t, &n, "c")
	for _, ml := range []*memberlist.Memberlist{b, c} {
		if _, err := ml.Join([]string{a.LocalNode().Address()}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "all three alive", seesAlive([]*memberlist.Memberlist{a, b, c}, 3))

	n.Partition([]string{ta.Addr(), tb.Addr()}, []string{tc.Addr()})
	if _, err := tc.WriteTo([]byte{1}, ta.Addr()); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("packet across the partition: %v", err)
	}
	waitFor(t, "a and b see c gone", seesAlive([]*memberlist.Memberlist{a, b}, 2))

	n.Heal()
	if _, err := c.Join([]string{a.LocalNode().Address()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "all three alive again", seesAlive([]*memberlist.Memberlist{a, b, c}, 3))
}
