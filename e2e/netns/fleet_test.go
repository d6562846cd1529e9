//go:build netns && linux

package netns

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relaymesh/relaymesh/coordinator"
	"github.com/relaymesh/relaymesh/core"
)

// TestFleetOf80 is 5 sites × 16 nodes on default network settings, every
// node in its own namespace: all enroll, every member reaches every other
// (no node reports a site peer it cannot connect to), and a deployment
// reaches all of them. At 4 × 16 the 63rd or 64th enrollment timed out:
// the kernel's neighbour table, one for all namespaces, was full (see
// raiseNeighbourLimits).
func TestFleetOf80(t *testing.T) {
	if why := prerequisites(); why != "" {
		t.Skip("e2e-netns skipped: " + why)
	}
	p := loadParams(t)
	p.sites, p.nodes, p.mib = 5, 16, 1
	smallDeployment(t, p)
}

// TestSiteBehindNAT is one site of 100 nodes behind its router's
// masquerade: the coordinator sees them all as one address and cannot dial
// into the site. libp2p's default per-address limits (8 connections, a
// burst of 16 new ones) kept most of them out; all must enroll, sync, take
// a deployment and report.
func TestSiteBehindNAT(t *testing.T) {
	if why := prerequisites(); why != "" {
		t.Skip("e2e-netns skipped: " + why)
	}
	if why := natPrerequisite(); why != "" {
		t.Skip("e2e-netns NAT test skipped: " + why)
	}
	p := loadParams(t)
	p.sites, p.nodes, p.mib, p.nat = 1, 100, 1, true
	smallDeployment(t, p)
}

func natPrerequisite() string {
	if _, err := execLookPath("nft"); err != nil {
		return "nft not found (apt-get install -y nftables)"
	}
	return ""
}

// smallDeployment enrolls and starts p's fleet with nodeConfig, waits until
// every node is alive and every site has a relay, checks that no node is
// reported unreachable, deploys a package of p.mib MiB to all and waits
// for every SUCCESS.
func smallDeployment(t *testing.T, p params) {
	t.Helper()
	bin := binary(t)
	_, f, tp := setUp(t, p, bin)
	root := f.root
	total := p.sites * p.nodes
	t.Logf("prefix %s: %d sites × %d nodes (nat %v), %d MiB", p.prefix, p.sites, p.nodes, p.nat, p.mib)
	began := time.Now()

	f.cli(tp.coord, "coordinator", "init", "--dir", f.coord)
	f.start(tp.coord, "coordinator", "coordinator", "serve", "--dir", f.coord)
	coordAddr := waitCoordinator(t, f, tp)
	for k := 1; k <= p.sites; k++ {
		tok := strings.TrimSpace(f.admin("token", "create", "--site", siteName(k), "--uses", strconv.Itoa(p.nodes)))
		for i := 1; i <= p.nodes; i++ {
			ns, name := tp.nodes[k-1][i-1], nodeName(k, i)
			dir := filepath.Join(root, name)
			f.cli(ns, "node", "enroll", "--coordinator", coordAddr, "--token", tok, "--dir", dir, "--name", name)
			writeFile(t, filepath.Join(dir, "config.yaml"), nodeConfig)
			f.start(ns, name, "node", "run", "--dir", dir)
		}
	}
	waitFleet(t, f, total, p.sites, 3*time.Minute)

	t.Logf("%.1fs: %d nodes enrolled and alive, every site with a relay", time.Since(began).Seconds(), total)
	arch := filepath.Join(root, "payload.tar.gz")
	writeRandomPackage(t, arch, p.mib<<20)
	pkg := strings.TrimSpace(f.admin("package", "build", arch, "--name", "fleet-payload", "--version", "1",
		"--action", "launch", "--command", "sh run.sh",
		"--store", filepath.Join(root, "store"), "--out", filepath.Join(root, "payload.manifest.json")))
	var d coordinator.DeploymentView
	f.adminJSON(&d, "deploy", "create", pkg, "--all")
	eventually(t, 4*time.Minute, "deployment "+d.ID+" done", func() (bool, string) {
		id := d.ID
		d = coordinator.DeploymentView{}
		f.adminJSON(&d, "deploy", "show", id)
		return d.Done, fmt.Sprintf("%s %v", d.State, d.Counts)
	})
	t.Logf("%.1fs: deployment %s %s %v", time.Since(began).Seconds(), d.ID, d.State, d.Counts)
	if d.State != coordinator.DeployCompleted || d.Counts[core.StateSuccess] != total {
		t.Errorf("deployment %s: %s %v, want %s with %d SUCCESS", d.ID, d.State, d.Counts, coordinator.DeployCompleted, total)
	}
	// Every member probed some of its peers by now (each sync probes two
	// it has not checked): none may be reported unreachable.
	var nodes []coordinator.NodeView
	f.adminJSON(&nodes, "nodes", "list")
	if len(nodes) != total {
		t.Errorf("%d nodes enrolled, want %d", len(nodes), total)
	}
	for _, n := range nodes {
		if len(n.UnreachableBy) > 0 {
			t.Errorf("%s: site peers %v cannot connect to it at %v", n.Name, n.UnreachableBy, n.Addrs)
		}
	}
	if t.Failed() {
		holdOnFailure(t, "fleet of "+strconv.Itoa(total))
	}
}

func execLookPath(name string) (string, error) { return exec.LookPath(name) }

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}
