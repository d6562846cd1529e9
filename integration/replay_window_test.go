package integration

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/relaymesh/relaymesh/coordinator"
	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/node"
	"github.com/relaymesh/relaymesh/node/runner"
	"github.com/relaymesh/relaymesh/p2p"
)

// countingInstaller installs nothing and counts, per order and package,
// how often a node asked it to.
type countingInstaller struct {
	mu   sync.Mutex
	runs map[string]int // orderID/pkgID
}

func (c *countingInstaller) Install(_ context.Context, req runner.Request, onStart func(string), onResult func(runner.Result)) ([]runner.Result, bool) {
	var out []runner.Result
	for _, p := range req.Packages {
		c.mu.Lock()
		c.runs[req.OrderID+"/"+p.ID]++
		c.mu.Unlock()
		onStart(p.ID)
		r := runner.Result{Package: p.ID, State: core.StateSuccess}
		onResult(r)
		out = append(out, r)
	}
	return out, false
}

func (c *countingInstaller) count(order, pkg string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runs[order+"/"+pkg]
}

func (c *countingInstaller) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, k := range c.runs {
		n += k
	}
	return n
}

// countingSite adds a site of count nodes that install through counting
// installers, returned by node name.
func (c *cluster) countingSite(site string, count int, mutate func(*node.Config)) ([]*testNode, map[string]*countingInstaller) {
	c.t.Helper()
	var mu sync.Mutex
	insts := map[string]*countingInstaller{}
	ns := c.addSite(site, count, func(cfg *node.Config) {
		inst := &countingInstaller{runs: map[string]int{}}
		mu.Lock()
		insts[filepath.Base(cfg.Dir)] = inst
		mu.Unlock()
		cfg.Installer = inst
		if mutate != nil {
			mutate(cfg)
		}
	})
	return ns, insts
}

// publishExecute publishes an archive-less package.
func (c *cluster) publishExecute(name string) string {
	c.t.Helper()
	m := core.Manifest{Schema: core.ManifestSchema, Name: name, Version: "1", OS: "any", Arch: "any",
		Action: core.ActionExecute, Command: []string{"/bin/true"}, Priority: 5}
	b, err := m.Encode()
	if err != nil {
		c.t.Fatal(err)
	}
	rec, err := c.coord.PublishPackage(b)
	if err != nil {
		c.t.Fatal(err)
	}
	return rec.ID
}

// orderSigner signs deploy orders with the coordinator's own order key and
// pushes them from the coordinator's host, as a replaying relay or a
// recorded push would deliver them.
type orderSigner struct {
	t   *testing.T
	c   *cluster
	key ed25519.PrivateKey
}

func (c *cluster) orderSigner() *orderSigner {
	c.t.Helper()
	key, err := core.ReadPrivateKey(filepath.Join(c.root, "coordinator", coordinator.FileOrderKey))
	if err != nil {
		c.t.Fatal(err)
	}
	return &orderSigner{t: c.t, c: c, key: key}
}

func (s *orderSigner) order(id string, seq uint64, n *testNode, pkg string) *core.Envelope {
	s.t.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	o := &core.Order{Schema: core.OrderSchema, Kind: core.KindDeploy, ID: id, Seq: seq,
		IssuedAt: now, NotBefore: now.Add(-time.Minute), Expires: now.Add(time.Hour),
		Packages: []string{pkg}, Targets: []string{n.n.ID().String()}, Priority: 5,
		Mode: core.ModeOneByOne, Reboot: core.RebootNever}
	env, err := core.SignOrder(o, s.key)
	if err != nil {
		s.t.Fatal(err)
	}
	return env
}

// push delivers envs to n from the coordinator's host and returns how many
// n accepted.
func (s *orderSigner) push(n *testNode, envs ...*core.Envelope) int {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ack, err := p2p.Call[core.OrdersPush, core.OrdersAck](ctx, s.c.coord.Host(), n.n.ID(), core.ProtoOrders, &core.OrdersPush{Orders: envs}, 1<<20)
	if err != nil {
		s.t.Fatalf("push to %s: %v", n.name, err)
	}
	return ack.Accepted
}

// TestParallelDeploymentsRunOnceEach: 50 deployments created at once to the
// same 3 nodes (one site, a relay passing orders on) reach the nodes in any
// order; every one ends SUCCESS on every node, each installed exactly once
// per node. Then replays are still refused: an envelope a node accepted,
// pushed again; another order with a sequence it accepted; an order older
// than the replay window. A legitimate older order inside the window runs.
func TestParallelDeploymentsRunOnceEach(t *testing.T) {
	c := newCluster(t, nil)
	ns, insts := c.countingSite("burst", 3, nil)
	c.waitSites(map[string][]*testNode{"burst": ns}, 90*time.Second)

	const deployments = 50
	pkgs := make([]string, deployments)
	for i := range pkgs {
		pkgs[i] = c.publishExecute(fmt.Sprintf("burst-%02d", i))
	}
	ids := make([]string, deployments)
	var wg sync.WaitGroup
	errs := make(chan error, deployments)
	for i := range deployments {
		wg.Go(func() {
			d, err := c.coord.CreateDeployment(coordinator.DeployRequest{Packages: []string{pkgs[i]}, Sites: []string{"burst"}})
			if err != nil {
				errs <- err
				return
			}
			ids[i] = d.ID
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, id := range ids {
		waitDeployment(t, c.coord, id, len(ns), 3*time.Minute)
	}
	for _, n := range ns {
		inst := insts[n.name]
		for i, id := range ids {
			if k := inst.count(id, pkgs[i]); k != 1 {
				t.Errorf("%s: deployment %d (%s) installed %d times, want once", n.name, i, id, k)
			}
		}
		if k := inst.total(); k != deployments {
			t.Errorf("%s: %d installs, want %d", n.name, k, deployments)
		}
	}

	// Replays. The coordinator's sequences are at most 50 so far.
	s := c.orderSigner()
	const base = 1000
	type want struct {
		order, pkg string
		runs       int
	}
	var wants []want
	for _, n := range ns {
		id := func(what string) string { return "replay-" + what + "-" + n.name }
		accepted := s.order(id("accepted"), base, n, pkgs[0])
		if k := s.push(n, accepted); k != 1 {
			t.Fatalf("%s: a new order above the highest: accepted %d", n.name, k)
		}
		if k := s.push(n, accepted); k != 0 {
			t.Errorf("%s: the same envelope again: accepted %d", n.name, k)
		}
		if k := s.push(n, s.order(id("same-seq"), base, n, pkgs[1])); k != 0 {
			t.Errorf("%s: another order with an accepted sequence: accepted %d", n.name, k)
		}
		older := s.order(id("older"), base-100, n, pkgs[2])
		if k := s.push(n, older); k != 1 {
			t.Errorf("%s: an older order inside the window: accepted %d", n.name, k)
		}
		if k := s.push(n, older); k != 0 {
			t.Errorf("%s: the older order again: accepted %d", n.name, k)
		}
		// Move the highest a window ahead: base+10 is now the floor.
		if k := s.push(n, s.order(id("far-ahead"), base+core.ReplayWindow+10, n, pkgs[3])); k != 1 {
			t.Errorf("%s: an order a window ahead: accepted %d", n.name, k)
		}
		if k := s.push(n, s.order(id("below-window"), base+5, n, pkgs[4]), s.order(id("older-again"), base-100, n, pkgs[5])); k != 0 {
			t.Errorf("%s: orders older than the window: accepted %d", n.name, k)
		}
		if k := s.push(n, accepted, older); k != 0 {
			t.Errorf("%s: accepted envelopes, now below the window, again: accepted %d", n.name, k)
		}
		wants = append(wants,
			want{id("accepted"), pkgs[0], 1}, want{id("same-seq"), pkgs[1], 0}, want{id("older"), pkgs[2], 1},
			want{id("far-ahead"), pkgs[3], 1}, want{id("below-window"), pkgs[4], 0}, want{id("older-again"), pkgs[5], 0})
	}
	eventually(t, time.Minute, "accepted replays installed", func() (bool, string) {
		for _, n := range ns {
			if k := insts[n.name].total(); k != deployments+3 {
				return false, fmt.Sprintf("%s: %d installs", n.name, k)
			}
		}
		return true, ""
	})
	for _, n := range ns {
		waitSyncs(t, c.coord, n.name, 3) // nothing else may run meanwhile
	}
	for i, n := range ns {
		inst := insts[n.name]
		for _, w := range wants[i*6 : i*6+6] {
			if k := inst.count(w.order, w.pkg); k != w.runs {
				t.Errorf("%s: order %s installed %d times, want %d", n.name, w.order, k, w.runs)
			}
		}
		if k := inst.total(); k != deployments+3 {
			t.Errorf("%s: %d installs, want %d", n.name, k, deployments+3)
		}
	}
}

// TestSyncCatchesOrderMissedInsideWindow: a node whose push of an order was
// lost while a later order got through (its highest sequence is above the
// missed one) gets the missed order on its next sync and runs it.
func TestSyncCatchesOrderMissedInsideWindow(t *testing.T) {
	// Pushes from the coordinator's queue fail at once: orders reach the
	// node by sync only, unless the test pushes them itself.
	c := newCluster(t, func(cfg *coordinator.Config) { cfg.PushTimeout = time.Nanosecond })
	ns, insts := c.countingSite("lone", 1, func(cfg *node.Config) { cfg.NoGossip = true })
	n, inst := ns[0], insts[ns[0].name]
	first, missedPkg, laterPkg := c.publishExecute("first"), c.publishExecute("missed"), c.publishExecute("later")

	d0, err := c.coord.CreateDeployment(coordinator.DeployRequest{Packages: []string{first}, Nodes: []string{n.name}})
	if err != nil {
		t.Fatal(err)
	}
	waitDeployment(t, c.coord, d0.ID, 1, time.Minute)

	// An order with a later sequence gets through first...
	s := c.orderSigner()
	if k := s.push(n, s.order("got-through", d0.Seq+10, n, laterPkg)); k != 1 {
		t.Fatalf("push of the later order: accepted %d", k)
	}
	// ...and the coordinator's next order, below it, is never pushed.
	d1, err := c.coord.CreateDeployment(coordinator.DeployRequest{Packages: []string{missedPkg}, Nodes: []string{n.name}})
	if err != nil {
		t.Fatal(err)
	}
	if d1.Seq >= d0.Seq+10 {
		t.Fatalf("missed order has sequence %d, want below %d", d1.Seq, d0.Seq+10)
	}
	waitDeployment(t, c.coord, d1.ID, 1, time.Minute)
	if k := inst.count(d1.ID, missedPkg); k != 1 {
		t.Errorf("missed order installed %d times, want once", k)
	}
	waitSyncs(t, c.coord, n.name, 3) // more syncs resend nothing that runs again
	if k := inst.total(); k != 3 {
		t.Errorf("%d installs, want 3", k)
	}
}

// waitSyncs waits until the coordinator has had k more syncs from node:
// each advances the node's last-seen time.
func waitSyncs(t *testing.T, co *coordinator.Coordinator, node string, k int) {
	t.Helper()
	last := func() time.Time {
		v, err := co.Node(node)
		if err != nil {
			t.Fatal(err)
		}
		return v.LastSeen
	}
	seen := last()
	for i := range k {
		eventually(t, 30*time.Second, fmt.Sprintf("sync %d of %d from %s", i+1, k, node), func() (bool, string) {
			now := last()
			if now.After(seen) {
				seen = now
				return true, ""
			}
			return false, "last seen " + seen.Format(time.RFC3339Nano)
		})
	}
}
