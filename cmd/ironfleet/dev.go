package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/ironfleet/ironfleet/conductor/sim"
	"github.com/ironfleet/ironfleet/internal/fleet"
)

func newDevCmd() *cobra.Command {
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
		RunE: runDev,
	}
	f := cmd.Flags()
	f.String("api-addr", "127.0.0.1:6385", "address the API listens on")
	f.String("tftp-addr", "127.0.0.1:0", "UDP address of the TFTP server (default: a free high port)")
	f.String("data-dir", "", "directory for NATS, Redis, TFTP and disk data (default: a temporary directory removed at exit)")
	f.String("redis-server", "redis-server", "redis-server binary to run")
	f.Int("nodes", 20, "simulated machines to run and enroll")
	f.Int("conductors", 2, "conductors to run")
	f.Bool("provide", true, "take the enrolled nodes to available")
	f.Bool("realistic", true, "simulate the lab machines' timings (power, ~12s boot) instead of instant ones")
	return cmd
}

func runDev(cmd *cobra.Command, _ []string) error {
	log, err := newLogger(cmd)
	if err != nil {
		return err
	}
	f := cmd.Flags()
	apiAddr, _ := f.GetString("api-addr")
	tftpAddr, _ := f.GetString("tftp-addr")
	dataDir, _ := f.GetString("data-dir")
	redisBin, _ := f.GetString("redis-server")
	nodes, _ := f.GetInt("nodes")
	conductors, _ := f.GetInt("conductors")
	provide, _ := f.GetBool("provide")
	realistic, _ := f.GetBool("realistic")
	if nodes < 0 || nodes > 10000 {
		return fmt.Errorf("--nodes %d: want 0 to 10000", nodes)
	}
	if dataDir == "" {
		if dataDir, err = os.MkdirTemp("", "ironfleet-dev-"); err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
		defer os.RemoveAll(dataDir)
	}
	cfg := fleet.DevConfig{
		DataDir: dataDir, APIAddr: apiAddr, TFTPAddr: tftpAddr, RedisServer: redisBin,
		Nodes: nodes, Conductors: conductors, Provide: provide, Logger: log,
	}
	if realistic {
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
`, api, d.NATSURL(), d.RedisURL(), d.TFTPAddr(), nodes)
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
