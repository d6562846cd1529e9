package simulations

import (
	"fmt"
	"html"
	"strings"
)

var strategyColor = map[string]string{"mesh": "#1f77b4", "relay": "#ff7f0e", "direct": "#2ca02c"}

const (
	plotW, plotH   = 640, 400
	left, bottom   = 60, 50
	right, topMarg = 20, 40
)

func svgStart(b *strings.Builder, title string) {
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", plotW, plotH)
	fmt.Fprintf(b, `<rect width="100%%" height="100%%" fill="white"/><text x="%d" y="22" font-size="15">%s</text>`+"\n", left, html.EscapeString(title))
	x0, y0 := left, plotH-bottom
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`, x0, y0, plotW-right, y0)
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", x0, y0, x0, topMarg)
}

// CDFSVG plots, per strategy, the fraction of nodes done against time,
// with T* as a dashed line.
func (r *Report) CDFSVG() string {
	var b strings.Builder
	svgStart(&b, "Node completion CDF — "+r.Scenario)
	tmax := 0.0
	for _, x := range r.Results {
		tmax = max(tmax, x.TLast, x.TStar)
	}
	if tmax == 0 {
		tmax = 1
	}
	tmax *= 1.05
	pw, ph := float64(plotW-left-right), float64(plotH-bottom-topMarg)
	px := func(t float64) float64 { return float64(left) + t/tmax*pw }
	py := func(f float64) float64 { return float64(plotH-bottom) - f*ph }
	for i := 0; i <= 5; i++ {
		t := tmax * float64(i) / 5
		fmt.Fprintf(&b, `<text x="%.0f" y="%d" text-anchor="middle">%.0f</text>`, px(t), plotH-bottom+16, t)
		fmt.Fprintf(&b, `<text x="%d" y="%.0f" text-anchor="end">%.1f</text>`+"\n", left-6, py(float64(i)/5)+4, float64(i)/5)
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="%d" text-anchor="middle">seconds after deployment (unscaled)</text>`+"\n", px(tmax/2), plotH-12)
	for i, x := range r.Results {
		c := strategyColor[x.Strategy]
		n := max(x.Nodes, 1)
		pts := []string{fmt.Sprintf("%.1f,%.1f", px(0), py(0))}
		for k, t := range x.CompletionS {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(t), py(float64(k)/float64(n))),
				fmt.Sprintf("%.1f,%.1f", px(t), py(float64(k+1)/float64(n))))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", c, strings.Join(pts, " "))
		if i == 0 && x.TStar > 0 {
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="gray" stroke-dasharray="4 3"/><text x="%.1f" y="%d" fill="gray">T*</text>`+"\n",
				px(x.TStar), plotH-bottom, px(x.TStar), topMarg, px(x.TStar)+3, topMarg+12)
		}
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n",
			plotW-right-110, topMarg+8+18*i, c, plotW-right-92, topMarg+18+18*i, x.Strategy)
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// WANSVG is a grouped bar chart of WAN bytes in per site ÷ package size,
// one bar per strategy, with the ideal 1× as a dashed line.
func (r *Report) WANSVG() string {
	var b strings.Builder
	svgStart(&b, "WAN bytes in per site ÷ package size — "+r.Scenario)
	vmax := 1.0
	for _, x := range r.Results {
		for _, v := range x.WANInOverSize {
			vmax = max(vmax, v)
		}
	}
	vmax *= 1.1
	pw, ph := float64(plotW-left-right), float64(plotH-bottom-topMarg)
	py := func(v float64) float64 { return float64(plotH-bottom) - v/vmax*ph }
	for i := 0; i <= 4; i++ {
		v := vmax * float64(i) / 4
		fmt.Fprintf(&b, `<text x="%d" y="%.0f" text-anchor="end">%.1f</text>`+"\n", left-6, py(v)+4, v)
	}
	ns := max(len(r.Sites), 1)
	group := pw / float64(ns)
	nr := max(len(r.Results), 1)
	bar := group * 0.8 / float64(nr)
	for si, name := range r.Sites {
		gx := float64(left) + group*float64(si) + group*0.1
		for ri, x := range r.Results {
			if si >= len(x.WANInOverSize) {
				continue
			}
			v := x.WANInOverSize[si]
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %.2f</title></rect>`+"\n",
				gx+bar*float64(ri), py(v), bar, float64(plotH-bottom)-py(v), strategyColor[x.Strategy], html.EscapeString(name), x.Strategy, v)
		}
		if ns <= 25 {
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" font-size="10">%s</text>`+"\n", gx+group*0.4, plotH-bottom+14, html.EscapeString(name))
		}
	}
	fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="gray" stroke-dasharray="4 3"/>`+"\n", left, py(1), plotW-right, py(1))
	for i, x := range r.Results {
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n",
			plotW-right-110, topMarg+8+18*i, strategyColor[x.Strategy], plotW-right-92, topMarg+18+18*i, x.Strategy)
	}
	b.WriteString("</svg>\n")
	return b.String()
}
