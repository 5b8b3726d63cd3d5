package lock

import (
	"errors"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/internal/redistest"
)

// TestForget: Forget deletes a resource's keys only when nobody holds the
// lock or waits for it; a held lock, a line or an unclaimed ticket keep
// them. A forgotten resource can be locked again, with a larger token.
func TestForget(t *testing.T) {
	srv := redistest.Start(t)
	c := newClient(t, srv)
	cfg := fastConfig()
	l := newLocker(t, c, cfg)
	ctx := t.Context()
	keys := func(resource string) []string {
		t.Helper()
		ks, err := c.Keys(ctx, "*{"+resource+"}*").Result()
		if err != nil {
			t.Fatal(err)
		}
		return ks
	}
	forget := func(resource string, want bool) {
		t.Helper()
		got, err := l.Forget(ctx, resource)
		if err != nil {
			t.Fatalf("Forget(%s): %v", resource, err)
		}
		if got != want {
			t.Fatalf("Forget(%s) = %v, want %v", resource, got, want)
		}
	}

	// Held, with a waiter in line: kept, and the line still works.
	held, err := l.Acquire(ctx, "node-1", &Options{Purpose: "deploy"})
	if err != nil {
		t.Fatal(err)
	}
	last := held.Token()
	waiter := acquireAsync(t, ctx, newLocker(t, newClient(t, srv), cfg), l, "node-1", &Options{Mode: Patient}, 1)
	forget("node-1", false)
	if len(keys("node-1")) == 0 {
		t.Fatal("Forget deleted the keys of a held lock")
	}
	mustRelease(t, held)
	next := recv(t, waiter, "waiter after a refused Forget")
	forget("node-1", false)
	if next.Token() <= last {
		t.Fatalf("token %d after %d", next.Token(), last)
	}
	last = next.Token()
	mustRelease(t, next)

	// Free: forgotten, nothing left, and the lock works again.
	forget("node-1", true)
	if ks := keys("node-1"); len(ks) != 0 {
		t.Fatalf("keys left after Forget: %v", ks)
	}
	forget("node-1", true) // nothing to forget is not an error
	if s, err := l.Snapshot(ctx, "node-1"); err != nil || !s.Empty() {
		t.Fatalf("snapshot after Forget: %+v, %v", s, err)
	}
	if sum, err := l.Summary(ctx); err != nil || len(sum) != 0 {
		t.Fatalf("summary after Forget: %+v, %v", sum, err)
	}
	again, err := l.Acquire(ctx, "node-1", nil)
	if err != nil {
		t.Fatalf("Acquire after Forget: %v", err)
	}
	if again.Token() <= last {
		t.Fatalf("token %d after Forget, want > %d", again.Token(), last)
	}
	mustRelease(t, again)

	// An unclaimed ticket holds the lock until its claim timeout; then the
	// resource is free and forgotten.
	if err := l.Reserve(ctx, "node-2", NewTicket(), "task", 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	forget("node-2", false)
	waitFor(t, 5*time.Second, "the unclaimed ticket to expire", func() bool {
		ok, err := l.Forget(ctx, "node-2")
		return err == nil && ok
	})
	if ks := keys("node-2"); len(ks) != 0 {
		t.Fatalf("keys left after Forget: %v", ks)
	}

	// A claimed ticket is remembered as spent; Forget takes that along too.
	ticket := NewTicket()
	if err := l.Reserve(ctx, "node-3", ticket, "task", 0); err != nil {
		t.Fatal(err)
	}
	claimed, err := l.Acquire(ctx, "node-3", &Options{Ticket: ticket})
	if err != nil {
		t.Fatal(err)
	}
	mustRelease(t, claimed)
	forget("node-3", true)
	if ks := keys("node-3"); len(ks) != 0 {
		t.Fatalf("keys left after Forget of a resource with a spent ticket: %v", ks)
	}

	if _, err := l.Forget(ctx, "bad{name}"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Forget of a bad name = %v, want ErrInvalid", err)
	}
}
