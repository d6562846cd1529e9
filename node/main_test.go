package node

import (
	"context"
	"github.com/relaymesh/relaymesh/internal/poll"
	"log/slog"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/relaymesh/relaymesh/internal/testlog"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testLogger logs to t (see internal/testlog).
func testLogger(t testing.TB) *slog.Logger {
	t.Helper()
	return testlog.New(t, slog.LevelDebug)
}

// eventually polls cond every 10ms until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	poll.Until(t, within, 10*time.Millisecond, what, poll.Bool(cond))
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}
