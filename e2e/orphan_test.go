package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relaymesh/relaymesh/coordinator"
	"github.com/relaymesh/relaymesh/core"
)

// TestKillMidInstallLeavesNoOrphan kills a node with SIGKILL while its
// install command runs (in its own process group, so the kill does not
// reach it: the command lives on as an orphan, as after a crash), then
// restarts the node. The node must kill the orphaned group, remove the
// install's temp dir and report ERR_ABORTED saying what it found.
func TestKillMidInstallLeavesNoOrphan(t *testing.T) {
	c := newCluster(t)
	c.startCoordinator()
	tok := strings.TrimSpace(c.admin("token", "create", "--site", "plant", "--uses", "1"))
	dir := c.enrollNode("n1", tok)

	pidFile := filepath.Join(c.root, "install.pid")
	arch := filepath.Join(c.root, "slow.tar.gz")
	// The script records its PID, then outlives any test run; exec keeps
	// the PID (no child shell in between).
	writeTarGz(t, arch, map[string]string{
		"install.sh": "#!/bin/sh\necho $$ > \"" + pidFile + "\"\nexec sleep 600\n",
	})
	pkg := c.build(arch, "--name", "slow", "--version", "1", "--action", "launch", "--command", "sh install.sh")
	var d coordinator.DeploymentView
	c.adminJSON(&d, "deploy", "create", pkg, "--all")

	var pid int
	eventually(t, 60*time.Second, "install script running", func() (bool, string) {
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return false, err.Error()
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && pid > 0, string(b)
	})
	t.Cleanup(func() { _ = syscall.Kill(-pid, syscall.SIGKILL) }) // if the test fails
	c.waitRow(d.ID, "n1", 60*time.Second, func(s core.State) bool { return s == core.StateInstalling })
	temps, _ := filepath.Glob(filepath.Join(dir, "tmp", "relaymesh-*"))
	if len(temps) != 1 {
		t.Fatalf("temp dirs during the install: %v, want one", temps)
	}

	c.kill("n1")
	// The fault: the node is gone, its install command is not.
	if !alive(pid) {
		t.Fatalf("install script %d died with the node: the test does not make an orphan", pid)
	}
	c.startNode("n1")

	final := c.waitDone(d.ID, 2*time.Minute)
	r := rowsByName(final)["n1"]
	if r.State != core.ErrAborted || !strings.Contains(r.Detail, "was still running and was killed") {
		t.Errorf("n1: %s %q, want ERR_ABORTED saying the orphaned command was killed", r.State, r.Detail)
	}
	eventually(t, 30*time.Second, fmt.Sprintf("orphaned install %d gone", pid), func() (bool, string) {
		return !alive(pid), "still running"
	})
	if left, _ := filepath.Glob(filepath.Join(dir, "tmp", "relaymesh-*")); len(left) != 0 {
		t.Errorf("temp dirs left after the restart: %v", left)
	}
}

// alive reports whether pid runs (a zombie counts as gone).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z'
}
