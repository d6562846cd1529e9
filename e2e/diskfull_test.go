package e2e

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relaymesh/relaymesh/coordinator"
	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/internal/smalldisk"
)

// TestFullDiskFailsTheJobNotTheDaemons puts the coordinator's and a node's
// data dirs on one small real tmpfs, fills it from outside and deploys a
// 16 MiB package. Badger writes through mmapped files, so a full tmpfs used
// to SIGBUS both daemons. Now: both live, the node refuses the download with
// ERR_DOWNLOAD_PACK and the numbers (and the report reaches the
// coordinator), and once space is freed the same package deploys.
func TestFullDiskFailsTheJobNotTheDaemons(t *testing.T) {
	// Mounted before the cluster starts, so it is unmounted after the
	// daemons stopped.
	mnt := smalldisk.Tmpfs(t, 400<<20)
	c := newCluster(t)
	c.root, c.coord = mnt, filepath.Join(mnt, "coordinator")
	c.startCoordinator()
	tok := strings.TrimSpace(c.admin("token", "create", "--site", "plant", "--uses", "1"))
	c.enrollNode("n1", tok)
	c.waitAlive(1)

	payload := make([]byte, 16<<20)
	_, _ = rand.Read(payload)
	arch := filepath.Join(t.TempDir(), "big.tar.gz") // off the tmpfs
	writeTarGz(t, arch, map[string]string{"install.sh": "#!/bin/sh\necho ok\n", "payload": string(payload)})
	pkg := c.build(arch, "--name", "big", "--version", "1", "--action", "launch", "--command", "sh install.sh")

	// Room for the manifest, not for the package: refused before a
	// fragment is fetched, with the numbers.
	filler := filepath.Join(mnt, "filler")
	smalldisk.FillLeaving(t, filler, 90<<20)
	var d0 coordinator.DeploymentView
	c.adminJSON(&d0, "deploy", "create", pkg, "--all")
	r0 := rowsByName(c.waitDone(d0.ID, 2*time.Minute))["n1"]
	if r0.State != core.ErrDownloadPack || !strings.Contains(r0.Detail, "does not fit the disk: needs") || r0.BytesFetched != 0 {
		t.Errorf("n1 without room for the package: %s %q (%d bytes fetched), want ERR_DOWNLOAD_PACK before fetching", r0.State, r0.Detail, r0.BytesFetched)
	}
	t.Logf("without room: %s %s", r0.State, r0.Detail)

	// Full.
	smalldisk.Fill(t, filler)
	var d coordinator.DeploymentView
	c.adminJSON(&d, "deploy", "create", pkg, "--all")
	final := c.waitDone(d.ID, 2*time.Minute)
	r := rowsByName(final)["n1"]
	if r.State != core.ErrDownloadPack || !strings.Contains(r.Detail, "does not fit") || !strings.Contains(r.Detail, "MiB free") {
		t.Errorf("n1 on a full disk: %s %q, want ERR_DOWNLOAD_PACK with the numbers", r.State, r.Detail)
	}
	t.Logf("on a full disk: %s %s", r.State, r.Detail)
	c.mustRun("coordinator", "n1")

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	d = coordinator.DeploymentView{}
	c.adminJSON(&d, "deploy", "create", pkg, "--all")
	final = c.waitDone(d.ID, 2*time.Minute)
	if r := rowsByName(final)["n1"]; r.State != core.StateSuccess || r.ExitCode != 0 {
		t.Errorf("n1 once space returned: %s [%d] %s, want SUCCESS", r.State, r.ExitCode, r.Detail)
	}
	c.mustRun("coordinator", "n1")
}

// mustRun fails the test for each named daemon that is no longer running.
func (c *cluster) mustRun(names ...string) {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range names {
		p := c.procs[n]
		if p == nil {
			c.t.Errorf("%s: not started", n)
			continue
		}
		select {
		case <-p.done:
			c.t.Errorf("%s died: %v", n, p.err)
		default:
			if err := p.cmd.Process.Signal(syscall.Signal(0)); err != nil {
				c.t.Errorf("%s: %v", n, err)
			}
		}
	}
}
