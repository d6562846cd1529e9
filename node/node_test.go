package node

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relaymesh/relaymesh/core"
)

// enrollNode enrolls a new node directory with f.
func enrollNode(t *testing.T, f *fakeCoord) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "node")
	if _, err := Enroll(testCtx(t), EnrollOptions{Dir: dir, Coordinator: f.addr(), Token: f.token, Name: "n1", Logger: testLogger(t)}); err != nil {
		t.Fatalf("enroll: %v", err)
	}
	return dir
}

// startNode starts a node on dir with TestConfig, changed by mut; the
// node is closed at the end of the test (closing twice is fine).
func startNode(t *testing.T, dir string, mut func(c *Config)) *Node {
	t.Helper()
	cfg := TestConfig(dir)
	cfg.Logger = testLogger(t)
	if mut != nil {
		mut(&cfg)
	}
	n, err := Start(testCtx(t), cfg)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return n
}

func markerScript(marker string, exit int) string {
	return "#!/bin/sh\necho \"$RELAYMESH_NODE_ID\" > '" + marker + "'\nexit " + strconv.Itoa(exit) + "\n"
}

func TestPushedOrderRunsToSuccess(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	n := startNode(t, enrollNode(t, f), nil)
	marker := filepath.Join(t.TempDir(), "ran")
	// 7 is one of the package's success codes.
	pkg := f.addPackageWith(markerScript(marker, 7), 200<<10, func(m *core.Manifest) { m.SuccessCodes = []int64{0, 7} })
	env := f.sign(f.order("deploy-1", n.ID().String(), pkg, nil))

	if acc, err := f.push(testCtx(t), n, env); err != nil || acc != 1 {
		t.Fatalf("push: accepted %d, %v", acc, err)
	}
	got := f.waitState(t, "deploy-1", core.StateSuccess)
	if got.ExitCode != 7 || got.Package != pkg.id {
		t.Errorf("SUCCESS report: exit %d package %s, want 7 and %s", got.ExitCode, got.Package, pkg.id)
	}
	want := []core.State{core.StateNotified, core.StateDownloading, core.StateDownloaded, core.StateInstalling, core.StateSuccess}
	if states := statesOf(f.statuses("deploy-1")); !equalStates(states, want) {
		t.Errorf("states %v, want %v", states, want)
	}
	for _, s := range f.statuses("deploy-1") {
		if s.State == core.StateDownloaded && s.BytesFetched == 0 {
			t.Errorf("DOWNLOADED report has no bytes fetched")
		}
	}
	b, err := os.ReadFile(marker)
	if err != nil || strings.TrimSpace(string(b)) != n.ID().String() {
		t.Errorf("marker = %q, %v; want the node ID from RELAYMESH_NODE_ID", b, err)
	}

	// Redelivery, pushed or synced, is not news: no new report.
	before := len(f.allReports())
	if acc, err := f.push(testCtx(t), n, env); err != nil || acc != 0 {
		t.Fatalf("second push: accepted %d, %v", acc, err)
	}
	f.publish(env)
	if err := n.syncOnce(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil { // flushes nothing new; waits for all
		t.Fatal(err)
	}
	if after := len(f.allReports()); after != before {
		t.Errorf("redelivery produced %d new reports", after-before)
	}
}

func equalStates(a, b []core.State) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestSyncedOrderRunsAndSeqsAreContiguous(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	dir := enrollNode(t, f)
	id := nodeIDOf(t, dir)
	marker := filepath.Join(t.TempDir(), "ran")
	pkg := f.addPackage(markerScript(marker, 0), 10)
	f.publish(f.sign(f.order("synced", id, pkg, nil)))
	startNode(t, dir, nil)
	f.waitState(t, "synced", core.StateSuccess)
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("package did not run: %v", err)
	}
	for i, s := range f.allReports() {
		if s.Seq != uint64(i+1) {
			t.Fatalf("report %d has sequence %d", i, s.Seq)
		}
	}
}

func nodeIDOf(t *testing.T, dir string) string {
	t.Helper()
	e, err := LoadEnrollment(dir)
	if err != nil {
		t.Fatal(err)
	}
	return e.NodeID
}

func TestHostileOrdersAreRefusedAndNeverRun(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	n := startNode(t, enrollNode(t, f), nil)
	self := n.ID().String()
	okMarker := filepath.Join(t.TempDir(), "ok")
	good := f.addPackage(markerScript(okMarker, 0), 10)
	badMarker := filepath.Join(t.TempDir(), "must-not-exist")
	evil := f.addPackage(markerScript(badMarker, 0), 10)

	// A valid order first, so that replays have a sequence to fall under.
	if _, err := f.push(testCtx(t), n, f.sign(f.order("good", self, good, func(o *core.Order) { o.Seq = 100 }))); err != nil {
		t.Fatal(err)
	}
	f.waitState(t, "good", core.StateSuccess)

	otherKey, _ := core.GenerateKey()
	signOther := func(o *core.Order) *core.Envelope {
		e, err := core.SignOrder(o, otherKey)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	tampered := f.sign(f.order("tampered", self, evil, func(o *core.Order) { o.Seq = 200; o.Priority = 1 }))
	tampered.Payload = []byte(strings.Replace(string(tampered.Payload), `"priority":1`, `"priority":0`, 1))

	cases := []struct {
		id   string
		env  *core.Envelope
		want core.State
	}{
		{"other-key", signOther(f.order("other-key", self, evil, func(o *core.Order) { o.Seq = 300 })), core.ErrBadSigSt},
		{"tampered", tampered, core.ErrBadSigSt},
		// A sequence below the highest is accepted once inside the replay
		// window (core.ReplayWindow); one already accepted is a replay.
		{"replayed", f.sign(f.order("replayed", self, evil, func(o *core.Order) { o.Seq = 100 })), core.ErrReplaySt},
		{"expired", f.sign(f.order("expired", self, evil, func(o *core.Order) {
			o.Seq = 400
			o.NotBefore, o.Expires = o.IssuedAt.Add(-2*time.Hour), o.IssuedAt.Add(-time.Hour)
		})), core.ErrExpiredSt},
		{"elsewhere", f.sign(f.order("elsewhere", self, evil, func(o *core.Order) {
			o.Seq = 500
			o.Targets = []string{"12D3KooWSomeoneElse"}
		})), core.ErrBadID},
	}
	for _, c := range cases {
		if acc, err := f.push(testCtx(t), n, c.env); err != nil || acc != 0 {
			t.Fatalf("%s: push accepted %d, %v", c.id, acc, err)
		}
	}
	for _, c := range cases {
		got := f.waitState(t, c.id, c.want)
		if got.Detail == "" {
			t.Errorf("%s: refusal without detail", c.id)
		}
		if n := len(f.statuses(c.id)); n != 1 {
			t.Errorf("%s: %d reports, want exactly the refusal", c.id, n)
		}
	}
	// Redelivering a refused order is quiet.
	before := len(f.allReports())
	if _, err := f.push(testCtx(t), n, cases[0].env, cases[3].env); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if after := len(f.allReports()); after != before {
		t.Errorf("redelivered refusals produced %d new reports", after-before)
	}
	if _, err := os.Stat(badMarker); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused order ran: %v", err)
	}
	if f.servedCount()[evil.id] != 0 {
		t.Errorf("the node fetched the manifest of a refused order")
	}
}

func TestCancelBeforeInstall(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	n := startNode(t, enrollNode(t, f), nil)
	self := n.ID().String()
	marker := filepath.Join(t.TempDir(), "ran")
	pkg := f.addPackage(markerScript(marker, 0), 10)
	later := f.order("later", self, pkg, func(o *core.Order) {
		o.NotBefore = o.IssuedAt.Add(30 * time.Minute)
		o.Prefetch = true
	})
	if _, err := f.push(testCtx(t), n, f.sign(later)); err != nil {
		t.Fatal(err)
	}
	f.waitState(t, "later", core.StateDownloaded) // prefetched, waiting for not-before
	cancel := f.order("cancel-later", self, pkg, func(o *core.Order) {
		o.Kind, o.Cancels, o.Packages, o.Mode, o.Reboot = core.KindCancel, "later", nil, "", ""
	})
	if _, err := f.push(testCtx(t), n, f.sign(cancel)); err != nil {
		t.Fatal(err)
	}
	f.waitState(t, "later", core.StateCancelled)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a cancelled order ran: %v", err)
	}
}

func TestRunStopsCleanlyOnCancel(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	dir := enrollNode(t, f)
	cfg := TestConfig(dir)
	cfg.Logger = testLogger(t)
	ctx, cancel := context.WithCancel(testCtx(t))
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	eventually(t, 30*time.Second, "the node synced twice", func() bool { return f.syncs.Load() >= 2 })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil after a clean shutdown", err)
	}
}

// A command that exits with a code the package does not declare a success
// fails: ERR_EXECUTE with the code, not SUCCESS.
func TestExitCodeNotDeclaredIsAFailure(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	n := startNode(t, enrollNode(t, f), nil)
	pkg := f.addPackage("#!/bin/sh\necho half done\nexit 3\n", 10)
	if _, err := f.push(testCtx(t), n, f.sign(f.order("exit3", n.ID().String(), pkg, nil))); err != nil {
		t.Fatal(err)
	}
	got := f.waitState(t, "exit3", core.ErrExecute)
	if got.ExitCode != 3 || !strings.Contains(got.Detail, "exit code 3") || !strings.Contains(got.Output, "half done") {
		t.Errorf("report: exit %d detail %q output %q", got.ExitCode, got.Detail, got.Output)
	}
	for _, s := range f.statuses("exit3") {
		if s.State == core.StateSuccess {
			t.Errorf("a SUCCESS report for a command that exited 3")
		}
	}
}
