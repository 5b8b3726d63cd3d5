package fleetbench

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strings"
)

// WriteSVG draws the deploy-time distribution of each strategy on one time
// axis: a histogram of the active nodes' deploy times with a box plot
// (p25–p75, whiskers to p1 and p99, the median as a line) under it, and the
// count of stuck nodes at the right.
func WriteSVG(w io.Writer, results []Result) error {
	const (
		width, left, right = 900.0, 150.0, 110.0
		top, rowH, bins    = 64.0, 130.0, 40
		histH, boxH        = 80.0, 16.0
	)
	plotW := width - left - right
	height := top + rowH*float64(len(results)) + 50
	maxMS := 0.0
	for _, r := range results {
		maxMS = math.Max(maxMS, r.DeployMaxms)
	}
	axis := niceCeil(math.Max(maxMS, 1))
	x := func(v float64) float64 { return left + plotW*v/axis }

	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }
	esc := func(s string) string {
		var b strings.Builder
		_ = xml.EscapeText(&b, []byte(s))
		return b.String()
	}
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	p(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	p(`<text x="10" y="22" font-size="15" font-weight="bold">ironfleet bench fleet: deploy time per handoff strategy</text>` + "\n")
	if len(results) > 0 {
		r := results[0]
		p(`<text x="10" y="40" fill="#555">%s</text>`+"\n", esc(fmt.Sprintf("%d nodes deployed at once; %d pests per node taking its lock (hold %.0f ms, pause %.0f ms ±50%%)",
			r.Nodes, r.Pests, r.PestHoldms, r.PestGapms)))
	}
	colors := []string{"#d62728", "#ff7f0e", "#2ca02c", "#1f77b4", "#9467bd"}
	for i, r := range results {
		y0 := top + rowH*float64(i)
		color := colors[i%len(colors)]
		p(`<g><text x="%.0f" y="%.0f" text-anchor="end" font-weight="bold">%s</text>`+"\n", left-10, y0+histH/2, esc(r.Strategy))
		p(`<text x="%.0f" y="%.0f" text-anchor="end" fill="#555">%d/%d active</text>`+"\n", left-10, y0+histH/2+16, r.Active, r.Nodes)
		// Histogram.
		counts := make([]int, bins)
		for _, d := range r.Deploys {
			b := int(d / axis * bins)
			counts[min(max(b, 0), bins-1)]++
		}
		peak := 1
		for _, c := range counts {
			peak = max(peak, c)
		}
		binW := plotW / bins
		for b, c := range counts {
			if c == 0 {
				continue
			}
			h := histH * float64(c) / float64(peak)
			p(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" fill-opacity="0.7"><title>%d nodes</title></rect>`+"\n",
				left+binW*float64(b)+0.5, y0+histH-h, binW-1, h, color, c)
		}
		p(`<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#999"/>`+"\n", left, y0+histH, left+plotW, y0+histH)
		// Box plot.
		if len(r.Deploys) > 0 {
			q := func(f float64) float64 { return x(quantile(r.Deploys, f)) }
			by := y0 + histH + 8
			mid := by + boxH/2
			p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333"/>`+"\n", q(0.01), mid, q(0.99), mid)
			p(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" fill-opacity="0.35" stroke="#333"/>`+"\n", q(0.25), by, math.Max(q(0.75)-q(0.25), 1), boxH, color)
			p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#000" stroke-width="2"/>`+"\n", q(0.5), by, q(0.5), by+boxH)
			p(`<text x="%.1f" y="%.1f" font-size="10" fill="#333">p50 %.1fs · p99 %.1fs · max %.1fs</text>`+"\n", left, by+boxH+13, r.DeployP50ms/1000, r.DeployP99ms/1000, r.DeployMaxms/1000)
		}
		stuckColor := "#555"
		if r.Stuck > 0 {
			stuckColor = "#d62728"
		}
		p(`<text x="%.0f" y="%.0f" fill="%s" font-weight="bold">stuck: %d</text>`+"\n", left+plotW+12, y0+histH/2, stuckColor, r.Stuck)
		p(`<text x="%.0f" y="%.0f" fill="#555">raced: %d</text></g>`+"\n", left+plotW+12, y0+histH/2+16, r.RacedHandoffs)
	}
	// Time axis.
	ay := top + rowH*float64(len(results)) + 4
	p(`<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#333"/>`+"\n", left, ay, left+plotW, ay)
	for i := 0; i <= 5; i++ {
		v := axis * float64(i) / 5
		p(`<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#333"/>`+"\n", x(v), ay, x(v), ay+5)
		p(`<text x="%.1f" y="%.0f" text-anchor="middle">%g s</text>`+"\n", x(v), ay+18, v/1000)
	}
	p(`<text x="%.0f" y="%.0f" text-anchor="middle" fill="#555">deploy time (accepted PUT → observed active), nodes that reached active</text>`+"\n", left+plotW/2, ay+36)
	p("</svg>\n")
	return bw.Flush()
}

// niceCeil rounds v (milliseconds) up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*e >= v {
			return m * e
		}
	}
	return 10 * e
}
