package integration

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relaymesh/relaymesh/coordinator"
	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/internal/debrepo"
	"github.com/relaymesh/relaymesh/node"
	"github.com/relaymesh/relaymesh/node/scan"
)

// TestScanFleet: two sites of two nodes, each node with its own dpkg and
// apt root over one real repository (foo 1.1 in stable, bar 1.0+sec1 in
// stable-security). A signed scan order reaches all four through the
// mesh; their signed scan reports come back (through the site relays);
// the coordinator's updates list and compliance say exactly who misses
// what, and a node without package lists is a failed scan, not a
// compliant one.
func TestScanFleet(t *testing.T) {
	debrepo.Need(t)
	old := []debrepo.Pkg{{Name: "foo", Version: "1.0"}, {Name: "bar", Version: "1.0"}}
	base := debrepo.New(t, t.TempDir(), old,
		debrepo.Suite{Name: "stable", Pkgs: []debrepo.Pkg{{Name: "foo", Version: "1.1"}}},
		debrepo.Suite{Name: "stable-security", Pkgs: []debrepo.Pkg{{Name: "bar", Version: "1.0+sec1"}}},
	)
	installed := map[string][]debrepo.Pkg{
		"a-1": old,
		"a-2": {{Name: "foo", Version: "1.1"}, {Name: "bar", Version: "1.0+sec1"}},
		"b-1": old,
		"b-2": old,
	}
	c := newCluster(t, nil)
	k := map[string]int{}
	mut := func(site string) func(*node.Config) {
		return func(cfg *node.Config) {
			k[site]++
			name := fmt.Sprintf("%s-%d", site, k[site])
			r := base.Clone(t, t.TempDir(), installed[name])
			sc := scan.DefaultConfig()
			sc.DpkgAdmindir, sc.AptRoot = r.Admindir, r.Dir
			none := filepath.Join(t.TempDir(), "none")
			sc.OSRelease, sc.KernelRelease, sc.RebootRequired = none, none, none
			if name == "b-2" {
				sc.AptListsDir = filepath.Join(t.TempDir(), "no-lists")
			}
			cfg.Scan = sc
		}
	}
	sites := map[string][]*testNode{"a": c.addSite("a", 2, mut("a")), "b": c.addSite("b", 2, mut("b"))}
	c.waitSites(sites, 60*time.Second)

	v, err := c.coord.CreateScan(coordinator.ScanRequest{All: true})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 90*time.Second, "every node answered the scan order", func() (bool, string) {
		d, err := c.coord.Deployment(v.ID)
		if err != nil {
			return false, err.Error()
		}
		return d.Counts[core.StateSuccess] == 3 && d.Counts[core.ErrExecute] == 1, fmt.Sprint(d.Counts)
	})
	eventually(t, 30*time.Second, "four scan reports kept", func() (bool, string) {
		rep := c.coord.Updates(coordinator.UpdatesFilter{})
		return rep.Fleet.Scanned+rep.Fleet.ScanFailed == 4, fmt.Sprintf("%+v", rep.Fleet)
	})
	rep := c.coord.Updates(coordinator.UpdatesFilter{})
	want := coordinator.Compliance{Nodes: 4, Scanned: 3, ScanFailed: 1, Compliant: 1, SecurityCompliant: 1, Percent: 25, SecurityPercent: 25,
		MissingUpdates: 4, MissingSecurity: 2}
	if rep.Fleet != want {
		t.Errorf("fleet %+v, want %+v", rep.Fleet, want)
	}
	var got []string
	for _, u := range rep.Updates {
		var who []string
		for _, n := range u.Nodes {
			who = append(who, n.Name)
		}
		got = append(got, fmt.Sprintf("%s %s→%s security=%v %s", u.Package, strings.Join(u.Installed, ","), u.Candidate, u.Security, strings.Join(who, ",")))
	}
	wantUpd := []string{"bar 1.0→1.0+sec1 security=true a-1,b-1", "foo 1.0→1.1 security=false a-1,b-1"}
	if strings.Join(got, "\n") != strings.Join(wantUpd, "\n") {
		t.Errorf("updates:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantUpd, "\n"))
	}
	nu, err := c.coord.NodeUpdates("b-2")
	if err != nil || nu.Scan == nil || !strings.Contains(nu.Scan.Report.Error, "no repository lists") || nu.Scan.Report.InstalledCount != 2 {
		t.Errorf("b-2: %+v %v", nu, err)
	}
	for _, s := range c.coord.Sites() {
		if s.Site == "a" && (s.Compliance.Percent != 50 || s.Compliance.Scanned != 2) || s.Site == "b" && (s.Compliance.Percent != 0 || s.Compliance.ScanFailed != 1) {
			t.Errorf("site %s compliance %+v", s.Site, s.Compliance)
		}
	}
	inv, err := c.coord.Inventory("a-1")
	if err != nil || len(inv.Report.Installed) != 2 || inv.Report.Order != v.ID {
		t.Errorf("a-1 inventory %+v %v", inv, err)
	}
}
