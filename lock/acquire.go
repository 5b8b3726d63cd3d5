package lock

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Mode is how Acquire waits.
type Mode int

const (
	// Standard is Ironic's mode for user-facing actions: a few attempts at a
	// fixed interval, then ErrLocked naming the holder. It never joins the
	// line, and never barges past it either.
	Standard Mode = iota
	// Patient joins the fair line and waits until granted or ctx ends.
	Patient
)

func (m Mode) String() string {
	if m == Patient {
		return "patient"
	}
	return "standard"
}

// Options are per-Acquire settings; a nil *Options means standard mode with
// the Locker's defaults.
type Options struct {
	// Mode is Standard (the zero value) or Patient.
	Mode Mode
	// Purpose says why the lock is wanted ("deploy", "console", …); it is
	// shown in snapshots and in ErrLocked.
	Purpose string
	// Ticket claims a ticket the lock was handed off to (Lock.Handoff) or
	// reserved for (Locker.Reserve). Empty means a fresh ticket.
	Ticket string
	// TTL overrides Config.TTL for this acquisition.
	TTL time.Duration
	// Attempts and Interval override the standard mode's retries.
	Attempts int
	Interval time.Duration
}

func (o *Options) orZero() Options {
	if o == nil {
		return Options{}
	}
	return *o
}

// Acquire takes the lock on resource. In standard mode it returns a
// *LockedError (errors.Is ErrLocked) when it could not within its attempts;
// in patient mode it waits in line until granted or ctx ends, leaving the
// line on the way out. The returned Lock must be released (or handed off).
func (l *Locker) Acquire(ctx context.Context, resource string, opts *Options) (*Lock, error) {
	o := opts.orZero()
	if err := validResource(resource); err != nil {
		return nil, err
	}
	if o.Ticket != "" {
		if err := validTicket(o.Ticket); err != nil {
			return nil, err
		}
	}
	if o.TTL < 0 || o.Interval < 0 || o.Attempts < 0 {
		return nil, invalid("negative TTL, Interval or Attempts in Options")
	}
	if o.TTL != 0 && o.TTL < 10*time.Millisecond {
		return nil, invalid("Options.TTL %s is below 10ms", o.TTL)
	}
	a := &attempt{
		l:        l,
		resource: resource,
		keys:     l.keys(resource),
		ticket:   o.Ticket,
		named:    o.Ticket != "",
		claimer:  l.newClaimer(),
		mode:     o.Mode,
		purpose:  o.Purpose,
		holder:   l.holder,
		ttl:      o.TTL,
		start:    time.Now(),
	}
	if a.ticket == "" {
		a.ticket = NewTicket()
	}
	if a.ttl == 0 {
		a.ttl = l.cfg.TTL
	}
	a.fallback = l.cfg.fallbackFor(a.ttl)
	if o.Mode == Patient {
		return a.patient(ctx)
	}
	attempts, interval := o.Attempts, o.Interval
	if attempts == 0 {
		attempts = l.cfg.Attempts
	}
	if interval == 0 {
		interval = l.cfg.Interval
	}
	return a.standard(ctx, attempts, interval)
}

// attempt is one Acquire call in progress.
type attempt struct {
	l        *Locker
	resource string
	keys     []string
	ticket   string
	// named is true when the caller presented the ticket (a claim): only
	// such a ticket can have been spent, and is spent when let go.
	named   bool
	claimer string
	mode    Mode
	purpose string
	holder  string
	// ttl is this call's lease (Options.TTL or Config.TTL), fallback the
	// longest it waits in line between re-checks, derived from it.
	ttl      time.Duration
	fallback time.Duration
	start    time.Time
	// sent is when the last acquire script was sent. The server started
	// (or renewed) this ticket's lease after that, and any grant comes
	// later still, so a lease counted from sent ends no later than the
	// server's: that is what the holder's deadline is counted from.
	sent time.Time
	// queued is set once the attempt was reported Queued (Config.OnChange).
	queued bool
	// runs numbers the acquire runs sent, for the wake-ups that name them.
	runs runs
}

func (a *attempt) try(ctx context.Context, index bool) (reply, error) {
	a.sent = time.Now()
	n := a.runs.next(a.sent)
	named := "0"
	if a.named {
		named = "1"
	}
	args := []any{a.ticket, a.claimer, a.mode.String(), ms(a.ttl), a.holder, a.purpose, a.l.channel, ms(a.l.cfg.Grace), named, n}
	var r reply
	var err error
	if index {
		r, err = a.l.runIndexed(ctx, a.resource, scriptAcquire, a.keys, args...)
	} else {
		r, err = a.l.run(ctx, scriptAcquire, a.keys, args...)
	}
	if err == nil {
		a.runs.answered(n)
	}
	return r, err
}

// fresh reports whether the grant the last try answered still has a lease
// the holder can count on: the reply came back before the holder would
// give the lease up (a margin before its end, counted from the sending).
// A reply that took longer (the process stalled, a frozen network) is a
// grant the holder could only lose at once; the caller runs acquire again,
// which renews the lease if the ticket still owns the lock.
func (a *attempt) fresh() bool {
	return time.Since(a.sent) < a.ttl-leaseMargin(a.ttl)
}

func (a *attempt) standard(ctx context.Context, attempts int, interval time.Duration) (*Lock, error) {
	var last reply
	for i := 1; ; i++ {
		r, err := a.try(ctx, i == 1)
		if err != nil {
			return nil, fmt.Errorf("lock: acquire %s: %w", a.resource, err)
		}
		switch r.status {
		case stGranted:
			if a.fresh() {
				return a.granted(ctx, uint64(r.value), r.extra == 1), nil //nolint:gosec // tokens from the scripts are positive
			}
			if i >= attempts {
				// Granted, but too late to hold: pass it on.
				return nil, a.leave(ctx, fmt.Errorf("redis answered %s after the acquire was sent, past the lease of %s", time.Since(a.sent).Round(time.Millisecond), a.ttl))
			}
			continue // confirm again at once: the retry renews the lease
		case stDuplicate, stUsed:
			return nil, a.refused(r.status)
		}
		last = r
		if i >= attempts {
			break
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("lock: acquire %s: %w", a.resource, context.Cause(ctx))
		case <-t.C:
		}
	}
	a.l.metrics.locked.Inc()
	return nil, &LockedError{
		Resource: a.resource, Holder: last.holder, Purpose: last.purpose,
		Attempts: attempts, Waited: time.Since(a.start),
	}
}

// patient waits in line. It holds the lock when an acquire run's reply
// grants it, or when the wake-up of a grant names a lease it can still
// count on (woken); any other wake-up (a stale one, a reconnect of the
// subscription) and the fallback timer only make it run acquire again.
func (a *attempt) patient(ctx context.Context) (*Lock, error) {
	recheck, err := a.l.register(a.ticket)
	if err != nil {
		return nil, err
	}
	defer a.l.unregister(a.ticket, recheck)
	backoff := time.Millisecond
	for first := true; ; first = false {
		// The try answers every prompt that came before it; a grant that
		// came before it is taken if it can be.
		select {
		case w := <-recheck:
			if lk := a.woken(ctx, w); lk != nil {
				return lk, nil
			}
		default:
		}
		r, err := a.try(ctx, first)
		if err != nil {
			if ctx.Err() != nil {
				return nil, a.leave(ctx, err)
			}
			// Redis unreachable or restarting: keep our place by retrying
			// within the lease, backing off up to the fallback interval.
			backoff = min(backoff*2, a.fallback)
			if !sleepCtx(ctx, backoff) {
				return nil, a.leave(ctx, err)
			}
			continue
		}
		backoff = time.Millisecond
		switch r.status {
		case stGranted:
			if !a.fresh() {
				continue // too late to hold: confirm again, renewing the lease
			}
			return a.granted(ctx, uint64(r.value), r.extra == 1), nil //nolint:gosec // tokens from the scripts are positive
		case stDuplicate, stUsed:
			return nil, a.refused(r.status)
		case stQueued:
			if !a.queued {
				a.queued = true
				a.l.notify(a.change(Queued, 0))
			}
		default:
			return nil, fmt.Errorf("lock: acquire %s: unexpected status %d", a.resource, r.status)
		}
		// Wait for a signal to re-check, but never longer than the fallback
		// (which also renews our place in line); at the head of the line,
		// re-check right when the owner's lease would end.
		wait := a.fallback
		if r.value == 0 && r.ownerLeftMS > 0 {
			wait = min(wait, time.Duration(r.ownerLeftMS+1)*time.Millisecond)
		}
		t := time.NewTimer(wait)
		select {
		case w := <-recheck:
			t.Stop()
			if lk := a.woken(ctx, w); lk != nil {
				return lk, nil
			}
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, a.leave(ctx, context.Cause(ctx))
		}
	}
}

// woken returns the Lock that wake-up w grants, or nil when w is only a
// prompt to run acquire again (see takes).
func (a *attempt) woken(ctx context.Context, w wakeUp) *Lock {
	from, ok := a.takes(w, time.Now())
	if !ok {
		return nil
	}
	a.sent = from
	return a.granted(ctx, w.token, false)
}

// takes says whether wake-up w, read at now, is a grant this attempt can
// hold without a round trip, and from when its lease counts. A grant's
// message names the claimer it was made to and the acquire run whose lease
// it keeps: the server renewed the waiter's lease in that run, after it was
// sent, and a grant passes that lease on unchanged. So the holder counts it
// from the run's sending, as it counts a lease from the sending of the
// acquire whose reply granted it. It takes the message when it is this
// attempt's, the run is one it sent and no older than the last run it had
// an answer to (an earlier grant would have been that answer, or had
// lapsed), and at least half of the lease counted from that run is left.
//
// A stale message — the grant lapsed, by the server's clock, while the
// waiter's commands failed or its process was stopped, and went to the
// next waiter — names a run whose lease, counted from its sending, ended
// no later than on the server: it is never taken. Nor is a grant with
// less than half its lease left: the acquire run it prompts instead
// renews the lease if the grant still stands, so a waiter that was slow to
// read its message does not start holding a lease about to end.
func (a *attempt) takes(w wakeUp, now time.Time) (from time.Time, ok bool) {
	if !w.grant || w.claimer != a.claimer {
		return time.Time{}, false
	}
	from, ok = a.runs.grantFrom(w.n)
	if !ok || now.Sub(from) >= a.ttl/2 {
		return time.Time{}, false
	}
	return from, true
}

// refused is the error of a claim of a ticket someone else claimed: still
// held (or waited for) by them, or spent.
func (a *attempt) refused(status int64) error {
	result, err := "duplicate", ErrTicketClaimed
	if status == stUsed {
		result, err = "used", ErrTicketUsed
	}
	a.l.metrics.claims.WithLabelValues(result).Inc()
	return fmt.Errorf("lock: acquire %s: %w", a.resource, err)
}

// leave takes the ticket out of the line (or passes the lock on, if it was
// granted meanwhile) on a context that outlives the caller's, briefly.
func (a *attempt) leave(ctx context.Context, cause error) error {
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.fallback+time.Second)
	defer cancel()
	if _, err := a.l.run(lctx, scriptLeave, a.keys, a.ticket, a.claimer); err != nil {
		// The lease will drop us within TTL anyway.
		a.l.cfg.Logger.Debug("lock: leave line failed", "resource", a.resource, "err", err)
	} else {
		a.l.notify(a.change(Left, 0))
	}
	return fmt.Errorf("lock: acquire %s: %w", a.resource, cause)
}

func (a *attempt) granted(ctx context.Context, token uint64, claimed bool) *Lock {
	m := a.l.metrics
	m.wait.WithLabelValues(a.mode.String()).Observe(time.Since(a.start).Seconds())
	m.grants.WithLabelValues(a.mode.String()).Inc()
	if claimed {
		m.claims.WithLabelValues("granted").Inc()
	}
	lk := newLock(ctx, a, token, a.sent)
	a.l.notify(a.change(Acquired, token))
	return lk
}

func (a *attempt) change(kind ChangeKind, token uint64) Change {
	return Change{Kind: kind, Resource: a.resource, Holder: a.holder, Purpose: a.purpose, Mode: a.mode, Token: token}
}

// Reserve takes a place at the back of resource's line now for ticket, to be
// claimed later by an Acquire with Options.Ticket (for example by the
// consumer of a task published with it). Its claimer must arrive within
// claim (zero means Config.ClaimTimeout), or the reservation leaves the
// line; if it reaches the front first, it holds the lock for at most claim
// waiting for its claimer, then expires and the lock moves on. Reserving the
// same ticket twice is harmless.
func (l *Locker) Reserve(ctx context.Context, resource, ticket, purpose string, claim time.Duration) error {
	if err := validResource(resource); err != nil {
		return err
	}
	if err := validTicket(ticket); err != nil {
		return err
	}
	if claim < 0 {
		return invalid("negative claim timeout %s", claim)
	}
	if claim == 0 {
		claim = l.cfg.ClaimTimeout
	}
	_, err := l.runIndexed(ctx, resource, scriptReserve, l.keys(resource), ticket, ms(claim), l.holder, purpose, ms(l.cfg.Grace))
	if err != nil {
		return fmt.Errorf("lock: reserve %s: %w", resource, err)
	}
	return nil
}

// runIndexed runs a script and, in the same round trip, marks resource as
// active in the index the cluster-wide summary reads (no SCAN needed).
func (l *Locker) runIndexed(ctx context.Context, resource string, s *redis.Script, keys []string, args ...any) (reply, error) {
	pipe := l.client.Pipeline()
	res := s.EvalSha(ctx, pipe, keys, args...)
	pipe.ZIncrBy(ctx, l.indexKey(), 1, resource)
	_, _ = pipe.Exec(ctx)
	v, err := res.Result()
	if err != nil && isNoScript(err) {
		return l.run(ctx, s, keys, args...)
	}
	if err != nil {
		return reply{}, err
	}
	r, err := parseReply(v)
	if err == nil {
		l.metrics.observeExpiries(r)
	}
	return r, err
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
