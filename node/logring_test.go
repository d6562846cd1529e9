package node

import (
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestLogRing: the ring keeps the newest records at info and above, with
// the logger's attributes and groups, filters by time and level, caps
// what it returns and counts what fell out.
func TestLogRing(t *testing.T) {
	t.Parallel()
	ring := newLogRing(4)
	log := slog.New(teeHandler{slog.DiscardHandler, &ringHandler{ring: ring}}).With("node", "n1")
	log.Debug("not kept")
	start := time.Now().Add(-time.Second)
	log.Info("one", "k", 1)
	log.WithGroup("fetch").Warn("two", "peer", "p", slog.Group("rate", "bps", 10))
	log.Info(strings.Repeat("x", 5000))
	log.Error("three")
	log.Info("four")

	all := ring.query(time.Time{}, slog.LevelInfo, 100)
	if len(all.Records) != 4 || all.Dropped != 1 || all.Records[0].Msg != "two" || all.Records[3].Msg != "four" {
		t.Fatalf("records %+v dropped %d: want the newest 4, 1 dropped", all.Records, all.Dropped)
	}
	two := all.Records[0]
	want := "node=n1 fetch.peer=p fetch.rate.bps=10"
	var got []string
	for _, a := range two.Attrs {
		got = append(got, a.Key+"="+a.Value)
	}
	if strings.Join(got, " ") != want || two.Level != "WARN" {
		t.Errorf("record two = %s %v, want WARN %s", two.Level, got, want)
	}
	if long := all.Records[1].Msg; len(long) > 1100 || !strings.HasSuffix(long, "…") {
		t.Errorf("a 5000-byte message kept as %d bytes", len(long))
	}
	if w := ring.query(start, slog.LevelWarn, 100); len(w.Records) != 2 || w.Records[1].Msg != "three" {
		t.Errorf("warn and above: %+v", w.Records)
	}
	if last := ring.query(time.Time{}, slog.LevelInfo, 1); len(last.Records) != 1 || last.Records[0].Msg != "four" {
		t.Errorf("max 1: %+v", last.Records)
	}
	if none := ring.query(time.Now().Add(time.Hour), slog.LevelInfo, 100); len(none.Records) != 0 {
		t.Errorf("since the future: %+v", none.Records)
	}
}
