package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ironfleet/ironfleet/transport/wire"
)

// DefaultReplicas is how many replicas the streams and KV buckets get when
// their config says 0 (BusConfig, InventoryConfig, RegistryConfig): one, as
// on a single server. Use 3 on a 3-node cluster.
const DefaultReplicas = 1

// Defaults of BusConfig, applied where a field is zero.
const (
	DefaultDuplicates    = 2 * time.Minute
	DefaultEventsMaxAge  = 7 * 24 * time.Hour
	DefaultMaxTaskBytes  = 256 << 10
	DefaultAckWait       = 30 * time.Second
	DefaultMaxDeliver    = 5
	DefaultMaxAckPending = 1000
)

// BusConfig configures the task bus and the event stream. Every zero value
// means the documented default.
type BusConfig struct {
	// Groups are the conductor groups whose consumers are ensured at start
	// ("" is the default group). Consume ensures its own group's consumer
	// too, so this only matters for groups nobody consumes yet.
	Groups []string
	// Replicas of TASKS and EVENTS; 0 means DefaultReplicas.
	Replicas int
	// Duplicates is the dedup window of TASKS: a task republished with the
	// same ID within it is stored once. 0 means DefaultDuplicates.
	Duplicates time.Duration
	// EventsMaxAge is how long EVENTS keeps events; 0 means
	// DefaultEventsMaxAge, 7 days.
	EventsMaxAge time.Duration
	// MaxTasks bounds the tasks TASKS holds, queued and in flight, across
	// groups: past it Publish fails (the API answers 503) and nothing
	// already accepted is dropped. 0 means no bound but the server's.
	MaxTasks int
	// MaxTaskBytes is the largest task envelope accepted, by Publish and by
	// the stream; 0 means DefaultMaxTaskBytes, 256 KiB.
	MaxTaskBytes int
	// AckWait is how long a delivered task may go without an ack or an
	// InProgress before it is redelivered; 0 means DefaultAckWait. Ignored by the
	// server when BackOff is set (it then uses BackOff[0]).
	AckWait time.Duration
	// MaxDeliver is how many times a task is delivered at most; 0 means
	// DefaultMaxDeliver.
	// On the last delivery a task that still fails is terminated and a
	// task.dead event published.
	MaxDeliver int
	// BackOff, when set, is the server's ack-timeout schedule: the n-th
	// redelivery of an unacked task waits BackOff[n-1] (the last repeats).
	// Empty means AckWait every time. Note this is about silent consumers;
	// a handler's own retries use ConsumeConfig.RetryDelays.
	BackOff []time.Duration
	// MaxAckPending caps unacked tasks in flight per group; 0 means
	// DefaultMaxAckPending.
	MaxAckPending int
	// Logger receives what the bus cannot return (a dead consumer loop
	// retrying); nil means none.
	Logger *slog.Logger
	// Registerer receives the bus metrics; nil means no metrics.
	Registerer prometheus.Registerer
}

// Bus is the JetStream task bus and event stream. It is safe for
// concurrent use.
type Bus struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	cfg BusConfig
	log *slog.Logger
	m   *busMetrics
	// emits is the JetStream context of EmitEvent: its publishes are
	// confirmed off the caller's path, a failure reaching eventLost.
	emits jetstream.JetStream
}

// Bounds of EmitEvent's publishes awaiting JetStream's confirmation.
const (
	// maxEmitsPending is how many may be unconfirmed at once; past it
	// EmitEvent waits for a confirmation (emitStall), then publishes
	// as PublishEvent does.
	maxEmitsPending = 4096
	emitStall       = 200 * time.Millisecond
	// emitAckTimeout is how long a confirmation may take before the event
	// counts as lost.
	emitAckTimeout = 10 * time.Second
)

func (c *BusConfig) setDefaults() error {
	if c.Replicas <= 0 {
		c.Replicas = DefaultReplicas
	}
	if c.Duplicates <= 0 {
		c.Duplicates = DefaultDuplicates
	}
	if c.EventsMaxAge <= 0 {
		c.EventsMaxAge = DefaultEventsMaxAge
	}
	if c.MaxTaskBytes <= 0 {
		c.MaxTaskBytes = DefaultMaxTaskBytes
	}
	if c.AckWait <= 0 {
		c.AckWait = DefaultAckWait
	}
	if c.MaxDeliver <= 0 {
		c.MaxDeliver = DefaultMaxDeliver
	}
	if c.MaxAckPending <= 0 {
		c.MaxAckPending = DefaultMaxAckPending
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if len(c.BackOff) > c.MaxDeliver {
		return fmt.Errorf("transport: BusConfig.BackOff has %d steps, more than MaxDeliver %d", len(c.BackOff), c.MaxDeliver)
	}
	for _, d := range c.BackOff {
		if d <= 0 {
			return fmt.Errorf("transport: BusConfig.BackOff step %s: want > 0", d)
		}
	}
	for _, g := range c.Groups {
		if _, err := groupToken(g); err != nil {
			return err
		}
	}
	return nil
}

// NewBus creates or updates, idempotently, the TASKS and EVENTS streams and
// the consumers of cfg.Groups, and returns the bus. The connection stays the
// caller's to close.
func NewBus(ctx context.Context, nc *nats.Conn, cfg BusConfig) (*Bus, error) {
	if nc == nil {
		return nil, errors.New("transport: NewBus: nil connection")
	}
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("transport: jetstream: %w", err)
	}
	m, err := newBusMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	b := &Bus{nc: nc, js: js, cfg: cfg, log: cfg.Logger, m: m}
	b.emits, err = jetstream.New(nc, jetstream.WithPublishAsyncErrHandler(b.eventLost),
		jetstream.WithPublishAsyncMaxPending(maxEmitsPending), jetstream.WithPublishAsyncTimeout(emitAckTimeout))
	if err != nil {
		return nil, fmt.Errorf("transport: jetstream: %w", err)
	}
	if err := b.ensureStreams(ctx); err != nil {
		return nil, err
	}
	for _, g := range cfg.Groups {
		if _, err := b.ensureConsumer(ctx, g); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// JetStream is the bus's JetStream context, for NewInventory and NewRegistry
// on the same connection.
func (b *Bus) JetStream() jetstream.JetStream { return b.js }

func (b *Bus) ensureStreams(ctx context.Context) error {
	tasks := jetstream.StreamConfig{
		Name:        TasksStream,
		Description: "ironfleet node tasks, one consumer per conductor group",
		Subjects:    []string{tasksPrefix + ">"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    b.cfg.Replicas,
		Duplicates:  b.cfg.Duplicates,
		MaxMsgSize:  int32(min(b.cfg.MaxTaskBytes+4096, 1<<30)), //nolint:gosec // bounded above
		MaxMsgs:     unbounded(b.cfg.MaxTasks),
		// A full queue refuses new tasks: discarding the oldest would drop
		// work the API already answered 202 for, silently.
		Discard: jetstream.DiscardNew,
	}
	if err := b.ensureStream(ctx, tasks); err != nil {
		return err
	}
	events := jetstream.StreamConfig{
		Name:        EventsStream,
		Description: "ironfleet events: node state changes, task outcomes, lock handoffs",
		Subjects:    []string{eventsPrefix + ">"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    b.cfg.Replicas,
		MaxAge:      b.cfg.EventsMaxAge,
		Duplicates:  min(b.cfg.Duplicates, b.cfg.EventsMaxAge),
	}
	return b.ensureStream(ctx, events)
}

// ensureStream creates the stream, or updates it when its configuration
// differs from want. An unchanged stream is left alone: every process
// ensures the streams at start, and a fleet starting together would
// otherwise update them concurrently for nothing (nats-server 2.15 races a
// stream update against a consumer being created on it).
func (b *Bus) ensureStream(ctx context.Context, want jetstream.StreamConfig) error {
	if st, err := b.js.Stream(ctx, want.Name); err == nil {
		if sameStream(st.CachedInfo().Config, want) {
			return nil
		}
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("transport: ensure stream %s: %w", want.Name, err)
	}
	if _, err := b.js.CreateOrUpdateStream(ctx, want); err != nil {
		return fmt.Errorf("transport: ensure stream %s: %w", want.Name, err)
	}
	return nil
}

// sameStream compares the fields ensureStreams sets (the server fills in
// defaults for the others).
func sameStream(have, want jetstream.StreamConfig) bool {
	replicas := func(n int) int { return max(n, 1) }
	return have.Description == want.Description &&
		slices.Equal(have.Subjects, want.Subjects) &&
		have.Retention == want.Retention && have.Storage == want.Storage &&
		replicas(have.Replicas) == replicas(want.Replicas) &&
		have.Duplicates == want.Duplicates && have.MaxAge == want.MaxAge &&
		(want.MaxMsgSize == 0 || have.MaxMsgSize == want.MaxMsgSize) &&
		have.Discard == want.Discard &&
		unbounded(int(have.MaxMsgs)) == unbounded(int(want.MaxMsgs))
}

// unbounded is JetStream's spelling of a count limit: -1 for none.
func unbounded(n int) int64 {
	if n <= 0 {
		return -1
	}
	return int64(n)
}

// ensureConsumer creates or updates the durable pull consumer shared by
// group's conductors.
func (b *Bus) ensureConsumer(ctx context.Context, group string) (jetstream.Consumer, error) {
	name, err := consumerName(group)
	if err != nil {
		return nil, err
	}
	filter, _ := groupFilter(group)
	c, err := b.js.CreateOrUpdateConsumer(ctx, TasksStream, jetstream.ConsumerConfig{
		Durable:       name,
		Description:   "ironfleet conductors of group " + filter,
		FilterSubject: filter,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       b.ackWait(),
		MaxDeliver:    b.cfg.MaxDeliver,
		BackOff:       b.cfg.BackOff,
		MaxAckPending: b.cfg.MaxAckPending,
		Replicas:      b.cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("transport: ensure consumer %s: %w", name, err)
	}
	return c, nil
}

// ackWait is the ack wait the server applies to a first delivery.
func (b *Bus) ackWait() time.Duration {
	if len(b.cfg.BackOff) > 0 {
		return b.cfg.BackOff[0]
	}
	return b.cfg.AckWait
}

// minAckWait is the shortest ack deadline any delivery can get.
func (b *Bus) minAckWait() time.Duration {
	d := b.ackWait()
	for _, s := range b.cfg.BackOff {
		d = min(d, s)
	}
	return d
}

// Connected reports whether the bus's connection to NATS is up now: nil,
// or a wire.CodeUnavailable error naming the connection's state. A caller
// that is about to make a change which only a publish can carry on (the
// API's first move of a user action) asks first, so that while NATS is
// away it refuses at once, with nothing written, instead of waiting out a
// write and a publish that nats.go buffers until their deadlines.
func (b *Bus) Connected() error {
	if b.nc.IsConnected() {
		return nil
	}
	return wire.Errorf(wire.CodeUnavailable, "transport: NATS connection is %s", b.nc.Status())
}

// Publish validates and publishes t on ifl.tasks.<group>.<op> with t.ID as
// the message ID, waits for JetStream to store it, and returns its stream
// sequence. A task republished within the dedup window is stored once: the
// second Publish returns the first one's sequence. Envelopes are minted by
// wire.NewTask; one without an ID or of another version is refused.
func (b *Bus) Publish(ctx context.Context, t wire.Task) (uint64, error) {
	data, err := EncodeTask(t)
	if err != nil {
		return 0, err
	}
	if len(data) > b.cfg.MaxTaskBytes {
		return 0, wire.Errorf(wire.CodeInvalidInput, "%w: task %s is %d bytes, the limit is %d", ErrTooLarge, t.ID, len(data), b.cfg.MaxTaskBytes)
	}
	subj, _ := TaskSubject(t.Group, t.Op) // validated by EncodeTask
	// Only TASKS listens on ifl.tasks.>, so no expected-stream header: one
	// header less for the server to parse on the hot path.
	ack, err := b.js.PublishMsg(ctx, &nats.Msg{Subject: subj, Data: data, Header: nats.Header{}}, jetstream.WithMsgID(t.ID))
	if err != nil {
		b.m.publishErrors.Inc()
		return 0, wire.Errorf(wire.CodeUnavailable, "transport: publish task %s: %w", t.ID, err)
	}
	if ack.Duplicate {
		b.m.duplicates.Inc()
	}
	b.m.published.Inc()
	return ack.Sequence, nil
}

// OldestTask returns when the oldest task of op (any op when op is "")
// for group still on TASKS was stored; queued is false when there is none.
// TASKS is a work queue: a task leaves it when its consumer acks it, so
// one stored before that time may still be waiting or running, and one
// stored before no queued task is done (or was never stored).
func (b *Bus) OldestTask(ctx context.Context, group string, op wire.Operation) (oldest time.Time, queued bool, err error) {
	var subj string
	if op == "" {
		subj, err = groupFilter(group)
	} else {
		subj, err = TaskSubject(group, op)
	}
	if err != nil {
		return time.Time{}, false, err
	}
	st, err := b.js.Stream(ctx, TasksStream)
	if err != nil {
		return time.Time{}, false, wire.Errorf(wire.CodeUnavailable, "transport: stream %s: %w", TasksStream, err)
	}
	m, err := st.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(subj))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, wire.Errorf(wire.CodeUnavailable, "transport: oldest task on %s: %w", subj, err)
	}
	return m.Time, true, nil
}

// PublishEvent publishes ev on ifl.events.<node>.<type>. A missing ID, Time
// or Version is filled in; the ID is the message ID, so republishing the same
// event is deduplicated.
func (b *Bus) PublishEvent(ctx context.Context, ev wire.Event) error {
	subj, err := EventSubject(ev)
	if err != nil {
		return err
	}
	data, err := EncodeEvent(ev)
	if err != nil {
		return err
	}
	if _, err := b.js.PublishMsg(ctx, &nats.Msg{Subject: subj, Data: data, Header: nats.Header{}}, jetstream.WithMsgID(ev.ID)); err != nil {
		return wire.Errorf(wire.CodeUnavailable, "transport: publish event %s: %w", ev.Type, err)
	}
	b.m.events.WithLabelValues(string(ev.Type)).Inc()
	return nil
}

// EmitEvent publishes ev as PublishEvent does without waiting for
// JetStream to store it, for those who publish what already happened and
// must not wait on the bus to go on (the dispatcher's and the lock's
// events, 13 and more on every node's way to active). Events emitted on
// one bus are stored in the order emitted. An event JetStream refuses, or
// does not confirm within 10 s, is never dropped silently: it is logged
// and counted (ironfleet_bus_events_lost_total). When 4096 are awaiting
// confirmation, EmitEvent waits for one, then publishes as PublishEvent
// does, so a slow server slows emitters down instead of losing events.
// An error means ev was not published: it is invalid, or the connection
// is closed. FlushEvents waits for the confirmations.
func (b *Bus) EmitEvent(ctx context.Context, ev wire.Event) error {
	subj, err := EventSubject(ev)
	if err != nil {
		return err
	}
	data, err := EncodeEvent(ev)
	if err != nil {
		return err
	}
	msg := &nats.Msg{Subject: subj, Data: data, Header: nats.Header{}}
	_, err = b.emits.PublishMsgAsync(msg, jetstream.WithMsgID(ev.ID), jetstream.WithStallWait(emitStall))
	if errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
		return b.PublishEvent(ctx, ev)
	}
	if err != nil {
		return wire.Errorf(wire.CodeUnavailable, "transport: publish event %s: %w", ev.Type, err)
	}
	b.m.events.WithLabelValues(string(ev.Type)).Inc()
	return nil
}

// eventLost reports an emitted event JetStream did not store.
func (b *Bus) eventLost(_ jetstream.JetStream, msg *nats.Msg, err error) {
	b.m.eventsLost.Inc()
	b.log.Error("an event was not stored", "subject", msg.Subject, "id", msg.Header.Get(jetstream.MsgIDHeader), "err", err)
}

// FlushEvents waits until every event emitted so far is confirmed or
// counted lost, or ctx ends.
func (b *Bus) FlushEvents(ctx context.Context) error {
	select {
	case <-b.emits.PublishAsyncComplete():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("transport: %d events unconfirmed: %w", b.emits.PublishAsyncPending(), ctx.Err())
	}
}

// EventSubscription selects the events SubscribeEvents delivers.
type EventSubscription struct {
	// Node limits events to one node's; empty means every node.
	Node string
	// Since delivers stored events from this time on; zero means every
	// stored event.
	Since time.Time
	// NewOnly skips stored events and delivers only those published from now on.
	NewOnly bool
	// Follow keeps delivering new events until ctx ends; otherwise
	// SubscribeEvents returns once the stored events are delivered.
	Follow bool
	// OnError receives events that do not decode (they are skipped); nil
	// means skip them silently (Bus.SubscribeEvents logs them).
	OnError func(error)
}

// SubscribeEvents calls fn, in order and from one goroutine, for each event
// the subscription selects; see the package function SubscribeEvents.
func (b *Bus) SubscribeEvents(ctx context.Context, sub EventSubscription, fn func(wire.Event)) error {
	if sub.OnError == nil {
		sub.OnError = func(err error) { b.log.Warn("skipping undecodable event", "err", err) }
	}
	return SubscribeEvents(ctx, b.js, sub, fn)
}

// SubscribeEvents calls fn, in order and from one goroutine, for each event
// of the EVENTS stream the subscription selects, through an ordered
// consumer (it creates nothing durable: `ironfleet events` uses it
// read-only). Events that do not decode are passed to sub.OnError and
// skipped. It returns nil when caught up without Follow, or when ctx ends.
func SubscribeEvents(ctx context.Context, js jetstream.JetStream, sub EventSubscription, fn func(wire.Event)) error {
	filter, err := EventFilter(sub.Node)
	if err != nil {
		return err
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}, DeliverPolicy: jetstream.DeliverAllPolicy}
	switch {
	case sub.NewOnly:
		cfg.DeliverPolicy = jetstream.DeliverNewPolicy
	case !sub.Since.IsZero():
		since := sub.Since
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cfg.OptStartTime = &since
	}
	cons, err := js.OrderedConsumer(ctx, EventsStream, cfg)
	if err != nil {
		return wire.Errorf(wire.CodeUnavailable, "transport: subscribe events: %w", err)
	}
	if !sub.Follow {
		info, err := cons.Info(ctx)
		if err != nil {
			return wire.Errorf(wire.CodeUnavailable, "transport: subscribe events: %w", err)
		}
		if info.NumPending == 0 || sub.NewOnly {
			return nil
		}
	}
	it, err := cons.Messages()
	if err != nil {
		return wire.Errorf(wire.CodeUnavailable, "transport: subscribe events: %w", err)
	}
	quit, stopped := make(chan struct{}), make(chan struct{})
	defer func() { close(quit); <-stopped; it.Stop() }()
	go func() {
		defer close(stopped)
		select {
		case <-ctx.Done():
			it.Stop()
		case <-quit:
		}
	}()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, jetstream.ErrNoHeartbeat) {
				continue
			}
			return wire.Errorf(wire.CodeUnavailable, "transport: events: %w", err)
		}
		ev, err := DecodeEvent(msg.Data())
		if err != nil {
			if sub.OnError != nil {
				sub.OnError(fmt.Errorf("event on %s: %w", msg.Subject(), err))
			}
		} else {
			fn(ev)
		}
		if !sub.Follow {
			if md, err := msg.Metadata(); err == nil && md.NumPending == 0 {
				return nil
			}
		}
	}
}
