package transport

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ironfleet/ironfleet/internal/wait"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// Delivery describes one delivery of a task to a handler.
type Delivery struct {
	// NumDelivered counts deliveries of this task, this one included (1 on the first).
	NumDelivered uint64
	// Last is true on the last delivery the bus will make (MaxDeliver):
	// a Retry now terminates the task with a task.dead event.
	Last bool
	// StreamSeq is the task's sequence in TASKS.
	StreamSeq uint64
	// Published is when JetStream stored the task.
	Published time.Time
}

type outcomeKind int

const (
	outcomeAck outcomeKind = iota
	outcomeRetry
	outcomeFail
)

// Outcome is what a handler says about a task; the consume loop maps it onto
// a JetStream acknowledgement. Build one with Done, Retry or Fail.
type Outcome struct {
	kind  outcomeKind
	delay time.Duration
	err   error
}

// Done acknowledges the task: its work is complete (or was already done by an
// earlier delivery). The zero Outcome is Done.
func Done() Outcome { return Outcome{kind: outcomeAck} }

// Retry asks for the task to be delivered again after delay (NakWithDelay);
// a delay of 0 means the consumer's RetryDelays schedule. On the last
// delivery the task is terminated instead and a task.dead event carrying
// err's code and message is published.
func Retry(delay time.Duration, err error) Outcome {
	return Outcome{kind: outcomeRetry, delay: max(delay, 0), err: err}
}

// Fail terminates the task (Term) without further deliveries and publishes a
// task.dead event with err's code (wire.CodeOf) and message.
func Fail(err error) Outcome { return Outcome{kind: outcomeFail, err: err} }

// Handler runs one task. ctx is cancelled when Consume stops. While it runs,
// the loop tells JetStream the task is in progress so it is not redelivered.
// Handlers must be idempotent by task ID: delivery is at least once.
type Handler func(ctx context.Context, t wire.Task, d Delivery) Outcome

// ConsumeConfig tunes one Consume loop. Every zero value means the documented default.
type ConsumeConfig struct {
	// Concurrency is how many handlers run at once; 0 means 1.
	Concurrency int
	// Prefetch is how many tasks are pulled ahead of the handlers; 0 means
	// 2×Concurrency. Prefetched tasks count against MaxAckPending.
	Prefetch int
	// RetryDelays is the delay schedule of Retry(0, …): the n-th delivery's
	// retry waits RetryDelays[n-1], the last repeating; empty means 1s, 5s, 30s.
	RetryDelays []time.Duration
	// InProgressEvery is how often a running handler's task is marked in
	// progress; 0 means a third of the shortest ack wait.
	InProgressEvery time.Duration
	// ConfirmAcks makes every ack wait for the server's confirmation
	// (DoubleAck), so a lost ack is logged. It halves consume throughput
	// and buys no safety the loop lacks without it: an unconfirmed ack is
	// buffered by the client across a reconnect, and a task whose ack was
	// lost anyway is redelivered and recognised as done (see Remember).
	ConfirmAcks bool
	// AckTimeout bounds each confirmed ack and each task.dead publish; 0 means 5s.
	AckTimeout time.Duration
	// PullExpiry is how long one pull request waits on the server; the
	// server heartbeats at half of it, and a missing heartbeat (the server
	// or the consumer's leader went away) makes the loop re-create its
	// pull at once. 0 means 30s; at least 1s.
	PullExpiry time.Duration
	// RestartDelay is the pause before the loop re-creates its consumer
	// after an error (a deleted consumer, a lost leader); 0 means 500ms.
	RestartDelay time.Duration
	// Remember is how many completed task IDs the loop keeps to ack a
	// redelivery of a task it already completed without running it again; 0
	// means 10000.
	Remember int
	// Conductor names this consumer in the events it publishes.
	Conductor string
}

func (c *ConsumeConfig) setDefaults(b *Bus) {
	if c.Concurrency <= 0 {
		c.Concurrency = 1
	}
	if c.Prefetch <= 0 {
		c.Prefetch = 2 * c.Concurrency
	}
	if len(c.RetryDelays) == 0 {
		c.RetryDelays = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second}
	}
	if c.InProgressEvery <= 0 {
		c.InProgressEvery = max(b.minAckWait()/3, time.Millisecond)
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = 5 * time.Second
	}
	if c.PullExpiry <= 0 {
		c.PullExpiry = 30 * time.Second
	}
	if c.RestartDelay <= 0 {
		c.RestartDelay = 500 * time.Millisecond
	}
	if c.Remember <= 0 {
		c.Remember = 10000
	}
}

// Consume runs h on the tasks of group until ctx ends, sharing the group's
// durable consumer with every other conductor consuming that group. It
// returns nil when ctx ends (after the running handlers return and their
// tasks are settled), or an error when its configuration is invalid.
//
// Outcome mapping: Done → Ack (waiting for the server's confirmation only
// with ConfirmAcks); Retry → NakWithDelay, or on the last delivery Term plus
// a task.dead event; Fail → Term plus a task.dead event; a handler still
// running → InProgress at least every InProgressEvery after its first
// interval; the loop stopping → Nak. A message that is too large, of an
// unknown version or that does not decode is terminated with a task.dead
// event saying why. A handler that panics is treated as Retry with code
// internal. The package documentation has the whole table.
func (b *Bus) Consume(ctx context.Context, group string, h Handler, cfg ConsumeConfig) error {
	if h == nil {
		return errors.New("transport: Consume: nil handler")
	}
	if _, err := groupToken(group); err != nil {
		return err
	}
	cfg.setDefaults(b)
	if cfg.PullExpiry < time.Second {
		return fmt.Errorf("transport: ConsumeConfig.PullExpiry %s: at least 1s", cfg.PullExpiry)
	}
	l := &loop{
		b: b, group: group, h: h, cfg: cfg,
		work:     make(chan jetstream.Msg),
		done:     newRecent(cfg.Remember),
		running:  map[string]*runningTask{},
		counters: map[string]prometheus.Counter{},
	}
	// A fixed pool of handlers, cheaper per task than a goroutine each;
	// with Concurrency 1 the pull loop runs the handler itself.
	workers := cfg.Concurrency
	if workers == 1 {
		workers = 0
	}
	for range workers {
		l.wg.Go(func() {
			for msg := range l.work {
				l.handle(ctx, msg)
			}
		})
	}
	// In-progress ticks run until every handler has returned.
	ipctx, ipstop := context.WithCancel(context.WithoutCancel(ctx))
	var ipwg sync.WaitGroup
	ipwg.Go(func() { l.keepInProgress(ipctx) })
	defer func() { close(l.work); l.wg.Wait(); ipstop(); ipwg.Wait() }()
	for ctx.Err() == nil {
		err := l.run(ctx)
		if err == nil || ctx.Err() != nil {
			break
		}
		b.log.Warn("task consumer restarting", "group", group, "err", err, "in", cfg.RestartDelay)
		_ = wait.Sleep(ctx, cfg.RestartDelay)
	}
	return nil
}

type loop struct {
	b     *Bus
	group string
	h     Handler
	cfg   ConsumeConfig
	work  chan jetstream.Msg // to the handler pool
	wg    sync.WaitGroup
	done  *recent

	mu      sync.Mutex
	running map[string]*runningTask // task ID → its message, while a handler runs

	cmu      sync.Mutex
	counters map[string]prometheus.Counter

	tick atomic.Uint64 // in-progress ticks so far
}

// run pulls from the group's consumer until ctx ends (nil) or the iterator
// fails (the error; the caller restarts).
func (l *loop) run(ctx context.Context) error {
	cons, err := l.b.ensureConsumer(ctx, l.group)
	if err != nil {
		return err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(l.cfg.Prefetch), jetstream.PullExpiry(l.cfg.PullExpiry))
	if err != nil {
		return fmt.Errorf("transport: pull: %w", err)
	}
	quit, stopped := make(chan struct{}), make(chan struct{})
	defer func() { close(quit); <-stopped }()
	go func() {
		defer close(stopped)
		select {
		case <-ctx.Done():
			// Drain: tasks already pulled are handed back below, not left
			// to time out.
			it.Drain()
		case <-quit:
			it.Stop()
		}
	}()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// Including a missing heartbeat: our pull is gone with the server
			// or the consumer's leader; start over rather than wait it out.
			return fmt.Errorf("transport: next task: %w", err)
		}
		if ctx.Err() != nil {
			// Pulled but not started: give it back at once.
			l.settle(msg, func(m jetstream.Msg) error { return m.Nak() }, "nak")
			continue
		}
		if l.cfg.Concurrency == 1 {
			l.handle(ctx, msg) // no hand-off: one context switch less per task
			continue
		}
		select {
		case l.work <- msg:
		case <-ctx.Done():
			l.settle(msg, func(m jetstream.Msg) error { return m.Nak() }, "nak")
		}
	}
}

// handle runs one delivered message through decode, the handler and the
// outcome mapping.
func (l *loop) handle(ctx context.Context, msg jetstream.Msg) {
	actx := context.WithoutCancel(ctx) // settling must happen even while stopping
	md, err := msg.Metadata()
	if err != nil {
		// Not a JetStream message: nothing to ack.
		l.b.log.Warn("task without JetStream metadata", "subject", msg.Subject(), "err", err)
		return
	}
	d := Delivery{
		NumDelivered: md.NumDelivered,
		Last:         md.NumDelivered >= uint64(l.b.cfg.MaxDeliver), //nolint:gosec // MaxDeliver > 0
		StreamSeq:    md.Sequence.Stream,
		Published:    md.Timestamp,
	}
	if n := len(msg.Data()); n > l.b.cfg.MaxTaskBytes {
		l.dead(actx, msg, d, wire.Task{ID: msg.Headers().Get("Nats-Msg-Id")},
			wire.Errorf(wire.CodeInvalidInput, "%w: %d bytes, the limit is %d", ErrTooLarge, n, l.b.cfg.MaxTaskBytes))
		return
	}
	t, err := DecodeTask(msg.Data())
	if err != nil {
		if t.ID == "" {
			t.ID = msg.Headers().Get("Nats-Msg-Id")
		}
		l.dead(actx, msg, d, t, err)
		return
	}
	if l.done.has(t.ID) {
		// Completed here before, and the ack was lost: ack, do not redo.
		l.settle(msg, l.ack, "skip")
		return
	}
	l.mu.Lock()
	if l.running[t.ID] != nil {
		l.mu.Unlock()
		// The ack wait passed while this very task runs here: keep it ours.
		_ = msg.InProgress()
		l.count("skip")
		return
	}
	l.running[t.ID] = &runningTask{msg: msg, tick: l.tick.Load()}
	l.mu.Unlock()
	defer func() { l.mu.Lock(); delete(l.running, t.ID); l.mu.Unlock() }()

	out := l.run1(ctx, t, d)
	switch {
	case out.kind == outcomeAck:
		l.done.add(t.ID)
		l.settle(msg, l.ack, "ack")
	case out.kind == outcomeFail:
		l.dead(actx, msg, d, t, out.err)
	case ctx.Err() != nil && !d.Last:
		// Stopping: hand the task back for another conductor at once.
		l.settle(msg, func(m jetstream.Msg) error { return m.Nak() }, "nak")
	case d.Last:
		err := out.err
		if err == nil {
			err = errors.New("retry requested")
		}
		l.dead(actx, msg, d, t, fmt.Errorf("gave up after %d deliveries: %w", d.NumDelivered, err))
	default:
		delay := out.delay
		if delay == 0 {
			i := min(int(d.NumDelivered)-1, len(l.cfg.RetryDelays)-1) //nolint:gosec // small
			delay = l.cfg.RetryDelays[max(i, 0)]
		}
		l.settle(msg, func(m jetstream.Msg) error { return m.NakWithDelay(delay) }, "nak")
	}
}

// run1 runs the handler (keepInProgress marks it while it runs), turning a
// panic into a Retry.
func (l *loop) run1(ctx context.Context, t wire.Task, d Delivery) (out Outcome) {
	start := time.Now()
	defer func() {
		l.b.m.handle.Observe(time.Since(start).Seconds())
		if r := recover(); r != nil {
			l.b.log.Error("task handler panicked", "task", t.ID, "panic", r, "stack", string(debug.Stack()))
			out = Retry(0, wire.Errorf(wire.CodeInternal, "transport: handler panicked: %v", r))
		}
	}()
	return l.h(ctx, t, d)
}

// runningTask is a task whose handler is running.
type runningTask struct {
	msg  jetstream.Msg
	tick uint64 // the in-progress tick count when it started
}

// keepInProgress marks every task whose handler has been running since
// before the previous tick as in progress, each InProgressEvery, until ctx
// ends: one goroutine and one timer per loop instead of one per task, since
// most handlers finish before their first tick. A task is marked at most
// 2×InProgressEvery after it starts (⅔ of the ack wait by default), then
// every InProgressEvery.
func (l *loop) keepInProgress(ctx context.Context) {
	tick := time.NewTicker(l.cfg.InProgressEvery)
	defer tick.Stop()
	var due []jetstream.Msg
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := l.tick.Add(1)
		due = due[:0]
		l.mu.Lock()
		for _, r := range l.running {
			if r.tick < now-1 {
				due = append(due, r.msg)
			}
		}
		l.mu.Unlock()
		for _, m := range due {
			_ = m.InProgress() // best effort; a lost one only risks a redelivery we detect
		}
	}
}

// dead publishes a task.dead event for t and terminates msg. If the event
// cannot be published the task is handed back (NakWithDelay) instead, so it
// never disappears without its event.
func (l *loop) dead(ctx context.Context, msg jetstream.Msg, d Delivery, t wire.Task, why error) {
	code := wire.CodeOf(why)
	msgText := "terminated"
	if why != nil {
		msgText = why.Error()
	}
	ev := wire.TaskEvent(wire.EventTaskDead, t)
	// One task.dead per delivery, however often the publish is retried.
	ev.ID = fmt.Sprintf("dead-%d-%d", d.StreamSeq, d.NumDelivered)
	ev.Conductor, ev.Code, ev.Message = l.cfg.Conductor, code, msgText
	if checkToken("event node", ev.Node) != nil {
		ev.Node = "" // an undecodable envelope's node is not to be trusted as a subject
	}
	pctx, cancel := context.WithTimeout(ctx, l.cfg.AckTimeout)
	err := l.b.PublishEvent(pctx, ev)
	cancel()
	if err != nil {
		l.b.log.Error("cannot publish task.dead; handing the task back", "task", t.ID, "err", err)
		l.settle(msg, func(m jetstream.Msg) error { return m.NakWithDelay(l.cfg.RetryDelays[0]) }, "nak")
		return
	}
	l.b.m.dead.Inc()
	l.settle(msg, func(m jetstream.Msg) error { return m.TermWithReason(string(code)) }, "term")
}

// settle sends an acknowledgement and counts it; a failure is logged (the
// server redelivers after the ack wait, and the done set recognises it).
func (l *loop) settle(msg jetstream.Msg, f func(jetstream.Msg) error, outcome string) {
	if err := f(msg); err != nil {
		l.b.log.Warn("task acknowledgement failed", "outcome", outcome, "subject", msg.Subject(), "err", err)
		outcome += "_failed"
	}
	l.count(outcome)
}

// ack acknowledges msg, waiting for the server's confirmation (at most
// AckTimeout) only with ConfirmAcks.
func (l *loop) ack(m jetstream.Msg) error {
	if !l.cfg.ConfirmAcks {
		return m.Ack()
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.AckTimeout)
	defer cancel()
	return m.DoubleAck(ctx)
}

// count increments the outcome counter, resolving each label once.
func (l *loop) count(outcome string) {
	l.cmu.Lock()
	c, ok := l.counters[outcome]
	if !ok {
		g, _ := groupToken(l.group)
		c = l.b.m.outcomes.WithLabelValues(g, outcome)
		l.counters[outcome] = c
	}
	l.cmu.Unlock()
	c.Inc()
}

// recent is a bounded set of task IDs, forgetting the oldest first.
type recent struct {
	mu   sync.Mutex
	set  map[string]struct{}
	ring []string
	next int
}

func newRecent(n int) *recent {
	return &recent{set: make(map[string]struct{}, n), ring: make([]string, n)}
}

func (r *recent) add(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.set[id]; ok {
		return
	}
	if old := r.ring[r.next]; old != "" {
		delete(r.set, old)
	}
	r.ring[r.next] = id
	r.set[id] = struct{}{}
	r.next = (r.next + 1) % len(r.ring)
}

func (r *recent) has(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.set[id]
	return ok
}
