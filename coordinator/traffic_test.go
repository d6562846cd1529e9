package coordinator

import (
	"testing"
	"time"

	"github.com/relaymesh/relaymesh/core"
)

// A site's byte counts never go down when one of its nodes restarts (its
// own counters start again at zero), and survive the coordinator's
// restart.
func TestSiteTrafficSurvivesRestarts(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	n := newFakeNode(t, h, "relay-1")
	n.mustEnroll(h.token(TokenRequest{Site: "lyon"}))
	report := func(fromCoord, fromSite int64) {
		t.Helper()
		info := n.info()
		info.Traffic = &core.Traffic{FromCoordinator: fromCoord, FromSite: fromSite}
		if _, err := h.c.Sync(n.ID(), &core.SyncRequest{Info: info}); err != nil {
			t.Fatal(err)
		}
	}
	site := func() SiteView {
		t.Helper()
		for _, s := range h.c.Sites() {
			if s.Site == "lyon" {
				return s
			}
		}
		t.Fatal("no site lyon")
		return SiteView{}
	}
	report(1000, 10)
	report(1500, 40)
	if s := site(); s.WANIn != 1500 || s.LANIn != 40 {
		t.Fatalf("WAN in %d LAN in %d, want 1500 and 40", s.WANIn, s.LANIn)
	}
	report(200, 5) // the node restarted
	if s := site(); s.WANIn != 1700 || s.LANIn != 45 {
		t.Errorf("after the node's restart: WAN in %d LAN in %d, want 1700 and 45 (not 200 and 5)", s.WANIn, s.LANIn)
	}
	h.clk.Advance(2 * time.Minute) // the next heartbeat is stored
	report(250, 5)
	h.restart()
	if s := site(); s.WANIn != 1750 || s.LANIn != 45 {
		t.Errorf("after the coordinator's restart: WAN in %d LAN in %d, want 1750 and 45", s.WANIn, s.LANIn)
	}
	report(300, 6)
	if s := site(); s.WANIn != 1800 || s.LANIn != 46 {
		t.Errorf("WAN in %d LAN in %d, want 1800 and 46", s.WANIn, s.LANIn)
	}
}

func TestGrownTraffic(t *testing.T) {
	t.Parallel()
	tr := func(c int64) *core.Traffic { return &core.Traffic{FromCoordinator: c} }
	for _, tc := range []struct {
		total, prev, cur *core.Traffic
		want             int64
	}{
		{nil, nil, tr(100), 100},         // first report
		{tr(100), tr(100), tr(150), 150}, // growth
		{tr(150), tr(150), tr(20), 170},  // restart: all of it is growth
		{nil, tr(500), tr(600), 600},     // a record from before totals: starts from prev
	} {
		if got := grownTraffic(tc.total, tc.prev, tc.cur).FromCoordinator; got != tc.want {
			t.Errorf("grownTraffic(%v, %v, %v) = %d, want %d", tc.total, tc.prev, tc.cur, got, tc.want)
		}
	}
}
