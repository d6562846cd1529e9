// Package testlog gives tests a slog.Logger that writes to t.Log.
package testlog

import (
	"bytes"
	"log/slog"
	"sync"
	"testing"
)

// New returns a logger writing to t at level and above. Once the test's
// cleanups run it drops lines instead: stream handlers and background
// loops may log a moment after a test ends, and t.Log would then panic.
func New(t testing.TB, level slog.Level) *slog.Logger {
	t.Helper()
	w := &writer{t: t}
	t.Cleanup(w.stop)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type writer struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(bytes.TrimRight(p, "\n")))
	}
	return len(p), nil
}

func (w *writer) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
}
