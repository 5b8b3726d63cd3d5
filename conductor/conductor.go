package conductor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/bsm/redislock"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/ironfleet/ironfleet/agent"
	"github.com/ironfleet/ironfleet/lock"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// Tasks is the task bus as the conductor uses it (*transport.Bus).
type Tasks interface {
	Publish(ctx context.Context, t wire.Task) (uint64, error)
	PublishEvent(ctx context.Context, ev wire.Event) error
	Consume(ctx context.Context, group string, h transport.Handler, cfg transport.ConsumeConfig) error
}

// Nodes is the node inventory as the conductor uses it (*transport.Inventory).
type Nodes interface {
	Get(ctx context.Context, uuid string) (wire.Node, error)
	UpdateNode(ctx context.Context, uuid string, fence uint64, fn func(*wire.Node) error) (wire.Node, error)
	List(q transport.NodeQuery) ([]wire.Node, error)
	Ports(q transport.PortQuery) ([]wire.Port, error)
}

// Locks takes node locks (*lock.Locker).
type Locks interface {
	Acquire(ctx context.Context, resource string, opts *lock.Options) (*lock.Lock, error)
}

// Registry keeps this conductor's record alive (*transport.Registry).
type Registry interface {
	Register(ctx context.Context, info transport.ConductorInfo) error
	Conductors(ctx context.Context) ([]transport.ConductorInfo, error)
}

// Leases elect one conductor per group for periodic work (*redislock.Client).
type Leases interface {
	Obtain(ctx context.Context, key string, ttl time.Duration, opt *redislock.Options) (*redislock.Lock, error)
}

// AgentClient is what the conductor asks of a node's agent (*agent.Client).
type AgentClient interface {
	Inventory(ctx context.Context) (agent.Inventory, error)
	WriteImage(ctx context.Context, p agent.WriteImageParams) (agent.Command, error)
	EraseDisk(ctx context.Context, target string) (agent.Command, error)
	Wait(ctx context.Context, id string, interval time.Duration) (agent.Command, error)
}

// AgentDialer makes a client of the agent at url, authenticated by token.
type AgentDialer func(url, token string) (AgentClient, error)

// DialAgent is the AgentDialer of real agents.
func DialAgent(url, token string) (AgentClient, error) {
	return agent.NewClient(url, token, agent.ClientConfig{})
}

// Deps are the conductor's required collaborators.
type Deps struct {
	Tasks    Tasks
	Nodes    Nodes
	Locks    Locks
	Registry Registry
	Leases   Leases
	Drivers  Drivers
	Boot     Boot
	// Agents dials a node's agent; nil means DialAgent.
	Agents AgentDialer
}

// Config holds the conductor's settings; every zero value means the
// documented default (Ironic's, where Ironic has one).
type Config struct {
	// Host names this conductor; empty means the hostname.
	Host string
	// Groups are the conductor groups served; empty means the default group "".
	Groups []string
	// Workers is how many tasks run at once per group; zero means 64.
	Workers int
	// ReservedWorkers of them never run heartbeats, so user actions are not
	// starved by agents; zero means a quarter of Workers.
	ReservedWorkers int
	// MaxDeploys and MaxCleans bound the nodes of a group deploying and
	// cleaning at once; zero means 250 and 50.
	MaxDeploys, MaxCleans int
	// ClaimWait bounds how long a task waits for the lock handed to its
	// ticket (or, past the ticket's claim timeout, in line); zero means 2m.
	ClaimWait time.Duration
	// LockTTL is the lease of the locks this conductor takes (its Locker's
	// TTL applies when zero).
	LockTTL time.Duration
	// ClaimTimeout is how long a continuation's ticket may stay unclaimed;
	// zero means the Locker's default.
	ClaimTimeout time.Duration
	// Boot is what nodes network-boot into (kernel, ramdisk, API URL).
	Boot wire.BootParams
	// Handoff is how a phase passes the node to its continuation; empty
	// means HandoffTicket. The others exist to measure what ironfleet fixes
	// (ironfleet bench fleet) and are never what an operator wants.
	Handoff HandoffStrategy
	// AgentPoll is how often a running agent command is polled; zero means 1s.
	AgentPoll time.Duration
	// AgentTimeout bounds one agent command (writing an image); zero means 1h.
	AgentTimeout time.Duration
	// WaitTimeout fails nodes stuck in a wait state (wait call-back, clean
	// wait, inspect wait); zero means 1800s.
	WaitTimeout time.Duration
	// RecoverAfter fails nodes left in a transient state this long with
	// nobody holding their lock (their conductor died); zero means 10m.
	RecoverAfter time.Duration
	// Periodic is how often the periodic sweeps run; zero means 10s.
	Periodic time.Duration
	// PeriodicLease is the lease of the conductor that runs a group's
	// sweeps, renewed every third of it for as long as that conductor runs:
	// a dead leader delays the sweeps by at most this. Zero means 2 × Periodic.
	PeriodicLease time.Duration
	// PowerSync is how often power states are synced; zero means 120s.
	PowerSync time.Duration
	// PowerSyncFailures puts a node in maintenance after this many failed
	// syncs in a row; zero means 3.
	PowerSyncFailures int
	// Logger receives the conductor's logs; nil means slog.Default().
	Logger *slog.Logger
	// Registerer receives the conductor's metrics; nil means none.
	Registerer prometheus.Registerer
	// Consume tunes the task consumers (Concurrency is set from Workers).
	Consume transport.ConsumeConfig
}

func (c *Config) defaults() error {
	if c.Host == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("conductor: host name: %w", err)
		}
		c.Host = h
	}
	if len(c.Groups) == 0 {
		c.Groups = []string{""}
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.Workers, 64)
	if c.ReservedWorkers <= 0 || c.ReservedWorkers >= c.Workers {
		c.ReservedWorkers = max(c.Workers/4, 1)
		if c.ReservedWorkers >= c.Workers {
			c.ReservedWorkers = 0
		}
	}
	def(&c.MaxDeploys, 250)
	def(&c.MaxCleans, 50)
	def(&c.PowerSyncFailures, 3)
	defd(&c.ClaimWait, 2*time.Minute)
	switch c.Handoff {
	case "":
		c.Handoff = HandoffTicket
	case HandoffTicket, HandoffReleaseReacquire, HandoffPatientRetry:
	default:
		return fmt.Errorf("conductor: handoff strategy %q: want %s, %s or %s", c.Handoff, HandoffTicket, HandoffReleaseReacquire, HandoffPatientRetry)
	}
	defd(&c.AgentPoll, time.Second)
	defd(&c.AgentTimeout, time.Hour)
	defd(&c.WaitTimeout, 1800*time.Second)
	defd(&c.RecoverAfter, 10*time.Minute)
	defd(&c.Periodic, 10*time.Second)
	defd(&c.PeriodicLease, 2*c.Periodic)
	defd(&c.PowerSync, 120*time.Second)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// HandoffStrategy is how one phase of a flow passes the node's lock to the
// task that continues it.
type HandoffStrategy string

// Handoff strategies.
const (
	// HandoffTicket is ironfleet's: publish the continuation with a ticket,
	// then hand the lock to that ticket; nothing can take it in between.
	HandoffTicket HandoffStrategy = "handoff"
	// HandoffReleaseReacquire is Ironic's original: release the lock, publish
	// the continuation, which tries the lock in standard mode (Attempts ×
	// Interval) and gives up if it cannot get it — leaving the node in its
	// transient state until something recovers it.
	HandoffReleaseReacquire HandoffStrategy = "release-reacquire"
	// HandoffPatientRetry is Ironic's fix: the same, but the continuation
	// retries forever at a fixed interval, with no line (bounded here by
	// ClaimWait).
	HandoffPatientRetry HandoffStrategy = "patient-retry"
)

// Conductor runs tasks for its groups. Create it with New, run it with Run.
type Conductor struct {
	d       Deps
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	// heartbeats bounds the workers heartbeats may occupy.
	heartbeats chan struct{}
	started    time.Time
}

// New checks deps and cfg and returns a conductor ready to Run.
func New(d Deps, cfg Config) (*Conductor, error) {
	if d.Tasks == nil || d.Nodes == nil || d.Locks == nil || d.Registry == nil || d.Leases == nil || d.Boot == nil {
		return nil, errors.New("conductor: Deps.Tasks, Nodes, Locks, Registry, Leases and Boot are required")
	}
	if len(d.Drivers) == 0 {
		return nil, errors.New("conductor: no drivers")
	}
	if d.Agents == nil {
		d.Agents = DialAgent
	}
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Conductor{
		d: d, cfg: cfg, metrics: m,
		log:        cfg.Logger.With("conductor", cfg.Host),
		heartbeats: make(chan struct{}, cfg.Workers-cfg.ReservedWorkers),
	}, nil
}

// Host is the conductor's name in the registry and in node records.
func (c *Conductor) Host() string { return c.cfg.Host }

// Run registers the conductor, clears what it left behind when it last
// died, consumes its groups' tasks and runs its share of the periodic work,
// until ctx ends; then it stops everything and waits for it.
func (c *Conductor) Run(ctx context.Context) error {
	c.started = time.Now()
	drivers := make([]string, 0, len(c.d.Drivers))
	for name := range c.d.Drivers {
		drivers = append(drivers, name)
	}
	slices.Sort(drivers)
	c.clearLeftovers(ctx)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return c.d.Registry.Register(gctx, transport.ConductorInfo{
			Host: c.cfg.Host, Groups: c.cfg.Groups, Drivers: drivers, StartedAt: c.started,
		})
	})
	for _, group := range c.cfg.Groups {
		cc := c.cfg.Consume
		cc.Concurrency = c.cfg.Workers
		cc.Conductor = c.cfg.Host
		g.Go(func() error { return c.d.Tasks.Consume(gctx, group, c.handle, cc) })
		g.Go(func() error { c.periodic(gctx, group); return nil })
	}
	c.log.Info("conductor running", "groups", c.cfg.Groups, "drivers", drivers, "workers", c.cfg.Workers)
	err := g.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}
