package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/ironfleet/ironfleet/api"
	"github.com/ironfleet/ironfleet/conductor"
	"github.com/ironfleet/ironfleet/conductor/ipmi"
	"github.com/ironfleet/ironfleet/conductor/sim"
	"github.com/ironfleet/ironfleet/lock"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

func newAPICmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "api",
		Short: "Run the Ironic-compatible REST API against external NATS and Redis",
		Long: `api serves the Ironic-compatible REST API (microversions 1.1–1.82), the agent's
lookup and heartbeat, the lock view (/v1/locks), /metrics, /healthz and /readyz.
It reads nodes from a cache of the NATS inventory, publishes tasks to JetStream and
takes node locks in Redis only for the instant of a standard-mode attempt.`,
		Args: cobra.NoArgs,
		RunE: runAPI,
	}
	f := cmd.Flags()
	addNATSFlags(f)
	f.String("redis", "redis://127.0.0.1:6379/0", "Redis URL (redis://, rediss:// or unix://) of the node locks")
	f.String("listen", "0.0.0.0:6385", "address the API listens on")
	f.String("auth", string(api.AuthNone), "auth mode: noauth (development only) or http_basic")
	f.String("htpasswd", "", "htpasswd file (bcrypt entries, htpasswd -B) for --auth http_basic")
	f.StringSlice("read-only-users", nil, "htpasswd users that may only read (the others are admins)")
	f.String("public-url", "", "base URL of links in responses (default: the request's scheme and Host)")
	f.Int64("max-body", 1<<20, "largest request body accepted, in bytes (413 beyond)")
	f.Int("lock-attempts", 3, "standard-mode node lock attempts before 409 NodeLocked")
	f.Duration("lock-interval", time.Second, "pause between standard-mode lock attempts")
	f.Duration("claim-timeout", 30*time.Second, "how long a task's lock ticket waits for its conductor")
	f.Duration("heartbeat-timeout", 300*time.Second, "heartbeat timeout told to agents at lookup")
	f.String("host", "", "name of this API process as a lock holder (default: the hostname)")
	f.Int("replicas", 1, "replicas of the streams and KV buckets when this process creates them (3 on a cluster)")
	return cmd
}

func runAPI(cmd *cobra.Command, _ []string) error {
	log, err := newLogger(cmd)
	if err != nil {
		return err
	}
	f := cmd.Flags()
	ctx := cmd.Context()
	listen, _ := f.GetString("listen")
	redisURL, _ := f.GetString("redis")
	auth, _ := f.GetString("auth")
	htpasswd, _ := f.GetString("htpasswd")
	readers, _ := f.GetStringSlice("read-only-users")
	publicURL, _ := f.GetString("public-url")
	maxBody, _ := f.GetInt64("max-body")
	attempts, _ := f.GetInt("lock-attempts")
	interval, _ := f.GetDuration("lock-interval")
	claim, _ := f.GetDuration("claim-timeout")
	heartbeat, _ := f.GetDuration("heartbeat-timeout")
	host, _ := f.GetString("host")
	replicas, _ := f.GetInt("replicas")

	roles := map[string]api.Role{}
	for _, u := range readers {
		roles[strings.TrimSpace(u)] = api.RoleReader
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cfg := api.Config{
		Auth: api.AuthMode(auth), HTPasswd: htpasswd, Roles: roles, PublicURL: publicURL, MaxBodyBytes: maxBody,
		LockAttempts: attempts, LockInterval: interval, ClaimTimeout: claim, HeartbeatTimeout: heartbeat,
		Host: host, Logger: log, Registerer: reg, Gatherer: reg,
	}

	l, err := new(net.ListenConfig).Listen(ctx, "tcp", listen)
	if err != nil {
		return fmt.Errorf("api: listen on %s: %w", listen, err)
	}
	defer l.Close()

	startCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	nc, err := connectNATS(startCtx, f, log, "ironfleet-api")
	if err != nil {
		return err
	}
	defer nc.Close()
	ropts, err := redis.ParseURL(redisURL)
	if err != nil {
		return fmt.Errorf("--redis %q: %w", redisURL, err)
	}
	ropts.ContextTimeoutEnabled = true // the lock requires it
	rc := redis.NewClient(ropts)
	defer rc.Close()

	srv, closeAPI, err := newAPIServer(startCtx, nc, rc, cfg, replicas)
	if err != nil {
		return err
	}
	defer closeAPI()
	log.Info("api listening", "addr", l.Addr().String(), "auth", auth)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Serve(gctx, l) })
	return g.Wait()
}

// newAPIServer builds the API on a NATS connection and a Redis client: the
// task bus, the inventory (and its cache), the conductor registry and a
// lock Locker, with /readyz checking both. rc must have
// ContextTimeoutEnabled (lock.New checks). The returned func closes what it
// started. `ironfleet dev` can build its API the same way.
func newAPIServer(ctx context.Context, nc *nats.Conn, rc *redis.Client, cfg api.Config, replicas int) (*api.Server, func(), error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	bus, err := transport.NewBus(ctx, nc, transport.BusConfig{Replicas: replicas, Logger: log, Registerer: cfg.Registerer})
	if err != nil {
		return nil, nil, err
	}
	inv, err := transport.NewInventory(ctx, bus.JetStream(), transport.InventoryConfig{Replicas: replicas, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	reg, err := transport.NewRegistry(ctx, bus.JetStream(), transport.RegistryConfig{Replicas: replicas, Logger: log})
	if err != nil {
		inv.Close()
		return nil, nil, err
	}
	holder := cfg.Host
	if holder == "" {
		holder, _ = os.Hostname()
	}
	locker, err := lock.New(ctx, rc, lock.Config{Holder: "api:" + holder, Registerer: cfg.Registerer, Logger: log})
	if err != nil {
		inv.Close()
		return nil, nil, fmt.Errorf("redis: %w", err)
	}
	closeAll := func() {
		_ = locker.Close()
		inv.Close()
	}
	srv, err := api.New(api.Deps{ //nolint:contextcheck // New does no I/O; the path flagged is a request handler it registers
		Nodes: inv, Ports: inv, Tasks: bus, Locks: locker, Conductors: reg,
		Drivers: apiDrivers(), DriverNames: []string{"ipmi", "sim"},
		Checks: map[string]api.Checker{
			"nats": api.CheckFunc(func(context.Context) error {
				if !nc.IsConnected() {
					return fmt.Errorf("nats: %s", nc.Status())
				}
				return nil
			}),
			"redis": api.CheckFunc(func(ctx context.Context) error { return rc.Ping(ctx).Err() }),
		},
	}, cfg)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return srv, closeAll, nil
}

// errValidateOnly: the API validates driver_info but never drives hardware.
var errValidateOnly = errors.New("api: drivers here only validate driver_info")

// apiDrivers are the hardware types the API accepts, for validation only.
func apiDrivers() conductor.Drivers {
	none := func(wire.Node) (conductor.Power, error) { return nil, errValidateOnly }
	return conductor.Drivers{
		"ipmi": conductor.NewPowerDriver(ipmi.Validate, none),
		"sim":  conductor.NewPowerDriver(sim.Validate, none),
	}
}
