// Package fleet assembles ironfleet's components into running processes:
// the shared infrastructure clients (bus, inventory, registry, lock), a
// conductor with its drivers, and a whole fleet in one process with
// simulated machines for `ironfleet dev`. cmd/ironfleet and the end-to-end
// tests use it, so that every process is wired the same way.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/ironfleet/ironfleet/internal/dispatch"
	"github.com/ironfleet/ironfleet/lock"
	"github.com/ironfleet/ironfleet/transport"
)

// InfraConfig configures the clients of NATS and Redis one process uses.
type InfraConfig struct {
	// Bus configures the task bus (Groups are the groups this process serves).
	Bus transport.BusConfig
	// Inventory and Registry configure the KV buckets.
	Inventory transport.InventoryConfig
	Registry  transport.RegistryConfig
	// Lock configures the node lock. The API and conductors built on it
	// hold as their hosts (NewAPI, NewConductor); Holder names whatever
	// else the process locks.
	Lock lock.Config
	// Logger and Registerer are passed to every component; nil means
	// slog.Default() and no metrics.
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Infra is one process's view of the shared state.
type Infra struct {
	NATS      *nats.Conn
	Redis     *redis.Client
	Bus       *transport.Bus
	Inventory *transport.Inventory
	Registry  *transport.Registry
	Locks     *lock.Locker
	// lockEvents publishes Locks' changes on EVENTS (the lock view follows them).
	lockEvents *dispatch.LockEvents
	log        *slog.Logger
}

// NewInfra builds the bus, inventory, registry and lock on nc and rc, which
// stay the caller's to close. rc must have ContextTimeoutEnabled.
func NewInfra(ctx context.Context, nc *nats.Conn, rc *redis.Client, cfg InfraConfig) (*Infra, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Bus.Logger, cfg.Bus.Registerer = cfg.Logger, cfg.Registerer
	cfg.Lock.Logger, cfg.Lock.Registerer = cfg.Logger, cfg.Registerer
	bus, err := transport.NewBus(ctx, nc, cfg.Bus)
	if err != nil {
		return nil, err
	}
	inv, err := transport.NewInventory(ctx, bus.JetStream(), cfg.Inventory)
	if err != nil {
		return nil, err
	}
	reg, err := transport.NewRegistry(ctx, bus.JetStream(), cfg.Registry)
	if err != nil {
		inv.Close()
		return nil, err
	}
	// Every lock change this process makes goes on EVENTS, off the lock's
	// path, so that watchers need not read the locks in a loop.
	evs := dispatch.NewLockEvents(bus, cfg.Logger) //nolint:contextcheck // its publisher lives until Close, not as long as this call
	if also := cfg.Lock.OnChange; also != nil {
		cfg.Lock.OnChange = func(c lock.Change) { evs.Observe(c); also(c) }
	} else {
		cfg.Lock.OnChange = evs.Observe
	}
	locks, err := lock.New(ctx, rc, cfg.Lock)
	if err != nil {
		evs.Close()
		inv.Close()
		return nil, err
	}
	return &Infra{NATS: nc, Redis: rc, Bus: bus, Inventory: inv, Registry: reg, Locks: locks, lockEvents: evs, log: cfg.Logger}, nil
}

// Close stops the inventory's watch, the lock's subscription and the
// publishing of its events, and waits (5 s at most) for the store of the
// events emitted so far, so that closing the connection next loses none.
func (i *Infra) Close() {
	i.Inventory.Close()
	_ = i.Locks.Close()
	i.lockEvents.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := i.Bus.FlushEvents(ctx); err != nil {
		i.log.Warn("closing with events unconfirmed", "err", err)
	}
}

// NewRedis returns a client of the Redis at url (any form RedisClients
// takes: one server, or the master a set of Sentinels watches), set up as
// the lock needs (context deadlines honoured), after checking that it
// answers.
func NewRedis(ctx context.Context, url string) (*redis.Client, error) {
	newClient, err := RedisClients(url)
	if err != nil {
		return nil, err
	}
	rc := newClient()
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := rc.Ping(pctx).Err(); err != nil {
		_ = rc.Close()
		return nil, fmt.Errorf("redis at %s: %w", url, errors.Join(err, errors.New("is redis-server running? (make run starts one)")))
	}
	return rc, nil
}
