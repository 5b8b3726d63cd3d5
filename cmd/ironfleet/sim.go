package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/ironfleet/ironfleet/conductor/sim"
	"github.com/ironfleet/ironfleet/internal/simbmc"
	"github.com/ironfleet/ironfleet/internal/simlab"
)

// simFlags are what `ironfleet sim`'s flags set: the lab's Config and how
// to run it.
type simFlags struct {
	cfg      simlab.Config
	timings  string
	bootTime time.Duration
	enroll   bool
}

func newSimCmd() *cobra.Command {
	var o simFlags
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Run simulated machines with IPMI BMCs and agents, for conductors in other processes",
		Long: `sim runs --nodes simulated bare-metal machines. Each has an IPMI BMC (RMCP+,
lanplus, cipher suite 3) on its own UDP port of --ip, which conductors drive
with the real ipmi driver; when a machine boots from the network its simulated
agent looks itself up and heartbeats at --api-url, and writes the deploy image
that sim serves over HTTP. With --enroll, sim also creates the machines as nodes
of driver ipmi (with their ports and instance_info) through the API.

It prints one JSON object per machine on stdout (name, macs, bmc, driver_info)
and, with --enroll, the node's uuid; then it runs until interrupted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runSim(cmd, o) },
	}
	f := cmd.Flags()
	c := &o.cfg
	f.IntVar(&c.Nodes, "nodes", 5, "simulated machines")
	f.IntVar(&c.First, "first", 0, "index of the first machine (names are <prefix>-<index>)")
	f.StringVar(&c.Prefix, "prefix", simlab.DefaultPrefix, "machine name prefix")
	f.StringVar(&c.Host, "ip", simlab.DefaultHost, "IP address the BMCs, agents and image server listen on")
	f.StringVar(&c.APIURL, "api-url", defaultAPIURL, "API the agents look up and heartbeat at, and --enroll posts to")
	f.StringVar(&c.Dir, "disk-dir", "", "directory of the agents' simulated disks (default: a temporary directory, removed at exit)")
	f.StringVar(&c.BMCUsername, "bmc-username", simbmc.DefaultUsername, "the BMCs' user name")
	f.StringVar(&c.BMCPassword, "bmc-password", simbmc.DefaultPassword, "the BMCs' password")
	f.StringVar(&o.timings, "timings", "instant", "machine delays: instant, or realistic (the lab's ipmi_sim + QEMU machines)")
	f.DurationVar(&o.bootTime, "boot-time", 0, "from power on until the boot device has the machine (0: as --timings says)")
	f.IntVar(&c.ImageSize, "image-size", simlab.DefaultImageSize, "size in bytes of the deploy image served")
	f.DurationVar(&c.Lookup.Timeout, "lookup-timeout", 0, "how long an agent tries to look itself up (0: the agent's default, 300s)")
	f.DurationVar(&c.Lookup.ConflictPause, "lookup-conflict-pause", 0, "an agent's pause after a 409 (node locked) at lookup (0: the agent's default, 60s)")
	f.BoolVar(&o.enroll, "enroll", false, "create the machines as nodes (driver ipmi) with their ports through the API")
	return cmd
}

// simMachine is what sim prints per machine: with its instance_info, a
// client can enroll the machine itself (bench fleet --lifecycle --machines).
type simMachine struct {
	simlab.Machine
	InstanceInfo map[string]any `json:"instance_info"`
	UUID         string         `json:"uuid,omitempty"`
}

// runSim runs the simulated machines as the flags in o say.
func runSim(cmd *cobra.Command, o simFlags) error {
	log, err := newLogger(cmd)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	cfg := o.cfg
	switch o.timings {
	case "instant":
	case "realistic":
		cfg.Timings = sim.RealisticTimings()
	default:
		return fmt.Errorf("--timings %q: want instant or realistic", o.timings)
	}
	if o.bootTime < 0 {
		return fmt.Errorf("--boot-time %s: want 0 or more", o.bootTime)
	}
	if o.bootTime > 0 {
		cfg.Timings.Boot = o.bootTime
	}
	if cfg.Dir == "" {
		if cfg.Dir, err = os.MkdirTemp("", "ironfleet-sim-"); err != nil {
			return err
		}
		defer os.RemoveAll(cfg.Dir)
	} else if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return fmt.Errorf("--disk-dir: %w", err)
	}
	cfg.Logger = log
	lab, err := simlab.New(ctx, cfg)
	if err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- lab.Run(runCtx) }()

	var uuids map[string]string
	if o.enroll {
		start := time.Now()
		uuids, err = lab.Enroll(ctx)
		if err != nil {
			stop()
			return errors.Join(err, <-errc)
		}
		log.Info("machines enrolled", "nodes", len(uuids), "took", time.Since(start).Round(time.Millisecond))
	}
	enc := json.NewEncoder(cmd.OutOrStdout())
	instance := map[string]any{"image_source": lab.ImageURL(), "image_checksum": lab.ImageChecksum()}
	for _, m := range lab.Machines() {
		if err := enc.Encode(simMachine{Machine: m, InstanceInfo: instance, UUID: uuids[m.Name]}); err != nil {
			return err
		}
	}
	log.Info("simulated machines running", "nodes", cfg.Nodes, "api", cfg.APIURL, "image", lab.ImageURL())
	return <-errc
}
