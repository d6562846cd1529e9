package console

import (
	"fmt"
	"html/template"
	"slices"
	"strings"
	"time"

	"github.com/relaymesh/relaymesh/coordinator"
	"github.com/relaymesh/relaymesh/core"
)

// Plots are inline SVG built here, sized by viewBox and scaled by CSS;
// every text in them is escaped.

const (
	plotW              = 640
	padL, padR, padTop = 56, 16, 28
)

func esc(s string) string { return template.HTMLEscapeString(s) }

// completionPlot draws how many target nodes had finished (and succeeded)
// by each second after the deployment started.
func completionPlot(v *coordinator.DeploymentView, t0 time.Time) template.HTML {
	const h, padB = 240, 40
	var fin, ok []float64
	for _, r := range v.Nodes {
		if !r.State.Final() || r.LastReport.IsZero() {
			continue
		}
		s := max(r.Updated.Sub(t0).Seconds(), 0)
		fin = append(fin, s)
		if r.State == core.StateSuccess {
			ok = append(ok, s)
		}
	}
	slices.Sort(fin)
	slices.Sort(ok)
	total := len(v.Nodes)
	var b strings.Builder
	id := "plot-done-" + esc(v.ID)
	fmt.Fprintf(&b, `<svg class="plot" viewBox="0 0 %d %d" role="img" aria-labelledby="%s">`, plotW, h, id)
	fmt.Fprintf(&b, `<title id="%s">Nodes finished over time: %d of %d finished, %d succeeded</title>`, id, len(fin), total, len(ok))
	x0, x1, y0, y1 := float64(padL), float64(plotW-padR), float64(h-padB), float64(padTop)
	fmt.Fprintf(&b, `<line class="axis" x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f"/>`, x0, y0, x1, y0)
	fmt.Fprintf(&b, `<line class="axis" x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f"/>`, x0, y0, x0, y1)
	if total == 0 || len(fin) == 0 {
		fmt.Fprintf(&b, `<text class="note" x="%.0f" y="%.0f" text-anchor="middle">no node has finished yet</text></svg>`, (x0+x1)/2, (y0+y1)/2)
		return template.HTML(b.String())
	}
	span := max(fin[len(fin)-1], 1) * 1.05
	px := func(s float64) float64 { return x0 + (x1-x0)*s/span }
	py := func(n int) float64 { return y0 - (y0-y1)*float64(n)/float64(total) }
	for _, n := range []int{0, (total + 1) / 2, total} {
		fmt.Fprintf(&b, `<line class="grid" x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f"/><text class="tick" x="%.0f" y="%.1f" text-anchor="end">%d</text>`,
			x0, py(n), x1, py(n), x0-6, py(n)+4, n)
	}
	for _, f := range []float64{0, 0.5, 1} {
		s := span / 1.05 * f
		fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%.0f" text-anchor="middle">%s</text>`, px(s), y0+16, esc(duration(time.Duration(s*float64(time.Second)))))
	}
	fmt.Fprintf(&b, `<text class="label" x="%.0f" y="%.0f" text-anchor="middle">time since the deployment started</text>`, (x0+x1)/2, float64(h)-4)
	fmt.Fprintf(&b, `<text class="label" x="%.0f" y="%d">nodes</text>`, x0-50, padTop-12)
	step := func(ts []float64, class string) {
		pts := []string{fmt.Sprintf("%.1f,%.1f", px(0), py(0))}
		for i, s := range ts {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(s), py(i)), fmt.Sprintf("%.1f,%.1f", px(s), py(i+1)))
		}
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", x1, py(len(ts))))
		fmt.Fprintf(&b, `<polyline class="%s" points="%s"/>`, class, strings.Join(pts, " "))
	}
	step(fin, "line-done")
	step(ok, "line-ok")
	fmt.Fprintf(&b, `<g class="legend"><rect class="key-done" x="%.0f" y="6" width="12" height="4"/><text x="%.0f" y="12">finished (%d)</text>`, x0+8, x0+24, len(fin))
	fmt.Fprintf(&b, `<rect class="key-ok" x="%.0f" y="6" width="12" height="4"/><text x="%.0f" y="12">succeeded (%d)</text></g>`, x0+128, x0+144, len(ok))
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// bytesPlot draws, per site, the bytes its target nodes fetched for the
// deployment and the bytes the site received over its WAN link, against
// the deployment's package size: the mesh works when WAN in stays near
// one package size while the nodes together fetched many.
func bytesPlot(v *coordinator.DeploymentView, sites map[string]coordinator.SiteView, size int64) template.HTML {
	fetched := map[string]int64{}
	var names []string
	for _, r := range v.Nodes {
		if _, ok := fetched[r.Site]; !ok {
			names = append(names, r.Site)
		}
		fetched[r.Site] += r.BytesFetched
	}
	slices.Sort(names)
	const rowH, padB = 46, 34
	h := padTop + rowH*max(len(names), 1) + padB
	var b strings.Builder
	id := "plot-bytes-" + esc(v.ID)
	fmt.Fprintf(&b, `<svg class="plot" viewBox="0 0 %d %d" role="img" aria-labelledby="%s">`, plotW, h, id)
	fmt.Fprintf(&b, `<title id="%s">Bytes per site: fetched by the target nodes and received over the site's WAN link, against the package size %s</title>`, id, esc(humanBytes(size)))
	top := max(size, 1)
	for _, s := range names {
		top = max(top, fetched[s], sites[s].WANIn)
	}
	scale := float64(top) * 1.05
	const labelW, valueW = 96, 64 // site names left, byte counts right of the bars
	x0, x1 := float64(labelW), float64(plotW-padR-valueW)
	px := func(n int64) float64 { return x0 + (x1-x0)*float64(n)/scale }
	for i, s := range names {
		y := float64(padTop + i*rowH)
		wan := sites[s].WANIn
		fmt.Fprintf(&b, `<text class="tick" x="%.0f" y="%.0f" text-anchor="end">%s</text>`, x0-8, y+20, esc(s))
		fmt.Fprintf(&b, `<rect class="bar-fetched" x="%.0f" y="%.0f" width="%.1f" height="16"><title>%s: nodes fetched %s</title></rect>`, x0, y, px(fetched[s])-x0, esc(s), esc(humanBytes(fetched[s])))
		fmt.Fprintf(&b, `<text class="val" x="%.1f" y="%.0f">%s</text>`, px(fetched[s])+4, y+12, esc(humanBytes(fetched[s])))
		fmt.Fprintf(&b, `<rect class="bar-wan" x="%.0f" y="%.0f" width="%.1f" height="16"><title>%s: WAN in %s</title></rect>`, x0, y+19, px(wan)-x0, esc(s), esc(humanBytes(wan)))
		fmt.Fprintf(&b, `<text class="val" x="%.1f" y="%.0f">%s</text>`, px(wan)+4, y+31, esc(humanBytes(wan)))
	}
	yb := float64(padTop + rowH*max(len(names), 1))
	if size > 0 {
		fmt.Fprintf(&b, `<line class="size" x1="%.1f" y1="%d" x2="%.1f" y2="%.0f"/><text class="tick" x="%.1f" y="%.0f" text-anchor="middle">package %s</text>`,
			px(size), padTop-4, px(size), yb, px(size), yb+14, esc(humanBytes(size)))
	}
	fmt.Fprintf(&b, `<g class="legend"><rect class="bar-fetched" x="%.0f" y="4" width="12" height="10"/><text x="%.0f" y="13">fetched by the site's target nodes</text>`, x0, x0+16)
	fmt.Fprintf(&b, `<rect class="bar-wan" x="%.0f" y="4" width="12" height="10"/><text x="%.0f" y="13">site WAN in (since its nodes started)</text></g>`, x0+250, x0+266)
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}
