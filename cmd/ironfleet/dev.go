package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/ironfleet/ironfleet/conductor/sim"
	"github.com/ironfleet/ironfleet/internal/fleet"
	"github.com/ironfleet/ironfleet/internal/redisproc"
)

// devFlags are what `ironfleet dev`'s flags set.
type devFlags struct {
	cfg       fleet.DevConfig
	realistic bool
}

func newDevCmd() *cobra.Command {
	var o devFlags
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the whole fleet in one process on embedded defaults",
		Long: `dev starts, in this process, an embedded NATS server with JetStream, a private
redis-server child process, the API (noauth), two conductors in one group, a TFTP
server on a high port and --nodes simulated machines with simulated agents, which
it enrolls through the API and takes to available. Ctrl-C stops everything in
order. Its state lives in a temporary directory removed at exit unless --data-dir
is given.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDev(cmd, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.cfg.APIAddr, "api-addr", fleet.DefaultAPIAddr, "address the API listens on")
	f.StringVar(&o.cfg.TFTPAddr, "tftp-addr", fleet.DefaultTFTPAddr, "UDP address of the TFTP server (default: a free high port)")
	f.StringVar(&o.cfg.DataDir, "data-dir", "", "directory for NATS, Redis, TFTP and disk data (default: a temporary directory removed at exit)")
	f.StringVar(&o.cfg.RedisServer, "redis-server", redisproc.DefaultBinary, "redis-server binary to run")
	f.IntVar(&o.cfg.Nodes, "nodes", 20, "simulated machines to run and enroll")
	f.IntVar(&o.cfg.Conductors, "conductors", fleet.DefaultConductors, "conductors to run")
	f.BoolVar(&o.cfg.Provide, "provide", true, "take the enrolled nodes to available")
	f.DurationVar(&o.cfg.SyncInterval, "sync-interval", fleet.DefaultTempSyncInterval,
		"how often NATS and Redis fsync the fleet's data (0: on every write; Redis fsyncs every second when not 0); with --data-dir and no --sync-interval, 0: the data is kept, so every acknowledged write is flushed")
	f.BoolVar(&o.realistic, "realistic", true, "simulate the lab machines' timings (power, ~12s boot) instead of instant ones")
	return cmd
}

// runDev runs a dev fleet as the flags in o say.
func runDev(cmd *cobra.Command, o devFlags) error {
	log, err := newLogger(cmd)
	if err != nil {
		return err
	}
	cfg := o.cfg
	if cfg.Nodes < 0 || cfg.Nodes > 10000 {
		return fmt.Errorf("--nodes %d: want 0 to 10000", cfg.Nodes)
	}
	cfg.SyncInterval = devSyncInterval(cfg.DataDir != "", cmd.Flags().Changed("sync-interval"), cfg.SyncInterval)
	if cfg.DataDir == "" {
		if cfg.DataDir, err = os.MkdirTemp("", "ironfleet-dev-"); err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
		defer os.RemoveAll(cfg.DataDir)
	}
	cfg.Logger = log
	if o.realistic {
		cfg.Timings = sim.RealisticTimings()
	}
	d, err := fleet.StartDev(cmd.Context(), cfg)
	if err != nil {
		return err
	}
	defer d.Stop()

	api := d.APIURL()
	fmt.Fprintf(cmd.OutOrStdout(), `
ironfleet dev is running (Ctrl-C to stop)
  API      %[1]s   (noauth; Ironic-compatible, /v1)
  console  %[1]s/ui   (the web console: fleet, live lock view, nodes and their actions)
  health   curl -s %[1]s/healthz ; curl -s %[1]s/readyz
  nodes    curl -s %[1]s/v1/nodes | jq        (%[5]d simulated nodes, enrolling and providing)
  deploy   curl -s -X PUT -H 'Content-Type: application/json' -d '{"target":"active"}' %[1]s/v1/nodes/sim-0001/states/provision
  CLI      OS_ENDPOINT=%[1]s OS_AUTH_TYPE=none baremetal node list
           OS_ENDPOINT=%[1]s OS_AUTH_TYPE=none baremetal node deploy sim-0002 --wait
  locks    curl -s %[1]s/v1/locks | jq
  metrics  curl -s %[1]s/metrics
  watch    ironfleet watch --api %[1]s
  events   ironfleet events --follow --nats %[2]s
  NATS     %[2]s
  Redis    %[3]s
  TFTP     %[4]s
`, api, d.NATSURL(), d.RedisURL(), d.TFTPAddr(), cfg.Nodes)
	failed := make(chan error, 1)
	go func() { failed <- d.Wait() }()
	select {
	case <-cmd.Context().Done():
		log.Info("stopping")
		return nil
	case err := <-failed:
		return fmt.Errorf("the fleet stopped: %w", err)
	}
}

// devSyncInterval is the fleet's sync interval: the one given, else on
// every write where the operator keeps the data (--data-dir), else the
// flag's default for a temporary directory, which is gone at exit so that a
// flush per write would buy nothing (fleet.DefaultTempSyncInterval).
func devSyncInterval(dataDirGiven, given bool, flag time.Duration) time.Duration {
	if dataDirGiven && !given {
		return 0
	}
	return flag
}
