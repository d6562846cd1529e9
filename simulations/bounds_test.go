package simulations

import (
	"bytes"
	"strings"
	"testing"
)

// TestBoundsCheckReport: a scenario's bounds are checked against a report:
// the worst site or a named one for per-site metrics, max and min, a
// strategy that did not run left out; broken bounds are counted, named with
// their value and why, and printed in the table.
func TestBoundsCheckReport(t *testing.T) {
	t.Parallel()
	sc, err := ParseScenario([]byte(goodScenario + `
bounds:
  - {metric: wan_in_over_size, max: 1.05, why: "once per site"}
  - {metric: wan_in_over_size, site: 1, max: 1.05}
  - {metric: ratio_to_t_star, max: 1.5}
  - {metric: succeeded, min: 6}
  - {strategy: relay, metric: failed, max: 0}
  - {strategy: direct, metric: failed, max: 0}
`))
	if err != nil {
		t.Fatal(err)
	}
	rep := &Report{Scenario: "t", Results: []Result{
		{Strategy: "mesh", Nodes: 6, Succeeded: 5, Failed: 1, RatioToTStar: 1.2, WANInOverSize: []float64{1.01, 1.31}},
		{Strategy: "relay", Nodes: 6, Succeeded: 6, WANInOverSize: []float64{1, 1}},
	}}
	got, broken := checkBounds(sc.Bounds, rep)
	want := []struct {
		bound string
		value float64
		ok    bool
	}{
		{"mesh wan_in_over_size (worst site) <= 1.05", 1.31, false},
		{"mesh wan_in_over_size (site-1) <= 1.05", 1.01, true},
		{"mesh ratio_to_t_star <= 1.5", 1.2, true},
		{"mesh succeeded >= 6", 5, false},
		{"relay failed <= 0", 0, true},
	}
	if len(got) != len(want) || broken != 2 {
		t.Fatalf("checked %d bounds, %d broken: %+v; want %d, 2 (direct did not run)", len(got), broken, got, len(want))
	}
	for i, w := range want {
		if got[i].Limit != w.bound || got[i].Value != w.value || got[i].OK != w.ok {
			t.Errorf("bound %d: %+v, want %q value %g ok %v", i, got[i], w.bound, w.value, w.ok)
		}
	}
	if !strings.Contains(got[0].Detail, "once per site") {
		t.Errorf("broken bound's detail %q lacks its why", got[0].Detail)
	}
	rep.Bounds = got
	var buf bytes.Buffer
	if err := rep.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"bound BROKEN mesh wan_in_over_size (worst site) <= 1.05: 1.31 (once per site)",
		"bound ok     mesh ratio_to_t_star <= 1.5: 1.2",
	} {
		if !strings.Contains(buf.String(), line) {
			t.Errorf("table lacks %q:\n%s", line, buf.String())
		}
	}
}
