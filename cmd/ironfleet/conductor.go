package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"

	"github.com/ironfleet/ironfleet/conductor"
	"github.com/ironfleet/ironfleet/conductor/ipmi"
	"github.com/ironfleet/ironfleet/internal/fleet"
	"github.com/ironfleet/ironfleet/internal/graceful"
	"github.com/ironfleet/ironfleet/lock"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

func newConductorCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "conductor",
		Short: "Run a conductor: consume node tasks, drive BMCs over IPMI, serve PXE over TFTP",
		Long: `conductor consumes the tasks of its conductor groups from NATS JetStream, takes each
node's lock in Redis, drives the node's BMC over IPMI, writes its network boot
configs under --tftp-root (served by its own TFTP server with --tftp-listen) and
has the node's agent write the image. Run as many as you like per group.`,
		Args: cobra.NoArgs,
		RunE: runConductor,
	}
	f := cmd.Flags()
	addNATSFlags(f)
	addRedisFlag(f)
	f.String("host", "", "this conductor's name (default: the hostname)")
	f.StringSlice("group", nil, "conductor groups to serve (repeatable; default: the default group)")
	f.Int("workers", 64, "tasks run at once per group")
	f.Int("max-deploys", 250, "nodes of a group deploying at once")
	f.Int("max-cleans", 50, "nodes of a group cleaning at once")
	f.String("tftp-root", "/var/lib/ironfleet/tftp", "directory of network boot files and per-node configs")
	f.String("tftp-listen", "", "UDP address to serve TFTP on (e.g. 0.0.0.0:69); empty: no TFTP server")
	f.String("api-url", "http://127.0.0.1:6385", "API URL the agent looks itself up at (put on its kernel command line)")
	f.String("kernel", "agent/vmlinuz", "agent kernel, relative to --tftp-root or an http(s) URL")
	f.String("ramdisk", "agent/initramfs", "agent ramdisk, relative to --tftp-root or an http(s) URL")
	f.String("kernel-args", "console=ttyS0", "extra kernel command line for the agent")
	addConductorTimingFlags(f)
	f.String("metrics-listen", "", "address to serve Prometheus /metrics on (e.g. 127.0.0.1:9386); empty: none")
	f.Int("replicas", 1, "replicas of the streams and KV buckets when this process creates them (3 on a cluster)")
	return cmd
}

// addRedisFlag adds the flag saying where Redis is.
func addRedisFlag(f *pflag.FlagSet) {
	f.String("redis", "redis://127.0.0.1:6379/0", "Redis URL (redis://, rediss:// or unix://)")
}

// addConductorTimingFlags adds the conductor's timing knobs.
func addConductorTimingFlags(f *pflag.FlagSet) {
	f.Duration("lock-ttl", 15*time.Second, "lease of node locks")
	f.Duration("claim-timeout", 30*time.Second, "how long a handed-off lock waits for its task")
	f.Duration("wait-timeout", 1800*time.Second, "fail nodes waiting for their agent longer than this")
	f.Duration("recover-after", 10*time.Minute, "fail nodes left in a transient state this long by a dead conductor")
	f.Duration("power-sync", 120*time.Second, "how often power states are synced")
	f.Duration("ipmi-timeout", 2*time.Second, "IPMI request timeout (per node: driver_info ipmi_timeout)")
}

// conductorConfigFromFlags reads the conductor's flags.
func conductorConfigFromFlags(f *pflag.FlagSet) (fleet.ConductorConfig, lock.Config) {
	host, _ := f.GetString("host")
	groups, _ := f.GetStringSlice("group")
	workers, _ := f.GetInt("workers")
	maxDeploys, _ := f.GetInt("max-deploys")
	maxCleans, _ := f.GetInt("max-cleans")
	root, _ := f.GetString("tftp-root")
	tftpListen, _ := f.GetString("tftp-listen")
	apiURL, _ := f.GetString("api-url")
	kernel, _ := f.GetString("kernel")
	ramdisk, _ := f.GetString("ramdisk")
	args, _ := f.GetString("kernel-args")
	lockTTL, _ := f.GetDuration("lock-ttl")
	claim, _ := f.GetDuration("claim-timeout")
	wait, _ := f.GetDuration("wait-timeout")
	recoverAfter, _ := f.GetDuration("recover-after")
	sync, _ := f.GetDuration("power-sync")
	ipmiTimeout, _ := f.GetDuration("ipmi-timeout")
	if host == "" {
		host, _ = os.Hostname()
	}
	return fleet.ConductorConfig{
			Conductor: conductor.Config{
				Host: host, Groups: groups, Workers: workers, MaxDeploys: maxDeploys, MaxCleans: maxCleans,
				LockTTL: lockTTL, ClaimTimeout: claim, WaitTimeout: wait, RecoverAfter: recoverAfter, PowerSync: sync,
				Boot: wire.BootParams{Kernel: kernel, Ramdisk: ramdisk, APIURL: apiURL, ExtraArgs: args},
			},
			TFTPRoot: root, TFTPListen: tftpListen,
			IPMI: ipmi.Config{RequestTimeout: ipmiTimeout},
		}, lock.Config{
			TTL: lockTTL, ClaimTimeout: claim, Holder: host,
		}
}

func runConductor(cmd *cobra.Command, _ []string) error {
	log, err := newLogger(cmd)
	if err != nil {
		return err
	}
	f := cmd.Flags()
	ctx := cmd.Context()
	cfg, lockCfg := conductorConfigFromFlags(f)
	metricsListen, _ := f.GetString("metrics-listen")
	redisURL, _ := f.GetString("redis")
	replicas, _ := f.GetInt("replicas")
	if replicas < 1 || replicas > 5 {
		return fmt.Errorf("--replicas %d: want 1 to 5", replicas)
	}
	if err := os.MkdirAll(cfg.TFTPRoot, 0o755); err != nil { //nolint:gosec // served to machines over TFTP
		return fmt.Errorf("--tftp-root: %w", err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var ml net.Listener
	if metricsListen != "" {
		if ml, err = new(net.ListenConfig).Listen(ctx, "tcp", metricsListen); err != nil {
			return fmt.Errorf("--metrics-listen: %w", err)
		}
		defer ml.Close()
	}

	nc, err := connectNATS(ctx, f, log, "ironfleet-conductor "+cfg.Conductor.Host)
	if err != nil {
		return err
	}
	defer nc.Close()
	rc, err := fleet.NewRedis(ctx, redisURL)
	if err != nil {
		return err
	}
	defer rc.Close()
	groups := cfg.Conductor.Groups
	if len(groups) == 0 {
		groups = []string{""}
	}
	infra, err := fleet.NewInfra(ctx, nc, rc, fleet.InfraConfig{
		Bus:       transport.BusConfig{Groups: groups, Replicas: replicas},
		Inventory: transport.InventoryConfig{Replicas: replicas},
		Registry:  transport.RegistryConfig{Replicas: replicas},
		Lock:      lockCfg, Logger: log, Registerer: reg,
	})
	if err != nil {
		return err
	}
	defer infra.Close()
	cfg.Logger, cfg.Registerer = log, reg
	c, err := fleet.NewConductor(infra, cfg)
	if err != nil {
		return err
	}
	pc, err := c.ListenTFTP(ctx)
	if err != nil {
		return fmt.Errorf("--tftp-listen: %w", err)
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return c.Serve(gctx, pc) })
	if ml != nil {
		srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 10 * time.Second}
		g.Go(func() error { return graceful.Serve(gctx, srv, ml, 5*time.Second) })
	}
	log.Info("conductor started", "host", cfg.Conductor.Host, "groups", strings.Join(groups, ","), "tftp", cfg.TFTPListen)
	return g.Wait()
}
