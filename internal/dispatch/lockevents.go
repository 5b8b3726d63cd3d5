package dispatch

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ironfleet/ironfleet/lock"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// EventPublisher is where LockEvents publishes (*transport.Bus).
type EventPublisher interface {
	EmitEvent(ctx context.Context, ev wire.Event) error
}

// lockEventBuffer is how many lock events may wait for their publish; past
// it they are dropped (the lock must never wait for the bus).
const lockEventBuffer = 1024

// lockEventTimeout bounds one publish.
const lockEventTimeout = 5 * time.Second

// LockEvents publishes the changes a process's Locker makes to node locks
// on the EVENTS stream, so that watchers (the web console's lock view,
// `ironfleet events`) follow locks without reading them in a loop:
// lock.acquired, lock.queued, lock.left and lock.released, naming the node,
// holder and purpose. Handoffs are not published here: the Dispatcher
// publishes lock.handoff itself, with the task the lock went to.
//
// Observe is the Locker's Config.OnChange: it never blocks, and publishes
// from one goroutine in the order the changes were observed. When the bus
// is slower than the lock, events past a buffer are dropped and logged;
// a watcher catches up at its next resync.
type LockEvents struct {
	pub  EventPublisher
	log  *slog.Logger
	ch   chan wire.Event
	stop chan struct{}
	done chan struct{}

	closeOnce sync.Once
	mu        sync.Mutex
	dropping  bool // events are being dropped: logged once per run of drops
}

// NewLockEvents starts publishing on pub what Observe is told; Close stops.
func NewLockEvents(pub EventPublisher, log *slog.Logger) *LockEvents {
	if log == nil {
		log = slog.Default()
	}
	e := &LockEvents{pub: pub, log: log, ch: make(chan wire.Event, lockEventBuffer), stop: make(chan struct{}), done: make(chan struct{})}
	go e.run()
	return e
}

// lockEventTypes maps the changes published to their event types.
var lockEventTypes = map[lock.ChangeKind]wire.EventType{
	lock.Acquired: wire.EventLockAcquired,
	lock.Queued:   wire.EventLockQueued,
	lock.Left:     wire.EventLockLeft,
	lock.Released: wire.EventLockReleased,
}

// Observe queues c's event for publishing; use it as lock.Config.OnChange.
func (e *LockEvents) Observe(c lock.Change) {
	typ, ok := lockEventTypes[c.Kind]
	if !ok {
		return
	}
	ev := wire.NewEvent(typ, c.Resource)
	ev.Holder, ev.Purpose = c.Holder, c.Purpose
	switch {
	case c.Kind == lock.Acquired:
		ev.Message = fmt.Sprintf("%s mode, fencing token %d", c.Mode, c.Token)
	case c.Kind == lock.Released && c.Passed:
		ev.Message = "passed to the head of the line"
	default:
		ev.Message = c.Mode.String() + " mode"
	}
	select {
	case <-e.stop:
		return
	default:
	}
	select {
	case e.ch <- ev:
	default:
		e.mu.Lock()
		first := !e.dropping
		e.dropping = true
		e.mu.Unlock()
		if first {
			e.log.Warn("lock events are published slower than locks change; dropping some", "node", c.Resource, "type", typ)
		}
	}
}

func (e *LockEvents) run() {
	defer close(e.done)
	for {
		select {
		case ev := <-e.ch:
			e.publish(ev)
		case <-e.stop:
			// Publish what is queued (a stopping process's last releases),
			// for at most one publish's timeout in all.
			ctx, cancel := context.WithTimeout(context.Background(), lockEventTimeout)
			defer cancel()
			for ctx.Err() == nil {
				select {
				case ev := <-e.ch:
					e.publishCtx(ctx, ev)
				default:
					return
				}
			}
			return
		}
	}
}

func (e *LockEvents) publish(ev wire.Event) {
	ctx, cancel := context.WithTimeout(context.Background(), lockEventTimeout)
	defer cancel()
	e.publishCtx(ctx, ev)
}

func (e *LockEvents) publishCtx(ctx context.Context, ev wire.Event) {
	if err := e.pub.EmitEvent(ctx, ev); err != nil {
		e.log.Debug("publishing a lock event failed", "node", ev.Node, "type", ev.Type, "err", err)
		return
	}
	e.mu.Lock()
	e.dropping = false
	e.mu.Unlock()
}

// Close stops publishing, after publishing what is queued for at most a few
// seconds. Close the Locker first.
func (e *LockEvents) Close() {
	e.closeOnce.Do(func() { close(e.stop) })
	<-e.done
}
