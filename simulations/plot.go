package simulations

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// The report's plots, drawn with gonum/plot: round ticks, labelled axes,
// the legend outside the data, fault moments marked, and each curve's
// missing nodes said in its legend entry.

var strategyColor = map[string]color.RGBA{
	"mesh":   {0x1f, 0x77, 0xb4, 0xff},
	"relay":  {0xff, 0x7f, 0x0e, 0xff},
	"direct": {0x2c, 0xa0, 0x2c, 0xff},
}

var (
	gray    = color.RGBA{0x70, 0x70, 0x70, 0xff}
	faultRd = color.RGBA{0xc0, 0x1c, 0x28, 0xff}
)

const plotW, plotH = 18 * vg.Centimeter, 11 * vg.Centimeter

func colorOf(strategy string) color.RGBA {
	if c, ok := strategyColor[strategy]; ok {
		return c
	}
	return gray
}

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.XOffs = vg.Millimeter * 3
	p.Legend.YOffs = -vg.Millimeter
	p.Legend.ThumbnailWidth = vg.Points(22)
	p.Legend.Padding = vg.Points(2)
	p.Add(plotter.NewGrid())
	return p
}

// svgOf renders p; a plot that cannot be drawn becomes a one-line SVG
// that says why, so the report files are always written.
func svgOf(p *plot.Plot) string {
	w, err := p.WriterTo(plotW, plotH, "svg")
	if err == nil {
		var b bytes.Buffer
		if _, err = w.WriteTo(&b); err == nil {
			return b.String()
		}
	}
	return fmt.Sprintf(`<svg xmlns="http://www.w3.org/2000/svg" width="640" height="40"><text x="10" y="25">plot failed: %s</text></svg>`+"\n",
		strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(err.Error()))
}

// missing says which nodes a strategy's curve never reaches.
func missing(x Result) string {
	var parts []string
	for _, m := range []struct {
		n    int
		what string
	}{{x.Killed, "killed"}, {x.Failed, "failed"}, {x.Unfinished, "unfinished"}} {
		if m.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", m.n, m.what))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// CDFSVG plots, per strategy, the share of nodes done against time, with
// T* as a dashed line and each fault as a red vertical line.
func (r *Report) CDFSVG() string { return svgOf(r.cdfPlot()) }

func (r *Report) cdfPlot() *plot.Plot {
	p := newPlot("Node completion — "+r.Scenario, "seconds after the deployment", "share of nodes done")
	p.Y.Tick.Marker = plot.ConstantTicks(fractionTicks())
	tmax := 0.0
	for _, x := range r.Results {
		tmax = max(tmax, x.TLast, x.TStar)
		for _, f := range x.Faults {
			tmax = max(tmax, f.AtS)
		}
	}
	p.X.Min, p.X.Max = 0, math.Max(tmax*1.05, 1)
	for _, x := range r.Results {
		n := max(x.Nodes, 1)
		pts := plotter.XYs{{X: 0, Y: 0}}
		for k, t := range x.CompletionS {
			pts = append(pts, plotter.XY{X: t, Y: float64(k+1) / float64(n)})
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			continue
		}
		l.StepStyle = plotter.PostStep
		l.Color, l.Width = colorOf(x.Strategy), vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(fmt.Sprintf("%s: %d/%d nodes%s", x.Strategy, len(x.CompletionS), x.Nodes, missing(x)), l)
	}
	rows := len(r.Results)
	if len(r.Results) > 0 && r.Results[0].TStar > 0 {
		t := r.Results[0].TStar
		addVLine(p, t, gray, fmt.Sprintf("T* = %.1f s (fastest possible)", t))
		rows++
	}
	// Each fault once in the legend, with the moment it hit each run.
	var order []string
	when := map[string][]string{}
	for _, x := range r.Results {
		for _, f := range x.Faults {
			if _, ok := when[f.What]; !ok {
				order = append(order, f.What)
			}
			when[f.What] = append(when[f.What], fmt.Sprintf("%s %.1f s", x.Strategy, f.AtS))
		}
	}
	for _, what := range order {
		var l *plotter.Line
		for _, x := range r.Results {
			for _, f := range x.Faults {
				if f.What == what {
					l = addVLine(p, f.AtS, faultRd, "")
				}
			}
		}
		if l != nil {
			p.Legend.Add(fmt.Sprintf("%s (%s)", what, strings.Join(when[what], ", ")), l)
			rows++
		}
	}
	// Headroom above 100 % for the legend, so it covers no curve.
	p.Y.Min, p.Y.Max = 0, 1.04+0.075*float64(rows)
	return p
}

// addVLine draws a dashed vertical line at x from 0 to 100 %; a label
// puts it in the legend.
func addVLine(p *plot.Plot, x float64, c color.Color, label string) *plotter.Line {
	l, err := plotter.NewLine(plotter.XYs{{X: x, Y: 0}, {X: x, Y: 1}})
	if err != nil {
		return nil
	}
	l.Color, l.Dashes = c, []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(l)
	if label != "" {
		p.Legend.Add(label, l)
	}
	return l
}

func fractionTicks() []plot.Tick {
	var ts []plot.Tick
	for i := 0; i <= 10; i++ {
		v := float64(i) / 10
		label := ""
		if i%2 == 0 {
			label = fmt.Sprintf("%.0f%%", v*100)
		}
		ts = append(ts, plot.Tick{Value: v, Label: label})
	}
	return ts
}

// WANSVG is a grouped bar chart of the bytes that entered each site over
// the package size, one bar per strategy, with the ideal 1 × as a dashed
// line; at more than 25 sites the site names give way to numbers.
func (r *Report) WANSVG() string { return svgOf(r.wanPlot()) }

func (r *Report) wanPlot() *plot.Plot {
	p := newPlot("WAN bytes into each site ÷ package size — "+r.Scenario, "site", "bytes in ÷ package size")
	vmax := 1.0
	for _, x := range r.Results {
		for _, v := range x.WANInOverSize {
			vmax = max(vmax, v)
		}
	}
	p.Y.Min, p.Y.Max = 0, vmax*1.5 // headroom for the legend above the bars
	nr := max(len(r.Results), 1)
	group := (plotW - 3*vg.Centimeter) / vg.Length(max(len(r.Sites), 1))
	bar := group * 0.8 / vg.Length(nr)
	for i, x := range r.Results {
		vs := make(plotter.Values, len(r.Sites))
		copy(vs, x.WANInOverSize)
		b, err := plotter.NewBarChart(vs, bar)
		if err != nil {
			continue
		}
		b.Color, b.LineStyle.Width = colorOf(x.Strategy), 0
		b.Offset = bar * (vg.Length(i) - vg.Length(nr-1)/2)
		p.Add(b)
		p.Legend.Add(x.Strategy, b)
	}
	names := make([]string, len(r.Sites))
	for i, s := range r.Sites {
		switch {
		case len(r.Sites) <= 12:
			names[i] = s
		case len(r.Sites) <= 25 || (i+1)%5 == 0:
			names[i] = fmt.Sprint(i + 1)
		}
	}
	p.NominalX(names...)
	ideal := plotter.NewFunction(func(float64) float64 { return 1 })
	ideal.Color, ideal.Dashes = gray, []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(ideal)
	p.Legend.Add("once (1 ×)", ideal)
	return p
}
