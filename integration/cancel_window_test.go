package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/relaymesh/relaymesh/coordinator"
	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/node"
)

// restartCountingNode starts n again on its directory, installing through inst.
func (c *cluster) restartCountingNode(n *testNode, inst node.Installer) *testNode {
	c.t.Helper()
	cfg := node.TestConfig(n.dir)
	cfg.Logger = c.log.With("who", n.name)
	cfg.Installer = inst
	ctx, cancel := context.WithCancel(context.Background())
	nn, err := node.Start(ctx, cfg)
	if err != nil {
		cancel()
		c.t.Fatalf("restart %s: %v", n.name, err)
	}
	tn := &testNode{name: n.name, site: n.site, dir: n.dir, n: nn, cancel: cancel}
	c.mu.Lock()
	c.nodes = append(c.nodes, tn)
	c.mu.Unlock()
	return tn
}

// cancelRowOf returns node's row of deployment id.
func cancelRowOf(t *testing.T, co *coordinator.Coordinator, id, nodeID string) (string, coordinator.RowView) {
	t.Helper()
	v, err := co.Deployment(id)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range v.Nodes {
		if r.Node == nodeID {
			return v.State, r
		}
	}
	t.Fatalf("deployment %s has no row for %s", id, nodeID)
	return "", coordinator.RowView{}
}

// TestDeployDeliveredAfterCancelIsNotRun: a deployment is created while
// its node cannot be reached (down, pushes failing) and cancelled before
// the node hears of it. The node comes back and syncs; later someone
// holding the signed deploy envelope (a relay, a peer) pushes it to the
// node, inside the replay window and before it expires. The node does not
// install it, its row stays CANCELLED and the deployment CANCELLED.
func TestDeployDeliveredAfterCancelIsNotRun(t *testing.T) {
	c := newCluster(t, func(cfg *coordinator.Config) { cfg.PushTimeout = time.Nanosecond })
	ns, insts := c.countingSite("lone", 1, func(cfg *node.Config) { cfg.NoGossip = true })
	n, inst := ns[0], insts[ns[0].name]
	id := n.n.ID().String()
	pkg := c.publishExecute("cancelled-before-delivery")
	c.closeNode(n)

	d, err := c.coord.CreateDeployment(coordinator.DeployRequest{Packages: []string{pkg}, Nodes: []string{n.name}})
	if err != nil {
		t.Fatal(err)
	}
	// The envelope a relay would hold: what the coordinator sends the node.
	resp, err := c.coord.Sync(id, &core.SyncRequest{Info: core.NodeInfo{Hostname: n.name}})
	if err != nil {
		t.Fatal(err)
	}
	var deploy *core.Envelope
	for _, e := range resp.Orders {
		if o, err := core.DecodeOrder(e.Payload); err == nil && o.ID == d.ID {
			deploy = e
		}
	}
	if deploy == nil {
		t.Fatalf("the sync answer lacks deployment %s", d.ID)
	}
	if _, err := c.coord.CancelDeployment(d.ID, false); err != nil {
		t.Fatal(err)
	}
	if st, r := cancelRowOf(t, c.coord, d.ID, id); st != coordinator.DeployCancelled || r.State != core.StateCancelled {
		t.Fatalf("after the cancel: deployment %s, row %s", st, r.State)
	}

	n = c.restartCountingNode(n, inst)
	// The node syncs and takes the cancel order in: it reports the order
	// CANCELLED.
	eventually(t, 30*time.Second, "the node reports taking the cancel order in", func() (bool, string) {
		_, r := cancelRowOf(t, c.coord, d.ID, id)
		return strings.Contains(r.Detail, "before it arrived"), fmt.Sprintf("row %s %q", r.State, r.Detail)
	})

	s := c.orderSigner()
	s.push(n, deploy)
	waitSyncs(t, c.coord, id, 3) // a run would be over and reported by then
	if k := s.push(n, deploy); k != 0 {
		t.Errorf("the deploy envelope again: accepted %d", k)
	}
	if k := inst.total(); k != 0 {
		t.Errorf("the cancelled deployment was installed %d times", k)
	}
	eventually(t, 10*time.Second, "the row CANCELLED", func() (bool, string) {
		st, r := cancelRowOf(t, c.coord, d.ID, id)
		return st == coordinator.DeployCancelled && r.State == core.StateCancelled, st + " " + string(r.State) + " " + r.Detail
	})
}
