package cli

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relaymesh/relaymesh/coordinator"
	"github.com/relaymesh/relaymesh/core"
)

// deploy uninstall signs uninstall into the order; a package built without
// an uninstall command is refused at create time, and nothing is recorded.
func TestDeployUninstall(t *testing.T) {
	t.Parallel()
	c := startCoord(t)
	c.fleet()
	plain := c.publish("plain")
	mustFailOneLine(t, run(t, append([]string{"deploy", "uninstall", "--node", "lyon-1"}, append(c.admin, plain)...)...),
		"deploy uninstall", plain, "has no uninstall command", "--uninstall")
	if n := len(c.deployments()); n != 0 {
		t.Fatalf("%d deployments recorded after a refused uninstall", n)
	}
	mustFailOneLine(t, run(t, append([]string{"deploy", "uninstall"}, c.admin...)...), "give at least one package")

	dir := t.TempDir()
	r := run(t, append([]string{"--quiet", "package", "build", "--name", "tool", "--version", "1", "--action", "execute",
		"--command", "/bin/true", "--uninstall", "/bin/rm -f /opt/tool", "--no-archive", "--store", filepath.Join(dir, "s"),
		"--out", filepath.Join(dir, "m.json")}, c.admin...)...)
	mustSucceed(t, r)
	pkg := strings.TrimSpace(r.stdout)

	r = run(t, append([]string{"deploy", "uninstall", "--dry-run", "--node", "lyon-1"}, append(c.admin, pkg)...)...)
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "lyon-1") || len(c.deployments()) != 0 {
		t.Errorf("dry run: %q, %d deployments", r.stdout, len(c.deployments()))
	}
	r = run(t, append([]string{"deploy", "uninstall", "--json", "--node", "lyon-1"}, append(c.admin, pkg)...)...)
	mustSucceed(t, r)
	var d coordinator.DeploymentView
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
		t.Fatal(err)
	}
	if !d.Uninstall || d.Targets != 1 {
		t.Errorf("deployment %+v: want an uninstall to 1 target", d)
	}
	resp, err := c.co.Sync(c.ids["lyon-1"], &core.SyncRequest{Info: core.NodeInfo{Hostname: "lyon-1", OS: "linux", Arch: "amd64"}})
	if err != nil || len(resp.Orders) != 1 {
		t.Fatalf("sync: %v, %d orders", err, len(resp.Orders))
	}
	o, err := core.DecodeOrder(resp.Orders[0].Payload)
	if err != nil || o.ID != d.ID || !o.Uninstall || o.Force {
		t.Errorf("order %+v (%v): want %s with uninstall", o, err, d.ID)
	}
	r = run(t, append([]string{"deploy", "show"}, append(c.admin, d.ID)...)...)
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "uninstall of: "+pkg) {
		t.Errorf("deploy show does not say it is an uninstall:\n%s", r.stdout)
	}
}
