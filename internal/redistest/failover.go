package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ironfleet/ironfleet/internal/redisproc"
	"github.com/ironfleet/ironfleet/internal/wait"
)

// MasterName is the name the Sentinels of StartFailover know the master by.
const MasterName = "ironfleet"

// Failover is a Redis master, one replica of it and Sentinels watching them,
// each a private child process on its own free port of 127.0.0.1 (and a unix
// socket) under the test's temporary directory: what it takes to test a
// client through a failover. Which of the two servers is the master changes
// when it fails over; Master asks the Sentinels.
type Failover struct {
	// Servers are the data servers: Servers[0] starts as the master,
	// Servers[1] as its replica.
	Servers []*Server
	// Sentinels watch the master, with a quorum of a majority of them.
	Sentinels []*Sentinel
}

// Sentinel is a redis-sentinel owned by one test.
type Sentinel struct {
	*redisproc.Server
}

// FailoverOption changes how StartFailover runs its processes.
type FailoverOption func(*failoverConfig)

type failoverConfig struct {
	sentinels       int
	downAfter       time.Duration
	failoverTimeout time.Duration
	args            []string
}

// WithSentinels runs n Sentinels (quorum n/2+1) instead of one.
func WithSentinels(n int) FailoverOption { return func(c *failoverConfig) { c.sentinels = n } }

// WithFailoverTimeout sets the Sentinels' failover-timeout (default 2s). A
// Sentinel also waits this long before it points a replica that follows
// another address (a proxy, say) back at the master.
func WithFailoverTimeout(d time.Duration) FailoverOption {
	return func(c *failoverConfig) { c.failoverTimeout = d }
}

// WithServerArgs appends redis-server arguments for both data servers
// (e.g. "--min-replicas-to-write", "1").
func WithServerArgs(args ...string) FailoverOption {
	return func(c *failoverConfig) { c.args = append(c.args, args...) }
}

// StartFailover runs a master, its replica and the Sentinels, each stopped
// when tb ends, and returns once the replica is in sync and the Sentinels
// can authorise a failover. The Sentinels judge the master down after
// 500ms without an answer. Without redis-sentinel (or redis-server) the
// test is skipped, or fails under CI=true.
func StartFailover(tb testing.TB, opts ...FailoverOption) *Failover {
	tb.Helper()
	cfg := failoverConfig{sentinels: 1, downAfter: 500 * time.Millisecond, failoverTimeout: 2 * time.Second}
	for _, o := range opts {
		o(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ports, err := redisproc.FreePorts(ctx, 2+cfg.sentinels)
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	f := &Failover{}
	// A replica's first sync waits 5s by default for others to share it.
	args := append([]string{"--repl-diskless-sync-delay", "0"}, cfg.args...)
	master := Start(tb, withPort(ports[0]), WithArgs(args...))
	replica := Start(tb, withPort(ports[1]), WithArgs(args...),
		WithArgs("--replicaof", "127.0.0.1", strconv.Itoa(ports[0])))
	f.Servers = []*Server{master, replica}
	waitFor(ctx, tb, "the replica to sync with the master", func() error {
		return wantInfo(ctx, replica, "replication", "master_link_status:up")
	})
	quorum := cfg.sentinels/2 + 1
	for i := range cfg.sentinels {
		srv, err := redisproc.StartSentinel(ctx, redisproc.SentinelConfig{
			Dir: tb.TempDir(), Port: ports[2+i], MasterName: MasterName, MasterAddr: master.Addr(),
			Quorum: quorum, DownAfter: cfg.downAfter, FailoverTimeout: cfg.failoverTimeout,
		})
		if errors.Is(err, redisproc.ErrNotInstalled) {
			Unavailable(tb, err)
		}
		if err != nil {
			tb.Fatalf("redistest: %v", err)
		}
		// Sentinels go first, so that none fails the master over while the
		// servers stop.
		tb.Cleanup(func() { _ = srv.Kill() })
		f.Sentinels = append(f.Sentinels, &Sentinel{Server: srv})
	}
	for _, s := range f.Sentinels {
		sc := s.client()
		waitFor(ctx, tb, "each Sentinel to know the replica and the other Sentinels", func() error {
			if err := sc.CkQuorum(ctx, MasterName).Err(); err != nil {
				return err
			}
			if n := len(sc.Sentinels(ctx, MasterName).Val()); n != cfg.sentinels-1 {
				return fmt.Errorf("knows %d other Sentinels, want %d", n, cfg.sentinels-1)
			}
			for _, r := range sc.Replicas(ctx, MasterName).Val() {
				if r["name"] == replica.Addr() && r["flags"] == "slave" && r["master-link-status"] == "ok" {
					return nil
				}
			}
			return errors.New("does not see the replica in sync")
		})
		_ = sc.Close()
	}
	return f
}

// withPort makes the server listen on 127.0.0.1:port too.
func withPort(port int) Option { return func(c *redisproc.Config) { c.Port = port } }

// SentinelAddrs are the Sentinels' host:port addresses.
func (f *Failover) SentinelAddrs() []string {
	addrs := make([]string, len(f.Sentinels))
	for i, s := range f.Sentinels {
		addrs[i] = s.Addr()
	}
	return addrs
}

// URL is the redis+sentinel:// URL of the master, as ironfleet's --redis
// takes it (internal/fleet.NewRedis).
func (f *Failover) URL() string {
	return "redis+sentinel://" + strings.Join(f.SentinelAddrs(), ",") + "/" + MasterName
}

// Options are go-redis failover options for a client of the master, with
// context deadlines honoured as the lock requires.
func (f *Failover) Options() *redis.FailoverOptions {
	return &redis.FailoverOptions{MasterName: MasterName, SentinelAddrs: f.SentinelAddrs(), ContextTimeoutEnabled: true}
}

// Client returns a new failover client of the master, closed when tb ends.
func (f *Failover) Client(tb testing.TB) *redis.Client {
	tb.Helper()
	c := redis.NewFailoverClient(f.Options())
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// Master is the data server the first Sentinel names master now.
func (f *Failover) Master(tb testing.TB) *Server {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addr, err := f.Sentinels[0].MasterAddr(ctx)
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	for _, s := range f.Servers {
		if s.Addr() == addr {
			return s
		}
	}
	tb.Fatalf("redistest: Sentinel names master %s, none of ours", addr)
	return nil
}

// KillMaster kills the master with SIGKILL (a crash: nothing it had not
// sent its replica survives the failover) and returns it.
func (f *Failover) KillMaster(tb testing.TB) *Server {
	tb.Helper()
	m := f.Master(tb)
	_ = m.Kill()
	return m
}

// WaitFailover waits until every Sentinel names a master other than old
// and that server has taken the role, and returns it.
func (f *Failover) WaitFailover(tb testing.TB, old *Server) *Server {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var next *Server
	waitFor(ctx, tb, "a failover away from "+old.Addr(), func() error {
		for _, s := range f.Sentinels {
			addr, err := s.MasterAddr(ctx)
			if err != nil {
				return err
			}
			if addr == old.Addr() {
				return errors.New("a Sentinel still names the old master")
			}
			for _, srv := range f.Servers {
				if srv.Addr() == addr {
					next = srv
				}
			}
		}
		if next == nil {
			return errors.New("the Sentinels name a master that is none of ours")
		}
		return wantInfo(ctx, next, "replication", "role:master")
	})
	return next
}

// CutReplication cuts the replicas off the master, which goes on
// acknowledging writes: what it acknowledges from now on is lost when it
// fails over, as after a partition or with a replica lagging behind. (Each
// replica is made to authenticate as a user the master does not have, and
// its link is closed.)
func (f *Failover) CutReplication(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m := f.Master(tb)
	for _, s := range f.Servers {
		if s == m {
			continue
		}
		c := redis.NewClient(s.Options())
		err := c.ConfigSet(ctx, "masteruser", "ironfleet-cut").Err()
		if err == nil {
			err = c.ConfigSet(ctx, "masterauth", "cut").Err()
		}
		_ = c.Close()
		if err != nil {
			tb.Fatalf("redistest: cut replication: %v", err)
		}
	}
	mc := redis.NewClient(m.Options())
	defer mc.Close()
	if err := mc.ClientKillByFilter(ctx, "TYPE", "replica").Err(); err != nil {
		tb.Fatalf("redistest: cut replication: %v", err)
	}
	for _, s := range f.Servers {
		if s != m {
			waitFor(ctx, tb, "the replica's link to go down", func() error {
				return wantInfo(ctx, s, "replication", "master_link_status:down")
			})
		}
	}
}

// MasterAddr is the master's host:port as this Sentinel names it.
func (s *Sentinel) MasterAddr(ctx context.Context) (string, error) {
	c := s.client()
	defer c.Close()
	hp, err := c.GetMasterAddrByName(ctx, MasterName).Result()
	if err != nil {
		return "", fmt.Errorf("sentinel %s: %w", s.Addr(), err)
	}
	return net.JoinHostPort(hp[0], hp[1]), nil
}

func (s *Sentinel) client() *redis.SentinelClient {
	return redis.NewSentinelClient(&redis.Options{Network: "unix", Addr: s.Socket(), MaxRetries: -1})
}

// wantInfo checks that the server's INFO section has line.
func wantInfo(ctx context.Context, s *Server, section, line string) error {
	c := redis.NewClient(s.Options())
	defer c.Close()
	info, err := c.Info(ctx, section).Result()
	if err != nil {
		return err
	}
	for l := range strings.Lines(info) {
		if strings.TrimSpace(l) == line {
			return nil
		}
	}
	return fmt.Errorf("%s: no %q in INFO %s", s.Addr(), line, section)
}

// waitFor polls cond until it returns nil, failing tb with its last error
// when ctx ends.
func waitFor(ctx context.Context, tb testing.TB, what string, cond func() error) {
	tb.Helper()
	for {
		err := cond()
		if err == nil {
			return
		}
		if wait.Sleep(ctx, 20*time.Millisecond) != nil {
			tb.Fatalf("redistest: waiting for %s: %v", what, err)
		}
	}
}
