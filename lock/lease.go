package lock

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Lock is a held lock. Its Context is cancelled with cause ErrLost before
// the lease could expire on the server if the lease cannot be kept, and with
// ErrReleased after Release or Handoff: do the protected work under it, and
// carry Token into every write that must not happen after the lock is lost.
type Lock struct {
	l        *Locker
	resource string
	ticket   string
	named    bool // the ticket was presented by the caller: spend it when let go
	claimer  string
	token    uint64
	ttl      time.Duration
	keys     []string
	// change is what Config.OnChange is told of this lock (holder, purpose, mode).
	change Change

	ctx    context.Context
	cancel context.CancelCauseFunc
	done   chan struct{} // closed when the refresher has exited

	mu    sync.Mutex
	ended bool
	// until is the end of the lease as this holder can vouch for it: the
	// refresher's deadline, moved on at each renewal (Check reads it).
	until time.Time
	// pause stops refreshing without telling anyone, as a process frozen by
	// SIGSTOP would (tests only).
	pause chan struct{}
}

// newLock starts holding: leaseFrom is a time no later than when the server
// started the lease (the sending of the acquire that led to the grant).
func newLock(ctx context.Context, a *attempt, token uint64, leaseFrom time.Time) *Lock {
	lctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	lk := &Lock{
		l: a.l, resource: a.resource, ticket: a.ticket, named: a.named, claimer: a.claimer, token: token,
		ttl: a.ttl, keys: a.keys, ctx: lctx, cancel: cancel,
		done: make(chan struct{}), pause: make(chan struct{}),
		until:  leaseFrom.Add(a.ttl - leaseMargin(a.ttl)),
		change: a.change(0, 0),
	}
	go lk.refresh(leaseFrom) //nolint:contextcheck // the lease outlives Acquire's context by design; Release or loss ends it
	return lk
}

// Resource is the locked resource's name.
func (lk *Lock) Resource() string { return lk.resource }

// Token is the fencing token of this grant: strictly greater than every
// token granted before for the resource.
func (lk *Lock) Token() uint64 { return lk.token }

// Context is cancelled when the lock is lost (cause ErrLost) or given up
// (cause ErrReleased). Use context.Cause to tell which.
func (lk *Lock) Context() context.Context { return lk.ctx }

// Check says whether the lock is still this holder's by its own clock:
// nil while the lease it last renewed has not run out (less the margin),
// else an error wrapping ErrLost — and the lock's context is cancelled with
// it. The lock's context alone is cancelled by the refresher, which a
// process stopped (SIGSTOP, a long GC pause, a frozen VM) and woken again
// may not have run yet when the work resumes: call Check right before an
// effect outside the store, such as a command to a BMC, which fencing
// tokens cannot reject. What remains is the time between Check and the
// effect taking place.
func (lk *Lock) Check() error {
	lk.mu.Lock()
	until, ended := lk.until, lk.ended
	lk.mu.Unlock()
	switch {
	case lk.ctx.Err() != nil:
		return fmt.Errorf("lock: %s: %w", lk.resource, context.Cause(lk.ctx))
	case ended:
		return fmt.Errorf("lock: %s: %w", lk.resource, ErrNotHeld)
	case !time.Now().Before(until):
		lk.lose("lease ran out while this holder was not running")
		return fmt.Errorf("lock: %s: %w", lk.resource, ErrLost)
	}
	return nil
}

// leaseMargin is how long before the lease's end the holder gives up: its
// local view of the lease starts when it sent the acquire or refresh, before
// the server started the lease, so ending a margin early keeps it on the
// safe side of clock-rate drift and scheduling delays.
func leaseMargin(ttl time.Duration) time.Duration { return max(ttl/10, 2*time.Millisecond) }

// refresh renews the lease every TTL/3 and cancels the lock's context with
// ErrLost before its lease can run out when renewing keeps failing.
func (lk *Lock) refresh(leaseFrom time.Time) {
	defer close(lk.done)
	deadline := leaseFrom.Add(lk.ttl - leaseMargin(lk.ttl))
	next := time.Until(leaseFrom.Add(lk.ttl / 3))
	for {
		wait := min(next, time.Until(deadline))
		t := time.NewTimer(max(wait, 0))
		select {
		case <-lk.ctx.Done():
			t.Stop()
			return
		case <-lk.pause:
			t.Stop()
			<-lk.ctx.Done()
			return
		case <-t.C:
		}
		if !time.Now().Before(deadline) {
			lk.lose("lease could not be renewed before it ran out")
			return
		}
		sent := time.Now()
		rctx, cancel := context.WithDeadline(lk.ctx, deadline)
		r, err := lk.l.run(rctx, scriptRefresh, lk.keys, lk.ticket, lk.claimer, ms(lk.ttl))
		cancel()
		switch {
		case err != nil:
			// Try again soon; give up at the deadline.
			next = max(lk.ttl/10, time.Millisecond)
		case r.status == stNotHeld:
			lk.lose("lock is owned by someone else")
			return
		default:
			deadline = sent.Add(lk.ttl - leaseMargin(lk.ttl))
			next = lk.ttl / 3
			lk.mu.Lock()
			lk.until = deadline
			lk.mu.Unlock()
		}
	}
}

func (lk *Lock) lose(why string) {
	lk.mu.Lock()
	defer lk.mu.Unlock()
	if lk.ended {
		return
	}
	lk.ended = true
	lk.l.metrics.lost.Inc()
	lk.l.cfg.Logger.Warn("lock lost", "resource", lk.resource, "why", why)
	lk.cancel(ErrLost)
}

// end marks the lock given up and cancels its context; the caller waits on
// lk.done after its last Redis call, so that stopping the refresher costs
// nothing on the handoff's path.
func (lk *Lock) end() error {
	lk.mu.Lock()
	if lk.ended {
		lk.mu.Unlock()
		if errors.Is(context.Cause(lk.ctx), ErrLost) {
			return fmt.Errorf("lock: %s: %w (%w)", lk.resource, ErrNotHeld, ErrLost)
		}
		return fmt.Errorf("lock: %s: %w", lk.resource, ErrNotHeld)
	}
	lk.ended = true
	lk.mu.Unlock()
	lk.cancel(ErrReleased)
	return nil
}

// memory is how long (ms) the lock's ticket stays spent once let go: 0 for
// a ticket nobody presented, which nobody will present again.
func (lk *Lock) memory() int64 {
	if !lk.named {
		return 0
	}
	return ms(lk.l.cfg.TicketMemory)
}

// Release gives the lock up. Inside the same script, ownership passes to the
// live head of the line, and only that waiter is woken. Releasing a lock that
// was lost or already released returns ErrNotHeld. A ticket the caller
// presented (Options.Ticket) is spent: claiming it again within
// Config.TicketMemory fails with ErrTicketUsed, so release only once the
// work the ticket stands for is done if a redelivered task is to be taken
// as done.
func (lk *Lock) Release(ctx context.Context) error {
	return lk.release(ctx, lk.memory())
}

// Yield gives the lock up as Release does, but leaves the ticket the caller
// presented unspent: the work it stands for is not done, and a retried copy
// of the task may claim the ticket again (it waits in line like anyone).
func (lk *Lock) Yield(ctx context.Context) error {
	return lk.release(ctx, 0)
}

func (lk *Lock) release(ctx context.Context, memory int64) error {
	if err := lk.end(); err != nil {
		return err
	}
	r, err := lk.l.run(ctx, scriptRelease, lk.keys, lk.ticket, lk.claimer, memory)
	<-lk.done
	if err != nil {
		return fmt.Errorf("lock: release %s: %w", lk.resource, err)
	}
	if r.status == stNotHeld {
		return fmt.Errorf("lock: release %s: %w", lk.resource, ErrNotHeld)
	}
	if r.extra == 1 {
		lk.l.metrics.handoffs.WithLabelValues("line").Inc()
	}
	c := lk.change
	c.Kind, c.Passed = Released, r.extra == 1
	lk.l.notify(c)
	return nil
}

// Handoff passes the lock to ticket next, which the consumer of a task will
// present as Options.Ticket: nobody else can take the lock in between. If
// that consumer is already waiting in line with next, it is granted at once;
// otherwise the ticket holds the lock unclaimed for at most claim (zero means
// Config.ClaimTimeout). It returns the fencing token of the new grant. This
// Lock is given up whatever the outcome, and its ticket, if the caller
// presented it, is spent as at a Release.
func (lk *Lock) Handoff(ctx context.Context, next string, claim time.Duration) (uint64, error) {
	if err := validTicket(next); err != nil {
		return 0, err
	}
	if next == lk.ticket {
		return 0, invalid("handoff to the holder's own ticket")
	}
	if claim < 0 {
		return 0, invalid("negative claim timeout %s", claim)
	}
	if claim == 0 {
		claim = lk.l.cfg.ClaimTimeout
	}
	if err := lk.end(); err != nil {
		return 0, err
	}
	r, err := lk.l.runIndexed(ctx, lk.resource, scriptHandoff, lk.keys, lk.ticket, lk.claimer, next, ms(claim), "handoff", lk.memory())
	<-lk.done
	if err != nil {
		return 0, fmt.Errorf("lock: handoff %s: %w", lk.resource, err)
	}
	if r.status == stNotHeld {
		return 0, fmt.Errorf("lock: handoff %s: %w", lk.resource, ErrNotHeld)
	}
	lk.l.metrics.handoffs.WithLabelValues("ticket").Inc()
	c := lk.change
	c.Kind, c.Token = HandedOff, uint64(r.value) //nolint:gosec // tokens from the scripts are positive
	lk.l.notify(c)
	return c.Token, nil
}
