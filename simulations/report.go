package simulations

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
)

// Report is one scenario's results, one entry per strategy.
type Report struct {
	Scenario    string   `json:"scenario"`
	Seed        uint64   `json:"seed"`
	Scale       float64  `json:"scale"`
	PackageSize int64    `json:"package_size"` // unscaled bytes
	Sites       []string `json:"sites"`
	Results     []Result `json:"results"`
	Notes       []string `json:"notes"`
	// Virtual says the times are simulated seconds (Options.Bubble).
	Virtual bool `json:"virtual"`
	// Bounds are the scenario's bounds checked against the results.
	Bounds []BoundResult `json:"bounds"`
}

// Result is one strategy's run. Times are seconds from the deployment,
// as if unscaled (see the package doc).
type Result struct {
	Strategy  string `json:"strategy"`
	Nodes     int    `json:"nodes"`
	Succeeded int    `json:"succeeded"`
	// Failed counts final non-SUCCESS rows; Killed nodes the scenario
	// killed; Unfinished live nodes with no final state at the timeout.
	Failed     int `json:"failed"`
	Killed     int `json:"killed"`
	Unfinished int `json:"unfinished"`
	// CorruptInstalls counts installs whose archive did not hash to the
	// manifest's digest (the harness's installer checks every byte).
	CorruptInstalls      int       `json:"corrupt_installs"`
	TLast                float64   `json:"t_last_s"`
	TMedian              float64   `json:"t_median_s"`
	TStar                float64   `json:"t_star_s"`
	RatioToTStar         float64   `json:"ratio_to_t_star"`
	WANInOverSize        []float64 `json:"wan_in_over_size"`
	WANOutOverSize       []float64 `json:"wan_out_over_size"`
	OriginEgressOverSize float64   `json:"origin_egress_over_size"`
	// PeakRSSBytes is the process's VmHWM after this strategy ran: a
	// high-water mark over the whole process so far.
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
	// Sources counts fetched fragments (and manifests) by where they came
	// from, over every node: a site peer, the site's relay, the
	// coordinator directly, the coordinator through a relay's upstream
	// pull, or another site's relay the busy origin sent a relay to;
	// Failed counts fetches that found no source.
	Sources Sources `json:"sources"`
	// SetupS is the time to start the fleet and converge the sites
	// (simulated in virtual time).
	SetupS float64 `json:"setup_s"`
	// WallS is the wall time the whole strategy cost, in virtual time
	// only (setup, run and drain).
	WallS float64 `json:"wall_s,omitempty"`
	// CompletionS is every succeeded node's time, sorted (the CDF).
	CompletionS []float64 `json:"completion_s"`
	// Faults are the scenario's faults as they were applied.
	Faults []FaultMark `json:"faults,omitempty"`
	Error  string      `json:"error,omitempty"`
}

// FaultMark is one fault applied during a run: when, from the deployment,
// and what (e.g. "kill-relay site 2").
type FaultMark struct {
	AtS  float64 `json:"at_s"`
	What string  `json:"what"`
}

// Sources are fragment fetch counts by source kind.
type Sources struct {
	Peers         int `json:"peers"`
	Relay         int `json:"relay"`
	Coordinator   int `json:"coordinator"`
	RelayUpstream int `json:"relay_upstream"`
	OtherSites    int `json:"other_sites"` // a relay from another site's relay

	Corrupt int `json:"corrupt"`
	Failed  int `json:"failed"`
	// TooSlow counts sources cut below the throughput floor; Hedges the
	// endgame hedges sent, HedgeWins those that answered first.
	TooSlow   int `json:"too_slow"`
	Hedges    int `json:"hedges"`
	HedgeWins int `json:"hedge_wins"`
}

// WriteTable prints the report as a terminal table.
func (r *Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "scenario %s  seed %d  scale %g  package %s  sites %d\n",
		r.Scenario, r.Seed, r.Scale, sizeString(r.PackageSize), len(r.Sites))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	wall := ""
	if r.Virtual {
		wall = "wall s\t"
	}
	fmt.Fprintln(tw, "strategy\tnodes\tok\tfail\tkilled\tunfin\tt_last s\tt_median s\tT* s\tratio\tWAN in/S per site\torigin/S\tpeak RSS\t"+wall)
	for _, x := range r.Results {
		in := make([]string, len(x.WANInOverSize))
		for i, v := range x.WANInOverSize {
			in[i] = fmt.Sprintf("%.2f", v)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.2f\t%s\t%.2f\t%s\t",
			x.Strategy, x.Nodes, x.Succeeded, x.Failed, x.Killed, x.Unfinished, x.TLast, x.TMedian, x.TStar,
			x.RatioToTStar, strings.Join(in, " "), x.OriginEgressOverSize, sizeString(x.PeakRSSBytes))
		if r.Virtual {
			fmt.Fprintf(tw, "%.1f\t", x.WallS)
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, x := range r.Results {
		s := x.Sources
		fmt.Fprintf(w, "%s: fetches from site peers %d, relay %d, coordinator %d; relay pulls from upstream %d, from other sites %d; corrupt %d, failed %d; cut too slow %d; hedges %d (won %d)\n",
			x.Strategy, s.Peers, s.Relay, s.Coordinator, s.RelayUpstream, s.OtherSites, s.Corrupt, s.Failed, s.TooSlow, s.Hedges, s.HedgeWins)
	}
	for _, x := range r.Results {
		if x.Error != "" {
			fmt.Fprintf(w, "%s: %s\n", x.Strategy, x.Error)
		}
		if x.CorruptInstalls > 0 {
			fmt.Fprintf(w, "%s: %d installs with corrupt bytes\n", x.Strategy, x.CorruptInstalls)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	r.writeBounds(w)
	return nil
}

// WriteFiles writes report.json, cdf.svg and wan.svg into dir.
func (r *Report) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("simulations: %w", err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("simulations: %w", err)
	}
	files := map[string][]byte{
		"report.json": append(b, '\n'),
		"cdf.svg":     []byte(r.CDFSVG()),
		"wan.svg":     []byte(r.WANSVG()),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return fmt.Errorf("simulations: %w", err)
		}
	}
	return nil
}

func sizeString(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fGiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.0fMiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%dKiB", n>>10)
	}
}
