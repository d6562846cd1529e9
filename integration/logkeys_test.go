package integration

import (
	"log/slog"
	"testing"
	"time"

	"github.com/relaymesh/relaymesh/coordinator"
	"github.com/relaymesh/relaymesh/internal/testlog"
)

// Every log line of a fleet at work (enrollment, site gossip and relay
// election, a deployment fetched and installed) names each key once: a
// component's logger and the line it logs must not both say node=.
func TestLogLinesHaveNoRepeatedKeys(t *testing.T) {
	t.Parallel()
	rec := testlog.NewRecorder(slog.LevelDebug)
	c := newClusterLog(t, slog.New(testlog.Tee(rec, testLogger(t).Handler())), nil)
	sites := map[string][]*testNode{"paris": c.addSite("paris", 3, nil), "lyon": c.addSite("lyon", 2, nil)}
	c.waitSites(sites, 90*time.Second)
	pkg, _ := c.publish("app", 300<<10)
	d, err := c.coord.CreateDeployment(coordinator.DeployRequest{Packages: []string{pkg.ID}, All: true})
	if err != nil {
		t.Fatal(err)
	}
	waitDeployment(t, c.coord, d.ID, 5, 2*time.Minute)

	if len(rec.Messages("relay role changed")) == 0 {
		t.Fatal("no relay role change logged: the test did not see an election")
	}
	for k, r := range rec.Repeated() {
		t.Errorf("log line %q carries %q twice: %v", r.Msg, k, r.Keys())
	}
}
