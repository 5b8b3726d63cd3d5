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
	"github.com/ironfleet/ironfleet/transport"
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
	if host == "" {
		if host, err = identity.Host(); err != nil {
			return fmt.Errorf("--host: %w", err)
		}
	}

	roles := map[string]api.Role{}
	for _, u := range readers {
		roles[strings.TrimSpace(u)] = api.RoleReader
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cfg := api.Config{
		Auth: api.AuthMode(auth), HTPasswd: htpasswd, Roles: roles, PublicURL: publicURL, MaxBodyBytes: maxBody,
		LockAttempts: attempts, LockInterval: interval, ClaimTimeout: claim, HeartbeatTimeout: heartbeat,
		Logger: log, Registerer: reg, Gatherer: reg,
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
	rc, err := fleet.NewRedis(startCtx, redisURL)
	if err != nil {
		return err
	}
	defer rc.Close()
	infra, err := fleet.NewInfra(startCtx, nc, rc, fleet.InfraConfig{
		Bus:       transport.BusConfig{Replicas: replicas},
		Inventory: transport.InventoryConfig{Replicas: replicas},
		Registry:  transport.RegistryConfig{Replicas: replicas},
		Logger:    log, Registerer: reg,
	})
	if err != nil {
		return err
	}
	defer infra.Close()
	srv, err := fleet.NewAPI(infra, fleet.ValidateOnlyDrivers(), fleet.APIConfig{Host: host, API: cfg}) //nolint:contextcheck // New does no I/O
	if err != nil {
		return err
	}
	log.Info("api listening", "addr", l.Addr().String(), "auth", auth)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Serve(gctx, l) })
	return g.Wait()
}
