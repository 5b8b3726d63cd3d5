package lock

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/internal/redistest"
)

// TestSeedRace is the race that started ironfleet (Ironic commit bfc2ad56d5):
// a conductor ends one step of a deploy and must pass the node to the task
// that runs the next step, while 8 clients (a serial console, heartbeats)
// keep re-grabbing the lock for short holds. Releasing and re-acquiring in
// standard mode, as Ironic did, loses the handoff; handing the lock to the
// next task's ticket never does.
func TestSeedRace(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 2 × 30 contended handoffs; skipped by -short (make test-unit)")
	}
	srv := redistest.Start(t)
	cfg := fastConfig()
	cfg.TTL = time.Second
	cfg.ClaimTimeout = time.Second
	const rounds, pests = 30, 8
	const pestHold = 4 * time.Millisecond

	conductor := newLocker(t, newClient(t, srv), cfg)
	next := newLocker(t, newClient(t, srv), cfg)

	lost := map[string]int{}
	for _, strategy := range []string{"release-reacquire", "handoff"} {
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		for range pests {
			pest := newLocker(t, newClient(t, srv), cfg)
			wg.Go(func() {
				for ctx.Err() == nil {
					lk, err := pest.Acquire(ctx, "node", &Options{Attempts: 1, Purpose: "console"})
					if err != nil {
						continue
					}
					time.Sleep(pestHold)
					_ = lk.Release(context.WithoutCancel(ctx))
				}
			})
		}
		for range rounds {
			// The step before: the conductor holds the node (it waits in line
			// like anyone patient; the pests cannot barge past it).
			held, err := conductor.Acquire(ctx, "node", &Options{Mode: Patient, Purpose: "deploy"})
			if err != nil {
				t.Fatalf("%s: conductor Acquire: %v", strategy, err)
			}
			var claim *Options
			switch strategy {
			case "release-reacquire":
				// Ironic: release, send the next task, which acquires in
				// standard mode (3 attempts) on arrival.
				mustRelease(t, held)
				claim = &Options{Purpose: "continue_deploy", Attempts: 3, Interval: 5 * time.Millisecond}
			case "handoff":
				ticket := NewTicket()
				if _, err := held.Handoff(ctx, ticket, 0); err != nil {
					t.Fatalf("Handoff: %v", err)
				}
				claim = &Options{Purpose: "continue_deploy", Ticket: ticket, Attempts: 3, Interval: 5 * time.Millisecond}
			}
			time.Sleep(time.Millisecond) // the task crossing the bus
			lk, err := next.Acquire(ctx, "node", claim)
			if errors.Is(err, ErrLocked) {
				lost[strategy]++
				continue
			}
			if err != nil {
				t.Fatalf("%s: next step Acquire: %v", strategy, err)
			}
			mustRelease(t, lk)
		}
		cancel()
		wg.Wait()
	}
	t.Logf("handoffs lost out of %d: release-reacquire %d, handoff %d", rounds, lost["release-reacquire"], lost["handoff"])
	if lost["release-reacquire"] == 0 {
		t.Errorf("release-then-reacquire lost no handoff in %d rounds against %d pests: the test no longer shows the race", rounds, pests)
	}
	if lost["handoff"] != 0 {
		t.Errorf("handoff to a ticket lost %d of %d handoffs, want 0", lost["handoff"], rounds)
	}
}

// TestSnapshotAndSummary: the lock view shows holder, purpose, since and the
// line with waits; the summary lists busy resources, longest line first, and
// forgets idle ones.
func TestSnapshotAndSummary(t *testing.T) {
	srv := redistest.Start(t)
	c := newClient(t, srv)
	cfg := fastConfig()
	cfg.TTL = 5 * time.Second
	cfg.Holder = "conductor-1"
	l := newLocker(t, c, cfg)
	ctx := t.Context()

	a, err := l.Acquire(ctx, "node-a", &Options{Purpose: "deploy"})
	if err != nil {
		t.Fatal(err)
	}
	w1 := acquireAsync(t, ctx, l.WithHolder("conductor-2"), l, "node-a", &Options{Mode: Patient, Purpose: "power"}, 1)
	w2 := acquireAsync(t, ctx, l.WithHolder("conductor-3"), l, "node-a", &Options{Mode: Patient, Purpose: "clean"}, 2)
	b, err := l.Acquire(ctx, "node-b", &Options{Purpose: "inspect"})
	if err != nil {
		t.Fatal(err)
	}
	idle, err := l.Acquire(ctx, "node-c", nil)
	if err != nil {
		t.Fatal(err)
	}
	mustRelease(t, idle)

	s, err := l.Snapshot(ctx, "node-a")
	if err != nil {
		t.Fatal(err)
	}
	if !s.Held || s.Holder != "conductor-1" || s.Purpose != "deploy" || s.Mode != "standard" || s.Since.After(s.At) {
		t.Fatalf("snapshot holder = %+v", s)
	}
	if len(s.Line) != 2 || s.Line[0].Holder != "conductor-2" || s.Line[0].Purpose != "power" ||
		s.Line[1].Holder != "conductor-3" || s.Line[0].Waited < s.Line[1].Waited {
		t.Fatalf("snapshot line = %+v, want conductor-2 (power) then conductor-3 (clean), first waiting longest", s.Line)
	}

	// Snapshots reads several in one pipeline, in the order asked, the
	// same as one Snapshot each; after a SCRIPT FLUSH too.
	for _, flush := range []bool{false, true} {
		if flush {
			if err := c.ScriptFlush(ctx).Err(); err != nil {
				t.Fatal(err)
			}
		}
		many, err := l.Snapshots(ctx, []string{"node-b", "node-c", "node-a"})
		if err != nil {
			t.Fatal(err)
		}
		if len(many) != 3 || many[0].Holder != "conductor-1" || many[0].Purpose != "inspect" || many[1].Held ||
			many[1].Resource != "node-c" || many[2].Holder != s.Holder || len(many[2].Line) != len(s.Line) {
			t.Fatalf("flush %t: snapshots = %+v, want node-b held for inspect, node-c free, node-a as Snapshot read it", flush, many)
		}
	}
	if _, err := l.Snapshots(ctx, []string{"node-a", ""}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("snapshots of an empty resource: err = %v, want ErrInvalid", err)
	}

	sum, err := l.Summary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range sum {
		got = append(got, s.Resource)
	}
	if len(got) != 2 || got[0] != "node-a" || got[1] != "node-b" {
		t.Fatalf("summary resources = %v, want [node-a node-b]", got)
	}
	if members, _ := c.ZRange(ctx, l.indexKey(), 0, -1).Result(); len(members) != 2 {
		t.Fatalf("index after summary = %v, want the idle node-c pruned", members)
	}

	mustRelease(t, a)
	mustRelease(t, recv(t, w1, "w1"))
	mustRelease(t, recv(t, w2, "w2"))
	mustRelease(t, b)
	if sum, _ := l.Summary(ctx); len(sum) != 0 {
		t.Fatalf("summary after everything released = %+v, want empty", sum)
	}
}
