package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relaymesh/relaymesh/coordinator"
	"github.com/relaymesh/relaymesh/internal/debrepo"
)

// TestScanEndToEnd: real processes. Two nodes, each scanning a dpkg and
// apt root of its own over one real repository; relaymesh scan --all
// signs the order, and updates list shows what each misses.
func TestScanEndToEnd(t *testing.T) {
	debrepo.Need(t)
	c := newCluster(t)
	c.startCoordinator()
	old := []debrepo.Pkg{{Name: "foo", Version: "1.0"}, {Name: "bar", Version: "1.0"}}
	base := debrepo.New(t, t.TempDir(), old,
		debrepo.Suite{Name: "stable", Pkgs: []debrepo.Pkg{{Name: "foo", Version: "1.1"}}},
		debrepo.Suite{Name: "stable-security", Pkgs: []debrepo.Pkg{{Name: "bar", Version: "1.0+sec1"}}},
	)
	tok := strings.TrimSpace(c.admin("token", "create", "--site", "paris", "--uses", "2"))
	for i, installed := range [][]debrepo.Pkg{old, {{Name: "foo", Version: "1.1"}, {Name: "bar", Version: "1.0"}}} {
		name := fmt.Sprintf("n%d", i+1)
		dir := filepath.Join(c.root, name)
		c.run("node", "enroll", "--coordinator", c.coordAddr(), "--token", tok, "--dir", dir, "--name", name)
		r := base.Clone(t, t.TempDir(), installed)
		none := filepath.Join(t.TempDir(), "none")
		cfg := nodeConfig + fmt.Sprintf("scan:\n  dpkg_admindir: %s\n  apt_root: %s\n  os_release: %s\n  kernel_release: %s\n  reboot_required: %s\n",
			r.Admindir, r.Dir, none, none, none)
		if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		c.startNode(name)
	}
	c.waitAlive(2)
	if out := c.admin("scan", "--all"); !strings.Contains(out, "sent to 2 nodes") {
		t.Fatalf("scan --all: %q", out)
	}
	var rep coordinator.UpdatesReport
	eventually(t, 60*time.Second, "both scans in", func() (bool, string) {
		c.adminJSON(&rep, "updates", "list")
		return rep.Fleet.Scanned == 2, fmt.Sprintf("%+v", rep.Fleet)
	})
	var got []string
	for _, u := range rep.Updates {
		got = append(got, fmt.Sprintf("%s→%s security=%v missing=%d", u.Package, u.Candidate, u.Security, u.Missing))
	}
	if want := "bar→1.0+sec1 security=true missing=2\nfoo→1.1 security=false missing=1"; strings.Join(got, "\n") != want {
		t.Errorf("updates:\n%s\nwant\n%s", strings.Join(got, "\n"), want)
	}
	if out := c.admin("nodes", "show", "n2", "--updates"); !strings.Contains(out, "1.0+sec1") || strings.Contains(out, "foo ") {
		t.Errorf("nodes show n2 --updates:\n%s", out)
	}
	if out := c.admin("updates", "list", "--csv"); strings.Count(out, ",missing,") != 3 {
		t.Errorf("csv:\n%s", out)
	}
}
