package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/ironfleet/ironfleet/conductor"
	"github.com/ironfleet/ironfleet/internal/fleetbench"
	"github.com/ironfleet/ironfleet/internal/redisproc"
)

func newBenchFleetCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fleet",
		Short: "Deploy N simulated nodes under lock contention with each handoff strategy",
		Long: `fleet starts a whole fleet in one process (as ironfleet dev does) once per handoff
strategy — release-reacquire (Ironic's original), patient-retry (Ironic's fix) and
handoff (ironfleet's) — enrolls and provides N simulated nodes, then deploys them all
at once through the API while pests take every node's lock the way a serial console
and heartbeats do. It prints per strategy nodes active and stuck, deploy time
p50/p99/max, lock wait p99, raced handoffs and Redis commands per deploy (or, with
--json, one object per line), and writes an SVG chart of the deploy times.`,
		Args: cobra.NoArgs,
		RunE: runBenchFleet,
	}
	f := cmd.Flags()
	f.Bool("json", false, "print one JSON object per strategy per line")
	f.Int("nodes", 500, "simulated nodes deployed at once")
	f.StringSlice("strategies", []string{string(conductor.HandoffReleaseReacquire), string(conductor.HandoffPatientRetry), string(conductor.HandoffTicket)}, "handoff strategies to run, in order")
	f.Int("pests", 2, "pests per node contending for its lock (0: none)")
	f.Duration("pest-hold", 200*time.Millisecond, "how long a pest holds a node's lock")
	f.Duration("pest-gap", 100*time.Millisecond, "a pest's pause after each try (jittered ±50%)")
	f.Duration("timeout", 2*time.Minute, "per strategy: a node not active by then is stuck")
	f.Int("conductors", 2, "conductors per fleet")
	f.Duration("heartbeat-timeout", 5*time.Second, "heartbeat timeout the API tells agents (they beat every 30–60% of it)")
	f.String("svg", "", "write the deploy-time chart here (default fleet-bench.svg in the current directory)")
	f.String("data-dir", "", "where the fleets keep their data (default: a temporary directory)")
	f.String("redis-server", redisproc.DefaultBinary, "redis-server binary")
	f.Bool("verbose", false, "log the fleets' warnings to stderr")
	return cmd
}

func runBenchFleet(cmd *cobra.Command, _ []string) error {
	f := cmd.Flags()
	asJSON, _ := f.GetBool("json")
	cfg := fleetbench.Config{}
	cfg.Nodes, _ = f.GetInt("nodes")
	strategies, _ := f.GetStringSlice("strategies")
	for _, s := range strategies {
		cfg.Strategies = append(cfg.Strategies, conductor.HandoffStrategy(s))
	}
	cfg.Pests, _ = f.GetInt("pests")
	if cfg.Pests == 0 {
		cfg.Pests = -1
	}
	cfg.PestHold, _ = f.GetDuration("pest-hold")
	cfg.PestGap, _ = f.GetDuration("pest-gap")
	cfg.Timeout, _ = f.GetDuration("timeout")
	cfg.Conductors, _ = f.GetInt("conductors")
	cfg.HeartbeatTimeout, _ = f.GetDuration("heartbeat-timeout")
	cfg.DataDir, _ = f.GetString("data-dir")
	cfg.RedisServer, _ = f.GetString("redis-server")
	if v, _ := f.GetBool("verbose"); v {
		cfg.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	svg, _ := f.GetString("svg")
	if svg == "" {
		svg = "fleet-bench.svg"
	}
	for _, s := range cfg.Strategies {
		switch s {
		case conductor.HandoffTicket, conductor.HandoffReleaseReacquire, conductor.HandoffPatientRetry:
		default:
			return fmt.Errorf("--strategies: unknown strategy %q", s)
		}
	}

	out := cmd.OutOrStdout()
	enc := json.NewEncoder(out)
	start := time.Now()
	results, err := fleetbench.Run(cmd.Context(), cfg, func(r fleetbench.Result) {
		if asJSON {
			_ = enc.Encode(r)
		} else {
			fmt.Fprintf(cmd.ErrOrStderr(), "measured %s: %d/%d active in %.0fs\n", r.Strategy, r.Active, r.Nodes, r.Seconds)
		}
	})
	if err != nil {
		return err
	}
	if err := writeSVG(svg, results); err != nil {
		return err
	}
	if !asJSON {
		if err := fleetbench.WriteTable(out, results); err != nil {
			return err
		}
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "chart: %s; run took %s\n", svg, time.Since(start).Round(time.Second))
	return nil
}

func writeSVG(path string, results []fleetbench.Result) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	fh, err := os.Create(path) //nolint:gosec // the user names the chart's file
	if err != nil {
		return err
	}
	if err := fleetbench.WriteSVG(fh, results); err != nil {
		_ = fh.Close()
		return err
	}
	return fh.Close()
}
