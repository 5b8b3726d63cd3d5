package lock

import (
	"testing"
	"time"
)

func TestParseWake(t *testing.T) {
	tests := []struct {
		name, payload, ticket string
		want                  wakeUp
	}{
		{"grant", "t1 c.1 3 1796075025730763", "t1", wakeUp{grant: true, claimer: "c.1", n: 3, token: 1796075025730763}},
		{"ticket alone (an older publisher)", "t1", "t1", wakeUp{}},
		{"ticket and token (an older publisher)", "t1 1796075025730763", "t1", wakeUp{}},
		{"run not a number", "t1 c.1 x 5", "t1", wakeUp{}},
		{"token not a number", "t1 c.1 3 1.79e15", "t1", wakeUp{}},
		{"run zero", "t1 c.1 0 5", "t1", wakeUp{}},
		{"token zero", "t1 c.1 3 0", "t1", wakeUp{}},
		{"empty", "", "", wakeUp{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ticket, w := parseWake(tt.payload)
			if ticket != tt.ticket || w != tt.want {
				t.Fatalf("parseWake(%q) = %q, %+v; want %q, %+v", tt.payload, ticket, w, tt.ticket, tt.want)
			}
		})
	}
}

// TestWakeUpTakenOnlyWhenItCanBeHeld: a grant's wake-up is held without a
// round trip only when it is this attempt's, names a run the attempt sent
// that is no older than the last one answered, and at least half of the
// lease counted from that run's sending is left; anything else only
// prompts an acquire run.
func TestWakeUpTakenOnlyWhenItCanBeHeld(t *testing.T) {
	const ttl = 300 * time.Millisecond
	now := time.Now()
	// Runs 1 and 2 answered, 3 sent and not answered (failed, or in flight).
	newAttempt := func() *attempt {
		a := &attempt{claimer: "c.1", ttl: ttl}
		a.runs.next(now.Add(-200 * time.Millisecond))
		a.runs.answered(a.runs.next(now.Add(-100 * time.Millisecond)))
		a.runs.next(now.Add(-10 * time.Millisecond))
		return a
	}
	grant := func(claimer string, n uint64) wakeUp {
		return wakeUp{grant: true, claimer: claimer, n: n, token: 7}
	}
	tests := []struct {
		name string
		w    wakeUp
		at   time.Time
		take bool
		from time.Time
	}{
		{"the last answered run", grant("c.1", 2), now, true, now.Add(-100 * time.Millisecond)},
		{"a run sent since, not answered", grant("c.1", 3), now, true, now.Add(-10 * time.Millisecond)},
		{"a prompt", wakeUp{}, now, false, time.Time{}},
		{"another attempt's claimer", grant("c.2", 2), now, false, time.Time{}},
		{"a run older than the last answered", grant("c.1", 1), now, false, time.Time{}},
		{"a run never sent", grant("c.1", 4), now, false, time.Time{}},
		{"half the lease gone", grant("c.1", 2), now.Add(ttl/2 - 100*time.Millisecond), false, time.Time{}},
		{"the lease gone", grant("c.1", 3), now.Add(ttl), false, time.Time{}},
		{"just under half the lease gone", grant("c.1", 2), now.Add(ttl/2 - 101*time.Millisecond), true, now.Add(-100 * time.Millisecond)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			from, ok := newAttempt().takes(tt.w, tt.at)
			if ok != tt.take || !from.Equal(tt.from) {
				t.Fatalf("takes(%+v) = %s, %v; want %s, %v", tt.w, from, ok, tt.from, tt.take)
			}
		})
	}
}

// TestPostKeepsTheGrant: a pending grant is not displaced by a prompt (the
// subscription reconnected), and a grant displaces what is pending.
func TestPostKeepsTheGrant(t *testing.T) {
	g1 := wakeUp{grant: true, claimer: "c.1", n: 1, token: 5}
	g2 := wakeUp{grant: true, claimer: "c.1", n: 2, token: 6}
	tests := []struct {
		name  string
		posts []wakeUp
		want  wakeUp
	}{
		{"prompt after a grant", []wakeUp{g1, {}}, g1},
		{"grant after a prompt", []wakeUp{{}, g1}, g1},
		{"grant after a grant", []wakeUp{g1, g2}, g2},
		{"prompts", []wakeUp{{}, {}}, wakeUp{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch := make(chan wakeUp, 1)
			for _, w := range tt.posts {
				post(ch, w)
			}
			if got := <-ch; got != tt.want {
				t.Fatalf("pending %+v, want %+v", got, tt.want)
			}
			if len(ch) != 0 {
				t.Fatalf("%d wake-ups still pending, want 0", len(ch))
			}
		})
	}
}

// TestRunsKeepsTheNewest: a waiter retrying without answers keeps the
// sending times of its newest maxRuns runs only; a grant naming an older
// one is not taken (it prompts a run instead).
func TestRunsKeepsTheNewest(t *testing.T) {
	now := time.Now()
	var r runs
	for range 100 {
		r.next(now)
	}
	if got := len(r.sent); got != maxRuns {
		t.Fatalf("%d runs kept, want %d", got, maxRuns)
	}
	for _, tt := range []struct {
		n    uint64
		take bool
	}{{100, true}, {100 - maxRuns + 1, true}, {100 - maxRuns, false}, {1, false}} {
		if _, ok := r.grantFrom(tt.n); ok != tt.take {
			t.Errorf("grantFrom(%d) ok = %v, want %v", tt.n, ok, tt.take)
		}
	}
}
