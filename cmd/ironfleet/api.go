package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/ironfleet/ironfleet/api"
	"github.com/ironfleet/ironfleet/internal/fleet"
	"github.com/ironfleet/ironfleet/internal/identity"
	"github.com/ironfleet/ironfleet/internal/provision"
	"github.com/ironfleet/ironfleet/transport"
)

// apiFlags are what `ironfleet api`'s flags set: the API's Config, and how
// the process around it is wired.
type apiFlags struct {
	cfg                 api.Config
	readers             []string
	hardwareTypes       []string
	redis, listen, host string
	replicas            int
}

func newAPICmd() *cobra.Command {
	var o apiFlags
	cmd := &cobra.Command{
		Use:   "api",
		Short: "Run the Ironic-compatible REST API against external NATS and Redis",
		Long: `api serves the Ironic-compatible REST API (microversions 1.1–1.95), the agent's
lookup and heartbeat, the lock view (/v1/locks), /metrics, /healthz and /readyz.
It reads nodes from a cache of the NATS inventory, publishes tasks to JetStream and
takes node locks in Redis only for the instant of a standard-mode attempt.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runAPI(cmd, o) },
	}
	f := cmd.Flags()
	addNATSFlags(f)
	f.StringVar(&o.redis, "redis", defaultRedisURL, redisUsage)
	f.StringVar(&o.listen, "listen", "0.0.0.0:6385", "address the API listens on")
	f.StringVar((*string)(&o.cfg.Auth), "auth", string(api.AuthNone), "auth mode: noauth (development only) or http_basic")
	f.StringVar(&o.cfg.HTPasswd, "htpasswd", "", "htpasswd file (bcrypt entries, htpasswd -B) for --auth http_basic")
	f.StringSliceVar(&o.readers, "read-only-users", nil, "htpasswd users that may only read (the others are admins)")
	f.StringSliceVar(&o.hardwareTypes, "enabled-hardware-types", fleet.DefaultHardwareTypes, "hardware types nodes may use: ipmi, fake-hardware, sim (offer the same as the conductors)")
	f.StringVar(&o.cfg.PublicURL, "public-url", "", "base URL of links in responses (default: the request's scheme and Host)")
	f.Int64Var(&o.cfg.MaxBodyBytes, "max-body", api.DefaultMaxBodyBytes, "largest request body accepted, in bytes (413 beyond)")
	f.IntVar(&o.cfg.LockAttempts, "lock-attempts", api.DefaultLockAttempts, "standard-mode node lock attempts before 409 NodeLocked")
	f.DurationVar(&o.cfg.LockInterval, "lock-interval", api.DefaultLockInterval, "pause between standard-mode lock attempts")
	f.DurationVar(&o.cfg.ClaimTimeout, "claim-timeout", api.DefaultClaimTimeout, "how long a task's lock ticket waits for its conductor")
	f.DurationVar(&o.cfg.HeartbeatTimeout, "heartbeat-timeout", api.DefaultHeartbeatTimeout, "heartbeat timeout told to agents at lookup")
	f.DurationVar(&o.cfg.ReadHeaderTimeout, "read-header-timeout", api.DefaultReadHeaderTimeout, "close a connection whose request headers take longer than this")
	f.DurationVar(&o.cfg.IdleTimeout, "idle-timeout", api.DefaultIdleTimeout, "close a keep-alive connection idle for this long")
	f.IntVar(&o.cfg.MaxConns, "max-conns", api.DefaultMaxConns, "client connections held open at once; more wait to be accepted")
	f.IntVar(&o.cfg.MaxDeploys, "max-deploys", provision.DefaultMaxDeploys, "nodes of a group deploying at once; more are refused with 503 (set as the conductors')")
	f.IntVar(&o.cfg.MaxCleans, "max-cleans", provision.DefaultMaxCleans, "nodes of a group cleaning at once; more are refused with 503 (set as the conductors')")
	f.StringVar(&o.host, "host", "", "name of this API process as a lock holder (default: the hostname)")
	addReplicasFlag(f, &o.replicas)
	return cmd
}

// runAPI runs the API as the flags in o say.
func runAPI(cmd *cobra.Command, o apiFlags) error {
	log, err := newLogger(cmd)
	if err != nil {
		return err
	}
	f := cmd.Flags()
	ctx := cmd.Context()
	host := o.host
	if host == "" {
		if host, err = identity.Host(); err != nil {
			return fmt.Errorf("--host: %w", err)
		}
	}
	cfg := o.cfg
	cfg.Roles = map[string]api.Role{}
	for _, u := range o.readers {
		cfg.Roles[strings.TrimSpace(u)] = api.RoleReader
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cfg.Logger, cfg.Registerer, cfg.Gatherer = log, reg, reg

	l, err := new(net.ListenConfig).Listen(ctx, "tcp", o.listen)
	if err != nil {
		return fmt.Errorf("api: listen on %s: %w", o.listen, err)
	}
	defer l.Close()

	startCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	nc, err := connectNATS(startCtx, f, log, "ironfleet-api")
	if err != nil {
		return err
	}
	defer nc.Close()
	rc, err := fleet.NewRedis(startCtx, o.redis)
	if err != nil {
		return err
	}
	defer rc.Close()
	infra, err := fleet.NewInfra(startCtx, nc, rc, fleet.InfraConfig{
		Bus:       transport.BusConfig{Replicas: o.replicas},
		Inventory: transport.InventoryConfig{Replicas: o.replicas},
		Registry:  transport.RegistryConfig{Replicas: o.replicas},
		Logger:    log, Registerer: reg,
	})
	if err != nil {
		return err
	}
	defer infra.Close()
	drivers, err := fleet.ValidateOnlyDrivers(o.hardwareTypes)
	if err != nil {
		return fmt.Errorf("--enabled-hardware-types: %w", err)
	}
	srv, err := fleet.NewAPI(infra, drivers, fleet.APIConfig{Host: host, API: cfg}) //nolint:contextcheck // New does no I/O
	if err != nil {
		return err
	}
	log.Info("api listening", "addr", l.Addr().String(), "auth", cfg.Auth)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Serve(gctx, l) })
	return g.Wait()
}
