package integration

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/relaymesh/relaymesh/coordinator"
	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/node"
	"github.com/relaymesh/relaymesh/node/runner"
)

// gateInstaller reports INSTALLING and then waits for its gate to open
// before it reports SUCCESS.
type gateInstaller struct{ gate chan struct{} }

func (g *gateInstaller) Install(ctx context.Context, req runner.Request, onStart func(string), onResult func(runner.Result)) ([]runner.Result, bool) {
	var out []runner.Result
	for _, p := range req.Packages {
		onStart(p.ID)
		r := runner.Result{Package: p.ID, State: core.StateSuccess}
		select {
		case <-g.gate:
		case <-ctx.Done():
			r = runner.Result{Package: p.ID, State: core.ErrAborted, Detail: "stopped"}
		}
		onResult(r)
		out = append(out, r)
	}
	return out, false
}

// TestSnapshotRestoreFinishesDeployment: real nodes in two sites fetch a
// package and start installing; the coordinator is snapshotted, lost, and
// restored into a fresh directory on the same address; the nodes report to
// the restored coordinator and the deployment reaches COMPLETED.
func TestSnapshotRestoreFinishesDeployment(t *testing.T) {
	c := newCluster(t, nil)
	gate := &gateInstaller{gate: make(chan struct{})}
	withGate := func(cfg *node.Config) { cfg.Installer = gate }
	sites := map[string][]*testNode{"paris": c.addSite("paris", 2, withGate), "lyon": c.addSite("lyon", 2, withGate)}
	c.waitSites(sites, 30*time.Second)
	rec, _ := c.publish("agent", 300<<10)
	d, err := c.coord.CreateDeployment(coordinator.DeployRequest{All: true, Packages: []string{rec.ID}})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "every node INSTALLING", func() (bool, string) {
		v, err := c.coord.Deployment(d.ID)
		if err != nil {
			return false, err.Error()
		}
		return v.Counts[core.StateInstalling] == 4, fmt.Sprint(v.Counts)
	})

	old := c.coord
	cl, err := coordinator.NewClient(old.AdminURL(), old.AdminToken(), "")
	if err != nil {
		t.Fatal(err)
	}
	var snap bytes.Buffer
	if _, err := cl.SaveSnapshot(context.Background(), old.Dir(), &snap); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	listen := old.P2PAddrs()[0]
	listen = listen[:strings.Index(listen, "/p2p/")]
	if _, err := ma.NewMultiaddr(listen); err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	dir := filepath.Join(t.TempDir(), "restored")
	if _, err := coordinator.RestoreSnapshot(bytes.NewReader(snap.Bytes()), dir, c.log); err != nil {
		t.Fatalf("restore: %v", err)
	}
	cfg := coordinator.TestConfig(dir)
	cfg.Listen = []string{listen} // where the nodes enrolled
	cfg.Logger = c.log.With("who", "restored")
	co, err := coordinator.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := co.Start(context.Background()); err != nil {
		co.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { co.Close() })
	if v, err := co.Deployment(d.ID); err != nil || v.Counts[core.StateInstalling] != 4 {
		t.Fatalf("restored deployment: %v %v", v, err)
	}

	close(gate.gate)
	eventually(t, 60*time.Second, "deployment COMPLETED on the restored coordinator", func() (bool, string) {
		v, err := co.Deployment(d.ID)
		if err != nil {
			return false, err.Error()
		}
		return v.State == coordinator.DeployCompleted, v.State + " " + fmt.Sprint(v.Counts)
	})
}
