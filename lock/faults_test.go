package lock

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/internal/redistest"
)

// TestLossIsCancellation: a holder that cannot renew its lease sees its
// context cancelled with ErrLost before the lease ends on the server (same
// host, same clock).
func TestLossIsCancellation(t *testing.T) {
	srv := redistest.Start(t)
	reg := newRegistry()
	cfg := fastConfig()
	cfg.Registerer = reg
	c, f := newFaultyClient(t, srv)
	l := newLocker(t, c, cfg)
	observer := newLocker(t, newClient(t, srv), fastConfig())
	lk, err := l.Acquire(t.Context(), "n", nil)
	if err != nil {
		t.Fatal(err)
	}
	cancelled := make(chan time.Time, 1)
	context.AfterFunc(lk.Context(), func() { cancelled <- time.Now() })

	f.setCut(true) // every renewal now fails
	s, err := observer.Snapshot(t.Context(), "n")
	if err != nil || !s.Held {
		t.Fatalf("snapshot = %+v, %v; want held", s, err)
	}
	var at time.Time
	select {
	case at = <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("context not cancelled after renewals failed")
	}
	if cause := context.Cause(lk.Context()); !errors.Is(cause, ErrLost) {
		t.Fatalf("cause = %v, want ErrLost", cause)
	}
	// Renewals failed from the moment the switch flipped, so the lease on the
	// server ends no later than the snapshot's expiry; the holder stopped before.
	if !at.Before(s.Expires) {
		t.Fatalf("cancelled at %s, not before the server-side expiry %s", at.Format(time.StampMicro), s.Expires.Format(time.StampMicro))
	}
	if got := counterValue(t, reg, "ironfleet_lock_leases_lost_total", "", ""); got != 1 {
		t.Fatalf("leases lost = %v, want 1", got)
	}
	if err := lk.Release(t.Context()); !errors.Is(err, ErrNotHeld) || !errors.Is(err, ErrLost) {
		t.Fatalf("Release after loss = %v, want ErrNotHeld and ErrLost", err)
	}
}

// TestDeadHolder: a holder that stops renewing (killed, or frozen by
// SIGSTOP) blocks the next waiter for at most its TTL; woken, it learns from
// Check that its lease is gone before its refresher runs, and its later
// write is rejected by fencing.
func TestDeadHolder(t *testing.T) {
	srv := redistest.Start(t)
	cfg := fastConfig()
	l := newLocker(t, newClient(t, srv), cfg)
	reg := newRegistry()
	wcfg := fastConfig()
	wcfg.Registerer = reg
	w := newLocker(t, newClient(t, srv), wcfg)
	ctx := t.Context()
	store := &fencedStore{}

	frozen, err := l.Acquire(ctx, "n", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !store.write(frozen.Token()) {
		t.Fatal("first write rejected")
	}
	frozen.freeze()
	next := recv(t, acquireAsync(t, ctx, w, l, "n", &Options{Mode: Patient}, 1), "waiter behind a dead holder")
	if next.Token() <= frozen.Token() {
		t.Fatalf("next token %d, want > %d", next.Token(), frozen.Token())
	}
	if !store.write(next.Token()) {
		t.Fatal("new holder's write rejected")
	}
	// The frozen holder wakes up. Before an effect no store can fence
	// (a BMC command) it checks its lease by its own clock, before its
	// refresher has run: the lease is gone.
	if err := frozen.Check(); !errors.Is(err, ErrLost) {
		t.Fatalf("Check of a holder woken past its lease = %v, want ErrLost", err)
	}
	if cause := context.Cause(frozen.Context()); !errors.Is(cause, ErrLost) {
		t.Fatalf("its context's cause = %v, want ErrLost", cause)
	}
	if err := next.Check(); err != nil {
		t.Fatalf("Check of the live holder = %v, want nil", err)
	}
	// It writes anyway: fencing rejects it.
	if store.write(frozen.Token()) {
		t.Fatal("stale holder's write accepted")
	}
	if got := counterValue(t, reg, "ironfleet_lock_expired_total", "kind", "holder"); got != 1 {
		t.Fatalf("expired holders = %v, want 1", got)
	}
	mustRelease(t, next)
}

// TestDeadWaiters: a waiter that dies at the head or in the middle of the
// line stops blocking those behind it within its TTL.
func TestDeadWaiters(t *testing.T) {
	for _, tt := range []struct {
		name string
		dead int // index in the line of the waiter that dies
	}{{"head", 0}, {"middle", 1}} {
		t.Run(tt.name, func(t *testing.T) {
			srv := redistest.Start(t)
			cfg := fastConfig()
			l := newLocker(t, newClient(t, srv), cfg)
			ctx := t.Context()
			holder, err := l.Acquire(ctx, "n", nil)
			if err != nil {
				t.Fatal(err)
			}
			var live []<-chan acquired
			var kill *faults
			for i := range 3 {
				c, f := newFaultyClient(t, srv)
				wctx, cancel := context.WithCancel(ctx)
				defer cancel()
				ch := acquireAsync(t, wctx, newLocker(t, c, cfg), l, "n", &Options{Mode: Patient}, i+1)
				if i == tt.dead {
					kill = f
					continue
				}
				live = append(live, ch)
			}
			kill.setCut(true) // the waiter can no longer renew or leave
			mustRelease(t, holder)
			for _, ch := range live {
				mustRelease(t, recv(t, ch, "live waiter"))
			}
		})
	}
}

// TestLostWakeMessage: a waiter whose wake-up message never arrives is still
// granted, by its fallback re-check.
func TestLostWakeMessage(t *testing.T) {
	srv := redistest.Start(t)
	cfg := fastConfig()
	l := newLocker(t, newClient(t, srv), cfg)
	deaf := newLocker(t, deafClient{newClient(t, srv)}, cfg)
	ctx := t.Context()
	holder, err := l.Acquire(ctx, "n", nil)
	if err != nil {
		t.Fatal(err)
	}
	waiter := acquireAsync(t, ctx, deaf, l, "n", &Options{Mode: Patient}, 1)
	mustRelease(t, holder)
	mustRelease(t, recv(t, waiter, "deaf waiter"))
}

// TestPubSubReconnect: the wake-up connection is killed while a waiter
// waits; it reconnects and the waiter is granted.
func TestPubSubReconnect(t *testing.T) {
	srv := redistest.Start(t)
	cfg := fastConfig()
	cfg.Fallback = 100 * time.Millisecond
	admin := newClient(t, srv)
	l := newLocker(t, newClient(t, srv), cfg)
	w := newLocker(t, newClient(t, srv), cfg)
	ctx := t.Context()
	holder, err := l.Acquire(ctx, "n", nil)
	if err != nil {
		t.Fatal(err)
	}
	waiter := acquireAsync(t, ctx, w, l, "n", &Options{Mode: Patient}, 1)
	if n, err := admin.ClientKillByFilter(ctx, "TYPE", "pubsub").Result(); err != nil || n < 2 {
		t.Fatalf("CLIENT KILL TYPE pubsub = %d, %v; want both lockers' subscriptions killed", n, err)
	}
	mustRelease(t, holder)
	mustRelease(t, recv(t, waiter, "waiter after its subscription was killed"))
}

// TestRedisUnreachable: with Redis gone, every call returns an error within
// the caller's deadline; nothing hangs.
func TestRedisUnreachable(t *testing.T) {
	srv := redistest.Start(t)
	cfg := fastConfig()
	l := newLocker(t, newClient(t, srv), cfg)
	held, err := l.Acquire(t.Context(), "held", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	calls := map[string]func(ctx context.Context) error{
		"standard acquire": func(ctx context.Context) error { _, err := l.Acquire(ctx, "n", nil); return err },
		"patient acquire":  func(ctx context.Context) error { _, err := l.Acquire(ctx, "n", &Options{Mode: Patient}); return err },
		"reserve":          func(ctx context.Context) error { return l.Reserve(ctx, "n", NewTicket(), "", 0) },
		"snapshot":         func(ctx context.Context) error { _, err := l.Snapshot(ctx, "n"); return err },
		"summary":          func(ctx context.Context) error { _, err := l.Summary(ctx); return err },
		"release":          func(ctx context.Context) error { return held.Release(ctx) },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- call(ctx) }()
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("got nil error with Redis down")
				}
			case <-time.After(10 * time.Second):
				t.Fatal("call still blocked 10s after its 200ms deadline")
			}
		})
	}
}

// TestRedisRestart: Redis restarts while a holder holds and waiters wait.
// With the data kept, the line survives and the waiters are served in order;
// without it, the holder learns it lost the lock, the waiters are served, and
// fencing tokens keep increasing.
func TestRedisRestart(t *testing.T) {
	for _, keep := range []bool{true, false} {
		name := map[bool]string{true: "with data", false: "without data"}[keep]
		t.Run(name, func(t *testing.T) {
			srv := redistest.Start(t, redistest.WithAOF())
			cfg := fastConfig()
			cfg.TTL = 2 * time.Second
			cfg.Fallback = 50 * time.Millisecond
			l := newLocker(t, newClient(t, srv), cfg)
			ctx := t.Context()
			holder, err := l.Acquire(ctx, "n", nil)
			if err != nil {
				t.Fatal(err)
			}
			w1 := acquireAsync(t, ctx, newLocker(t, newClient(t, srv), cfg), l, "n", &Options{Mode: Patient}, 1)
			w2 := acquireAsync(t, ctx, newLocker(t, newClient(t, srv), cfg), l, "n", &Options{Mode: Patient}, 2)

			srv.Restart(t, keep)

			var first *Lock
			if keep {
				mustRelease(t, holder)
				first = recv(t, w1, "first waiter")
				notGranted(t, w2, "second waiter", "before the first, out of order")
			} else {
				select {
				case <-holder.Context().Done():
				case <-time.After(10 * time.Second):
					t.Fatal("holder not told it lost the lock after Redis lost its data")
				}
				if cause := context.Cause(holder.Context()); !errors.Is(cause, ErrLost) {
					t.Fatalf("holder cause = %v, want ErrLost", cause)
				}
				// Both waiters re-join the line; either may be first now.
				select {
				case a := <-w1:
					first, w1 = a.lk, w2
				case a := <-w2:
					first = a.lk
				case <-time.After(10 * time.Second):
					t.Fatal("no waiter granted after the restart")
				}
			}
			if first.Token() <= holder.Token() {
				t.Fatalf("token after restart %d, want > %d", first.Token(), holder.Token())
			}
			mustRelease(t, first)
			if keep {
				mustRelease(t, recv(t, w2, "second waiter"))
			} else {
				mustRelease(t, recv(t, w1, "other waiter"))
			}
		})
	}
}

// TestScriptFlush: scripts are run by EVALSHA and loaded again when Redis
// no longer has them.
func TestScriptFlush(t *testing.T) {
	srv := redistest.Start(t)
	c := newClient(t, srv)
	l := newLocker(t, c, fastConfig())
	for range 2 {
		lk, err := l.Acquire(t.Context(), "n", nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.ScriptFlush(t.Context()).Err(); err != nil {
			t.Fatal(err)
		}
		mustRelease(t, lk)
		if _, err := l.Summary(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := c.ScriptFlush(t.Context()).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// fencedStore accepts a write only with a token at least as high as the
// last one it accepted, as the node inventory does.
type fencedStore struct {
	mu       sync.Mutex
	last     uint64
	accepted []uint64 // the tokens of the writes accepted, in order
	rejected int
}

func (s *fencedStore) write(token uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if token < s.last {
		s.rejected++
		return false
	}
	s.last = token
	s.accepted = append(s.accepted, token)
	return true
}

// TestStaleWakeUpIsNotAGrant: a waiter W whose commands fail (cut) or hang
// (its process frozen) while its pub/sub connection stays up is granted
// the lock; it cannot renew, the grant's lease lapses and the next waiter
// Y is granted. W must never hold the lock while Y does:
//   - frozen: W's wake-up waits in its process while the grant lapses.
//     When W's commands come back the message is stale and must not make
//     it a holder: W runs acquire and waits in line behind Y.
//   - cut: W reads its wake-up at once and may hold the lock from it (the
//     grant's lease, counted from W's last acquire run, is still good) or
//     read it as stale if it came too late. A W that held cannot renew:
//     by its own clock its lease ended before Y was granted (Check fails),
//     and its context ends with ErrLost.
func TestStaleWakeUpIsNotAGrant(t *testing.T) {
	for _, fault := range []string{"cut", "frozen"} {
		t.Run(fault, func(t *testing.T) {
			srv := redistest.Start(t)
			cfg := fastConfig()
			cfg.Fallback = 20 * time.Millisecond
			h := newLocker(t, newClient(t, srv), cfg)
			wc, wf := newFaultyClient(t, srv)
			w := newLocker(t, wc, cfg)
			y := newLocker(t, newClient(t, srv), cfg)
			ctx := t.Context()

			holder, err := h.Acquire(ctx, "n", nil)
			if err != nil {
				t.Fatal(err)
			}
			waiter := acquireAsync(t, ctx, w, h, "n", &Options{Mode: Patient, Purpose: "w"}, 1)
			// Fault W's commands and wait until one of its re-checks has
			// failed (or hangs): it will not get through until the fault
			// ends.
			restore := func() { wf.setCut(false) }
			if fault == "cut" {
				wf.setCut(true)
			} else {
				restore = wf.block()
			}
			waitFor(t, 5*time.Second, "the waiter's re-check to fail or hang", func() bool {
				return wf.failed.Load() > 0 || wf.held.Load() > 0
			})
			mustRelease(t, holder) // W is granted; its wake-up arrives
			next := acquireAsync(t, ctx, y, h, "n", &Options{Mode: Patient, Purpose: "y"}, 1)
			// W cannot renew: its lease lapses and Y is granted.
			ylk := recv(t, next, "next waiter, after the first one's lease lapsed")
			yHeld := time.Now()

			var early *Lock // W's Lock from the wake-up, if it took it in time
			if fault == "cut" {
				select {
				case a := <-waiter:
					if a.err != nil {
						t.Fatalf("first waiter: %v", a.err)
					}
					early = a.lk
				default:
				}
			}
			if early != nil {
				if early.Token() >= ylk.Token() {
					t.Fatalf("first waiter holds token %d, the next waiter %d: want the earlier grant", early.Token(), ylk.Token())
				}
				early.mu.Lock()
				until := early.until
				early.mu.Unlock()
				if !until.Before(yHeld) {
					t.Fatalf("first waiter's lease, by its clock, lasts until %s, after the next waiter held the lock at %s",
						until.Format(time.StampMicro), yHeld.Format(time.StampMicro))
				}
				if err := early.Check(); !errors.Is(err, ErrLost) {
					t.Fatalf("first waiter's Check once the next waiter holds: %v, want ErrLost", err)
				}
				waitFor(t, 5*time.Second, "the first waiter's context to end", func() bool { return early.Context().Err() != nil })
				if cause := context.Cause(early.Context()); !errors.Is(cause, ErrLost) {
					t.Fatalf("first waiter's context ended with %v, want ErrLost", cause)
				}
				restore()
				mustRelease(t, ylk)
				return
			}

			sentBefore := wf.sent.Load()
			restore()
			// Two successful round trips: W has re-checked, and has had the
			// chance to act on whatever its process had buffered.
			waitFor(t, 5*time.Second, "the waiter's commands to get through", func() bool {
				return len(waiter) > 0 || wf.sent.Load() >= sentBefore+2
			})
			notGranted(t, waiter, "first waiter", fmt.Sprintf("while the next waiter holds the lock (token %d, context live %v)",
				ylk.Token(), ylk.Context().Err() == nil))
			mustRelease(t, ylk)
			wlk := recv(t, waiter, "first waiter, after the next one released")
			if wlk.Token() <= ylk.Token() {
				t.Fatalf("first waiter's token %d, want > %d", wlk.Token(), ylk.Token())
			}
			mustRelease(t, wlk)
		})
	}
}

// TestLateGrantIsConfirmedAgain: a grant whose reply comes back later than
// the lease its holder could count on (the process stalled after sending
// the acquire) is not handed to the caller, who could only lose it at once:
// acquire runs again, renewing the lease, and the lock is held normally.
func TestLateGrantIsConfirmedAgain(t *testing.T) {
	for _, mode := range []Mode{Standard, Patient} {
		t.Run(mode.String(), func(t *testing.T) {
			srv := redistest.Start(t)
			cfg := fastConfig()
			c, f := newFaultyClient(t, srv)
			l := newLocker(t, c, cfg)
			f.lateBy = cfg.TTL
			f.late.Store(1)
			lk, err := l.Acquire(t.Context(), "n", &Options{Mode: mode})
			if err != nil {
				t.Fatal(err)
			}
			if got := f.sent.Load(); got < 3 {
				t.Errorf("Acquire sent %d commands, want the first acquire (and its index update) and one more", got)
			}
			sent := f.sent.Load()
			waitFor(t, 5*time.Second, "a refresh, or the lock's loss", func() bool {
				return f.sent.Load() > sent || lk.Context().Err() != nil
			})
			if cause := context.Cause(lk.Context()); cause != nil {
				t.Fatalf("lock ended with cause %v before its first refresh: it was handed over already stale", cause)
			}
			mustRelease(t, lk)
		})
	}
}
