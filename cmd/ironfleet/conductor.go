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
	"golang.org/x/sync/errgroup"

	"github.com/ironfleet/ironfleet/conductor"
	"github.com/ironfleet/ironfleet/conductor/ipmi"
	"github.com/ironfleet/ironfleet/internal/fleet"
	"github.com/ironfleet/ironfleet/internal/graceful"
	"github.com/ironfleet/ironfleet/internal/identity"
	"github.com/ironfleet/ironfleet/lock"
	"github.com/ironfleet/ironfleet/transport"
)

// conductorFlags are what `ironfleet conductor`'s flags set: the
// conductor process's Config, its lock's, and how the process around them
// is wired.
type conductorFlags struct {
	cfg                  fleet.ConductorConfig
	lock                 lock.Config
	redis, metricsListen string
	replicas             int
}

func newConductorCmd() *cobra.Command {
	var o conductorFlags
	cmd := &cobra.Command{
		Use:   "conductor",
		Short: "Run a conductor: consume node tasks, drive BMCs over IPMI, serve PXE over TFTP",
		Long: `conductor consumes the tasks of its conductor groups from NATS JetStream, takes each
node's lock in Redis, drives the node's BMC over IPMI, writes its network boot
configs under --tftp-root (served by its own TFTP server with --tftp-listen) and
has the node's agent write the image. Run as many as you like per group.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runConductor(cmd, o) },
	}
	f := cmd.Flags()
	c, boot := &o.cfg.Conductor, &o.cfg.Conductor.Boot
	addNATSFlags(f)
	f.StringVar(&o.redis, "redis", defaultRedisURL, redisUsage)
	f.StringVar(&c.Host, "host", "", "this conductor's name (default: the hostname)")
	f.StringSliceVar(&c.Groups, "group", nil, "conductor groups to serve (repeatable; default: the default group)")
	f.StringSliceVar(&o.cfg.HardwareTypes, "enabled-hardware-types", fleet.DefaultHardwareTypes, "hardware types offered: ipmi, fake-hardware (offer the same as the API)")
	f.IntVar(&c.Workers, "workers", conductor.DefaultWorkers, "tasks run at once per group")
	f.IntVar(&c.MaxDeploys, "max-deploys", conductor.DefaultMaxDeploys, "nodes of a group deploying at once")
	f.IntVar(&c.MaxCleans, "max-cleans", conductor.DefaultMaxCleans, "nodes of a group cleaning at once")
	f.StringVar(&o.cfg.TFTPRoot, "tftp-root", "/var/lib/ironfleet/tftp", "directory of network boot files and per-node configs")
	f.StringVar(&o.cfg.TFTPListen, "tftp-listen", "", "UDP address to serve TFTP on (e.g. 0.0.0.0:69); empty: no TFTP server")
	f.StringVar(&o.cfg.IPXEDir, "ipxe-dir", "", "directory of iPXE's loaders (Debian's ipxe: /usr/lib/ipxe) to put in --tftp-root: undionly.kpxe for BIOS, snponly.efi and ipxe.efi for UEFI; empty: none")
	f.StringVar(&boot.APIURL, "api-url", defaultAPIURL, "API URL the agent looks itself up at (put on its kernel command line)")
	f.StringVar(&boot.Kernel, "kernel", fleet.DefaultKernel, "agent kernel, relative to --tftp-root or an http(s) URL")
	f.StringVar(&boot.Ramdisk, "ramdisk", fleet.DefaultRamdisk, "agent ramdisk, relative to --tftp-root or an http(s) URL")
	f.StringVar(&boot.ExtraArgs, "kernel-args", "console=ttyS0", "extra kernel command line for the agent")
	// The conductor takes its locks with its Locker's lease and claim
	// timeout (its own LockTTL and ClaimTimeout stay zero).
	f.DurationVar(&o.lock.TTL, "lock-ttl", lock.DefaultTTL, "lease of node locks")
	f.DurationVar(&o.lock.ClaimTimeout, "claim-timeout", lock.DefaultClaimTimeout, "how long a handed-off lock waits for its task")
	f.DurationVar(&c.WaitTimeout, "wait-timeout", conductor.DefaultWaitTimeout, "fail nodes waiting for their agent longer than this")
	f.DurationVar(&c.RecoverAfter, "recover-after", conductor.DefaultRecoverAfter, "fail nodes left in a transient state this long by a dead conductor")
	f.DurationVar(&c.OrphanAfter, "orphan-after", conductor.DefaultOrphanAfter, "publish a node's continuation again when its agent beats and it has sat this long in the continuation's step with its lock free")
	f.DurationVar(&c.PowerSync, "power-sync", conductor.DefaultPowerSync, "how often power states are synced")
	f.IntVar(&c.PowerSyncWorkers, "power-sync-workers", conductor.DefaultPowerSyncWorkers, "power states read at once by the power sync (Ironic's sync_power_state_workers)")
	f.DurationVar(&o.cfg.IPMI.RequestTimeout, "ipmi-timeout", ipmi.DefaultRequestTimeout, "IPMI request timeout (per node: driver_info ipmi_timeout)")
	f.StringVar(&c.ConsoleAddress, "console-address", conductor.DefaultConsoleAddress, "IP address serial consoles listen on (must be reachable by the API hosts; consoles have no authentication)")
	f.IntVar(&c.ConsolePortMin, "console-port-min", conductor.DefaultConsolePortMin, "lowest TCP port given to a serial console")
	f.IntVar(&c.ConsolePortMax, "console-port-max", conductor.DefaultConsolePortMax, "highest TCP port given to a serial console")
	f.StringVar(&o.metricsListen, "metrics-listen", "", "address to serve Prometheus /metrics on (e.g. 127.0.0.1:9386); empty: none")
	addReplicasFlag(f, &o.replicas)
	return cmd
}

// Where the commands look for the fleet's parts when not told.
const (
	// defaultRedisURL is where the API and the conductors look for Redis.
	defaultRedisURL = "redis://127.0.0.1:6379/0"
	// redisUsage says what --redis takes (fleet.RedisClients).
	redisUsage = "Redis URL of the node locks: redis://, rediss://, unix://, or redis+sentinel://host:26379,…/master for the master Sentinels watch"
	// defaultAPIURL is the API of `ironfleet dev` as it starts by default.
	defaultAPIURL = "http://" + fleet.DefaultAPIAddr
)

// runConductor runs a conductor as the flags in o say.
func runConductor(cmd *cobra.Command, o conductorFlags) error {
	log, err := newLogger(cmd)
	if err != nil {
		return err
	}
	f := cmd.Flags()
	ctx := cmd.Context()
	cfg := o.cfg
	if cfg.Conductor.Host == "" {
		if cfg.Conductor.Host, err = identity.Host(); err != nil {
			return fmt.Errorf("--host: %w", err)
		}
	}
	if o.replicas < 1 || o.replicas > 5 {
		return fmt.Errorf("--replicas %d: want 1 to 5", o.replicas)
	}
	if err := os.MkdirAll(cfg.TFTPRoot, 0o755); err != nil { //nolint:gosec // served to machines over TFTP
		return fmt.Errorf("--tftp-root: %w", err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var ml net.Listener
	if o.metricsListen != "" {
		if ml, err = new(net.ListenConfig).Listen(ctx, "tcp", o.metricsListen); err != nil {
			return fmt.Errorf("--metrics-listen: %w", err)
		}
		defer ml.Close()
	}

	nc, err := connectNATS(ctx, f, log, "ironfleet-conductor "+cfg.Conductor.Host)
	if err != nil {
		return err
	}
	defer nc.Close()
	rc, err := fleet.NewRedis(ctx, o.redis)
	if err != nil {
		return err
	}
	defer rc.Close()
	groups := cfg.Conductor.Groups
	if len(groups) == 0 {
		groups = []string{""}
	}
	infra, err := fleet.NewInfra(ctx, nc, rc, fleet.InfraConfig{
		Bus:       transport.BusConfig{Groups: groups, Replicas: o.replicas},
		Inventory: transport.InventoryConfig{Replicas: o.replicas},
		Registry:  transport.RegistryConfig{Replicas: o.replicas},
		Lock:      o.lock, Logger: log, Registerer: reg,
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
