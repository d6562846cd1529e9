package integration

import (
	"bytes"
	"os"
	"testing"
	"time"

	"github.com/relaymesh/relaymesh/coordinator"
	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/internal/debrepo"
	"github.com/relaymesh/relaymesh/node"
)

// TestDebPackageThroughTheMesh: a real .deb built into a package crosses
// the mesh to two nodes, each of which installs it with dpkg into a dpkg
// root of its own.
func TestDebPackageThroughTheMesh(t *testing.T) {
	debrepo.Need(t)
	b, err := os.ReadFile(debrepo.BuildDeb(t, t.TempDir(), debrepo.Pkg{Name: "hello-rm", Version: "2.10-3"}))
	if err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, nil)
	roots := map[string]string{}
	ns := c.addSite("a", 2, func(cfg *node.Config) {
		root := debrepo.DpkgRoot(t, t.TempDir())
		roots[cfg.Dir] = root
		cfg.DebInstall = []string{"dpkg", "--root", root, "--install"}
		cfg.DebRemove = []string{"dpkg", "--root", root, "--remove"}
	})
	c.waitSites(map[string][]*testNode{"a": ns}, 60*time.Second)
	m := core.Manifest{Name: "hello-rm", Version: "2.10-3", OS: "linux", Arch: "any", Action: core.ActionDeb, Priority: 5}
	rec, err := c.coord.BuildPackage(m, bytes.NewReader(b), core.MinFragmentSize)
	if err != nil {
		t.Fatal(err)
	}
	d, err := c.coord.CreateDeployment(coordinator.DeployRequest{Packages: []string{rec.ID}, All: true})
	if err != nil {
		t.Fatal(err)
	}
	waitDeployment(t, c.coord, d.ID, 2, 90*time.Second)
	for _, n := range ns {
		if v := debrepo.Installed(t, roots[n.dir], "hello-rm"); v != "2.10-3" {
			t.Errorf("%s: dpkg says hello-rm %q, want 2.10-3", n.name, v)
		}
	}
}
