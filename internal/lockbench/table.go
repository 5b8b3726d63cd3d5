package lockbench

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteTable prints results as a table, then how each alternative compares
// with ironfleet (the first result named "ironfleet") as ratios.
func WriteTable(w io.Writer, results []Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "impl\trtt µs (idle/hot)\thandoff p50 µs\tp99 µs\tmax µs\thot-key grants/s\tcmds/grant\tjain\tFIFO inv.\tlost handoffs\tmax wait ms\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%.0f/%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.1f\t%.3f\t%d\t%d/%d\t%.1f\t\n",
			r.Impl, r.RTTMicros, r.RTTHotMicros, r.HandoffP50Micros, r.HandoffP99Micros, r.HandoffMaxMicros,
			r.HotKeyGrantsPerSecond, r.RedisCommandsPerGrant, r.JainIndex, r.FIFOInversions,
			r.StarvationLostHandoffs, r.StarvationRounds, r.StarvationMaxWaitMS)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var ours *Result
	for i := range results {
		if results[i].Impl == "ironfleet" {
			ours = &results[i]
		}
	}
	if ours == nil {
		return nil
	}
	fmt.Fprintf(w, "\nironfleet handoff p50 = %.1f × the PING round trip after the same idle gaps (%.1f × back-to-back PING)\n",
		ours.HandoffP50Micros/ours.RTTMicros, ours.HandoffP50Micros/ours.RTTHotMicros)
	for _, r := range results {
		if r.Impl == ours.Impl {
			continue
		}
		fmt.Fprintf(w, "vs %-16s handoff p50 %s faster, hot-key grants/s %s\n", r.Impl,
			ratio(r.HandoffP50Micros, ours.HandoffP50Micros), ratio(ours.HotKeyGrantsPerSecond, r.HotKeyGrantsPerSecond))
	}
	return nil
}

func ratio(a, b float64) string {
	if b == 0 {
		return "∞×"
	}
	return fmt.Sprintf("%.1f×", a/b)
}
