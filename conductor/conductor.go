package conductor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/bsm/redislock"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/ironfleet/ironfleet/agent/protocol"
	"github.com/ironfleet/ironfleet/internal/dispatch"
	"github.com/ironfleet/ironfleet/internal/identity"
	"github.com/ironfleet/ironfleet/internal/provision"
	"github.com/ironfleet/ironfleet/lock"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// Tasks is the task bus as the conductor uses it (*transport.Bus).
type Tasks interface {
	Publish(ctx context.Context, t wire.Task) (uint64, error)
	EmitEvent(ctx context.Context, ev wire.Event) error
	Consume(ctx context.Context, group string, h transport.Handler, cfg transport.ConsumeConfig) error
	// OldestTask says when the oldest task of op (any op for "") for
	// group still queued was stored (queued false: none).
	OldestTask(ctx context.Context, group string, op wire.Operation) (oldest time.Time, queued bool, err error)
}

// Nodes is the node inventory as the conductor uses it (*transport.Inventory).
type Nodes interface {
	Get(ctx context.Context, uuid string) (wire.Node, error)
	UpdateNode(ctx context.Context, uuid string, fence uint64, fn func(*wire.Node) error) (wire.Node, error)
	List(q transport.NodeQuery) ([]wire.Node, error)
	Ports(q transport.PortQuery) ([]wire.Port, error)
	// Sync waits until the cache (List, Ports) holds every write stored
	// before the call.
	Sync(ctx context.Context) error
}

// Locks takes node locks (*lock.Locker). The conductor acquires as the
// Locker's holder, which must be its Host (lock.Config.Holder, or
// Locker.WithHolder), so that the lock view names the conductor the
// registry, the events and the node records name.
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

// AgentClient is what the conductor asks of a node's agent (*protocol.Client).
type AgentClient interface {
	Inventory(ctx context.Context) (protocol.Inventory, error)
	WriteImage(ctx context.Context, p protocol.WriteImageParams) (protocol.Command, error)
	EraseDisk(ctx context.Context, target string) (protocol.Command, error)
	EraseMetadata(ctx context.Context, target string) (protocol.Command, error)
	Wait(ctx context.Context, id string, interval time.Duration) (protocol.Command, error)
}

// AgentDialer makes a client of the agent at url, authenticated by token.
type AgentDialer func(url, token string) (AgentClient, error)

// DialAgent is the AgentDialer of real agents.
func DialAgent(url, token string) (AgentClient, error) {
	return protocol.NewClient(url, token, protocol.ClientConfig{})
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
	// Records keeps node history, inspection data and allocations.
	Records Records
	// Agents dials a node's agent; nil means DialAgent.
	Agents AgentDialer
	// Consoles serve nodes' serial consoles, by console interface
	// ("ipmitool-socat", "sim"); nil means none: enabling one of those
	// fails with last_error (the fake console needs no driver).
	Consoles map[string]ConsoleDriver
	// Handoff replaces how a phase's continuation takes the node over; its
	// zero value is ironfleet's ticket handoff. Only ironfleet bench fleet
	// sets it, to measure the ways Ironic hands a node on.
	Handoff Handoff
}

// Handoff replaces both sides of a continuation's handoff. Either func may
// be nil (ironfleet's own then applies to that side).
type Handoff struct {
	// Pass publishes a continuation and gives up the node's lock to it
	// (internal/dispatch).
	Pass dispatch.PassFunc
	// Take takes the node's lock for a continuation that carries no
	// ticket. An error wrapping ErrGaveUp drops the continuation and leaves
	// the node where it is (Ironic's behaviour when its retries run out);
	// any other error retries the task.
	Take func(ctx context.Context, locks Locks, t wire.Task, opts *lock.Options) (*lock.Lock, error)
}

// ErrGaveUp marks a continuation that gave up on its node's lock: the node
// is left in its transient state until something recovers it.
var ErrGaveUp = errors.New("conductor: continuation gave up on the node's lock")

// Defaults of Config, applied where a field is zero (Ironic's, where Ironic
// has one).
const (
	DefaultWorkers           = 64
	DefaultMaxDeploys        = provision.DefaultMaxDeploys
	DefaultMaxCleans         = provision.DefaultMaxCleans
	DefaultClaimWait         = 2 * time.Minute
	DefaultAgentPoll         = time.Second
	DefaultAgentTimeout      = time.Hour
	DefaultWaitTimeout       = 1800 * time.Second
	DefaultRecoverAfter      = 10 * time.Minute
	DefaultOrphanAfter       = time.Minute
	DefaultPeriodic          = 10 * time.Second
	DefaultPowerSync         = 120 * time.Second
	DefaultPowerSyncFailures = 3
	// DefaultPowerSyncWorkers is Ironic's [conductor]sync_power_state_workers.
	DefaultPowerSyncWorkers = 8
	// DefaultSoftPowerOffTimeout is Ironic's [conductor]soft_power_off_timeout.
	DefaultSoftPowerOffTimeout = 600 * time.Second
	DefaultPowerPoll           = time.Second
)

// Config holds the conductor's settings; every zero value means the
// documented default.
type Config struct {
	// Host names this conductor in the registry, its events and node
	// records; its Locks must hold as Host too. Empty means the host name
	// (identity.Host).
	Host string
	// Groups are the conductor groups served; empty means the default group "".
	Groups []string
	// Workers is how many tasks run at once per group; zero means
	// DefaultWorkers.
	Workers int
	// ReservedWorkers of them never run heartbeats, so user actions are not
	// starved by agents; zero means a quarter of Workers.
	ReservedWorkers int
	// MaxDeploys and MaxCleans bound the nodes of a group deploying and
	// cleaning at once; zero means DefaultMaxDeploys and DefaultMaxCleans.
	MaxDeploys, MaxCleans int
	// ClaimWait bounds how long a task waits for the lock handed to its
	// ticket (or, past the ticket's claim timeout, in line); zero means
	// DefaultClaimWait.
	ClaimWait time.Duration
	// LockTTL is the lease of the locks this conductor takes; zero means
	// its Locker's TTL.
	LockTTL time.Duration
	// ClaimTimeout is how long a continuation's ticket may stay unclaimed;
	// zero means its Locker's ClaimTimeout.
	ClaimTimeout time.Duration
	// Boot is what nodes network-boot into (kernel, ramdisk, API URL).
	Boot wire.BootParams
	// AgentPoll is how often a running agent command is polled; zero means
	// DefaultAgentPoll.
	AgentPoll time.Duration
	// AgentTimeout bounds one agent command (writing an image); zero means
	// DefaultAgentTimeout.
	AgentTimeout time.Duration
	// WaitTimeout fails nodes stuck in a wait state (wait call-back, clean
	// wait, inspect wait); zero means DefaultWaitTimeout.
	WaitTimeout time.Duration
	// OrphanAfter is how long a node may sit in a continuation's step
	// (writing its image, erasing its disk) before its agent's heartbeat,
	// finding the node's lock free, publishes the continuation again; zero
	// means DefaultOrphanAfter.
	OrphanAfter time.Duration
	// RecoverAfter fails nodes left in a transient state this long with
	// nobody holding their lock (their conductor died); zero means
	// DefaultRecoverAfter.
	RecoverAfter time.Duration
	// Periodic is how often the periodic sweeps run; zero means
	// DefaultPeriodic.
	Periodic time.Duration
	// PeriodicLease is the lease of the conductor that runs a group's
	// sweeps, renewed every third of it for as long as that conductor runs:
	// a dead leader delays the sweeps by at most this. Zero means 2 × Periodic.
	PeriodicLease time.Duration
	// PowerSync is how often power states are synced; zero means
	// DefaultPowerSync.
	PowerSync time.Duration
	// PowerSyncFailures puts a node in maintenance after this many failed
	// syncs in a row; zero means DefaultPowerSyncFailures.
	PowerSyncFailures int
	// PowerSyncWorkers is how many power states the power sync reads at
	// once; zero means DefaultPowerSyncWorkers.
	PowerSyncWorkers int
	// SoftPowerOffTimeout is how long a soft power off (or the off half of
	// a soft reboot) waits for the machine to go off when the request set
	// no timeout; zero means DefaultSoftPowerOffTimeout.
	SoftPowerOffTimeout time.Duration
	// PowerPoll is how often the power state is read while waiting for a
	// soft power off; zero means DefaultPowerPoll.
	PowerPoll time.Duration
	// ConsoleAddress is the IP address the consoles this conductor serves
	// listen on, and that their console_info URL names (Ironic's
	// [console]socat_address); it must be reachable from the API hosts,
	// which proxy the consoles' WebSocket. Empty means
	// DefaultConsoleAddress (loopback: the consoles have no authentication).
	ConsoleAddress string
	// ConsolePortMin and ConsolePortMax bound the TCP ports consoles are
	// given (Ironic's [console]port_range); zero means
	// DefaultConsolePortMin and DefaultConsolePortMax.
	ConsolePortMin, ConsolePortMax int
	// Logger receives the conductor's logs; nil means slog.Default().
	Logger *slog.Logger
	// Registerer receives the conductor's metrics; nil means none.
	Registerer prometheus.Registerer
	// Consume tunes the task consumers (Concurrency is set from Workers).
	Consume transport.ConsumeConfig
}

func (c *Config) defaults() error {
	if c.Host == "" {
		h, err := identity.Host()
		if err != nil {
			return fmt.Errorf("conductor: %w", err)
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
	def(&c.Workers, DefaultWorkers)
	if c.ReservedWorkers <= 0 || c.ReservedWorkers >= c.Workers {
		c.ReservedWorkers = max(c.Workers/4, 1)
		if c.ReservedWorkers >= c.Workers {
			c.ReservedWorkers = 0
		}
	}
	def(&c.MaxDeploys, DefaultMaxDeploys)
	def(&c.MaxCleans, DefaultMaxCleans)
	def(&c.PowerSyncFailures, DefaultPowerSyncFailures)
	def(&c.PowerSyncWorkers, DefaultPowerSyncWorkers)
	defd(&c.ClaimWait, DefaultClaimWait)
	defd(&c.AgentPoll, DefaultAgentPoll)
	defd(&c.AgentTimeout, DefaultAgentTimeout)
	defd(&c.WaitTimeout, DefaultWaitTimeout)
	defd(&c.RecoverAfter, DefaultRecoverAfter)
	defd(&c.OrphanAfter, DefaultOrphanAfter)
	defd(&c.Periodic, DefaultPeriodic)
	defd(&c.PeriodicLease, 2*c.Periodic)
	defd(&c.PowerSync, DefaultPowerSync)
	defd(&c.SoftPowerOffTimeout, DefaultSoftPowerOffTimeout)
	defd(&c.PowerPoll, DefaultPowerPoll)
	if c.ConsoleAddress == "" {
		c.ConsoleAddress = DefaultConsoleAddress
	}
	def(&c.ConsolePortMin, DefaultConsolePortMin)
	def(&c.ConsolePortMax, DefaultConsolePortMax)
	if c.ConsolePortMax < c.ConsolePortMin || c.ConsolePortMax > 65535 {
		return fmt.Errorf("conductor: console ports %d-%d: not a range of TCP ports", c.ConsolePortMin, c.ConsolePortMax)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Conductor runs tasks for its groups. Create it with New, run it with Run.
type Conductor struct {
	d       Deps
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	// dispatch hands nodes to the continuations this conductor publishes.
	dispatch *dispatch.Dispatcher
	// heartbeats bounds the workers heartbeats may occupy.
	heartbeats chan struct{}
	// consoles are the serial consoles this conductor serves.
	consoles *consoles
	started  time.Time
}

// New checks deps and cfg and returns a conductor ready to Run.
func New(d Deps, cfg Config) (*Conductor, error) {
	if d.Tasks == nil || d.Nodes == nil || d.Locks == nil || d.Registry == nil || d.Leases == nil || d.Boot == nil || d.Records == nil {
		return nil, errors.New("conductor: Deps.Tasks, Nodes, Locks, Registry, Leases, Boot and Records are required")
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
	log := cfg.Logger.With("conductor", cfg.Host)
	c := &Conductor{
		d: d, cfg: cfg, metrics: m, log: log,
		dispatch: dispatch.New(d.Tasks, d.Nodes, dispatch.Config{
			Source: cfg.Host, ClaimTimeout: cfg.ClaimTimeout, Pass: d.Handoff.Pass, Logger: log,
		}),
		heartbeats: make(chan struct{}, cfg.Workers-cfg.ReservedWorkers),
	}
	c.consoles = newConsoles(c)
	return c, nil
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
	// Consoles are restored at once (the first reconcile), and stopped
	// when the conductor stops.
	g.Go(func() error { c.consoles.run(gctx); return nil })
	c.log.Info("conductor running", "groups", c.cfg.Groups, "drivers", drivers, "workers", c.cfg.Workers)
	err := g.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}
