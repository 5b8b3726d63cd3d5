package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/ironfleet/ironfleet/internal/fleet"
	"github.com/ironfleet/ironfleet/internal/lockbench"
	"github.com/ironfleet/ironfleet/internal/redisproc"
)

// benchLockFlags are what `ironfleet bench lock`'s flags set.
type benchLockFlags struct {
	cfg    lockbench.Config
	redis  string
	asJSON bool
}

func newBenchLockCmd() *cobra.Command {
	var o benchLockFlags
	cmd := &cobra.Command{
		Use:   "lock",
		Short: "Compare ironfleet's lock with bsm/redislock (1s, 10ms polling) and go-redsync",
		Long: `lock runs, in one process against one Redis, handoff latency, a 16-process hot key
(grants/s, Jain's fairness index, FIFO inversions, Redis commands and Redis and client
CPU per grant) and the seed's starvation race (a handoff while 8 pests re-grab the
lock) for each lock implementation, and prints a table with ratios and the bound on
ironfleet's fair grants that the run's own numbers give (or, with --json, one object
per line). Without --redis it starts a private redis-server.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runBenchLock(cmd, o) },
	}
	f := cmd.Flags()
	f.BoolVar(&o.asJSON, "json", false, "print one JSON object per implementation per line")
	f.StringVar(&o.redis, "redis", "", "Redis URL to run against (redis://, unix:// or redis+sentinel://hosts/master); default: a private redis-server")
	f.DurationVar(&o.cfg.HotKeyDuration, "hot-key-duration", lockbench.DefaultHotKeyDuration, "how long each implementation hammers the hot key")
	f.IntVar(&o.cfg.Rounds, "rounds", lockbench.DefaultRounds, "starvation rounds per implementation")
	return cmd
}

// runBenchLock runs the benchmark as the flags in o say.
func runBenchLock(cmd *cobra.Command, o benchLockFlags) error {
	ctx := cmd.Context()
	asJSON, url := o.asJSON, o.redis

	var newClient func() *redis.Client
	if url == "" {
		dir, err := os.MkdirTemp("", "ironfleet-bench-lock-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		srv, err := redisproc.Start(ctx, redisproc.Config{Dir: dir})
		if err != nil {
			return fmt.Errorf("start redis-server (or pass --redis): %w", err)
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = srv.Stop(sctx, false)
		}()
		opts := srv.Options()
		opts.ContextTimeoutEnabled = true
		newClient = func() *redis.Client { return redis.NewClient(opts) }
	} else {
		var err error
		if newClient, err = fleet.RedisClients(url); err != nil {
			return fmt.Errorf("--redis: %w", err)
		}
	}
	admin := newClient()
	defer admin.Close()

	out := cmd.OutOrStdout()
	enc := json.NewEncoder(out)
	results, err := lockbench.Run(ctx, admin, lockbench.Impls(newClient),
		o.cfg,
		func(r lockbench.Result) {
			if asJSON {
				_ = enc.Encode(r)
			} else {
				fmt.Fprintf(cmd.ErrOrStderr(), "measured %s\n", r.Impl)
			}
		})
	if err != nil {
		return err
	}
	if asJSON {
		return nil
	}
	return lockbench.WriteTable(out, results)
}
