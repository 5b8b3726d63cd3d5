package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/ironfleet/ironfleet/agent"
	"github.com/ironfleet/ironfleet/conductor/sim"
	"github.com/ironfleet/ironfleet/internal/simlab"
)

func newSimCmd() *cobra.Command {
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
		RunE: runSim,
	}
	f := cmd.Flags()
	f.Int("nodes", 5, "simulated machines")
	f.Int("first", 0, "index of the first machine (names are <prefix>-<index>)")
	f.String("prefix", "sim", "machine name prefix")
	f.String("ip", "127.0.0.1", "IP address the BMCs, agents and image server listen on")
	f.String("api-url", defaultAPIURL, "API the agents look up and heartbeat at, and --enroll posts to")
	f.String("disk-dir", "", "directory of the agents' simulated disks (default: a temporary directory, removed at exit)")
	f.String("bmc-username", "admin", "the BMCs' user name")
	f.String("bmc-password", "password", "the BMCs' password")
	f.String("timings", "instant", "machine delays: instant, or realistic (the lab's ipmi_sim + QEMU machines)")
	f.Duration("boot-time", 0, "from power on until the boot device has the machine (0: as --timings says)")
	f.Int("image-size", 1<<20, "size in bytes of the deploy image served")
	f.Duration("lookup-timeout", 0, "how long an agent tries to look itself up (0: the agent's default, 300s)")
	f.Duration("lookup-conflict-pause", 0, "an agent's pause after a 409 (node locked) at lookup (0: the agent's default, 60s)")
	f.Bool("enroll", false, "create the machines as nodes (driver ipmi) with their ports through the API")
	return cmd
}

// simMachine is what sim prints per machine.
type simMachine struct {
	simlab.Machine
	UUID string `json:"uuid,omitempty"`
}

func runSim(cmd *cobra.Command, _ []string) error {
	log, err := newLogger(cmd)
	if err != nil {
		return err
	}
	f := cmd.Flags()
	ctx := cmd.Context()
	nodes, _ := f.GetInt("nodes")
	first, _ := f.GetInt("first")
	prefix, _ := f.GetString("prefix")
	host, _ := f.GetString("ip")
	apiURL, _ := f.GetString("api-url")
	dir, _ := f.GetString("disk-dir")
	user, _ := f.GetString("bmc-username")
	pass, _ := f.GetString("bmc-password")
	timings, _ := f.GetString("timings")
	imageSize, _ := f.GetInt("image-size")
	lookupTimeout, _ := f.GetDuration("lookup-timeout")
	conflictPause, _ := f.GetDuration("lookup-conflict-pause")
	bootTime, _ := f.GetDuration("boot-time")
	enroll, _ := f.GetBool("enroll")

	var t sim.Timings
	switch timings {
	case "instant":
	case "realistic":
		t = sim.RealisticTimings()
	default:
		return fmt.Errorf("--timings %q: want instant or realistic", timings)
	}
	if bootTime < 0 {
		return fmt.Errorf("--boot-time %s: want 0 or more", bootTime)
	}
	if bootTime > 0 {
		t.Boot = bootTime
	}
	if dir == "" {
		if dir, err = os.MkdirTemp("", "ironfleet-sim-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	} else if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("--disk-dir: %w", err)
	}
	lab, err := simlab.New(ctx, simlab.Config{
		Nodes: nodes, First: first, Prefix: prefix, Host: host, APIURL: apiURL, Dir: dir,
		BMCUsername: user, BMCPassword: pass, Timings: t, ImageSize: imageSize,
		Lookup: agent.LookupConfig{Timeout: lookupTimeout, ConflictPause: conflictPause}, Logger: log,
	})
	if err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- lab.Run(runCtx) }()

	var uuids map[string]string
	if enroll {
		start := time.Now()
		uuids, err = lab.Enroll(ctx)
		if err != nil {
			stop()
			return errors.Join(err, <-errc)
		}
		log.Info("machines enrolled", "nodes", len(uuids), "took", time.Since(start).Round(time.Millisecond))
	}
	enc := json.NewEncoder(cmd.OutOrStdout())
	for _, m := range lab.Machines() {
		if err := enc.Encode(simMachine{Machine: m, UUID: uuids[m.Name]}); err != nil {
			return err
		}
	}
	log.Info("simulated machines running", "nodes", nodes, "api", apiURL, "image", lab.ImageURL())
	return <-errc
}
