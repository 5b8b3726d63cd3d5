package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/ironfleet/ironfleet/api"
	"github.com/ironfleet/ironfleet/internal/redisproc"
	"github.com/ironfleet/ironfleet/transport"
)

func newDevCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the whole fleet in one process on embedded defaults",
		Long: `dev starts, in this process, an embedded NATS server with JetStream, a private
redis-server child process and the API, and stops them in reverse order on Ctrl-C.
Its state lives in a temporary directory removed at exit unless --data-dir is given.`,
		Args: cobra.NoArgs,
		RunE: runDev,
	}
	f := cmd.Flags()
	f.String("api-addr", "127.0.0.1:6385", "address the API listens on")
	f.String("data-dir", "", "directory for NATS and Redis data (default: a temporary directory removed at exit)")
	f.String("redis-server", "redis-server", "redis-server binary to run")
	return cmd
}

func runDev(cmd *cobra.Command, _ []string) error {
	log, err := newLogger(cmd)
	if err != nil {
		return err
	}
	f := cmd.Flags()
	apiAddr, _ := f.GetString("api-addr")
	dataDir, _ := f.GetString("data-dir")
	redisBin, _ := f.GetString("redis-server")
	ctx := cmd.Context()

	if dataDir == "" {
		dataDir, err = os.MkdirTemp("", "ironfleet-dev-")
		if err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
		defer os.RemoveAll(dataDir)
	}
	for _, d := range []string{"nats", "redis"} {
		if err := os.MkdirAll(dataDir+"/"+d, 0o700); err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
	}

	// Listen first: a port already in use is the most likely start-up error,
	// and it should come before anything else is started.
	l, err := new(net.ListenConfig).Listen(ctx, "tcp", apiAddr)
	if err != nil {
		return fmt.Errorf("api: listen on %s: %w (is another ironfleet running? use --api-addr)", apiAddr, err)
	}

	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ns, err := transport.StartEmbedded(startCtx, transport.EmbeddedConfig{StoreDir: dataDir + "/nats"})
	if err != nil {
		_ = l.Close()
		return err
	}
	defer func() { ns.Shutdown(); log.Info("nats stopped") }()
	log.Info("nats started", "url", ns.URL())

	rs, err := redisproc.Start(startCtx, redisproc.Config{Dir: dataDir + "/redis", Binary: redisBin, AOF: true})
	if err != nil {
		_ = l.Close()
		return fmt.Errorf("redis: %w", err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = rs.Stop(sctx, true)
		log.Info("redis stopped")
	}()
	log.Info("redis started", "url", rs.URL())

	nc, err := nats.Connect(ns.URL(), nats.Name("ironfleet-dev"))
	if err != nil {
		_ = l.Close()
		return fmt.Errorf("nats: connect: %w", err)
	}
	defer nc.Close()
	rc := redis.NewClient(rs.Options())
	defer rc.Close()

	srv := api.New(api.Config{
		Logger: log,
		Checks: map[string]api.Checker{
			"nats": api.CheckFunc(func(context.Context) error {
				if !nc.IsConnected() {
					return fmt.Errorf("nats: %s", nc.Status())
				}
				return nil
			}),
			"redis": api.CheckFunc(func(ctx context.Context) error { return rc.Ping(ctx).Err() }),
		},
	})

	base := "http://" + l.Addr().String()
	fmt.Fprintf(cmd.OutOrStdout(), `
ironfleet dev is running (Ctrl-C to stop)
  API      %[1]s
  health   curl -s %[1]s/healthz
  ready    curl -s %[1]s/readyz
  NATS     %[2]s
  Redis    %[3]s
`, base, ns.URL(), rs.URL())

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Serve(gctx, l) })
	err = g.Wait()
	log.Info("api stopped")
	return err
}
