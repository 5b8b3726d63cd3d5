package lock

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/internal/redistest"
)

// changes records what Config.OnChange is told.
type changes struct {
	mu  sync.Mutex
	got []Change
}

func (c *changes) observe(ch Change) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, ch)
}

// take waits until a change matching want (Token is matched only when
// want's is set) was reported and removes it. Changes made by different
// goroutines may be reported in either order, so it looks at them all.
func (c *changes) take(t *testing.T, want Change) Change {
	t.Helper()
	var found Change
	waitFor(t, 5*time.Second, fmt.Sprintf("change %s %s by %s", want.Kind, want.Resource, want.Holder), func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		i := slices.IndexFunc(c.got, func(g Change) bool {
			w := want
			if w.Token == 0 {
				w.Token = g.Token
			}
			return g == w
		})
		if i < 0 {
			return false
		}
		found = c.got[i]
		c.got = slices.Delete(c.got, i, i+1)
		return true
	})
	return found
}

// none fails t if changes were reported that no take accounted for.
func (c *changes) none(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.got) > 0 {
		t.Fatalf("unexpected changes reported: %+v", c.got)
	}
}

// TestOnChange: a Locker reports the grants, queueing, leaving, releases
// and handoffs it makes, in both modes, and nothing for a standard-mode
// acquire that found the lock held (it changed nothing).
func TestOnChange(t *testing.T) {
	srv := redistest.Start(t)
	rec := &changes{}
	cfg := fastConfig()
	cfg.OnChange = rec.observe
	base := newLocker(t, newClient(t, srv), cfg)
	other := newLocker(t, newClient(t, srv), cfg) // another process
	a, b, c, d, e := base.WithHolder("a"), other.WithHolder("b"), base.WithHolder("c"), other.WithHolder("d"), base.WithHolder("e")
	ctx := t.Context()

	held, err := a.Acquire(ctx, "r", &Options{Purpose: "deploy"})
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.take(t, Change{Kind: Acquired, Resource: "r", Holder: "a", Purpose: "deploy", Mode: Standard}); got.Token != held.Token() {
		t.Errorf("Acquired token %d, want the grant's %d", got.Token, held.Token())
	}

	// Patient: joins the line once, however often it re-checks.
	waiter := acquireAsync(t, ctx, b, base, "r", &Options{Mode: Patient, Purpose: "console"}, 1)
	rec.take(t, Change{Kind: Queued, Resource: "r", Holder: "b", Purpose: "console", Mode: Patient})

	// Standard mode, lock held: refused, nothing changed.
	if _, err := c.Acquire(ctx, "r", &Options{Purpose: "power", Attempts: 1}); !errors.Is(err, ErrLocked) {
		t.Fatalf("standard acquire of a held lock: %v, want ErrLocked", err)
	}

	// A patient waiter giving up leaves the line.
	gctx, giveUp := context.WithCancel(ctx)
	quitter := acquireAsync(t, gctx, d, base, "r", &Options{Mode: Patient, Purpose: "inspect"}, 2)
	rec.take(t, Change{Kind: Queued, Resource: "r", Holder: "d", Purpose: "inspect", Mode: Patient})
	giveUp()
	if q := <-quitter; q.err == nil {
		t.Fatal("a cancelled waiter was granted")
	}
	rec.take(t, Change{Kind: Left, Resource: "r", Holder: "d", Purpose: "inspect", Mode: Patient})

	// Release passes the lock to the head of the line, which reports its grant.
	mustRelease(t, held)
	rec.take(t, Change{Kind: Released, Resource: "r", Holder: "a", Purpose: "deploy", Mode: Standard, Passed: true})
	next := recv(t, waiter, "patient waiter")
	rec.take(t, Change{Kind: Acquired, Resource: "r", Holder: "b", Purpose: "console", Mode: Patient, Token: next.Token()})

	// Handoff to a ticket, its claim, and a release with nobody waiting.
	ticket := NewTicket()
	tok, err := next.Handoff(ctx, ticket, 0)
	if err != nil {
		t.Fatal(err)
	}
	rec.take(t, Change{Kind: HandedOff, Resource: "r", Holder: "b", Purpose: "console", Mode: Patient, Token: tok})
	claimed, err := e.Acquire(ctx, "r", &Options{Ticket: ticket, Purpose: "next-step"})
	if err != nil {
		t.Fatal(err)
	}
	rec.take(t, Change{Kind: Acquired, Resource: "r", Holder: "e", Purpose: "next-step", Mode: Standard, Token: claimed.Token()})
	mustRelease(t, claimed)
	rec.take(t, Change{Kind: Released, Resource: "r", Holder: "e", Purpose: "next-step", Mode: Standard})
	rec.none(t)
}
