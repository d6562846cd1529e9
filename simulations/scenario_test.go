package simulations

import (
	"errors"
	"strings"
	"testing"
)

const goodScenario = `
name: t
seed: 1
package_size: 4MiB
coordinator_up: 100Mbit/s
sites: {count: 2, nodes: 3, wan_up: 20Mbit/s, wan_down: 20Mbit/s, lan: 200Mbit/s}
`

func TestScenarioValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml, field string
	}{
		{"unknown key", goodScenario + "colour: blue\n", "colour"},
		{"bad rate", strings.Replace(goodScenario, "wan_up: 20Mbit/s", "wan_up: fast", 1), "sites.wan_up"},
		{"zero nodes", strings.Replace(goodScenario, "nodes: 3", "nodes: 0", 1), "sites.nodes"},
		{"no package", strings.Replace(goodScenario, "package_size: 4MiB", "", 1), "package_size"},
		{"tiny fragment", goodScenario + "fragment_size: 16KiB\n", "fragment_size"},
		{"fragment scaled too small", goodScenario + "scale: 32\n", "fragment_size"},
		{"scale below 1", goodScenario + "scale: 0.5\n", "scale"},
		{"strategy", goodScenario + "strategies: [mesh, bittorrent]\n", "strategies[1]"},
		{"fault kind", goodScenario + "faults: [{kind: meteor, site: 1}]\n", "faults[0].kind"},
		{"fault site", goodScenario + "faults: [{kind: kill-relay, site: 3, at: 40%}]\n", "faults[0].site"},
		{"fault node", goodScenario + "faults: [{kind: kill-node, site: 1, node: 9, at: 1s}]\n", "faults[0].node"},
		{"fault at", goodScenario + "faults: [{kind: kill-node, site: 1, node: 1, at: soon}]\n", "faults[0].at"},
		{"fault pct", goodScenario + "faults: [{kind: kill-node, site: 1, node: 1, at: 140%}]\n", "faults[0].at"},
		{"corrupt later", goodScenario + "faults: [{kind: corrupt-peer, site: 1, node: 1, at: 5s}]\n", "faults[0].at"},
		{"heterogeneity", goodScenario + "tuning: {gossip: wan}\n", "tuning.gossip"},
		{"timeout", goodScenario + "timeout: forever\n", "timeout"},
		{"bound metric", goodScenario + "bounds: [{metric: speed, max: 1}]\n", "bounds[0].metric"},
		{"bound strategy", goodScenario + "strategies: [mesh]\nbounds: [{strategy: direct, metric: failed, max: 0}]\n", "bounds[0].strategy"},
		{"bound without limit", goodScenario + "bounds: [{metric: failed}]\n", "bounds[0].max"},
		{"bound min above max", goodScenario + "bounds: [{metric: succeeded, min: 5, max: 2}]\n", "bounds[0].min"},
		{"bound site of a fleet metric", goodScenario + "bounds: [{metric: failed, site: 1, max: 0}]\n", "bounds[0].site"},
		{"bound site out of range", goodScenario + "bounds: [{metric: wan_in_over_size, site: 3, max: 1.1}]\n", "bounds[0].site"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseScenario([]byte(tt.yaml))
			if !errors.Is(err, ErrBadScenario) {
				t.Fatalf("err %v, want ErrBadScenario", err)
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("error %q does not name %s", err, tt.field)
			}
		})
	}
}

func TestScenarioDefaultsAndScaling(t *testing.T) {
	t.Parallel()
	sc, err := ParseScenario([]byte(goodScenario + "scale: 4\nfaults: [{kind: kill-relay, site: 2, at: 40%}, {kind: heal, site: 1, at: 30s}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(sc.Strategies) != 3 || sc.Tuning.Gossip != "fast" {
		t.Errorf("defaults: strategies %v gossip %q", sc.Strategies, sc.Tuning.Gossip)
	}
	if pkg, frag := sc.scaledSizes(); pkg != 1<<20 || frag != 256<<10 {
		t.Errorf("scaled sizes %d %d, want 1MiB and 256KiB", pkg, frag)
	}
	if got := sc.s.faults[0].pct; got != 0.4 {
		t.Errorf("40%% parsed as %v", got)
	}
	if got := sc.s.faults[1].after.Seconds(); got != 30 {
		t.Errorf("30s parsed as %v", got)
	}
	if sc.s.wanUp != 2.5e6 {
		t.Errorf("20Mbit/s = %v B/s, want 2.5e6", sc.s.wanUp)
	}
}

func TestUnits(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]float64{"20Mbit/s": 2.5e6, "100Mbps": 12.5e6, "2MB/s": 2e6, "1MiB/s": 1 << 20, "8bit/s": 1, "20 Mbit/s": 2.5e6, "12.5MB/s": 12.5e6} {
		if got, err := parseRate(in); err != nil || got != want {
			t.Errorf("parseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for in, want := range map[string]int64{"32MiB": 32 << 20, "256KiB": 256 << 10, "1000": 1000, "1.5KB": 1500} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1MiB", "lots", "0", "unlimited"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
	for _, in := range []string{"0", "unlimited", "fast"} {
		if _, err := parseRate(in); err == nil {
			t.Errorf("parseRate(%q) accepted: a simulated link needs a positive rate", in)
		}
	}
}
