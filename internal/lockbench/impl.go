package lockbench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/bsm/redislock"
	"github.com/go-redsync/redsync/v4"
	redsyncgoredis "github.com/go-redsync/redsync/v4/redis/goredis/v9"
	"github.com/redis/go-redis/v9"

	"github.com/ironfleet/ironfleet/lock"
)

// Impl is one lock implementation under test. Every implementation gets its
// own Redis clients, one per simulated process.
type Impl interface {
	// Name is the impl field of the results.
	Name() string
	// Process returns a handle for one simulated process (its own client).
	Process(ctx context.Context) (Process, error)
}

// Process is one client process of a lock implementation.
type Process interface {
	// Wait blocks until the lock on key is held or ctx ends, waiting the
	// implementation's own way (our line; polling for the others).
	Wait(ctx context.Context, key, who string) (Held, error)
	// Try takes the lock if it is free now, without waiting (a serial
	// console or a heartbeat grabbing the lock).
	Try(ctx context.Context, key string) (Held, error)
	// Handoff passes a held lock to the process next for its next step, as
	// the implementation can: ours hands off to a ticket; the others
	// release, and next acquires with Ironic's standard retries (3 attempts
	// at the implementation's interval). It returns what next must do.
	Handoff(ctx context.Context, h Held) (claim func(ctx context.Context, next Process, key string) (Held, error), err error)
	Close() error
}

// Held is a held lock.
type Held interface {
	Release(ctx context.Context) error
}

// Impls returns the implementations compared by default: ironfleet's lock,
// bsm/redislock polling at Ironic's 1 s and at 10 ms, and go-redsync.
func Impls(newClient func() *redis.Client) []Impl {
	return []Impl{
		&ironfleet{newClient: newClient},
		&redislockImpl{newClient: newClient, interval: time.Second},
		&redislockImpl{newClient: newClient, interval: 10 * time.Millisecond},
		&redsyncImpl{newClient: newClient},
	}
}

const leaseTTL = 10 * time.Second

// ironfleet is our lock: patient waits, handoff to a ticket.
type ironfleet struct{ newClient func() *redis.Client }

func (*ironfleet) Name() string { return "ironfleet" }

func (i *ironfleet) Process(ctx context.Context) (Process, error) {
	c := i.newClient()
	l, err := lock.New(ctx, c, lock.Config{TTL: leaseTTL, Holder: "bench"})
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	return &ironfleetProc{c: c, l: l}, nil
}

type ironfleetProc struct {
	c *redis.Client
	l *lock.Locker
}

func (p *ironfleetProc) Wait(ctx context.Context, key, who string) (Held, error) {
	return p.l.Acquire(ctx, key, &lock.Options{Mode: lock.Patient, Purpose: who})
}

func (p *ironfleetProc) Try(ctx context.Context, key string) (Held, error) {
	return p.l.Acquire(ctx, key, &lock.Options{Attempts: 1, Purpose: "pest"})
}

func (p *ironfleetProc) Handoff(ctx context.Context, h Held) (func(context.Context, Process, string) (Held, error), error) {
	ticket := lock.NewTicket()
	if _, err := h.(*lock.Lock).Handoff(ctx, ticket, 0); err != nil {
		return nil, err
	}
	return func(ctx context.Context, next Process, key string) (Held, error) {
		// The consumer of the next task claims its ticket: standard mode,
		// as Ironic's next step would, but nobody can have taken it.
		return next.(*ironfleetProc).l.Acquire(ctx, key, &lock.Options{Ticket: ticket, Purpose: "next-step"})
	}, nil
}

func (p *ironfleetProc) Close() error {
	return errors.Join(p.l.Close(), p.c.Close())
}

// redislockImpl is bsm/redislock retrying at a fixed interval.
type redislockImpl struct {
	newClient func() *redis.Client
	interval  time.Duration
}

func (r *redislockImpl) Name() string {
	return fmt.Sprintf("redislock-%s", r.interval)
}

func (r *redislockImpl) Process(context.Context) (Process, error) {
	c := r.newClient()
	return &redislockProc{c: c, rl: redislock.New(c), interval: r.interval}, nil
}

type redislockProc struct {
	c        *redis.Client
	rl       *redislock.Client
	interval time.Duration
}

func (p *redislockProc) Wait(ctx context.Context, key, _ string) (Held, error) {
	l, err := p.rl.Obtain(ctx, key, leaseTTL, &redislock.Options{RetryStrategy: redislock.LinearBackoff(p.interval)})
	if err != nil {
		return nil, err
	}
	return l, nil
}

func (p *redislockProc) Try(ctx context.Context, key string) (Held, error) {
	l, err := p.rl.Obtain(ctx, key, leaseTTL, &redislock.Options{RetryStrategy: redislock.NoRetry()})
	if err != nil {
		return nil, err
	}
	return l, nil
}

func (p *redislockProc) Handoff(ctx context.Context, h Held) (func(context.Context, Process, string) (Held, error), error) {
	if err := h.Release(ctx); err != nil {
		return nil, err
	}
	return func(ctx context.Context, next Process, key string) (Held, error) {
		n := next.(*redislockProc)
		l, err := n.rl.Obtain(ctx, key, leaseTTL, &redislock.Options{RetryStrategy: redislock.LimitRetry(redislock.LinearBackoff(n.interval), 2)})
		if err != nil {
			return nil, err
		}
		return l, nil
	}, nil
}

func (p *redislockProc) Close() error { return p.c.Close() }

// redsyncImpl is go-redsync with its default retry delays (random 50–250 ms),
// retrying until the context ends.
type redsyncImpl struct{ newClient func() *redis.Client }

func (*redsyncImpl) Name() string { return "redsync" }

func (r *redsyncImpl) Process(context.Context) (Process, error) {
	c := r.newClient()
	return &redsyncProc{c: c, rs: redsync.New(redsyncgoredis.NewPool(c))}, nil
}

type redsyncProc struct {
	c  *redis.Client
	rs *redsync.Redsync
}

type redsyncHeld struct{ m *redsync.Mutex }

func (h redsyncHeld) Release(ctx context.Context) error {
	_, err := h.m.UnlockContext(ctx)
	return err
}

func (p *redsyncProc) Wait(ctx context.Context, key, _ string) (Held, error) {
	m := p.rs.NewMutex(key, redsync.WithExpiry(leaseTTL), redsync.WithTries(math.MaxInt32))
	if err := m.LockContext(ctx); err != nil {
		return nil, err
	}
	return redsyncHeld{m}, nil
}

func (p *redsyncProc) Try(ctx context.Context, key string) (Held, error) {
	m := p.rs.NewMutex(key, redsync.WithExpiry(leaseTTL))
	if err := m.TryLockContext(ctx); err != nil {
		return nil, err
	}
	return redsyncHeld{m}, nil
}

func (p *redsyncProc) Handoff(ctx context.Context, h Held) (func(context.Context, Process, string) (Held, error), error) {
	if err := h.Release(ctx); err != nil {
		return nil, err
	}
	return func(ctx context.Context, next Process, key string) (Held, error) {
		m := next.(*redsyncProc).rs.NewMutex(key, redsync.WithExpiry(leaseTTL), redsync.WithTries(3))
		if err := m.LockContext(ctx); err != nil {
			return nil, err
		}
		return redsyncHeld{m}, nil
	}, nil
}

func (p *redsyncProc) Close() error { return p.c.Close() }
