package fleetbench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/ironfleet/ironfleet/conductor"
	"github.com/ironfleet/ironfleet/internal/dispatch"
	"github.com/ironfleet/ironfleet/lock"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// Strategy is how one phase of a flow passes the node's lock to the task
// that continues it. Only StrategyHandoff is ironfleet's; the others are
// Ironic's, rebuilt here (and only here) to be measured against it.
type Strategy string

// Strategies.
const (
	// StrategyHandoff is ironfleet's: publish the continuation with a
	// ticket, then hand the lock to that ticket; nothing can take it in
	// between (internal/dispatch).
	StrategyHandoff Strategy = "handoff"
	// StrategyReleaseReacquire is Ironic's original: release the lock,
	// publish the continuation, which tries the lock in standard mode
	// (Attempts × Interval) and gives up if it cannot get it — leaving the
	// node in its transient state until something recovers it.
	StrategyReleaseReacquire Strategy = "release-reacquire"
	// StrategyPatientRetry is Ironic's fix: the same, but the continuation
	// retries at a fixed interval, with no line (bounded by the conductor's
	// ClaimWait).
	StrategyPatientRetry Strategy = "patient-retry"
)

// Strategies lists every strategy, in the order a run measures them.
var Strategies = []Strategy{StrategyReleaseReacquire, StrategyPatientRetry, StrategyHandoff}

// ParseStrategy reads a strategy's name.
func ParseStrategy(s string) (Strategy, error) {
	if st := Strategy(s); slices.Contains(Strategies, st) {
		return st, nil
	}
	return "", fmt.Errorf("unknown strategy %q: want %s, %s or %s", s, StrategyReleaseReacquire, StrategyPatientRetry, StrategyHandoff)
}

// handoff returns the conductors' handoff for s; raced counts the
// continuations that found their node's lock taken by someone else (never
// with StrategyHandoff). claimWait bounds patient-retry's retries.
func (s Strategy) handoff(raced *atomic.Int64, claimWait time.Duration) conductor.Handoff {
	if s == StrategyHandoff {
		return conductor.Handoff{}
	}
	return conductor.Handoff{
		Pass: releaseThenPublish,
		Take: func(ctx context.Context, locks conductor.Locks, t wire.Task, opts *lock.Options) (*lock.Lock, error) {
			return reacquire(ctx, locks, t, opts, s == StrategyPatientRetry, raced, claimWait)
		},
	}
}

// releaseThenPublish is how Ironic hands a node on: release the lock, then
// publish the continuation without a ticket. Whoever grabs the lock in
// between wins.
func releaseThenPublish(ctx context.Context, tasks dispatch.Tasks, lk dispatch.Lock, t wire.Task) error {
	t.Ticket = ""
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := lk.Release(rctx); err != nil && !errors.Is(err, lock.ErrNotHeld) {
		return err
	}
	_, err := tasks.Publish(rctx, t)
	return err
}

// reacquire is how a continuation published without a ticket takes its
// node's lock: a standard-mode try (Ironic), or, patient, a try at a fixed
// interval until claimWait (Ironic's patient fix). Each continuation that
// finds the lock taken is a raced handoff.
func reacquire(ctx context.Context, locks conductor.Locks, t wire.Task, opts *lock.Options, patient bool, raced *atomic.Int64, claimWait time.Duration) (*lock.Lock, error) {
	lk, err := locks.Acquire(ctx, t.Node, opts)
	if !errors.Is(err, lock.ErrLocked) {
		return lk, err
	}
	raced.Add(1)
	if !patient {
		return nil, fmt.Errorf("%w: %w", conductor.ErrGaveUp, err)
	}
	wctx, cancel := context.WithTimeout(ctx, claimWait)
	defer cancel()
	interval := opts.Interval
	if interval <= 0 {
		interval = time.Second
	}
	for {
		select {
		case <-wctx.Done():
			return nil, fmt.Errorf("%w: %w", conductor.ErrGaveUp, err)
		case <-time.After(interval):
		}
		one := *opts
		one.Attempts = 1
		lk, err = locks.Acquire(wctx, t.Node, &one)
		if !errors.Is(err, lock.ErrLocked) {
			return lk, err
		}
	}
}
