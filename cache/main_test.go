package cache

import (
	"log/slog"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testLogger sends warnings and errors to t.Log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

// openTestBadger opens a badger cache in a fresh directory, closed when t ends.
func openTestBadger(t testing.TB, cfg Config) *Badger {
	t.Helper()
	if cfg.Dir == "" && !cfg.InMemory {
		cfg.Dir = t.TempDir()
	}
	cfg.Logger = testLogger(t)
	b, err := OpenBadger(cfg)
	if err != nil {
		t.Fatalf("OpenBadger: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}
