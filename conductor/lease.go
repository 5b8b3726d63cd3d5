package conductor

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/bsm/redislock"

	"github.com/ironfleet/ironfleet/internal/wait"
)

// ErrLeaseLost is the cause of the context a group's periodic sweeps run on
// when this conductor could not keep the group's lease: another conductor
// may be sweeping already, so this one stops.
var ErrLeaseLost = errors.New("conductor: periodic lease lost")

// lease keeps a redislock lease alive, renewing it every TTL/3, and cancels
// its context with cause ErrLeaseLost before the lease could run out on the
// server when renewing fails (or at once when the lease is found gone).
type lease struct {
	lk     *redislock.Lock
	ttl    time.Duration
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelCauseFunc
	done   chan struct{} // closed when the keeper has exited

	mu   sync.Mutex
	lost bool
}

// errLeaseEnded is the cause of a lease's context once its holder gave it up.
var errLeaseEnded = errors.New("conductor: periodic lease given up")

// keepLease starts keeping lk, obtained for ttl by a request sent at from (no
// later than when the server started the lease). Its context derives from
// ctx; the caller must call end.
func keepLease(ctx context.Context, lk *redislock.Lock, ttl time.Duration, from time.Time, log *slog.Logger) *lease {
	lctx, cancel := context.WithCancelCause(ctx)
	l := &lease{lk: lk, ttl: ttl, log: log, ctx: lctx, cancel: cancel, done: make(chan struct{})}
	go l.keep(from) //nolint:contextcheck // keep runs on l.ctx, derived from ctx above
	return l
}

// margin is how long before the lease could end on the server the holder
// gives up. Its view of the lease starts when it sent the request, before
// the server started it, so giving up early keeps it on the safe side of
// scheduling delays; a sweep missed costs little, so the margin is wide.
func (l *lease) margin() time.Duration { return l.ttl / 4 }

func (l *lease) keep(from time.Time) {
	defer close(l.done)
	deadline := from.Add(l.ttl - l.margin())
	next := from.Add(l.ttl / 3)
	for {
		if wait.Sleep(l.ctx, min(time.Until(next), time.Until(deadline))) != nil {
			return
		}
		if !time.Now().Before(deadline) {
			l.lose("it could not be renewed before it ran out")
			return
		}
		sent := time.Now()
		rctx, cancel := context.WithDeadline(l.ctx, deadline)
		err := l.lk.Refresh(rctx, l.ttl, nil)
		cancel()
		switch {
		case errors.Is(err, redislock.ErrNotObtained):
			l.lose("it expired or was taken over")
			return
		case err != nil:
			if l.ctx.Err() != nil {
				return
			}
			next = time.Now().Add(max(l.ttl/10, time.Millisecond)) // try again soon; give up at the deadline
		default:
			deadline = sent.Add(l.ttl - l.margin())
			next = sent.Add(l.ttl / 3)
		}
	}
}

func (l *lease) lose(why string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ctx.Err() != nil {
		return // given up meanwhile, or the conductor is stopping
	}
	l.lost = true
	l.log.Warn("periodic lease lost: sweeping stops", "key", l.lk.Key(), "why", why)
	l.cancel(ErrLeaseLost)
}

// end stops keeping the lease, waits for the keeper, and releases the lease
// unless it was lost, so that another conductor need not wait for it to run
// out. ctx only bounds the release.
func (l *lease) end(ctx context.Context) {
	l.cancel(errLeaseEnded)
	<-l.done
	l.mu.Lock()
	lost := l.lost
	l.mu.Unlock()
	if lost {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := l.lk.Release(rctx); err != nil && !errors.Is(err, redislock.ErrLockNotHeld) {
		l.log.Warn("releasing the periodic lease; it runs out by itself", "key", l.lk.Key(), "err", err)
	}
}
