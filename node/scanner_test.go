package node

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/internal/debrepo"
	"github.com/relaymesh/relaymesh/node/scan"
)

// scanRoot is a private dpkg/apt root: foo and bar 1.0 installed, foo 1.1
// in stable and bar 1.0+sec1 in stable-security.
func scanRoot(t *testing.T) scan.Config {
	t.Helper()
	debrepo.Need(t)
	dir := t.TempDir()
	r := debrepo.New(t, dir,
		[]debrepo.Pkg{{Name: "foo", Version: "1.0"}, {Name: "bar", Version: "1.0"}},
		debrepo.Suite{Name: "stable", Pkgs: []debrepo.Pkg{{Name: "foo", Version: "1.1"}}},
		debrepo.Suite{Name: "stable-security", Pkgs: []debrepo.Pkg{{Name: "bar", Version: "1.0+sec1"}}},
	)
	c := scan.DefaultConfig()
	c.DpkgAdmindir, c.AptRoot = r.Admindir, r.Dir
	c.OSRelease, c.KernelRelease, c.RebootRequired = filepath.Join(dir, "none"), filepath.Join(dir, "none"), filepath.Join(dir, "none")
	return c
}

func scanOrder(f *fakeCoord, id, node string) *core.Envelope {
	return scanOrderAt(f, id, node, time.Now())
}

// scanOrderAt is a scan order issued at now (a node's injected clock).
func scanOrderAt(f *fakeCoord, id, node string, now time.Time) *core.Envelope {
	now = now.UTC().Truncate(time.Second)
	o := f.order(id, node, testPackage{}, func(o *core.Order) {
		o.Kind, o.Packages, o.Mode, o.Reboot = core.KindScan, nil, "", ""
		o.IssuedAt, o.NotBefore, o.Expires = now, now.Add(-time.Minute), now.Add(time.Hour)
	})
	return f.sign(o)
}

func waitScans(t *testing.T, f *fakeCoord, k int) []*core.ScanReport {
	t.Helper()
	var got []*core.ScanReport
	eventually(t, 30*time.Second, "scan reports", func() bool {
		got = f.scanReports()
		return len(got) >= k
	})
	return got
}

// TestScanOrderSendsScan: a signed scan order makes the node scan its
// (private) dpkg and apt root; the node-signed scan report names the
// order and lists exactly the two updates, and the order ends SUCCESS.
func TestScanOrderSendsScan(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	dir := enrollNode(t, f)
	sc := scanRoot(t)
	n := startNode(t, dir, func(c *Config) { c.Scan = sc })
	f.publish(scanOrder(f, "s-1", n.ID().String()))
	st := f.waitState(t, "s-1", core.StateSuccess)
	if st.Detail != "scanned: 2 updates (1 security), 2 packages installed" {
		t.Errorf("detail %q", st.Detail)
	}
	if got := statesOf(f.statuses("s-1")); !equalStates(got, []core.State{core.StateNotified, core.StateSuccess}) {
		t.Errorf("states %v", got)
	}
	r := waitScans(t, f, 1)[0]
	if r.Order != "s-1" || len(r.Updates) != 2 || r.Updates[0].Name != "bar" || !r.Updates[0].Security ||
		r.Updates[1].Name != "foo" || r.Updates[1].Candidate != "1.1" || r.Updates[1].Security || r.InstalledCount != 2 {
		t.Fatalf("scan report %+v", r)
	}
	// The scan report took a number of the status sequence: between
	// NOTIFIED and SUCCESS.
	ss := f.statuses("s-1")
	if r.Seq != ss[0].Seq+1 || ss[1].Seq != r.Seq+1 {
		t.Errorf("sequences: notified %d, scan %d, success %d", ss[0].Seq, r.Seq, ss[1].Seq)
	}
}

// TestScanFailureIsReported: with no package lists the order ends
// ERR_EXECUTE saying which dir and what to do, and the scan report still
// carries the inventory.
func TestScanFailureIsReported(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	dir := enrollNode(t, f)
	sc := scanRoot(t)
	sc.AptListsDir = filepath.Join(t.TempDir(), "gone")
	n := startNode(t, dir, func(c *Config) { c.Scan = sc })
	f.publish(scanOrder(f, "s-2", n.ID().String()))
	st := f.waitState(t, "s-2", core.ErrExecute)
	if !strings.Contains(st.Detail, sc.AptListsDir) || !strings.Contains(st.Detail, "run apt-get update") {
		t.Errorf("detail %q", st.Detail)
	}
	r := waitScans(t, f, 1)[0]
	if r.Error == "" || r.InstalledCount != 2 || r.Updates != nil {
		t.Errorf("scan report %+v", r)
	}
}

// TestScanReportWaitsOutOutage: while the coordinator refuses status, the
// scan report waits in the outbox; it arrives once it is back.
func TestScanReportWaitsOutOutage(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	dir := enrollNode(t, f)
	scanned := make(chan struct{}, 4)
	n := startNode(t, dir, func(c *Config) {
		c.Scanner = func(context.Context) (*core.Inventory, error) {
			defer func() { scanned <- struct{}{} }()
			return &core.Inventory{Manager: "dpkg", InstalledCount: 1, Installed: []core.Package{{Name: "a", Version: "1"}}}, nil
		}
	})
	f.hostile.Store(true)
	f.publish(scanOrder(f, "s-3", n.ID().String()))
	select {
	case <-scanned:
	case <-time.After(30 * time.Second):
		t.Fatal("no scan")
	}
	if len(f.scanReports()) != 0 {
		t.Fatal("report delivered during the outage")
	}
	f.hostile.Store(false)
	if r := waitScans(t, f, 1)[0]; r.Order != "s-3" || r.InstalledCount != 1 {
		t.Fatalf("report %+v", r)
	}
	f.waitState(t, "s-3", core.StateSuccess)
}

// TestPeriodicScan: a node scans within the hour after its first start,
// then about every ScanInterval (±25 %), counted from the last scan, so a
// restart does not scan again early.
func TestPeriodicScan(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	dir := enrollNode(t, f)
	clk := &fakeClock{t: time.Now()}
	var scans atomic.Int32
	mut := func(c *Config) {
		c.Now, c.ScanInterval = clk.Now, time.Hour
		c.Scanner = func(context.Context) (*core.Inventory, error) {
			scans.Add(1)
			return &core.Inventory{Manager: "dpkg"}, nil
		}
	}
	t0 := clk.Now()
	n := startNode(t, dir, mut)
	// A minute at a time, until the scanner ran: the first scan comes
	// within the hour.
	eventually(t, 30*time.Second, "first periodic scan", func() bool {
		if scans.Load() > 0 {
			return true
		}
		clk.Advance(time.Minute)
		return false
	})
	first := waitScans(t, f, 1)[0]
	if d := first.Time.Sub(t0); d > 65*time.Minute {
		t.Fatalf("first scan %s after start, want within the hour", d)
	}
	clk.Advance(first.Time.Add(44 * time.Minute).Sub(clk.Now())) // before 0.75 h after that scan
	n.Close()
	syncs := f.syncs.Load()
	n = startNode(t, dir, mut)
	// The scan loop's first look comes before the node's syncs: give it
	// the chance to scan (wrongly) before the order comes.
	eventually(t, 30*time.Second, "two syncs after the restart", func() bool { return f.syncs.Load() >= syncs+2 })
	f.publish(scanOrderAt(f, "s-4", n.ID().String(), clk.Now()))
	waitScans(t, f, 2) // the order's scan
	if k := scans.Load(); k != 2 {
		t.Fatalf("%d scans, want 2 (first, then the order's)", k)
	}
	clk.Advance(76 * time.Minute) // past 1.25 h after the order's scan
	waitScans(t, f, 3)
	if r := f.scanReports()[2]; r.Order != "" {
		t.Errorf("periodic scan names order %q", r.Order)
	}
}

func TestFitDropsInventoryFirst(t *testing.T) {
	t.Parallel()
	r := core.ScanReport{Schema: core.ScanSchema, Time: time.Now().UTC(), Inventory: core.Inventory{Manager: "dpkg"}}
	for i := range 40_000 {
		r.Installed = append(r.Installed, core.Package{Name: strings.Repeat("p", 30) + string(rune('a'+i%26)), Version: "1.0-1", Arch: "amd64"})
	}
	r.InstalledCount = len(r.Installed)
	r.Updates = []core.Update{{Name: "a", Installed: "1", Candidate: "2", Security: true}}
	fit(&r)
	if !r.Truncated || r.Installed != nil || r.InstalledCount != 40_000 || len(r.Updates) != 1 || r.Error != "" {
		t.Fatalf("truncated %v installed %d count %d updates %d error %q", r.Truncated, len(r.Installed), r.InstalledCount, len(r.Updates), r.Error)
	}
	if _, err := standIn(&r).Encode(); err != nil {
		t.Fatal(err)
	}
}

func TestScanConfigInNodeConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte("scan_interval: 12h\nscan:\n  dpkg_admindir: /srv/root/var/lib/dpkg\n  upgrade: upgrade\n  timeout: 2m\n  apt_options: [\"Dir::Etc::SourceList=/srv/sources.list\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if c.ScanInterval != 12*time.Hour || c.Scan.DpkgAdmindir != "/srv/root/var/lib/dpkg" || c.Scan.Upgrade != "upgrade" ||
		c.Scan.Timeout != 2*time.Minute || c.Scan.AptGet != "apt-get" || len(c.Scan.AptOptions) != 1 {
		t.Fatalf("config %+v", c.Scan)
	}
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte("scan:\n  upgrade: full\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(dir); err == nil || !strings.Contains(err.Error(), `scan: scan: bad config: upgrade "full"`) {
		t.Fatalf("err %v", err)
	}
}
