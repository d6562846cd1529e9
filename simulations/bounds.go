package simulations

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// ErrBoundBroken is returned by Run when a result breaks one of the
// scenario's bounds; the report says which, with the value.
var ErrBoundBroken = errors.New("simulations: bound broken")

// Limit is one line of a scenario's bounds: a metric of one strategy's
// result that must stay at or below Max and/or at or above Min. Metrics
// are the report's own fields (report.json keys):
//
//	ratio_to_t_star          last node's time over T*
//	t_last_s                 last node's time, seconds
//	wan_in_over_size         bytes into a site over the package size (Site 0: the worst site)
//	wan_out_over_size        bytes out of a site over the package size (Site 0: the worst site)
//	origin_egress_over_size  bytes the coordinator sent over the package size
//	succeeded, failed, unfinished, corrupt_installs   node counts
type Limit struct {
	Strategy string   `yaml:"strategy"` // default mesh
	Metric   string   `yaml:"metric"`
	Site     int      `yaml:"site"` // for the per-site metrics; 0 means every site
	Max      *float64 `yaml:"max"`
	Min      *float64 `yaml:"min"`
	Why      string   `yaml:"why"` // what the bound stands for, shown when broken
}

var boundMetrics = []string{"ratio_to_t_star", "t_last_s", "wan_in_over_size", "wan_out_over_size",
	"origin_egress_over_size", "succeeded", "failed", "unfinished", "corrupt_installs"}

func perSite(metric string) bool {
	return metric == "wan_in_over_size" || metric == "wan_out_over_size"
}

// BoundResult is one bound checked against a report.
type BoundResult struct {
	Limit  string  `json:"bound"` // e.g. "mesh wan_in_over_size (worst site) <= 1.05"
	Value  float64 `json:"value"`
	OK     bool    `json:"ok"`
	Detail string  `json:"detail,omitempty"`
}

func (sc *Scenario) validateBound(i int, bad func(string, any, string) error) error {
	b := &sc.Bounds[i]
	field := func(name string) string { return fmt.Sprintf("bounds[%d].%s", i, name) }
	if b.Strategy == "" {
		b.Strategy = "mesh"
	}
	if !slices.Contains(sc.Strategies, b.Strategy) {
		return bad(field("strategy"), strconv.Quote(b.Strategy), "not among the scenario's strategies "+strings.Join(sc.Strategies, ", "))
	}
	if !slices.Contains(boundMetrics, b.Metric) {
		return bad(field("metric"), strconv.Quote(b.Metric), "want one of "+strings.Join(boundMetrics, ", "))
	}
	if b.Site != 0 && !perSite(b.Metric) {
		return bad(field("site"), b.Site, "only wan_in_over_size and wan_out_over_size are per site")
	}
	if b.Site < 0 || b.Site > sc.Sites.Count {
		return bad(field("site"), b.Site, fmt.Sprintf("want 1 to %d (sites.count), or 0 for every site", sc.Sites.Count))
	}
	if b.Max == nil && b.Min == nil {
		return bad(field("max"), "(none)", "give max, min or both")
	}
	if b.Max != nil && b.Min != nil && *b.Min > *b.Max {
		return bad(field("min"), *b.Min, fmt.Sprintf("above max %g", *b.Max))
	}
	return nil
}

// String is the bound as the table and report.json show it.
func (b Limit) String() string {
	var s strings.Builder
	s.WriteString(b.Strategy + " " + b.Metric)
	switch {
	case b.Site > 0:
		fmt.Fprintf(&s, " (site-%d)", b.Site)
	case perSite(b.Metric):
		s.WriteString(" (worst site)")
	}
	if b.Min != nil {
		fmt.Fprintf(&s, " >= %g", *b.Min)
	}
	if b.Max != nil {
		fmt.Fprintf(&s, " <= %g", *b.Max)
	}
	return s.String()
}

// checkBounds checks every bound against rep's results; a bound of a
// strategy that did not run (sim run --strategy) is left out.
func checkBounds(bounds []Limit, rep *Report) (out []BoundResult, broken int) {
	for _, b := range bounds {
		i := slices.IndexFunc(rep.Results, func(r Result) bool { return r.Strategy == b.Strategy })
		if i < 0 {
			continue
		}
		br := BoundResult{Limit: b.String()}
		br.Value, br.Detail = metricOf(b, &rep.Results[i])
		br.OK = br.Detail == "" && !math.IsNaN(br.Value) &&
			(b.Max == nil || br.Value <= *b.Max) && (b.Min == nil || br.Value >= *b.Min)
		if !br.OK {
			broken++
			if b.Why != "" {
				br.Detail = strings.TrimPrefix(br.Detail+"; "+b.Why, "; ")
			}
		}
		out = append(out, br)
	}
	return out, broken
}

// metricOf reads b's metric from r; a non-empty detail means it could not.
func metricOf(b Limit, r *Result) (float64, string) {
	site := func(vs []float64) (float64, string) {
		if b.Site > 0 {
			if b.Site > len(vs) {
				return math.NaN(), fmt.Sprintf("no figure for site-%d", b.Site)
			}
			return vs[b.Site-1], ""
		}
		if len(vs) == 0 {
			return math.NaN(), "no per-site figures"
		}
		return slices.Max(vs), ""
	}
	switch b.Metric {
	case "ratio_to_t_star":
		return r.RatioToTStar, ""
	case "t_last_s":
		return r.TLast, ""
	case "wan_in_over_size":
		return site(r.WANInOverSize)
	case "wan_out_over_size":
		return site(r.WANOutOverSize)
	case "origin_egress_over_size":
		return r.OriginEgressOverSize, ""
	case "succeeded":
		return float64(r.Succeeded), ""
	case "failed":
		return float64(r.Failed), ""
	case "unfinished":
		return float64(r.Unfinished), ""
	case "corrupt_installs":
		return float64(r.CorruptInstalls), ""
	}
	return math.NaN(), "unknown metric"
}

// writeBounds prints the bounds' lines of the table.
func (r *Report) writeBounds(w io.Writer) {
	for _, b := range r.Bounds {
		verdict := "ok"
		if !b.OK {
			verdict = "BROKEN"
		}
		fmt.Fprintf(w, "bound %-6s %s: %.3g", verdict, b.Limit, b.Value)
		if b.Detail != "" {
			fmt.Fprintf(w, " (%s)", b.Detail)
		}
		fmt.Fprintln(w)
	}
}
