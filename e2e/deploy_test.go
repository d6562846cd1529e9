package e2e

import (
	"archive/tar"
	"compress/gzip"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relaymesh/relaymesh/coordinator"
	"github.com/relaymesh/relaymesh/core"
)

// nodeConfig is a node's config.yaml for these tests: fast timers, a
// harmless reboot command.
const nodeConfig = `listen: ["/ip4/127.0.0.1/tcp/0"]
gossip_bind: "127.0.0.1"
gossip_port: 0
sync_interval: 1s
call_timeout: 10s
status_backoff_min: 100ms
status_backoff_max: 2s
job_backoff_min: 100ms
job_backoff_max: 2s
reboot_command: ["true"]
scan_interval: 0s
`

// enrollNode enrolls NAME into the cluster's coordinator with token and
// starts its daemon.
func (c *cluster) enrollNode(name, token string) string {
	c.t.Helper()
	dir := filepath.Join(c.root, name)
	c.run("node", "enroll", "--coordinator", c.coordAddr(), "--token", token, "--dir", dir, "--name", name)
	if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(nodeConfig), 0o600); err != nil {
		c.t.Fatal(err)
	}
	c.startNode(name)
	return dir
}

func (c *cluster) startNode(name string) {
	c.start(name, "node", "run", "--dir", filepath.Join(c.root, name))
}

// writeTarGz writes a tar.gz holding files (name → content, mode 0755).
func writeTarGz(t *testing.T, path string, files map[string]string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
}

// build builds and publishes a package and returns its ID.
func (c *cluster) build(archive string, args ...string) string {
	c.t.Helper()
	store := filepath.Join(c.root, "store")
	out := filepath.Join(c.root, fmt.Sprintf("m-%d.json", time.Now().UnixNano()))
	all := append([]string{"package", "build", "--store", store, "--out", out, "--coordinator-dir", c.coord}, args...)
	if archive != "" {
		all = append(all, archive)
	}
	return strings.TrimSpace(c.run(all...))
}

// deploy creates a deployment and waits until it is done.
func (c *cluster) deploy(timeout time.Duration, args ...string) *coordinator.DeploymentView {
	c.t.Helper()
	var d coordinator.DeploymentView
	c.adminJSON(&d, append([]string{"deploy", "create"}, args...)...)
	return c.waitDone(d.ID, timeout)
}

func (c *cluster) waitDone(id string, timeout time.Duration) *coordinator.DeploymentView {
	c.t.Helper()
	var d coordinator.DeploymentView
	eventually(c.t, timeout, "deployment "+id+" done", func() (bool, string) {
		d = coordinator.DeploymentView{}
		c.adminJSON(&d, "deploy", "show", id)
		return d.Done, fmt.Sprintf("%s %v", d.State, d.Counts)
	})
	return &d
}

func rowsByName(d *coordinator.DeploymentView) map[string]coordinator.RowView {
	m := map[string]coordinator.RowView{}
	for _, r := range d.Nodes {
		m[r.Name] = r
	}
	return m
}

// TestDeployEndToEnd runs a coordinator and six nodes in two sites as real
// processes and deploys four packages: a launch whose command writes a
// marker per node, an execute that exits 3, one that sleeps past the
// order's timeout, and a store package.
func TestDeployEndToEnd(t *testing.T) {
	c := newCluster(t)
	c.startCoordinator()
	tokA := strings.TrimSpace(c.admin("token", "create", "--site", "paris", "--uses", "3"))
	tokB := strings.TrimSpace(c.admin("token", "create", "--site", "lyon", "--uses", "3"))
	var names []string
	for i := range 6 {
		name := fmt.Sprintf("n%d", i+1)
		tok := tokA
		if i >= 3 {
			tok = tokB
		}
		c.enrollNode(name, tok)
		names = append(names, name)
	}
	// A used-up token is refused with a clear error and leaves nothing.
	_, stderr, err := c.try("node", "enroll", "--coordinator", c.coordAddr(), "--token", tokA, "--dir", filepath.Join(c.root, "extra"))
	if err == nil || !strings.Contains(stderr, "token") {
		t.Fatalf("fourth enrollment with a 3-use token: err %v, stderr %q", err, stderr)
	}
	if _, err := os.Stat(filepath.Join(c.root, "extra", "node.json")); !os.IsNotExist(err) {
		t.Fatalf("refused enrollment left node.json behind (%v)", err)
	}
	eventually(t, 60*time.Second, "6 nodes alive", func() (bool, string) {
		var ns []coordinator.NodeView
		c.adminJSON(&ns, "nodes", "list")
		alive := 0
		for _, n := range ns {
			if n.Alive && len(n.Addrs) > 0 {
				alive++
			}
		}
		return alive == 6, fmt.Sprintf("%d alive", alive)
	})

	// Each site elects one relay, and the coordinator hears of it.
	eventually(t, 60*time.Second, "one relay per site", func() (bool, string) {
		var ss []coordinator.SiteView
		c.adminJSON(&ss, "sites", "list")
		for _, s := range ss {
			if s.Alive != 3 || len(s.Relays) != 1 {
				return false, fmt.Sprintf("%s: %d alive, relays %v", s.Site, s.Alive, s.Relays)
			}
		}
		return len(ss) == 2, ""
	})

	// 1. launch: a tar.gz whose script writes a marker named for the node.
	markers := filepath.Join(c.root, "markers")
	if err := os.MkdirAll(markers, 0o755); err != nil {
		t.Fatal(err)
	}
	arch := filepath.Join(c.root, "marker.tar.gz")
	payload := make([]byte, 4<<20)
	rand.Read(payload)
	writeTarGz(t, arch, map[string]string{
		"run.sh":  "#!/bin/sh\necho \"installed on $RELAYMESH_NODE_NAME\"\nprintf '%s' \"$RELAYMESH_NODE_NAME\" > \"" + markers + "/$RELAYMESH_NODE_NAME\"\n",
		"payload": string(payload),
	})
	pkg := c.build(arch, "--name", "marker", "--version", "1.0", "--action", "launch", "--command", "sh run.sh")
	var pkgRec coordinator.PackageRecord
	c.adminJSON(&pkgRec, "package", "show", pkg)
	wanBefore := c.siteWAN()
	d := c.deploy(3*time.Minute, pkg, "--all")
	if d.State != coordinator.DeployCompleted || d.Counts[core.StateSuccess] != 6 {
		t.Fatalf("launch deployment: %s %v", d.State, d.Counts)
	}
	for name, r := range rowsByName(d) {
		if r.State != core.StateSuccess || r.ExitCode != 0 || !strings.Contains(r.Output, "installed on "+name) {
			t.Errorf("%s: %s exit %d output %q", name, r.State, r.ExitCode, r.Output)
		}
	}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(markers, n))
		if err != nil || string(b) != n {
			t.Errorf("marker of %s: %q, %v", n, b, err)
		}
	}
	// The package crossed each site's boundary about once: the relay
	// pulled it, the site's nodes shared it. Counters arrive with the
	// nodes' heartbeats, so wait until they settle.
	size := pkgRec.Manifest.Size
	var wan map[string]int64
	eventually(t, 30*time.Second, "per-site WAN counters", func() (bool, string) {
		wan = c.siteWAN()
		for site, in := range wan {
			if in-wanBefore[site] < size {
				return false, fmt.Sprintf("%s: %d of %d bytes reported", site, in-wanBefore[site], size)
			}
		}
		return len(wan) == 2, ""
	})
	for site, in := range wan {
		ratio := float64(in-wanBefore[site]) / float64(size)
		t.Logf("site %s: WAN in %.3f × package size", site, ratio)
		if ratio > 1.3 {
			t.Errorf("site %s took in %.2f × the package over its WAN link, want ≤ 1.3", site, ratio)
		}
	}

	// 2. execute without archive, exit code 3: ERR_EXECUTE [3], unless the
	// package declares 3 a success code: then SUCCESS [3].
	pkg3 := c.build("", "--no-archive", "--name", "exit3", "--version", "1", "--action", "execute", "--command", "sh -c 'echo three; exit 3'")
	d = c.deploy(2*time.Minute, pkg3, "--site", "paris")
	for name, r := range rowsByName(d) {
		if r.State != core.ErrExecute || r.ExitCode != 3 {
			t.Errorf("exit3 on %s: %s [%d], want ERR_EXECUTE [3]", name, r.State, r.ExitCode)
		}
	}
	if d.Targets != 3 || d.State != coordinator.DeployIncomplete {
		t.Errorf("exit3 deployed to site paris: %d targets, %s; want 3, INCOMPLETE", d.Targets, d.State)
	}
	pkg3ok := c.build("", "--no-archive", "--name", "exit3ok", "--version", "1", "--action", "execute", "--command", "sh -c 'echo three; exit 3'",
		"--success-codes", "0,3")
	d = c.deploy(2*time.Minute, pkg3ok, "--site", "paris")
	for name, r := range rowsByName(d) {
		if r.State != core.StateSuccess || r.ExitCode != 3 {
			t.Errorf("exit3ok on %s: %s [%d], want SUCCESS [3]", name, r.State, r.ExitCode)
		}
	}

	// 3. a command that sleeps past the order's timeout: ERR_TIMEOUT.
	pkgSleep := c.build("", "--no-archive", "--name", "sleeper", "--version", "1", "--action", "execute", "--command", "sleep 120")
	d = c.deploy(2*time.Minute, pkgSleep, "--node", "n4", "--node", "n5", "--timeout", "2s")
	for name, r := range rowsByName(d) {
		if r.State != core.ErrTimeout {
			t.Errorf("sleeper on %s: %s, want ERR_TIMEOUT", name, r.State)
		}
	}

	// 4. store: extract to a path.
	storeArch := filepath.Join(c.root, "conf.tar.gz")
	writeTarGz(t, storeArch, map[string]string{"etc/app.conf": "level=debug\n"})
	storePath := filepath.Join(c.root, "stored")
	pkgStore := c.build(storeArch, "--name", "conf", "--version", "2", "--action", "store", "--store-path", storePath)
	d = c.deploy(2*time.Minute, pkgStore, "--site", "lyon")
	if d.State != coordinator.DeployCompleted {
		t.Errorf("store deployment: %s %v", d.State, d.Counts)
	}
	if b, err := os.ReadFile(filepath.Join(storePath, "etc", "app.conf")); err != nil || string(b) != "level=debug\n" {
		t.Errorf("stored file: %q, %v", b, err)
	}

	// The same launch package again: every node says it is already set up.
	d = c.deploy(2*time.Minute, pkg, "--site", "paris")
	for name, r := range rowsByName(d) {
		if r.State != core.ErrAlreadySetup {
			t.Errorf("second launch on %s: %s, want ERR_ALREADY_SETUP", name, r.State)
		}
	}
}

// siteWAN returns each site's WAN-in byte counter as the coordinator has it.
func (c *cluster) siteWAN() map[string]int64 {
	var ss []coordinator.SiteView
	c.adminJSON(&ss, "sites", "list")
	m := map[string]int64{}
	for _, s := range ss {
		m[s.Site] = s.WANIn
	}
	return m
}
