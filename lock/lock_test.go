package lock

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ironfleet/ironfleet/internal/redistest"
)

func TestAcquireRelease(t *testing.T) {
	srv := redistest.Start(t)
	l := newLocker(t, newClient(t, srv), fastConfig())
	ctx := t.Context()

	var last uint64
	for i := range 5 {
		lk, err := l.Acquire(ctx, "node-1", &Options{Purpose: "deploy"})
		if err != nil {
			t.Fatalf("Acquire #%d: %v", i, err)
		}
		if lk.Token() <= last {
			t.Fatalf("token #%d = %d, want > %d", i, lk.Token(), last)
		}
		last = lk.Token()
		s, err := l.Snapshot(ctx, "node-1")
		if err != nil {
			t.Fatal(err)
		}
		if !s.Held || s.Purpose != "deploy" || s.Token != lk.Token() || !s.Claimed {
			t.Fatalf("snapshot while held = %+v, want held for deploy with token %d", s, lk.Token())
		}
		mustRelease(t, lk)
		if err := lk.Release(ctx); !errors.Is(err, ErrNotHeld) {
			t.Fatalf("second Release = %v, want ErrNotHeld", err)
		}
		if cause := context.Cause(lk.Context()); !errors.Is(cause, ErrReleased) {
			t.Fatalf("context cause after Release = %v, want ErrReleased", cause)
		}
	}
	s, _ := l.Snapshot(ctx, "node-1")
	if !s.Empty() {
		t.Fatalf("snapshot after release = %+v, want empty", s)
	}
}

func TestBadInput(t *testing.T) {
	srv := redistest.Start(t)
	c := newClient(t, srv)
	l := newLocker(t, c, fastConfig())
	ctx := t.Context()
	held, err := l.Acquire(ctx, "held", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer mustRelease(t, held)

	tests := []struct {
		name string
		call func() error
	}{
		{"empty resource", func() error { _, err := l.Acquire(ctx, "", nil); return err }},
		{"oversized resource", func() error { _, err := l.Acquire(ctx, strings.Repeat("n", MaxResourceLen+1), nil); return err }},
		{"resource with hash-tag braces", func() error { _, err := l.Acquire(ctx, "a{b}", nil); return err }},
		{"resource with space", func() error { _, err := l.Acquire(ctx, "a b", nil); return err }},
		{"negative TTL", func() error { _, err := l.Acquire(ctx, "n", &Options{TTL: -time.Second}); return err }},
		{"tiny TTL", func() error { _, err := l.Acquire(ctx, "n", &Options{TTL: time.Millisecond}); return err }},
		{"negative attempts", func() error { _, err := l.Acquire(ctx, "n", &Options{Attempts: -1}); return err }},
		{"ticket with space", func() error { _, err := l.Acquire(ctx, "n", &Options{Ticket: "a b"}); return err }},
		{"oversized ticket", func() error {
			_, err := l.Acquire(ctx, "n", &Options{Ticket: strings.Repeat("t", MaxTicketLen+1)})
			return err
		}},
		{"reserve empty ticket", func() error { return l.Reserve(ctx, "n", "", "", 0) }},
		{"reserve negative claim", func() error { return l.Reserve(ctx, "n", "t", "", -time.Second) }},
		{"snapshot empty resource", func() error { _, err := l.Snapshot(ctx, ""); return err }},
		{"handoff to own ticket", func() error { _, err := held.Handoff(ctx, held.ticket, 0); return err }},
		{"handoff negative claim", func() error { _, err := held.Handoff(ctx, NewTicket(), -time.Second); return err }},
		{"handoff empty ticket", func() error { _, err := held.Handoff(ctx, "", 0); return err }},
		{"nil client", func() error { _, err := New(ctx, nil, Config{}); return err }},
		{"negative config TTL", func() error { _, err := New(ctx, c, Config{TTL: -1}); return err }},
		{"negative config attempts", func() error { _, err := New(ctx, c, Config{Attempts: -1}); return err }},
		{"prefix with brace", func() error { _, err := New(ctx, c, Config{Prefix: "x{"}); return err }},
		{"client without context deadlines", func() error {
			plain := redis.NewClient(srv.Options())
			defer plain.Close()
			_, err := New(ctx, plain, Config{})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, want ErrInvalid", err)
			}
		})
	}
	// A rejected handoff leaves the lock held.
	if s, _ := l.Snapshot(ctx, "held"); !s.Held {
		t.Fatal("lock not held after rejected handoffs")
	}
}

func TestDuplicateRegistrationIsAnError(t *testing.T) {
	srv := redistest.Start(t)
	c := newClient(t, srv)
	reg := newRegistry()
	newLocker(t, c, Config{Registerer: reg})
	if _, err := New(t.Context(), c, Config{Registerer: reg}); err == nil {
		t.Fatal("second Locker on the same registerer: got nil error, want a registration error")
	}
}

func TestStandardModeReportsHolder(t *testing.T) {
	srv := redistest.Start(t)
	c := newClient(t, srv)
	a := newLocker(t, c, Config{Holder: "conductor-a", TTL: time.Second, Interval: 5 * time.Millisecond})
	b := newLocker(t, c, Config{Holder: "console", TTL: time.Second, Interval: 5 * time.Millisecond})
	lk, err := a.Acquire(t.Context(), "node-1", &Options{Purpose: "deploy"})
	if err != nil {
		t.Fatal(err)
	}
	defer mustRelease(t, lk)

	_, err = b.Acquire(t.Context(), "node-1", &Options{Purpose: "console"})
	var le *LockedError
	if !errors.As(err, &le) || !errors.Is(err, ErrLocked) {
		t.Fatalf("Acquire of held lock = %v, want *LockedError", err)
	}
	if le.Holder != "conductor-a" || le.Purpose != "deploy" || le.Attempts != 3 {
		t.Fatalf("LockedError = %+v, want holder conductor-a, purpose deploy, 3 attempts", le)
	}
	if !strings.Contains(le.Error(), "is locked by conductor-a (deploy)") {
		t.Fatalf("message %q does not name the holder", le.Error())
	}
}

// TestWithHolder: a Locker made by WithHolder takes locks under its own
// name on its parent's connection, and its parent sees it as another holder.
func TestWithHolder(t *testing.T) {
	srv := redistest.Start(t)
	cfg := fastConfig()
	cfg.Holder = "process"
	l := newLocker(t, newClient(t, srv), cfg)
	if l.WithHolder("") != l {
		t.Fatal("WithHolder(\"\") is not the Locker itself")
	}
	c2 := l.WithHolder("conductor-2")
	lk, err := c2.Acquire(t.Context(), "node-1", &Options{Purpose: "deploy"})
	if err != nil {
		t.Fatal(err)
	}
	defer mustRelease(t, lk)
	_, err = l.Acquire(t.Context(), "node-1", &Options{Attempts: 1})
	var le *LockedError
	if !errors.As(err, &le) || le.Holder != "conductor-2" {
		t.Fatalf("Acquire of a lock held through WithHolder = %v, want *LockedError naming conductor-2", err)
	}
	if s, err := l.Snapshot(t.Context(), "node-1"); err != nil || s.Holder != "conductor-2" {
		t.Fatalf("snapshot = %+v, %v, want holder conductor-2", s, err)
	}
}

// TestFIFO: waiters are granted in the order they joined the line.
func TestFIFO(t *testing.T) {
	srv := redistest.Start(t)
	c := newClient(t, srv)
	l := newLocker(t, c, fastConfig())
	ctx := t.Context()
	first, err := l.Acquire(ctx, "n", nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	chans := make([]<-chan acquired, n)
	for i := range n {
		// Several Lockers, as several processes would be.
		w := newLocker(t, newClient(t, srv), fastConfig())
		chans[i] = acquireAsync(t, ctx, w, l, "n", &Options{Mode: Patient, Purpose: fmt.Sprint(i)}, i+1)
	}
	s, _ := l.Snapshot(ctx, "n")
	for i, w := range s.Line {
		if w.Purpose != fmt.Sprint(i) {
			t.Fatalf("line[%d] purpose = %q, want %d", i, w.Purpose, i)
		}
	}
	mustRelease(t, first)
	for i := range n {
		lk := recv(t, chans[i], fmt.Sprintf("waiter %d", i))
		// Nobody after i may have been granted yet.
		for j := i + 1; j < n; j++ {
			notGranted(t, chans[j], fmt.Sprintf("waiter %d", j), fmt.Sprintf("while %d still held the lock", i))
		}
		mustRelease(t, lk)
	}
}

// TestWakeUpIsTheGrant: the message that wakes a granted waiter names the
// acquire run whose lease the grant keeps, and the waiter, whose last run
// that is, holds the lock on reading it: no command between the release
// (or the handoff to a waiting claimer) and holding. The waiter holds the
// token granted, above the last holder's. (When the message cannot be
// taken, the waiter confirms with one acquire run:
// TestStaleWakeUpIsNotAGrant, TestWakeUpTakenOnlyWhenItCanBeHeld.)
func TestWakeUpIsTheGrant(t *testing.T) {
	srv := redistest.Start(t)
	// Long leases and fallback: neither a refresh nor a fallback re-check
	// can send a command during the test, only the wake-up can prompt one.
	cfg := Config{TTL: time.Minute, Fallback: 20 * time.Second}
	l := newLocker(t, newClient(t, srv), cfg)
	wc, wf := newFaultyClient(t, srv) // counts the commands the waiter's client sends
	w := newLocker(t, wc, cfg)
	ctx := t.Context()

	for _, how := range []string{"release", "handoff"} {
		t.Run(how, func(t *testing.T) {
			holder, err := l.Acquire(ctx, "n", nil)
			if err != nil {
				t.Fatal(err)
			}
			ticket := NewTicket()
			waiter := acquireAsync(t, ctx, w, l, "n", &Options{Mode: Patient, Ticket: ticket}, 1)
			before := wf.sent.Load()
			var handed uint64
			if how == "release" {
				mustRelease(t, holder)
			} else if handed, err = holder.Handoff(ctx, ticket, 0); err != nil {
				t.Fatal(err)
			}
			lk := recv(t, waiter, "woken waiter")
			if n := wf.sent.Load() - before; n != 0 {
				t.Errorf("woken waiter sent %d commands before holding the lock, want 0 (the wake-up is the grant)", n)
			}
			if lk.Token() <= holder.Token() || (handed != 0 && lk.Token() != handed) {
				t.Errorf("woken waiter's token %d, holder's %d, handoff's %d: want the granted one, above the holder's",
					lk.Token(), holder.Token(), handed)
			}
			mustRelease(t, lk)
		})
	}
}

// TestRetriedJoinKeepsOnePlace: a waiter whose first acquire run joined
// the line but lost its reply runs again, and finds its place instead of
// taking a second one. (The same run sent twice — go-redis retries a
// command after a broken connection — must find it too, so the first run
// of a fresh ticket cannot skip looking for it either.)
func TestRetriedJoinKeepsOnePlace(t *testing.T) {
	srv := redistest.Start(t)
	cfg := fastConfig()
	cfg.TTL = 3 * time.Second
	h := newLocker(t, newClient(t, srv), cfg)
	wc, wf := newFaultyClient(t, srv)
	w := newLocker(t, wc, cfg)
	ctx := t.Context()

	holder, err := h.Acquire(ctx, "n", nil)
	if err != nil {
		t.Fatal(err)
	}
	wf.lose.Store(1)
	ran := wf.ran.Load()
	waiter := acquireAsync(t, ctx, w, h, "n", &Options{Mode: Patient}, 1)
	// The first run (the script and the index's update, its reply lost)
	// and the retry after it.
	waitFor(t, 5*time.Second, "the waiter's retry", func() bool { return wf.ran.Load() >= ran+3 })
	if n := lineLen(t, h, "n"); n != 1 {
		t.Fatalf("line of %d after the waiter's retry, want 1", n)
	}
	mustRelease(t, holder)
	mustRelease(t, recv(t, waiter, "waiter"))
	if n := lineLen(t, h, "n"); n != 0 {
		t.Fatalf("line of %d once the waiter was granted and released, want 0", n)
	}
}

// TestNoBarging: while a patient waiter is in line, standard-mode callers
// never get the lock, not even in the instant of release.
func TestNoBarging(t *testing.T) {
	srv := redistest.Start(t)
	c := newClient(t, srv)
	cfg := fastConfig()
	cfg.Interval = time.Millisecond
	l := newLocker(t, c, cfg)
	ctx := t.Context()
	holder, err := l.Acquire(ctx, "n", nil)
	if err != nil {
		t.Fatal(err)
	}
	waiter := acquireAsync(t, ctx, newLocker(t, newClient(t, srv), cfg), l, "n", &Options{Mode: Patient}, 1)

	stop := make(chan struct{})
	barged := make(chan uint64, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		pest := newLocker(t, newClient(t, srv), cfg)
		for {
			select {
			case <-stop:
				return
			default:
			}
			lk, err := pest.Acquire(ctx, "n", &Options{Attempts: 1, Purpose: "pest"})
			if err == nil {
				barged <- lk.Token()
				_ = lk.Release(ctx)
			}
		}
	}()
	time.Sleep(20 * time.Millisecond) // let the pest hammer while the holder holds
	mustRelease(t, holder)
	lk := recv(t, waiter, "patient waiter")
	close(stop)
	<-done
	select {
	case tok := <-barged:
		t.Fatalf("a standard-mode pest got the lock (token %d) while a patient waiter was in line", tok)
	default:
	}
	mustRelease(t, lk)
}

// TestHandoffToTicket: the holder hands the lock to a ticket; nobody can take
// it in between; the ticket's claimer gets the handoff's token; a second
// claim of the same ticket (the task delivered twice) is refused.
func TestHandoffToTicket(t *testing.T) {
	srv := redistest.Start(t)
	c := newClient(t, srv)
	cfg := fastConfig()
	cfg.ClaimTimeout = 5 * time.Second
	a := newLocker(t, c, cfg)
	b := newLocker(t, newClient(t, srv), cfg)
	ctx := t.Context()

	lk, err := a.Acquire(ctx, "n", &Options{Purpose: "deploy"})
	if err != nil {
		t.Fatal(err)
	}
	ticket := NewTicket()
	tok, err := lk.Handoff(ctx, ticket, 0)
	if err != nil {
		t.Fatalf("Handoff: %v", err)
	}
	if tok <= lk.Token() {
		t.Fatalf("handoff token %d, want > holder's %d", tok, lk.Token())
	}
	if cause := context.Cause(lk.Context()); !errors.Is(cause, ErrReleased) {
		t.Fatalf("holder's context after handoff: cause %v, want ErrReleased", cause)
	}
	if err := lk.Release(ctx); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("Release after Handoff = %v, want ErrNotHeld", err)
	}
	s, _ := a.Snapshot(ctx, "n")
	if !s.Held || s.Claimed || s.Mode != "handoff" {
		t.Fatalf("snapshot after handoff = %+v, want held, unclaimed, mode handoff", s)
	}

	// A pest in standard mode cannot take it.
	if _, err := b.Acquire(ctx, "n", &Options{Attempts: 2}); !errors.Is(err, ErrLocked) {
		t.Fatalf("pest Acquire during handoff = %v, want ErrLocked", err)
	}

	claimed, err := b.Acquire(ctx, "n", &Options{Ticket: ticket, Purpose: "continue_deploy"})
	if err != nil {
		t.Fatalf("claim: %v", err)
	}
	if claimed.Token() != tok {
		t.Fatalf("claimed token %d, want the handoff's %d", claimed.Token(), tok)
	}
	if _, err := a.Acquire(ctx, "n", &Options{Ticket: ticket}); !errors.Is(err, ErrTicketClaimed) {
		t.Fatalf("duplicate claim = %v, want ErrTicketClaimed", err)
	}
	if _, err := a.Acquire(ctx, "n", &Options{Ticket: ticket, Mode: Patient}); !errors.Is(err, ErrTicketClaimed) {
		t.Fatalf("duplicate patient claim = %v, want ErrTicketClaimed", err)
	}
	mustRelease(t, claimed)
}

// TestHandoffToWaitingClaimer: the task carrying the ticket was consumed
// before the handoff happened (publish, then hand off); its consumer waits in
// line with the ticket and is pulled out ahead of everyone at the handoff.
func TestHandoffToWaitingClaimer(t *testing.T) {
	srv := redistest.Start(t)
	cfg := fastConfig()
	a := newLocker(t, newClient(t, srv), cfg)
	b := newLocker(t, newClient(t, srv), cfg)
	c := newLocker(t, newClient(t, srv), cfg)
	ctx := t.Context()

	lk, err := a.Acquire(ctx, "n", nil)
	if err != nil {
		t.Fatal(err)
	}
	other := acquireAsync(t, ctx, c, a, "n", &Options{Mode: Patient, Purpose: "other"}, 1)
	ticket := NewTicket()
	claimer := acquireAsync(t, ctx, b, a, "n", &Options{Mode: Patient, Ticket: ticket, Purpose: "continue"}, 2)

	tok, err := lk.Handoff(ctx, ticket, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := recv(t, claimer, "claimer")
	if got.Token() != tok {
		t.Fatalf("claimer token %d, want %d", got.Token(), tok)
	}
	notGranted(t, other, "the other waiter", "during the handoff")
	mustRelease(t, got)
	mustRelease(t, recv(t, other, "other waiter"))
}

func TestUnclaimedTicketExpires(t *testing.T) {
	srv := redistest.Start(t)
	cfg := fastConfig()
	cfg.ClaimTimeout = 100 * time.Millisecond
	l := newLocker(t, newClient(t, srv), cfg)
	ctx := t.Context()
	lk, err := l.Acquire(ctx, "n", nil)
	if err != nil {
		t.Fatal(err)
	}
	// The waiter's Locker runs the script that finds the ticket dead, so its
	// metrics count the expiry.
	reg := newRegistry()
	wcfg := fastConfig()
	wcfg.Registerer = reg
	waiter := acquireAsync(t, ctx, newLocker(t, newClient(t, srv), wcfg), l, "n", &Options{Mode: Patient}, 1)
	if _, err := lk.Handoff(ctx, NewTicket(), 0); err != nil {
		t.Fatal(err)
	}
	// Nobody claims the ticket: the waiter gets the lock once it expires.
	mustRelease(t, recv(t, waiter, "waiter behind an unclaimed ticket"))
	if got := counterValue(t, reg, "ironfleet_lock_expired_total", "kind", "ticket"); got < 1 {
		t.Fatalf("expired tickets = %v, want >= 1", got)
	}
}

// TestReserve: a reservation keeps its place in line until claimed, so the
// lock is taken in the order tasks were issued.
func TestReserve(t *testing.T) {
	srv := redistest.Start(t)
	cfg := fastConfig()
	cfg.ClaimTimeout = 5 * time.Second
	l := newLocker(t, newClient(t, srv), cfg)
	ctx := t.Context()

	// Free lock: a reservation is granted at once, unclaimed.
	free := NewTicket()
	if err := l.Reserve(ctx, "free", free, "task-1", 0); err != nil {
		t.Fatal(err)
	}
	if s, _ := l.Snapshot(ctx, "free"); !s.Held || s.Claimed {
		t.Fatalf("reservation of a free lock: snapshot %+v, want held unclaimed", s)
	}
	if _, err := l.Acquire(ctx, "free", &Options{Attempts: 1}); !errors.Is(err, ErrLocked) {
		t.Fatalf("Acquire past a granted reservation = %v, want ErrLocked", err)
	}
	lk, err := l.Acquire(ctx, "free", &Options{Ticket: free})
	if err != nil {
		t.Fatalf("claim granted reservation: %v", err)
	}
	mustRelease(t, lk)

	// Held lock: reserve, then a later waiter; the reservation goes first.
	holder, err := l.Acquire(ctx, "n", nil)
	if err != nil {
		t.Fatal(err)
	}
	ticket := NewTicket()
	if err := l.Reserve(ctx, "n", ticket, "task-1", 0); err != nil {
		t.Fatal(err)
	}
	if err := l.Reserve(ctx, "n", ticket, "task-1", 0); err != nil {
		t.Fatalf("reserving twice: %v", err)
	}
	later := acquireAsync(t, ctx, newLocker(t, newClient(t, srv), cfg), l, "n", &Options{Mode: Patient, Purpose: "later"}, 2)
	s, _ := l.Snapshot(ctx, "n")
	if !s.Line[0].Reserved || s.Line[1].Purpose != "later" {
		t.Fatalf("line = %+v, want the reservation first", s.Line)
	}
	claimer := acquireAsync(t, ctx, newLocker(t, newClient(t, srv), cfg), l, "n", &Options{Mode: Patient, Ticket: ticket}, 2)
	mustRelease(t, holder)
	grantedInTurn(t, claimer, later, "the reservation's claimer", "the later waiter")
}

// TestStandardClaimOfQueuedReservationLeavesIt: a standard-mode caller
// presenting a reserved ticket that is still in line is refused without
// taking the reservation over, so the reservation's patient claimer still
// gets the lock in its turn.
func TestStandardClaimOfQueuedReservationLeavesIt(t *testing.T) {
	srv := redistest.Start(t)
	cfg := fastConfig()
	cfg.ClaimTimeout = 5 * time.Second
	l := newLocker(t, newClient(t, srv), cfg)
	ctx := t.Context()
	holder, err := l.Acquire(ctx, "n", nil)
	if err != nil {
		t.Fatal(err)
	}
	ticket := NewTicket()
	if err := l.Reserve(ctx, "n", ticket, "task", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Acquire(ctx, "n", &Options{Ticket: ticket, Attempts: 2}); !errors.Is(err, ErrLocked) {
		t.Fatalf("standard claim of a queued reservation = %v, want ErrLocked", err)
	}
	claimer := acquireAsync(t, ctx, newLocker(t, newClient(t, srv), cfg), l, "n", &Options{Mode: Patient, Ticket: ticket}, 1)
	mustRelease(t, holder)
	mustRelease(t, recv(t, claimer, "patient claimer of the reservation"))
}

// TestShortTTLWaiterKeepsItsPlace: a waiter whose Options.TTL is shorter
// than its Locker's renews its place in line often enough for its own lease
// (not the Locker's fallback, a third of Config.TTL up to 1s), so it stays at
// the head, and is granted first however long the holder holds.
func TestShortTTLWaiterKeepsItsPlace(t *testing.T) {
	srv := redistest.Start(t)
	cfg := Config{TTL: 6 * time.Second, Interval: 5 * time.Millisecond} // fallback 1s
	l := newLocker(t, newClient(t, srv), cfg)
	ctx := t.Context()
	holder, err := l.Acquire(ctx, "n", nil)
	if err != nil {
		t.Fatal(err)
	}
	const short = 150 * time.Millisecond
	first := acquireAsync(t, ctx, newLocker(t, newClient(t, srv), cfg), l, "n", &Options{Mode: Patient, TTL: short, Purpose: "short"}, 1)
	second := acquireAsync(t, ctx, newLocker(t, newClient(t, srv), cfg), l, "n", &Options{Mode: Patient, Purpose: "long"}, 2)
	// Hold for several of the short lease: the short waiter must stay at
	// the head all along.
	until := time.Now().Add(5 * short)
	waitFor(t, 10*time.Second, "five short leases to pass", func() bool {
		s, err := l.Snapshot(ctx, "n")
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Line) == 0 || s.Line[0].Purpose != "short" {
			t.Fatalf("line = %+v, want the short-TTL waiter at its head", s.Line)
		}
		return time.Now().After(until)
	})
	mustRelease(t, holder)
	grantedInTurn(t, first, second, "the short-TTL waiter", "the waiter behind")
}

// TestUsedTicket: a ticket whose claimer released the lock or handed it on
// is remembered as spent for Config.TicketMemory: claiming it again (the
// task delivered again after its ack was lost) fails at once with
// ErrTicketUsed, in either mode, without waiting in line — while a ticket
// still held gives ErrTicketClaimed, and one whose claimer lost its lease
// without letting go (it may not have finished) can be claimed again.
func TestUsedTicket(t *testing.T) {
	srv := redistest.Start(t)
	cfg := fastConfig()
	cfg.ClaimTimeout = 5 * time.Second
	cfg.TicketMemory = 5 * time.Second
	api := newLocker(t, newClient(t, srv), cfg)
	other := newLocker(t, newClient(t, srv), cfg)
	reg := newRegistry()
	ccfg := cfg
	ccfg.Registerer = reg
	conductor := newLocker(t, newClient(t, srv), ccfg)
	ctx := t.Context()

	// give puts ticket where a task's claimer will find it: handed off, or
	// reserved behind nobody.
	give := map[string]func(t *testing.T, resource, ticket string){
		"handoff": func(t *testing.T, resource, ticket string) {
			lk, err := api.Acquire(ctx, resource, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := lk.Handoff(ctx, ticket, 0); err != nil {
				t.Fatal(err)
			}
		},
		"reserve": func(t *testing.T, resource, ticket string) {
			if err := api.Reserve(ctx, resource, ticket, "task", 0); err != nil {
				t.Fatal(err)
			}
		},
	}
	// end is how the first claimer lets go of the lock.
	end := map[string]func(t *testing.T, lk *Lock){
		"release": func(t *testing.T, lk *Lock) { mustRelease(t, lk) },
		"handoff": func(t *testing.T, lk *Lock) {
			if _, err := lk.Handoff(ctx, NewTicket(), 0); err != nil {
				t.Fatal(err)
			}
		},
	}
	for gname, g := range give {
		for ename, e := range end {
			t.Run(gname+" then "+ename, func(t *testing.T) {
				resource, ticket := gname+"-"+ename, NewTicket()
				g(t, resource, ticket)
				first, err := conductor.Acquire(ctx, resource, &Options{Mode: Patient, Ticket: ticket})
				if err != nil {
					t.Fatalf("first claim: %v", err)
				}
				if _, err := conductor.Acquire(ctx, resource, &Options{Ticket: ticket, Attempts: 1}); !errors.Is(err, ErrTicketClaimed) || errors.Is(err, ErrTicketUsed) {
					t.Fatalf("claim while the first claimer holds = %v, want ErrTicketClaimed", err)
				}
				e(t, first)
				if ename == "release" {
					// Someone else holds the lock now (after a handoff, the
					// next ticket does): a claim that waited in line would
					// not come back.
					busy, err := other.Acquire(ctx, resource, nil)
					if err != nil {
						t.Fatal(err)
					}
					defer mustRelease(t, busy)
				}
				for _, mode := range []Mode{Standard, Patient} {
					wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					start := time.Now()
					_, err := conductor.Acquire(wctx, resource, &Options{Mode: mode, Ticket: ticket})
					cancel()
					if !errors.Is(err, ErrTicketUsed) || errors.Is(err, ErrTicketClaimed) {
						t.Fatalf("%s claim of a spent ticket = %v after %s, want ErrTicketUsed", mode, err, time.Since(start))
					}
				}
			})
		}
	}
	if got, want := counterValue(t, reg, "ironfleet_lock_claims_total", "result", "used"), float64(2*len(give)*len(end)); got != want {
		t.Errorf("claims counted as used = %v, want %v", got, want)
	}

	t.Run("lost, not let go", func(t *testing.T) {
		ticket := NewTicket()
		give["handoff"](t, "lost", ticket)
		first, err := conductor.Acquire(ctx, "lost", &Options{Ticket: ticket})
		if err != nil {
			t.Fatal(err)
		}
		first.freeze() // the claimer dies mid-work: its lease lapses
		var again *Lock
		waitFor(t, 5*time.Second, "the dead claimer's lease to lapse", func() bool {
			again, err = conductor.Acquire(ctx, "lost", &Options{Ticket: ticket, Attempts: 1})
			return !errors.Is(err, ErrTicketClaimed)
		})
		if err != nil {
			t.Fatalf("claim after the first claimer's lease lapsed = %v, want granted (the work may not be done)", err)
		}
		mustRelease(t, again)
	})

	t.Run("yielded, not spent", func(t *testing.T) {
		ticket := NewTicket()
		give["handoff"](t, "yielded", ticket)
		first, err := conductor.Acquire(ctx, "yielded", &Options{Ticket: ticket})
		if err != nil {
			t.Fatal(err)
		}
		// The work could not be done now; the task will be retried.
		if err := first.Yield(ctx); err != nil {
			t.Fatal(err)
		}
		again, err := conductor.Acquire(ctx, "yielded", &Options{Ticket: ticket, Attempts: 1})
		if err != nil {
			t.Fatalf("claim after a yield = %v, want granted (the work is not done)", err)
		}
		mustRelease(t, again)
		if _, err := conductor.Acquire(ctx, "yielded", &Options{Ticket: ticket, Attempts: 1}); !errors.Is(err, ErrTicketUsed) {
			t.Fatalf("claim after the release that followed = %v, want ErrTicketUsed", err)
		}
	})

	t.Run("remembered for TicketMemory", func(t *testing.T) {
		mcfg := fastConfig() // ClaimTimeout 300ms
		mcfg.TicketMemory = 400 * time.Millisecond
		l := newLocker(t, newClient(t, srv), mcfg)
		ticket := NewTicket()
		lk, err := l.Acquire(ctx, "memory", &Options{Ticket: ticket})
		if err != nil {
			t.Fatal(err)
		}
		released := time.Now()
		mustRelease(t, lk)
		if _, err := l.Acquire(ctx, "memory", &Options{Ticket: ticket}); !errors.Is(err, ErrTicketUsed) {
			t.Fatalf("claim right after release = %v, want ErrTicketUsed", err)
		}
		var again *Lock
		waitFor(t, 5*time.Second, "the ticket to be forgotten", func() bool {
			again, err = l.Acquire(ctx, "memory", &Options{Ticket: ticket, Attempts: 1})
			return !errors.Is(err, ErrTicketUsed)
		})
		if err != nil {
			t.Fatalf("claim after the memory ended = %v, want granted", err)
		}
		if d := time.Since(released); d < mcfg.TicketMemory {
			t.Fatalf("ticket forgotten %s after release, want at least TicketMemory %s", d, mcfg.TicketMemory)
		}
		mustRelease(t, again)
	})
}
