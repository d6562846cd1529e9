package node

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/relaymesh/relaymesh/cache"
	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/node/runner"
)

func TestRestartMidDownloadFetchesNothingTwice(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	dir := enrollNode(t, f)
	marker := filepath.Join(t.TempDir(), "ran")
	pkg := f.addPackage(markerScript(marker, 0), 300<<10)
	if len(pkg.frags) < 4 {
		t.Fatalf("package has %d fragments; the test needs 4 or more", len(pkg.frags))
	}
	f.hold(pkg.frags[2:]...)
	slow := func(c *Config) { c.JobAttempts = 1000 }
	n := startNode(t, dir, slow)
	if _, err := f.push(testCtx(t), n, f.sign(f.order("resume", n.ID().String(), pkg, nil))); err != nil {
		t.Fatal(err)
	}
	f.waitState(t, "resume", core.StateDownloading)
	eventually(t, 30e9, "first fragments cached", func() bool {
		for _, s := range pkg.frags[:2] {
			c, _ := cid.Decode(s)
			if ok, _ := n.Store().Has(c); !ok {
				return false
			}
		}
		return true
	})
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	f.release()
	startNode(t, dir, slow)
	f.waitState(t, "resume", core.StateSuccess)
	served := f.servedCount()
	for _, c := range append([]string{pkg.id}, pkg.frags...) {
		if served[c] != 1 {
			t.Errorf("%s served %d times, want once", c, served[c])
		}
	}
	for _, s := range f.statuses("resume") {
		if s.State == core.StateNotified || s.State == core.StateDownloading {
			continue
		}
		if s.State == core.StateDownloaded && s.BytesFetched <= 0 {
			t.Errorf("DOWNLOADED with %d bytes fetched", s.BytesFetched)
		}
	}
	if got := statesOf(f.statuses("resume")); len(got) != 5 {
		t.Errorf("states %v: want each state once across the restart", got)
	}
}

func TestOutboxSurvivesRestartWhileCoordinatorIsAway(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	dir := enrollNode(t, f)
	marker := filepath.Join(t.TempDir(), "ran")
	pkg := f.addPackageWith(markerScript(marker, 3), 10, func(m *core.Manifest) { m.SuccessCodes = []int64{3} })
	f.hostile.Store(true) // status intake fails: reports pile up
	n := startNode(t, dir, nil)
	if _, err := f.push(testCtx(t), n, f.sign(f.order("offline", n.ID().String(), pkg, nil))); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30e9, "five reports in the outbox", func() bool { return outboxLen(t, n.kv) == 5 })
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	f.stop() // now unreachable altogether
	f.hostile.Store(false)
	n2 := startNode(t, dir, nil)
	if got := outboxLen(t, n2.kv); got != 5 {
		t.Fatalf("outbox after restart holds %d reports, want 5", got)
	}
	f.start()
	f.waitState(t, "offline", core.StateSuccess)
	eventually(t, 30e9, "outbox drained", func() bool { return outboxLen(t, n2.kv) == 0 })
	got := f.statuses("offline")
	want := []core.State{core.StateNotified, core.StateDownloading, core.StateDownloaded, core.StateInstalling, core.StateSuccess}
	if !equalStates(statesOf(got), want) {
		t.Fatalf("states %v, want %v", statesOf(got), want)
	}
	for i, s := range got {
		if s.Seq != uint64(i+1) {
			t.Errorf("report %d has sequence %d", i, s.Seq)
		}
	}
	if got[4].ExitCode != 3 {
		t.Errorf("exit code %d, want 3", got[4].ExitCode)
	}
}

func outboxLen(t *testing.T, kv cache.KV) int {
	t.Helper()
	n := 0
	if err := kv.Scan(keyOutbox, func(string, []byte) error { n++; return nil }); err != nil && !errors.Is(err, cache.ErrClosed) {
		t.Error(err)
	}
	return n
}

func TestFailingJobDoesNotBlockOthers(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	n := startNode(t, enrollNode(t, f), func(c *Config) { c.JobAttempts, c.ParallelDownloads = 3, 1 })
	self := n.ID().String()
	broken := f.addPackage(markerScript(filepath.Join(t.TempDir(), "broken"), 0), 100<<10)
	f.hold(broken.frags...)
	marker := filepath.Join(t.TempDir(), "ran")
	fine := f.addPackage(markerScript(marker, 0), 10)
	urgent := f.order("urgent-broken", self, broken, func(o *core.Order) { o.Priority = 0 })
	routine := f.order("routine", self, fine, func(o *core.Order) { o.Priority = 9 })
	if _, err := f.push(testCtx(t), n, f.sign(urgent), f.sign(routine)); err != nil {
		t.Fatal(err)
	}
	failed := f.waitState(t, "urgent-broken", core.ErrBuild)
	if !strings.Contains(failed.Detail, "3 attempts") {
		t.Errorf("detail %q: want the attempt count", failed.Detail)
	}
	f.waitState(t, "routine", core.StateSuccess)
	if _, err := os.Stat(marker); err != nil {
		t.Error(err)
	}
}

// countingInstaller records installs instead of running them.
type countingInstaller struct{ calls atomic.Int32 }

func (c *countingInstaller) Install(_ context.Context, req runner.Request, onStart func(string), onResult func(runner.Result)) ([]runner.Result, bool) {
	c.calls.Add(1)
	var out []runner.Result
	for _, p := range req.Packages {
		onStart(p.ID)
		r := runner.Result{Package: p.ID, State: core.StateSuccess}
		onResult(r)
		out = append(out, r)
	}
	return out, false
}

func TestInstallInterruptedByRestartIsNotRerun(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	dir := enrollNode(t, f)
	self := nodeIDOf(t, dir)
	a, b := f.addPackage("exit 0", 10), f.addPackage("exit 1", 10)
	o := f.order("interrupted", self, a, func(o *core.Order) { o.Packages = []string{a.id, b.id} })
	env := f.sign(o)

	// What a crash mid-install leaves: the order accepted, its job in
	// phase installing with package a done and b not.
	st, err := cache.OpenBadger(cache.Config{Dir: filepath.Join(dir, cacheSubdir)})
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := env.Encode()
	rec, _ := json.Marshal(jobRecord{Order: o.ID, Priority: o.Priority, Seq: o.Seq, Phase: phaseInstalling,
		Results: map[string]pkgResult{a.id: {State: core.StateSuccess}}})
	err = st.KV().Update(func(tx cache.KVTx) error {
		return errors.Join(tx.Set(keyOrder+o.ID, enc), tx.Set(keyJob+o.ID, rec), tx.Set(keyTrustSeq+o.KeyID, []byte("1")))
	})
	if err != nil || st.Close() != nil {
		t.Fatal(err)
	}

	inst := &countingInstaller{}
	n := startNode(t, dir, func(c *Config) { c.Installer = inst })
	got := f.waitState(t, "interrupted", core.ErrAborted)
	if got.Package != b.id || got.Detail != "node restarted during install" {
		t.Errorf("abort report: package %s detail %q", got.Package, got.Detail)
	}
	f.publish(env) // redelivered by sync: known, ignored
	if err := n.syncOnce(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if c := inst.calls.Load(); c != 0 {
		t.Errorf("installer ran %d times after the restart", c)
	}
	if got := statesOf(f.statuses("interrupted")); len(got) != 1 {
		t.Errorf("reports %v: want only the abort", got)
	}
}
