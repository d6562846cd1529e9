package integration

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relaymesh/relaymesh/coordinator"
	"github.com/relaymesh/relaymesh/coordinator/aptmirror"
	"github.com/relaymesh/relaymesh/internal/debrepo"
	"github.com/relaymesh/relaymesh/node"
	"github.com/relaymesh/relaymesh/node/scan"
)

// TestPatchDeploymentThroughTheMesh: a signed repository on loopback
// (hello 1.1, which needs the new libhello, in stable; openssl 1.1 in
// stable-security) that only the coordinator reaches; 2 sites × 3 nodes,
// each with its own apt and dpkg root, hello 1.0 and openssl 1.0
// installed and no package lists. The indexes reach the nodes through the
// mesh (--updates lists), a scan shows the updates missing on all six,
// deploy --updates security installs openssl everywhere (the rows say what
// the rescan found) with the bytes into each site within 1.06 × the .deb
// and index bytes, and --updates all --bulk brings hello and its new
// dependency (not to b-3, which never had hello): compliance 100 %.
func TestPatchDeploymentThroughTheMesh(t *testing.T) {
	debrepo.Need(t)
	dir := t.TempDir()
	repos := filepath.Join(dir, "repos")
	suites := debrepo.BuildSuites(t, repos,
		debrepo.Suite{Name: "stable", Pkgs: []debrepo.Pkg{{Name: "hello", Version: "1.1", Depends: "libhello (>= 1.1)", Payload: 300 << 10},
			{Name: "libhello", Version: "1.1", Payload: 200 << 10}}},
		debrepo.Suite{Name: "stable-security", Pkgs: []debrepo.Pkg{{Name: "openssl", Version: "1.1", Payload: 1536 << 10}}})
	signer := debrepo.NewSigner(t, dir)
	signer.Sign(t, suites...)
	srv := httptest.NewServer(http.FileServer(http.Dir(repos)))
	t.Cleanup(srv.Close)
	var sources string
	var repoCfg []aptmirror.Repo
	for _, s := range []string{"stable", "stable-security"} {
		sources += "deb [signed-by=" + signer.Keyring + "] " + srv.URL + "/" + s + " ./\n"
		repoCfg = append(repoCfg, aptmirror.Repo{URL: srv.URL + "/" + s, Suite: "./", Keyring: signer.Keyring})
	}
	c := newCluster(t, func(cfg *coordinator.Config) { cfg.Apt.Repositories = repoCfg })
	old := []debrepo.Pkg{{Name: "hello", Version: "1.0"}, {Name: "openssl", Version: "1.0"}}
	roots := map[string]*debrepo.Root{}
	k := map[string]int{}
	mut := func(site string) func(*node.Config) {
		return func(cfg *node.Config) {
			k[site]++
			name := fmt.Sprintf("%s-%d", site, k[site])
			inst := old
			if name == "b-3" {
				inst = old[1:] // no hello: an upgrade of hello must not install it here
			}
			r := debrepo.NewEmpty(t, t.TempDir(), inst, sources)
			for _, p := range inst { // the synthetic 1.0 packages own no files
				_ = os.MkdirAll(filepath.Join(r.Admindir, "info"), 0o755)
				_ = os.WriteFile(filepath.Join(r.Admindir, "info", p.Name+".list"), nil, 0o644)
			}
			roots[name] = r
			sc := scan.DefaultConfig()
			sc.DpkgAdmindir, sc.AptRoot = r.Admindir, r.Dir
			none := filepath.Join(t.TempDir(), "none")
			sc.OSRelease, sc.KernelRelease, sc.RebootRequired = none, none, none
			cfg.Scan, cfg.ScanInterval = sc, 0
			cfg.AptInstall = append([]string{"apt-get"}, r.AptArgs("-o", "DPkg::Options::=--root="+r.Dir, "-o", "DPkg::Options::=--admindir="+r.Admindir,
				"-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold", "-o", "DPkg::Lock::Timeout=60",
				"install", "-y", "--no-download", "--no-install-recommends")...)
		}
	}
	sites := map[string][]*testNode{"a": c.addSite("a", 3, mut("a")), "b": c.addSite("b", 3, mut("b"))}
	c.waitSites(sites, 60*time.Second)

	// The bytes into each site count from here: the indexes, the scan,
	// the security update.
	inBefore := map[string]map[string]int64{}
	for s, ns := range sites {
		inBefore[s] = siteIn(ns)
	}

	// The nodes' apt-get update, through the mesh.
	d, err := c.coord.CreateDeployment(coordinator.DeployRequest{Updates: []string{"lists"}, All: true})
	if err != nil {
		t.Fatal(err)
	}
	waitDeployment(t, c.coord, d.ID, 6, 90*time.Second)
	scanAll := func(what string) {
		t.Helper()
		v, err := c.coord.CreateScan(coordinator.ScanRequest{All: true})
		if err != nil {
			t.Fatal(err)
		}
		waitDeployment(t, c.coord, v.ID, 6, 90*time.Second)
		eventually(t, 30*time.Second, what, func() (bool, string) {
			rep := c.coord.Updates(coordinator.UpdatesFilter{})
			return rep.Fleet.Scanned == 6, fmt.Sprintf("%+v", rep.Fleet)
		})
	}
	scanAll("six scans")
	rep := c.coord.Updates(coordinator.UpdatesFilter{})
	if rep.Fleet.MissingSecurity != 6 || rep.Fleet.MissingUpdates != 11 || rep.Fleet.SecurityCompliant != 0 {
		t.Fatalf("before: fleet %+v, want openssl missing on all six and hello on the five that have it", rep.Fleet)
	}

	// deploy --updates security: openssl only, one-by-one.
	var debBytes, indexBytes int64
	for _, s := range suites {
		for _, f := range []string{"InRelease", "Packages"} {
			st, _ := os.Stat(filepath.Join(s, f))
			indexBytes += st.Size()
		}
	}
	st, _ := os.Stat(filepath.Join(suites[1], "openssl_1.1_all.deb"))
	debBytes = st.Size()
	d, err = c.coord.CreateDeployment(coordinator.DeployRequest{Updates: []string{"security"}, All: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Packages) != 2 {
		t.Fatalf("security deployment of %d packages, want the indexes and openssl", len(d.Packages))
	}
	waitDeployment(t, c.coord, d.ID, 6, 2*time.Minute)
	for s, ns := range sites {
		in := sum(siteIn(ns)) - sum(inBefore[s])
		ratio := float64(in) / float64(debBytes+indexBytes)
		t.Logf("site %s: %d bytes in from outside for %d .deb + %d index bytes: %.3f×", s, in, debBytes, indexBytes, ratio)
		if ratio > 1.06 {
			t.Errorf("site %s: %.3f× the .deb and index bytes came in, want ≤ 1.06×", s, ratio)
		}
	}
	dv, _ := c.coord.Deployment(d.ID)
	for _, row := range dv.Nodes {
		found := false
		for _, p := range row.Packages {
			left := "1 updates left"
			if row.Name == "b-3" {
				left = "0 updates left"
			}
			if strings.Contains(p.Detail, "rescan: openssl 1.1 installed; "+left+" (0 security)") {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: row %+v does not say what the rescan found", row.Node, row.Packages)
		}
	}
	eventually(t, 30*time.Second, "security compliance 100 %", func() (bool, string) {
		rep := c.coord.Updates(coordinator.UpdatesFilter{})
		return rep.Fleet.SecurityCompliant == 6 && rep.Fleet.SecurityPercent == 100, fmt.Sprintf("%+v", rep.Fleet)
	})
	for name, r := range roots {
		if v := debrepo.Installed(t, r.Dir, "openssl"); v != "1.1" {
			t.Errorf("%s: openssl at %q", name, v)
		}
	}

	// Everything else in one transaction: hello 1.1 with its new libhello.
	d, err = c.coord.CreateDeployment(coordinator.DeployRequest{Updates: []string{"all"}, All: true, Bulk: true})
	if err != nil {
		t.Fatal(err)
	}
	waitDeployment(t, c.coord, d.ID, 6, 2*time.Minute)
	eventually(t, 30*time.Second, "compliance 100 %", func() (bool, string) {
		rep := c.coord.Updates(coordinator.UpdatesFilter{})
		return rep.Fleet.Compliant == 6 && rep.Fleet.Percent == 100, fmt.Sprintf("%+v", rep.Fleet)
	})
	for name, r := range roots {
		want := "1.1"
		if name == "b-3" {
			want = ""
		}
		if h, l := debrepo.Installed(t, r.Dir, "hello"), debrepo.Installed(t, r.Dir, "libhello"); h != want || l != want {
			t.Errorf("%s: hello %q libhello %q, want %q", name, h, l, want)
		}
	}
}
