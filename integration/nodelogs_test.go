package integration

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/relaymesh/relaymesh/coordinator"
	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/p2p"
)

// TestNodeLogsOverTheMesh: the coordinator asks a real node for its recent
// log lines (through the admin API, as `nodes logs` does); since and level
// filter them; a site peer asking the node itself is refused; unknown
// nodes are refused with what to do.
func TestNodeLogsOverTheMesh(t *testing.T) {
	c := newCluster(t, nil)
	ns := c.addSite("paris", 2, nil)
	c.waitSites(map[string][]*testNode{"paris": ns}, 30*time.Second)
	d, err := c.coord.CreateDeployment(coordinator.DeployRequest{Nodes: []string{"paris-1"}, Packages: []string{c.publishExecute("logged")}})
	if err != nil {
		t.Fatal(err)
	}
	waitDeployment(t, c.coord, d.ID, 1, 30*time.Second)
	cl, err := coordinator.NewClient(c.coord.AdminURL(), c.coord.AdminToken(), "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	nl, err := cl.NodeLogs(ctx, "paris-1", "1h", "")
	if err != nil {
		t.Fatalf("NodeLogs: %v", err)
	}
	if nl.Name != "paris-1" || nl.ID != ns[0].n.ID().String() {
		t.Errorf("logs of %s (%s), want paris-1", nl.Name, nl.ID)
	}
	found := false
	for _, r := range nl.Records {
		if r.Msg == "order accepted" {
			for _, a := range r.Attrs {
				found = found || a.Key == "order" && a.Value == d.ID
			}
		}
		if r.Level == "DEBUG" {
			t.Errorf("a debug line came back: %+v", r)
		}
	}
	if !found {
		t.Errorf("no \"order accepted\" line naming %s in %d lines", d.ID, len(nl.Records))
	}
	if later, err := cl.NodeLogs(ctx, "paris-1", time.Now().Add(time.Hour).UTC().Format(time.RFC3339), ""); err != nil || len(later.Records) != 0 {
		t.Errorf("lines since an hour ahead: %d, %v", len(later.Records), err)
	}
	if errs, err := cl.NodeLogs(ctx, ns[0].n.ID().String(), "", "error"); err != nil {
		t.Errorf("by ID at error: %v", err)
	} else {
		for _, r := range errs.Records {
			if r.Level != "ERROR" {
				t.Errorf("level error returned %s", r.Level)
			}
		}
	}

	// Only the coordinator may ask.
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := p2p.Call[core.LogsRequest, core.LogsResponse](cctx, ns[1].n.Host(), ns[0].n.ID(), core.ProtoLogs, &core.LogsRequest{}, core.MaxLogResponse); err == nil {
		t.Error("a site peer read paris-1's logs")
	}

	// Bad input.
	if _, err := cl.NodeLogs(ctx, "nosuch", "", ""); !errors.Is(err, coordinator.ErrNotFound) {
		t.Errorf("unknown node: %v", err)
	}
	if _, err := cl.NodeLogs(ctx, "paris-1", "yesterday", ""); !errors.Is(err, coordinator.ErrBadRequest) {
		t.Errorf("since yesterday: %v", err)
	}
	if _, err := cl.NodeLogs(ctx, "paris-1", "", "loud"); !errors.Is(err, coordinator.ErrBadRequest) {
		t.Errorf("level loud: %v", err)
	}
}
