package lockbench

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteTable prints results as a table, then how each alternative compares
// with ironfleet (the first result named "ironfleet") as ratios, and what
// bounds ironfleet's fair grants on the hot key (FairBound).
func WriteTable(w io.Writer, results []Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "impl\trtt µs (idle/hot)\thandoff p50 µs\tp99 µs\tmax µs\thot-key grants/s\tcmds/grant\tcpu µs/grant (redis+client)\tjain\tFIFO inv.\tlost handoffs\tmax wait ms\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%.0f/%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.1f\t%.0f+%.0f\t%.3f\t%d\t%d/%d\t%.1f\t\n",
			r.Impl, r.RTTMicros, r.RTTHotMicros, r.HandoffP50Micros, r.HandoffP99Micros, r.HandoffMaxMicros,
			r.HotKeyGrantsPerSecond, r.RedisCommandsPerGrant, r.RedisCPUMicrosPerGrant, r.ClientCPUMicrosPerGrant,
			r.JainIndex, r.FIFOInversions, r.StarvationLostHandoffs, r.StarvationRounds, r.StarvationMaxWaitMS)
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
	if b := FairBound(*ours); b.GrantsPerSecond > 0 {
		if ours.RelayHopMicros > 0 {
			fmt.Fprintf(w, "\nironfleet fair-grant bound: in series, one wake-up of another process %.0f µs (a PUBLISH relayed among the hot key's processes, measured) + the release's other %d commands × %.1f µs = %.0f µs → ≤ %.0f grants/s;\n",
				ours.RelayHopMicros, releaseCommands-1, b.CommandMicros, b.ChainMicros, 1e6/b.ChainMicros)
		} else {
			fmt.Fprintf(w, "\nironfleet fair-grant bound: in series, one hot round trip %.0f µs (release out, wake-up back) + the release's %d commands × %.1f µs = %.0f µs → ≤ %.0f grants/s;\n",
				ours.RTTHotMicros, releaseCommands, b.CommandMicros, b.ChainMicros, 1e6/b.ChainMicros)
		}
		fmt.Fprintf(w, "  Redis's one thread, %.0f commands × %.1f µs = %.0f µs per grant → ≤ %.0f grants/s; measured %.0f = %.0f%% of the lower\n",
			ours.RedisCommandsPerGrant, b.CommandMicros, b.RedisMicros, 1e6/b.RedisMicros, ours.HotKeyGrantsPerSecond, 100*b.Share)
	}
	return nil
}

// releaseCommands is what Redis runs for a release that passes the lock to
// the head of the line: the EVALSHA and, inside release.lua, TIME, HMGET,
// LPOP, HGET, HDEL, HSET and PUBLISH (TestReleaseCommands counts them).
const releaseCommands = 8

// Bound is what limits a run's fair grants on one hot key. A fair grant
// goes to another process: the holder's release reaches Redis, the release
// script passes the lock on and publishes the wake-up, the wake-up reaches
// the waiter's process, which holds the lock on reading it, works and
// releases in turn. So grants follow each other no faster than one
// cross-process wake-up plus the release script (the chain): the relay's
// hop (a PUBLISH read by another process, which sends its next command at
// once) and the release's commands other than its PUBLISH, or, without a
// relay measured, one hot round trip and all of the release's commands.
// And Redis's single thread does all of a grant's commands (the release,
// the previous holder joining the line again) one after the other.
// Commands are costed at the Redis CPU the run measured per command.
type Bound struct {
	CommandMicros   float64 // Redis CPU per command in the run
	ChainMicros     float64 // relay hop + (releaseCommands-1) × CommandMicros, or hot PING + releaseCommands × CommandMicros
	RedisMicros     float64 // Redis CPU per grant
	GrantsPerSecond float64 // 1e6 over the larger of ChainMicros and RedisMicros
	Share           float64 // the run's grants/s over GrantsPerSecond
}

// FairBound estimates the bound from r's relay hop (or, without one, its
// hot PING), commands per grant and Redis CPU per grant; the zero Bound
// when r lacks them.
func FairBound(r Result) Bound {
	if r.RedisCommandsPerGrant <= 0 || r.RedisCPUMicrosPerGrant <= 0 || r.RTTHotMicros <= 0 {
		return Bound{}
	}
	b := Bound{CommandMicros: r.RedisCPUMicrosPerGrant / r.RedisCommandsPerGrant, RedisMicros: r.RedisCPUMicrosPerGrant}
	b.ChainMicros = r.RTTHotMicros + releaseCommands*b.CommandMicros
	if r.RelayHopMicros > 0 {
		b.ChainMicros = r.RelayHopMicros + (releaseCommands-1)*b.CommandMicros
	}
	b.GrantsPerSecond = 1e6 / max(b.ChainMicros, b.RedisMicros)
	b.Share = r.HotKeyGrantsPerSecond / b.GrantsPerSecond
	return b
}

func ratio(a, b float64) string {
	if b == 0 {
		return "∞×"
	}
	return fmt.Sprintf("%.1f×", a/b)
}
