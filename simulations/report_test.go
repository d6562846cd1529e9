package simulations

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func sampleReport() *Report {
	return &Report{Scenario: "s", Seed: 1, Scale: 2, PackageSize: 1 << 20, Sites: []string{"site-1", "site-2"},
		Results: []Result{
			{Strategy: "mesh", Nodes: 4, Succeeded: 4, TLast: 3, TMedian: 2, TStar: 2, RatioToTStar: 1.5,
				WANInOverSize: []float64{1, 1.01}, WANOutOverSize: []float64{0, 0}, OriginEgressOverSize: 2.01, CompletionS: []float64{1, 2, 2, 3},
				Faults: []FaultMark{{AtS: 1.5, What: "kill-relay site 2"}}},
			{Strategy: "direct", Nodes: 4, Succeeded: 3, Failed: 1, TLast: 8, TMedian: 6, TStar: 2, RatioToTStar: 4,
				WANInOverSize: []float64{2, 2}, WANOutOverSize: []float64{0, 0}, OriginEgressOverSize: 4, CompletionS: []float64{4, 6, 8}},
		}}
}

func TestReportJSONShape(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := sampleReport().WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Scenario string           `json:"scenario"`
		Results  []map[string]any `json:"results"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Scenario != "s" || len(got.Results) != 2 {
		t.Fatalf("scenario %q, %d results", got.Scenario, len(got.Results))
	}
	for _, k := range []string{"strategy", "nodes", "succeeded", "t_last_s", "t_median_s", "t_star_s", "ratio_to_t_star", "wan_in_over_size", "origin_egress_over_size"} {
		if _, ok := got.Results[0][k]; !ok {
			t.Errorf("results[0] lacks %q", k)
		}
	}
	if w, ok := got.Results[0]["wan_in_over_size"].([]any); !ok || len(w) != 2 {
		t.Errorf("wan_in_over_size %v: want one number per site", got.Results[0]["wan_in_over_size"])
	}
	for f, want := range map[string][]string{
		// labelled axes, the legend saying which nodes a curve misses,
		// T* and the fault marked
		"cdf.svg": {"seconds after the deployment", "share of nodes done", "mesh: 4/4 nodes", "direct: 3/4 nodes (1 failed)",
			"T* = 2.0 s (fastest possible)", "kill-relay site 2 (mesh 1.5 s)", "kill-relay site 2"},
		"wan.svg": {"bytes in ÷ package size", "site-1", "site-2", "once (1 ×)", "mesh", "direct"},
	} {
		svg, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := xml.Unmarshal(svg, new(struct {
			XMLName xml.Name `xml:"svg"`
		})); err != nil {
			t.Errorf("%s: not an SVG document: %v", f, err)
		}
		for _, w := range want {
			if !bytes.Contains(svg, []byte(xmlEscape(w))) {
				t.Errorf("%s lacks %q", f, w)
			}
		}
	}
}

func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

func TestReportTable(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	if err := sampleReport().WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"strategy", "mesh", "direct", "1.00 1.01", "1.50"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}
