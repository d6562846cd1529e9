package node

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/p2p"
)

// TestSyncAsksForTheWindow: a node syncs with its highest sequence and its
// replay window, and runs an order below its highest that only the sync
// brings (its push was lost while a later order got through).
func TestSyncAsksForTheWindow(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	n := startNode(t, enrollNode(t, f), func(c *Config) { c.SyncInterval = time.Hour })
	self := n.ID().String()
	pkgA, pkgB := f.addPackage("exit 0", 10), f.addPackage("exit 0", 11)
	seqIs := func(s uint64) func(o *core.Order) { return func(o *core.Order) { o.Seq = s } }

	// A coordinator that answers the window as coordinator.Sync does.
	var (
		mu   sync.Mutex
		reqs []core.SyncRequest
	)
	p2p.Handle(f.host(), core.ProtoSync, 1<<20, func(_ context.Context, from peer.ID, req *core.SyncRequest) (*core.SyncResponse, error) {
		mu.Lock()
		reqs = append(reqs, *req)
		mu.Unlock()
		f.mu.Lock()
		defer f.mu.Unlock()
		var out []*core.Envelope
		for _, e := range f.orders {
			o, _ := core.DecodeOrder(e.Payload)
			if o.Seq > req.AfterSeq-min(req.Window, req.AfterSeq) && o.Addressed(from.String()) {
				out = append(out, e)
			}
		}
		return &core.SyncResponse{Orders: out}, nil
	})

	if acc, err := f.push(testCtx(t), n, f.sign(f.order("got-through", self, pkgA, seqIs(20)))); err != nil || acc != 1 {
		t.Fatalf("push 20: accepted %d, %v", acc, err)
	}
	f.publish(f.sign(f.order("push-lost", self, pkgB, seqIs(10))))
	if err := n.syncOnce(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	f.waitState(t, "push-lost", core.StateSuccess)
	// The node's own syncs may land here too, some sent before the push.
	mu.Lock()
	after20 := false
	for _, r := range reqs {
		if r.Window != core.ReplayWindow {
			t.Errorf("sync asked after %d with window %d, want %d", r.AfterSeq, r.Window, core.ReplayWindow)
		}
		after20 = after20 || r.AfterSeq == 20
	}
	mu.Unlock()
	if !after20 {
		t.Errorf("no sync asked after 20, the highest: %+v", reqs)
	}
	// Synced again, the order is known: not run twice.
	if err := n.syncOnce(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if states := statesOf(f.statuses("push-lost")); len(states) != 5 {
		t.Errorf("push-lost: reports %v, want one run", states)
	}
}
