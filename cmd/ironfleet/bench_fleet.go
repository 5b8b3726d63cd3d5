package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/ironfleet/ironfleet/internal/fleet"
	"github.com/ironfleet/ironfleet/internal/fleetbench"
	"github.com/ironfleet/ironfleet/internal/redisproc"
)

// benchFleetFlags are what `ironfleet bench fleet`'s flags set.
type benchFleetFlags struct {
	cfg             fleetbench.Config
	strategies      []string
	svg             string
	asJSON, verbose bool
	lifecycle       bool
	watch           bool
	clients         int
	poll, sync      time.Duration
	cpuProfile      string
	// --target and what describes it.
	target, driver, machines string
	targetPIDs               []int
	targetProcs, metrics     []string
}

func newBenchFleetCmd() *cobra.Command {
	var o benchFleetFlags
	cmd := &cobra.Command{
		Use:   "fleet",
		Short: "Deploy N simulated nodes under lock contention with each handoff strategy",
		Long: `fleet starts a whole fleet in one process (as ironfleet dev does) once per handoff
strategy — release-reacquire (Ironic's original), patient-retry (Ironic's fix) and
handoff (ironfleet's) — enrolls and provides N simulated nodes, then deploys them all
at once through the API while pests take every node's lock the way a serial console
and heartbeats do. It prints per strategy nodes active and stuck, deploy time
p50/p99/max, lock wait p99, raced handoffs and Redis commands per deploy (or, with
--json, one object per line), and writes an SVG chart of the deploy times.

With --lifecycle it measures throughput instead: --clients clients (default 8) take
--nodes nodes (default 200) through enroll → manageable → available → active on one
fleet with instant machines and no pests, and it prints nodes/s, CPU per node, cores
busy and every node's timeline broken down by hop (p50/p99/max).

With --lifecycle --target URL the same clients drive an Ironic-compatible API of
other processes instead (OpenStack Ironic, or the fleet of make up): no fleet
starts here. Nodes are --driver fake-hardware, or the machines of --machines (the
JSON lines ironfleet sim prints). CPU is the target's processes' (--target-pids,
or --target-procs by name, with their descendants) plus the clients'; the timeline
has the hops the clients see; tasks and each conductor's share come from
--conductor-metrics, and are unknown without it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runBenchFleet(cmd, o) },
	}
	f := cmd.Flags()
	c := &o.cfg
	f.BoolVar(&o.asJSON, "json", false, "print one JSON object per strategy per line")
	f.IntVar(&c.Nodes, "nodes", fleetbench.DefaultNodes, "simulated nodes deployed at once (with --lifecycle: 200 unless given)")
	f.StringSliceVar(&o.strategies, "strategies", strategyNames(), "handoff strategies to run, in order")
	f.IntVar(&c.Pests, "pests", fleetbench.DefaultPests, "pests per node contending for its lock (0: none)")
	f.DurationVar(&c.PestHold, "pest-hold", fleetbench.DefaultPestHold, "how long a pest holds a node's lock")
	f.DurationVar(&c.PestGap, "pest-gap", fleetbench.DefaultPestGap, "a pest's pause after each try (jittered ±50%)")
	f.DurationVar(&c.Timeout, "timeout", fleetbench.DefaultTimeout, "per strategy: a node not active by then is stuck")
	f.IntVar(&c.Conductors, "conductors", fleet.DefaultConductors, "conductors per fleet")
	f.DurationVar(&c.HeartbeatTimeout, "heartbeat-timeout", fleetbench.DefaultHeartbeatTimeout, "heartbeat timeout the API tells agents (they beat every 30–60% of it)")
	f.DurationVar(&c.ReplaceConductorAfter, "replace-conductor-after", 0, "stop a conductor this long into the deploys and start a replacement, timing its start-up (0: never)")
	f.StringVar(&o.svg, "svg", "", "write the deploy-time chart here (default fleet-bench.svg in the current directory)")
	f.StringVar(&c.DataDir, "data-dir", "", "where the fleets keep their data (default: a temporary directory)")
	f.StringVar(&c.RedisServer, "redis-server", redisproc.DefaultBinary, "redis-server binary")
	f.BoolVar(&o.verbose, "verbose", false, "log the fleets' warnings to stderr")
	f.BoolVar(&o.lifecycle, "lifecycle", false, "measure lifecycle throughput (enroll → active) and its per-hop timeline instead")
	f.IntVar(&o.clients, "clients", fleetbench.DefaultClients, "with --lifecycle: concurrent clients")
	f.DurationVar(&o.sync, "sync-interval", fleet.DefaultTempSyncInterval, "how often NATS and Redis fsync the fleets' data (0: on every write), as ironfleet dev's --sync-interval")
	f.StringVar(&o.cpuProfile, "cpuprofile", "", "with --lifecycle: write a CPU profile of the measured run (the whole process) to this file")
	f.BoolVar(&o.watch, "watch", false, "with --lifecycle: clients also follow GET /v1/watch and read their nodes' states when it announces a change (--poll is then their resync)")
	f.DurationVar(&o.poll, "poll", fleetbench.DefaultClientPoll, "with --lifecycle: how often an idle client reads its nodes' states")
	f.StringVar(&o.target, "target", "", "with --lifecycle: drive this API (http://host:port) instead of a fleet in this process")
	f.StringVar(&o.driver, "driver", fleet.FakeHardware, "with --target: the nodes' driver when --machines is not given")
	f.StringVar(&o.machines, "machines", "", "with --target: enroll node i as machine i of this file (the JSON lines ironfleet sim prints)")
	f.IntSliceVar(&o.targetPIDs, "target-pids", nil, "with --target: the target's process ids (their CPU and their descendants' is the target's)")
	f.StringSliceVar(&o.targetProcs, "target-procs", nil, "with --target: the target's processes by command name (ironic-api,ironic-conductor)")
	f.StringSliceVar(&o.metrics, "conductor-metrics", nil, "with --target: the conductors' metrics URLs, for tasks by outcome and each one's share")
	return cmd
}

// runBenchFleet runs the benchmark as the flags in o say.
func runBenchFleet(cmd *cobra.Command, o benchFleetFlags) error {
	asJSON, cfg := o.asJSON, o.cfg
	for _, name := range []string{"target", "driver", "machines", "target-pids", "target-procs", "conductor-metrics"} {
		switch {
		case !cmd.Flags().Changed(name):
		case !o.lifecycle:
			return fmt.Errorf("--%s: only with --lifecycle", name)
		case name != "target" && o.target == "":
			return fmt.Errorf("--%s: only with --target", name)
		}
	}
	if o.lifecycle {
		return runBenchLifecycle(cmd, o)
	}
	for _, name := range o.strategies {
		s, err := fleetbench.ParseStrategy(name)
		if err != nil {
			return fmt.Errorf("--strategies: %w", err)
		}
		cfg.Strategies = append(cfg.Strategies, s)
	}
	if cfg.Pests == 0 {
		cfg.Pests = -1 // --pests 0 is none, where the Config's 0 is the default
	}
	cfg.SyncInterval = benchSync(o.sync)
	if o.verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	svg := o.svg
	if svg == "" {
		svg = "fleet-bench.svg"
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
		fmt.Fprintln(out)
		if err := fleetbench.WriteScale(out, results); err != nil {
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

func strategyNames() []string {
	out := make([]string, len(fleetbench.Strategies))
	for i, s := range fleetbench.Strategies {
		out[i] = string(s)
	}
	return out
}

// benchSync is the fleetbench configs' SyncInterval for --sync-interval:
// the flag's 0 is on every write, where the configs' 0 is their default.
func benchSync(flag time.Duration) time.Duration {
	if flag == 0 {
		return -1
	}
	return flag
}

// runBenchLifecycle runs `bench fleet --lifecycle`.
func runBenchLifecycle(cmd *cobra.Command, o benchFleetFlags) error {
	cfg := fleetbench.LifecycleConfig{
		Clients: o.clients, Poll: o.poll, Watch: o.watch, Conductors: o.cfg.Conductors, HeartbeatTimeout: o.cfg.HeartbeatTimeout,
		Timeout: o.cfg.Timeout, DataDir: o.cfg.DataDir, RedisServer: o.cfg.RedisServer, SyncInterval: benchSync(o.sync),
	}
	if cmd.Flags().Changed("nodes") {
		cfg.Nodes = o.cfg.Nodes
	}
	if o.verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	if o.cpuProfile != "" {
		fh, err := os.Create(o.cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer fh.Close()
		cfg.CPUProfile = fh
	}
	if o.target != "" {
		t, err := benchTarget(o)
		if err != nil {
			return err
		}
		cfg.Target = t
	}
	r, err := fleetbench.RunLifecycle(cmd.Context(), cfg)
	if o.asJSON {
		if jerr := json.NewEncoder(cmd.OutOrStdout()).Encode(r); jerr != nil {
			return jerr
		}
		return err
	}
	if werr := fleetbench.WriteLifecycle(cmd.OutOrStdout(), r); werr != nil {
		return werr
	}
	return err
}

// benchTarget is the Target --target and its flags describe.
func benchTarget(o benchFleetFlags) (*fleetbench.Target, error) {
	t := &fleetbench.Target{URL: o.target, Driver: o.driver, PIDs: o.targetPIDs, ConductorMetrics: o.metrics}
	if len(o.targetProcs) > 0 {
		pids, err := fleetbench.PIDsNamed(o.targetProcs...)
		if err != nil {
			return nil, fmt.Errorf("--target-procs: %w", err)
		}
		t.PIDs = append(t.PIDs, pids...)
	}
	if o.machines != "" {
		fh, err := os.Open(o.machines)
		if err != nil {
			return nil, fmt.Errorf("--machines: %w", err)
		}
		defer fh.Close()
		if t.Machines, err = fleetbench.ReadMachines(fh); err != nil {
			return nil, fmt.Errorf("--machines: %w", err)
		}
	}
	return t, nil
}
