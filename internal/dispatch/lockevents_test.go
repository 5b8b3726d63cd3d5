package dispatch_test

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ironfleet/ironfleet/internal/dispatch"
	"github.com/ironfleet/ironfleet/internal/natstest"
	"github.com/ironfleet/ironfleet/internal/redistest"
	"github.com/ironfleet/ironfleet/lock"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// TestLockEvents: a Locker wired to LockEvents puts each change it makes to
// a node's lock on EVENTS, naming the node, holder and purpose, in both
// modes; a handoff is left to the Dispatcher's lock.handoff.
func TestLockEvents(t *testing.T) {
	ctx := t.Context()
	ns := natstest.Start(t)
	bus, err := transport.NewBus(ctx, ns.Conn(t), transport.BusConfig{})
	if err != nil {
		t.Fatal(err)
	}
	opts := redistest.Start(t).Options()
	opts.ContextTimeoutEnabled = true
	rc := redis.NewClient(opts)
	t.Cleanup(func() { _ = rc.Close() })
	evs := dispatch.NewLockEvents(bus, slog.New(slog.DiscardHandler))
	locks, err := lock.New(ctx, rc, lock.Config{TTL: 2 * time.Second, Holder: "test", OnChange: evs.Observe})
	if err != nil {
		t.Fatal(err)
	}
	node := wire.NewUUID()

	held, err := locks.WithHolder("api").Acquire(ctx, node, &lock.Options{Purpose: "power"})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *lock.Lock, 1)
	go func() {
		lk, err := locks.WithHolder("pest").Acquire(ctx, node, &lock.Options{Mode: lock.Patient, Purpose: "console"})
		if err != nil {
			t.Error(err)
		}
		got <- lk
	}()
	for deadline := time.Now().Add(10 * time.Second); ; {
		sn, err := locks.Snapshot(ctx, node)
		if err != nil {
			t.Fatal(err)
		}
		if len(sn.Line) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the patient waiter never joined the line")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := held.Release(ctx); err != nil {
		t.Fatal(err)
	}
	next := <-got
	if next == nil {
		t.FailNow()
	}
	if _, err := next.Handoff(ctx, lock.NewTicket(), time.Second); err != nil {
		t.Fatal(err)
	}
	_ = locks.Close()
	evs.Close() // publishes what is still queued

	var seen []string
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err = bus.SubscribeEvents(sctx, transport.EventSubscription{Node: node}, func(ev wire.Event) {
		seen = append(seen, string(ev.Type)+" "+ev.Holder+" "+ev.Purpose)
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"lock.acquired api power",
		"lock.queued pest console",
		"lock.released api power",
		"lock.acquired pest console",
	}
	slices.Sort(seen)
	slices.Sort(want)
	if !slices.Equal(seen, want) {
		t.Errorf("events %q, want %q (in any order)", seen, want)
	}
}
