package node

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/relaymesh/relaymesh/internal/testlog"
)

func TestCoordWatchLogsEachChangeOnce(t *testing.T) {
	t.Parallel()
	rec := testlog.NewRecorder(slog.LevelDebug)
	log := slog.New(rec)
	var w coordWatch
	t0 := time.Unix(1_760_000_000, 0)
	down := errors.New("dial backoff")
	steps := []error{nil, nil, down, down, down, down, nil, nil, down, nil}
	for i, err := range steps {
		w.observe(log, err, t0.Add(time.Duration(i)*30*time.Second))
	}
	warns, backs := rec.Messages("coordinator unreachable: new orders and status reports wait until it answers"), rec.Messages("coordinator reachable again")
	if len(warns) != 2 || len(backs) != 2 {
		t.Fatalf("%d unreachable and %d reachable-again lines, want 2 and 2: %+v", len(warns), len(backs), rec.Records())
	}
	if warns[0].Level != slog.LevelWarn || warns[0].Value("err") != "dial backoff" || backs[0].Level != slog.LevelInfo {
		t.Errorf("lines %+v %+v", warns[0], backs[0])
	}
	if got := backs[0].Value("down_for"); got != "2m0s" {
		t.Errorf("down_for %s, want 2m0s (down at step 2, back at step 6)", got)
	}
	if got := backs[0].Value("failed_syncs"); got != "4" {
		t.Errorf("failed_syncs %s, want 4", got)
	}
	if n := len(rec.Messages("sync failed")); n != 3 {
		t.Errorf("%d debug retries, want 3 (the failures after the first)", n)
	}
}

// A node whose coordinator goes away says so once at warn, and once at
// info when it is back, however many syncs fail in between.
func TestNodeLogsCoordinatorLossOnce(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	dir := enrollNode(t, f)
	rec := testlog.NewRecorder(slog.LevelDebug)
	startNode(t, dir, func(c *Config) { c.Logger = slog.New(testlog.Tee(rec, testLogger(t).Handler())) })
	eventually(t, 30*time.Second, "first sync", func() bool { return f.syncs.Load() > 0 })

	f.stop()
	eventually(t, 30*time.Second, "three syncs failed", func() bool { return len(rec.Messages("sync failed")) >= 2 })
	if n := len(rec.Messages("coordinator unreachable: new orders and status reports wait until it answers")); n != 1 {
		t.Errorf("%d unreachable warnings after 3 failed syncs, want 1", n)
	}
	f.start()
	eventually(t, 60*time.Second, "reachable again", func() bool { return len(rec.Messages("coordinator reachable again")) > 0 })
	syncs := f.syncs.Load()
	eventually(t, 30*time.Second, "more syncs", func() bool { return f.syncs.Load() >= syncs+3 })
	if n, m := len(rec.Messages("coordinator reachable again")), len(rec.Messages("coordinator unreachable: new orders and status reports wait until it answers")); n != 1 || m != 1 {
		t.Errorf("%d reachable-again and %d unreachable lines, want 1 and 1", n, m)
	}
	for k, r := range rec.Repeated() {
		t.Errorf("log line %q carries %q twice: %v", r.Msg, k, r.Keys())
	}
}
