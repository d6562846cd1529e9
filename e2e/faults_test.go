package e2e

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relaymesh/relaymesh/coordinator"
	"github.com/relaymesh/relaymesh/core"
)

// rowOf returns the row of node name in deployment id.
func (c *cluster) rowOf(id, name string) coordinator.RowView {
	var d coordinator.DeploymentView
	c.adminJSON(&d, "deploy", "show", id)
	return rowsByName(&d)[name]
}

func (c *cluster) waitRow(id, name string, timeout time.Duration, ok func(core.State) bool) {
	c.t.Helper()
	eventually(c.t, timeout, name+" in "+id, func() (bool, string) {
		r := c.rowOf(id, name)
		return ok(r.State), string(r.State)
	})
}

// TestKillDuringDeployment kills, with SIGKILL, a node while it downloads,
// a node while it installs, and the coordinator while the deployment runs;
// each restarts and the deployment finishes with nothing installed twice
// and no status lost.
func TestKillDuringDeployment(t *testing.T) {
	c := newCluster(t)
	// A 1 MiB/s origin makes an 8 MiB download take seconds.
	c.startCoordinator("--max-upload", "1MB")
	port := c.coordAddr()
	tok := strings.TrimSpace(c.admin("token", "create", "--site", "plant", "--uses", "3"))
	for _, n := range []string{"dl", "inst", "other"} {
		c.enrollNode(n, tok)
	}
	c.waitAlive(3)

	// Install script: counts its runs per node, then takes a while.
	runs := filepath.Join(c.root, "runs")
	os.MkdirAll(runs, 0o755)
	filler := make([]byte, 8<<20)
	rand.Read(filler)
	arch := filepath.Join(c.root, "big.tar.gz")
	writeTarGz(t, arch, map[string]string{
		"install.sh": "#!/bin/sh\necho run >> \"" + runs + "/$RELAYMESH_NODE_NAME\"\nsleep 4\necho done\n",
		"payload":    string(filler),
	})
	pkg := c.build(arch, "--name", "big", "--version", "1", "--action", "launch", "--command", "sh install.sh")
	var d coordinator.DeploymentView
	c.adminJSON(&d, "deploy", "create", pkg, "--all")

	// Node "dl": killed while downloading, restarted.
	c.waitRow(d.ID, "dl", 60*time.Second, func(s core.State) bool { return s == core.StateDownloading })
	c.kill("dl")
	c.startNode("dl")

	// Node "inst": killed while its install command runs, restarted.
	c.waitRow(d.ID, "inst", 120*time.Second, func(s core.State) bool { return s == core.StateInstalling })
	c.kill("inst")
	c.startNode("inst")

	// The coordinator: killed mid-deployment, restarted on the same address.
	c.kill("coordinator")
	listen := strings.Split(port, "/p2p/")[0]
	c.startCoordinator("--max-upload", "1MB", "--listen", listen)

	final := c.waitDone(d.ID, 4*time.Minute)
	rows := rowsByName(final)
	for _, n := range []string{"dl", "other"} {
		if r := rows[n]; r.State != core.StateSuccess || r.ExitCode != 0 {
			t.Errorf("%s: %s [%d] %s", n, r.State, r.ExitCode, r.Detail)
		}
	}
	// An install cut by a crash is not run again (it may have half-done
	// its work): the node reports it aborted.
	if r := rows["inst"]; r.State != core.ErrAborted {
		t.Errorf("inst: %s %q, want ERR_ABORTED after a crash mid-install", r.State, r.Detail)
	}
	for _, n := range []string{"dl", "inst", "other"} {
		b, _ := os.ReadFile(filepath.Join(runs, n))
		if got := bytes.Count(b, []byte("run\n")); got != 1 {
			t.Errorf("%s: install ran %d times, want exactly once", n, got)
		}
	}
	// The coordinator kept the package and the deployment across SIGKILL.
	var ps []coordinator.PackageRecord
	c.adminJSON(&ps, "package", "list")
	if len(ps) != 1 || ps[0].ID != pkg {
		t.Errorf("packages after coordinator restart: %+v", ps)
	}
}
