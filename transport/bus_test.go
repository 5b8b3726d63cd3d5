package transport_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ironfleet/ironfleet/internal/natstest"
	"github.com/ironfleet/ironfleet/internal/wait"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// fastBus is a BusConfig whose timing knobs make redeliveries happen in
// milliseconds.
func fastBus() transport.BusConfig {
	return transport.BusConfig{AckWait: 300 * time.Millisecond, MaxDeliver: 3}
}

func fastConsume() transport.ConsumeConfig {
	return transport.ConsumeConfig{
		RetryDelays:  []time.Duration{10 * time.Millisecond},
		RestartDelay: 20 * time.Millisecond,
		PullExpiry:   time.Second,
		AckTimeout:   2 * time.Second,
		Conductor:    "c1",
	}
}

func newBus(t *testing.T, nc *nats.Conn, cfg transport.BusConfig) *transport.Bus {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	b, err := transport.NewBus(ctx, nc, cfg)
	if err != nil {
		t.Fatalf("NewBus: %v", err)
	}
	return b
}

// consume runs Consume in a goroutine owned by the test and returns a stop
// function that cancels it and waits for it to return.
func consume(t *testing.T, b *transport.Bus, group string, h transport.Handler, cfg transport.ConsumeConfig) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- b.Consume(ctx, group, h, cfg) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Consume: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// collectEvents follows EVENTS and sends every event to the returned channel.
func collectEvents(t *testing.T, b *transport.Bus) <-chan wire.Event {
	t.Helper()
	ch := make(chan wire.Event, 1000)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = b.SubscribeEvents(ctx, transport.EventSubscription{Follow: true}, func(ev wire.Event) { ch <- ev })
	}()
	t.Cleanup(func() { cancel(); <-done })
	return ch
}

func waitEvent(t *testing.T, ch <-chan wire.Event, match func(wire.Event) bool) wire.Event {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-ch:
			if match(ev) {
				return ev
			}
		case <-timeout:
			t.Fatalf("no matching event within 10s")
		}
	}
}

func task(id string) wire.Task {
	return wire.Task{Version: wire.TaskVersion, ID: id, Node: "node-" + id, Op: wire.OpPower, CreatedAt: time.Now().UTC(), Params: json.RawMessage(`{"target":"power on"}`)}
}

func publish(t *testing.T, b *transport.Bus, tk wire.Task) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	seq, err := b.Publish(ctx, tk)
	if err != nil {
		t.Fatalf("Publish %s: %v", tk.ID, err)
	}
	return seq
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func pendingTasks(t *testing.T, b *transport.Bus) uint64 {
	t.Helper()
	s, err := b.JetStream().Stream(t.Context(), transport.TasksStream)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	return info.State.Msgs
}

func TestOutcomeMapping(t *testing.T) {
	tests := []struct {
		name string
		// handler returns the outcome of the n-th delivery (1-based).
		handler   func(n uint64) transport.Outcome
		wantCalls uint64
		wantDead  bool
		wantCode  wire.Code
		wantInMsg string
		slowFirst bool
		confirm   bool
	}{
		{name: "done acks at once", handler: func(uint64) transport.Outcome { return transport.Done() }, wantCalls: 1},
		{name: "zero outcome is done", handler: func(uint64) transport.Outcome { return transport.Outcome{} }, wantCalls: 1},
		{name: "done with a confirmed ack", handler: func(uint64) transport.Outcome { return transport.Done() }, wantCalls: 1, confirm: true},
		{name: "retry then done redelivers", handler: func(n uint64) transport.Outcome {
			if n < 2 {
				return transport.Retry(0, errors.New("bmc busy"))
			}
			return transport.Done()
		}, wantCalls: 2},
		{name: "retry with explicit delay", handler: func(n uint64) transport.Outcome {
			if n < 3 {
				return transport.Retry(5*time.Millisecond, errors.New("again"))
			}
			return transport.Done()
		}, wantCalls: 3},
		{name: "fail terminates with a dead event", handler: func(uint64) transport.Outcome {
			return transport.Fail(wire.Errorf(wire.CodeInvalidTransition, "cannot deploy from enroll"))
		}, wantCalls: 1, wantDead: true, wantCode: wire.CodeInvalidTransition, wantInMsg: "cannot deploy"},
		{name: "retry on the last delivery is dead", handler: func(uint64) transport.Outcome {
			return transport.Retry(0, wire.Errorf(wire.CodeBMC, "bmc timeout"))
		}, wantCalls: 3, wantDead: true, wantCode: wire.CodeBMC, wantInMsg: "gave up after 3 deliveries"},
		{name: "panic is retried, then dead", handler: func(uint64) transport.Outcome {
			panic("boom")
		}, wantCalls: 3, wantDead: true, wantCode: wire.CodeInternal, wantInMsg: "panicked"},
		{name: "in progress keeps a slow handler's task", handler: func(uint64) transport.Outcome { return transport.Done() },
			wantCalls: 1, slowFirst: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := natstest.Start(t)
			b := newBus(t, srv.Conn(t), fastBus())
			events := collectEvents(t, b)
			var mu sync.Mutex
			var calls uint64
			finished := make(chan struct{}, 10)
			h := func(ctx context.Context, _ wire.Task, d transport.Delivery) transport.Outcome {
				mu.Lock()
				calls++
				mu.Unlock()
				defer func() { finished <- struct{}{} }()
				if tt.slowFirst {
					// Outlive AckWait three times over: only InProgress keeps it.
					_ = wait.Sleep(ctx, time.Second)
				}
				return tt.handler(d.NumDelivered)
			}
			cfg := fastConsume()
			cfg.InProgressEvery = 50 * time.Millisecond
			cfg.ConfirmAcks = tt.confirm
			consume(t, b, "", h, cfg)
			publish(t, b, task("t1"))
			for range tt.wantCalls {
				select {
				case <-finished:
				case <-time.After(10 * time.Second):
					t.Fatalf("handler not called %d times", tt.wantCalls)
				}
			}
			if tt.wantDead {
				ev := waitEvent(t, events, func(ev wire.Event) bool { return ev.Type == wire.EventTaskDead })
				if ev.Task != "t1" || ev.Node != "node-t1" || ev.Code != tt.wantCode || !strings.Contains(ev.Message, tt.wantInMsg) {
					t.Errorf("dead event = %+v, want task t1, code %s, message with %q", ev, tt.wantCode, tt.wantInMsg)
				}
			}
			waitFor(t, "task to leave the work queue", func() bool { return pendingTasks(t, b) == 0 })
			mu.Lock()
			defer mu.Unlock()
			if calls != tt.wantCalls {
				t.Errorf("handler calls = %d, want %d", calls, tt.wantCalls)
			}
		})
	}
}

func TestBadMessagesAreTerminatedWithAReason(t *testing.T) {
	tests := []struct {
		name     string
		data     []byte
		wantCode wire.Code
	}{
		{"not json", []byte("{nope"), wire.CodeDecode},
		{"unknown version", []byte(`{"v":99,"id":"raw-1","node":"n","op":"power"}`), wire.CodeUnknownVersion},
		{"no version", []byte(`{"id":"raw-1","node":"n","op":"power"}`), wire.CodeUnknownVersion},
		{"missing node", []byte(`{"v":1,"id":"raw-1","op":"power"}`), wire.CodeDecode},
		{"wrong field type", []byte(`{"v":1,"id":"raw-1","node":"n","op":"power","created_at":5}`), wire.CodeDecode},
		{"oversized", []byte(`{"v":1,"id":"raw-1","node":"n","op":"power","params":"` + strings.Repeat("a", 2048) + `"}`), wire.CodeInvalidInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := natstest.Start(t)
			nc := srv.Conn(t)
			cfg := fastBus()
			b := newBus(t, nc, cfg)
			events := collectEvents(t, b)
			calls := make(chan struct{}, 1)
			ccfg := fastConsume()
			// A consumer with a smaller limit than the stream's sees the oversized one.
			small := newBus(t, nc, transport.BusConfig{AckWait: cfg.AckWait, MaxDeliver: cfg.MaxDeliver, MaxTaskBytes: 1024})
			consume(t, small, "", func(context.Context, wire.Task, transport.Delivery) transport.Outcome {
				calls <- struct{}{}
				return transport.Done()
			}, ccfg)
			js, _ := jetstream.New(nc)
			if _, err := js.PublishMsg(t.Context(), &nats.Msg{Subject: "ifl.tasks.default.power", Data: tt.data, Header: nats.Header{"Nats-Msg-Id": []string{"raw-1"}}}); err != nil {
				t.Fatalf("raw publish: %v", err)
			}
			ev := waitEvent(t, events, func(ev wire.Event) bool { return ev.Type == wire.EventTaskDead })
			if ev.Code != tt.wantCode || ev.Task != "raw-1" || ev.Message == "" {
				t.Errorf("dead event = %+v, want code %s for task raw-1 with a reason", ev, tt.wantCode)
			}
			waitFor(t, "the bad message to leave the work queue", func() bool { return pendingTasks(t, b) == 0 })
			select {
			case <-calls:
				t.Errorf("handler called for a bad message")
			default:
			}
		})
	}
}

// TestConnected: the bus says it is connected while NATS is up, and
// unavailable, naming the connection's state, once the server is gone.
func TestConnected(t *testing.T) {
	srv := natstest.Start(t)
	b := newBus(t, srv.Conn(t), transport.BusConfig{})
	if err := b.Connected(); err != nil {
		t.Fatalf("Connected with the server up: %v", err)
	}
	srv.Stop()
	// The client learns of the server's going when its read fails.
	waitFor(t, "the bus to see the server gone", func() bool { return b.Connected() != nil })
	err := b.Connected()
	if wire.CodeOf(err) != wire.CodeUnavailable || !strings.Contains(err.Error(), "NATS connection is") {
		t.Fatalf("Connected with the server gone: %v, want unavailable naming the connection's state", err)
	}
}

func TestPublishRejectsBadTasks(t *testing.T) {
	srv := natstest.Start(t)
	b := newBus(t, srv.Conn(t), transport.BusConfig{MaxTaskBytes: 512})
	big := task("big")
	big.Params = json.RawMessage(`"` + strings.Repeat("x", 1000) + `"`)
	tests := []struct {
		name string
		t    wire.Task
		code wire.Code
		is   error
	}{
		{"no id", wire.Task{Version: wire.TaskVersion, Node: "n", Op: wire.OpPower}, wire.CodeInvalidInput, nil},
		{"no node", wire.Task{Version: wire.TaskVersion, ID: "a", Op: wire.OpPower}, wire.CodeInvalidInput, nil},
		{"no op", wire.Task{Version: wire.TaskVersion, ID: "a", Node: "n"}, wire.CodeInvalidInput, nil},
		{"bad group", wire.Task{Version: wire.TaskVersion, ID: "a", Node: "n", Op: wire.OpPower, Group: "a.b"}, wire.CodeInvalidInput, nil},
		{"bad version", wire.Task{Version: 7, ID: "a", Node: "n", Op: wire.OpPower}, wire.CodeUnknownVersion, transport.ErrUnknownVersion},
		{"too large", big, wire.CodeInvalidInput, transport.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := b.Publish(t.Context(), tt.t)
			if got := wire.CodeOf(err); got != tt.code {
				t.Errorf("code = %q (err %v), want %q", got, err, tt.code)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("err = %v, want errors.Is %v", err, tt.is)
			}
		})
	}
}

func TestRepublishedTaskIsDeduplicated(t *testing.T) {
	srv := natstest.Start(t)
	b := newBus(t, srv.Conn(t), fastBus())
	s1 := publish(t, b, task("dup"))
	s2 := publish(t, b, task("dup"))
	if s1 != s2 {
		t.Errorf("republished task got sequence %d, want the first one's %d", s2, s1)
	}
	if n := pendingTasks(t, b); n != 1 {
		t.Errorf("stream holds %d tasks, want 1", n)
	}
	var mu sync.Mutex
	calls := 0
	got := make(chan struct{}, 2)
	consume(t, b, "", func(context.Context, wire.Task, transport.Delivery) transport.Outcome {
		mu.Lock()
		calls++
		mu.Unlock()
		got <- struct{}{}
		return transport.Done()
	}, fastConsume())
	<-got
	waitFor(t, "the queue to empty", func() bool { return pendingTasks(t, b) == 0 })
	mu.Lock()
	defer mu.Unlock()
	if calls != 1 {
		t.Errorf("handler ran %d times, want 1", calls)
	}
}

func TestGroupsAreSeparate(t *testing.T) {
	srv := natstest.Start(t)
	b := newBus(t, srv.Conn(t), fastBus())
	got := make(chan string, 4)
	h := func(group string) transport.Handler {
		return func(_ context.Context, tk wire.Task, _ transport.Delivery) transport.Outcome {
			got <- group + ":" + tk.ID
			return transport.Done()
		}
	}
	consume(t, b, "", h("default"), fastConsume())
	consume(t, b, "rack-2", h("rack-2"), fastConsume())
	a, c := task("a"), task("c")
	c.Group = "rack-2"
	publish(t, b, a)
	publish(t, b, c)
	seen := map[string]bool{}
	for range 2 {
		select {
		case s := <-got:
			seen[s] = true
		case <-time.After(10 * time.Second):
			t.Fatal("tasks not consumed")
		}
	}
	if !seen["default:a"] || !seen["rack-2:c"] {
		t.Errorf("consumed %v, want default:a and rack-2:c", seen)
	}
}

func TestRedeliveryAfterConsumerDiesMidTask(t *testing.T) {
	srv := natstest.Start(t)
	cfg := fastBus()
	cfg.MaxDeliver = 5
	nc1 := srv.Conn(t)
	b1 := newBus(t, nc1, cfg)
	started := make(chan struct{})
	release := make(chan struct{})
	stop1 := consume(t, b1, "", func(context.Context, wire.Task, transport.Delivery) transport.Outcome {
		close(started)
		<-release
		return transport.Done()
	}, fastConsume())
	publish(t, b1, task("crash"))
	<-started
	// The conductor dies: its connection goes away without an ack.
	nc1.Close()

	b2 := newBus(t, srv.Conn(t), cfg)
	got := make(chan transport.Delivery, 1)
	consume(t, b2, "", func(_ context.Context, _ wire.Task, d transport.Delivery) transport.Outcome {
		got <- d
		return transport.Done()
	}, fastConsume())
	select {
	case d := <-got:
		if d.NumDelivered != 2 {
			t.Errorf("redelivery NumDelivered = %d, want 2", d.NumDelivered)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("task not redelivered to the second conductor")
	}
	close(release)
	stop1()
	waitFor(t, "the queue to empty", func() bool { return pendingTasks(t, b2) == 0 })
}

func TestServerRestartMidStream(t *testing.T) {
	srv := natstest.Start(t)
	cfg := fastBus()
	cfg.AckWait = 2 * time.Second
	cfg.MaxDeliver = 10
	b := newBus(t, srv.Conn(t), cfg)
	const n = 200
	var done completions
	ccfg := fastConsume()
	ccfg.Concurrency = 4
	consume(t, b, "", done.handle, ccfg)
	ctx := t.Context()
	for i := range n {
		if i == n/2 {
			srv.Restart(t)
		}
		publishUntilStored(ctx, t, b, task(fmt.Sprintf("r%03d", i)), time.Second)
	}
	waitFor(t, "every task to complete", func() bool { return done.count() == n })
	waitFor(t, "the queue to empty", func() bool { return pendingTasks(t, b) == 0 })
	done.requireOnce(t)
}

func TestClusterLosesANodeWhileTasksFlow(t *testing.T) {
	if testing.Short() {
		t.Skip("3-node cluster: not in -short")
	}
	c := natstest.StartCluster(t, 3)
	cfg := fastBus()
	cfg.Replicas = 3
	cfg.AckWait = 2 * time.Second
	cfg.MaxDeliver = 10
	nc := natstest.Connect(t, c.URLs())
	b := newBus(t, nc, cfg)
	const n = 150
	var done completions
	ccfg := fastConsume()
	ccfg.Concurrency = 4
	consume(t, b, "", done.handle, ccfg)
	ctx := t.Context()
	for i := range n {
		if i == n/3 {
			// Take out the node the client is connected to, if it is one of
			// ours, else the first: the client must fail over.
			victim := c.Nodes[0]
			for _, s := range c.Nodes {
				if s.URL() == nc.ConnectedUrl() {
					victim = s
				}
			}
			victim.Stop()
		}
		publishUntilStored(ctx, t, b, task(fmt.Sprintf("c%03d", i)), 2*time.Second)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := done.count()
		if got == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d tasks completed after 30s; %d still in the stream", got, n, pendingTasks(t, b))
		}
		time.Sleep(5 * time.Millisecond)
	}
	done.requireOnce(t)
}

// completions counts, per task ID, how often a consumer completed it.
type completions struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *completions) handle(_ context.Context, tk wire.Task, _ transport.Delivery) transport.Outcome {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[tk.ID]++
	return transport.Done()
}

// count is how many distinct tasks completed.
func (c *completions) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.n)
}

// requireOnce fails the test for every task completed more than once.
func (c *completions) requireOnce(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, k := range c.n {
		if k != 1 {
			t.Errorf("task %s completed %d times, want 1", id, k)
		}
	}
}

// publishUntilStored publishes tk as a publisher does while the server is
// failing over: again with the same task ID, each try bounded by per, until
// JetStream stores it.
func publishUntilStored(ctx context.Context, t *testing.T, b *transport.Bus, tk wire.Task, per time.Duration) {
	t.Helper()
	for {
		pctx, cancel := context.WithTimeout(ctx, per)
		_, err := b.Publish(pctx, tk)
		cancel()
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			t.Fatal(ctx.Err())
		}
	}
}

func TestSubscribeEventsFiltersByNode(t *testing.T) {
	srv := natstest.Start(t)
	b := newBus(t, srv.Conn(t), fastBus())
	for i, node := range []string{"n1", "n2", "n1", ""} {
		ev := wire.NewEvent(wire.EventPowerState, node)
		ev.From, ev.To, ev.Message = string(wire.PowerOff), string(wire.PowerOn), fmt.Sprint(i)
		if err := b.PublishEvent(t.Context(), ev); err != nil {
			t.Fatalf("PublishEvent: %v", err)
		}
	}
	tests := []struct {
		node string
		want []string
	}{
		{"n1", []string{"0", "2"}},
		{"n2", []string{"1"}},
		{"", []string{"0", "1", "2", "3"}},
		{"nobody", nil},
	}
	for _, tt := range tests {
		t.Run("node="+tt.node, func(t *testing.T) {
			var got []string
			err := b.SubscribeEvents(t.Context(), transport.EventSubscription{Node: tt.node}, func(ev wire.Event) { got = append(got, ev.Message) })
			if err != nil {
				t.Fatalf("SubscribeEvents: %v", err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	if err := b.PublishEvent(t.Context(), wire.NewEvent(wire.EventPowerState, "bad node")); wire.CodeOf(err) != wire.CodeInvalidInput {
		t.Errorf("event with a bad node: err %v, want code invalid_input", err)
	}
}

// TestRedeliveryOfARunningOrDoneTaskIsNotRunAgain lets the ack wait pass
// while the handler runs (no InProgress in time), so JetStream redelivers to
// the same loop: with free handlers the copy finds the task running here,
// with one handler it arrives after the task is done; neither runs it again.
func TestRedeliveryOfARunningOrDoneTaskIsNotRunAgain(t *testing.T) {
	for _, conc := range []int{1, 4} {
		t.Run(fmt.Sprintf("concurrency %d", conc), func(t *testing.T) {
			srv := natstest.Start(t)
			cfg := fastBus()
			cfg.AckWait = 100 * time.Millisecond
			cfg.MaxDeliver = 10
			reg := prometheus.NewRegistry()
			cfg.Registerer = reg
			b := newBus(t, srv.Conn(t), cfg)
			var mu sync.Mutex
			calls := 0
			redelivered := make(chan struct{})
			ccfg := fastConsume()
			ccfg.Concurrency = conc
			ccfg.InProgressEvery = time.Hour // let the ack wait pass
			consume(t, b, "", func(ctx context.Context, _ wire.Task, _ transport.Delivery) transport.Outcome {
				mu.Lock()
				calls++
				mu.Unlock()
				// Hold the task until JetStream has redelivered it.
				for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
					c, err := b.JetStream().Consumer(ctx, transport.TasksStream, "tasks-default")
					if err != nil {
						continue
					}
					if info, err := c.Info(ctx); err == nil && info.NumRedelivered > 0 {
						break
					}
				}
				close(redelivered)
				return transport.Done()
			}, ccfg)
			publish(t, b, task("slow"))
			<-redelivered
			waitFor(t, "the queue to empty", func() bool { return pendingTasks(t, b) == 0 })
			mu.Lock()
			defer mu.Unlock()
			if calls != 1 {
				t.Errorf("handler ran %d times, want 1", calls)
			}
			waitFor(t, "the redelivered copy to be settled as a skip", func() bool {
				return counterValue(t, reg, "ironfleet_bus_task_outcomes_total", "skip") > 0
			})
		})
	}
}

// counterValue reads one labelled counter from a registry.
func counterValue(t *testing.T, reg *prometheus.Registry, name, outcome string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "outcome" && lp.GetValue() == outcome {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

// TestFullQueueRefusesNewTasks: a bounded TASKS queue that is full refuses
// the next task with an error the publisher sees (and the API turns into
// 503), and keeps every task it already holds: a work queue that discarded
// its oldest tasks would drop accepted work silently.
func TestFullQueueRefusesNewTasks(t *testing.T) {
	srv := natstest.Start(t)
	cfg := fastBus()
	cfg.MaxTasks = 2
	b := newBus(t, srv.Conn(t), cfg)
	ctx := t.Context()
	for _, id := range []string{"q1", "q2"} {
		if _, err := b.Publish(ctx, task(id)); err != nil {
			t.Fatalf("Publish %s: %v", id, err)
		}
	}
	_, err := b.Publish(ctx, task("q3"))
	if err == nil || wire.CodeOf(err) != wire.CodeUnavailable {
		t.Fatalf("Publish into a full queue = %v (code %q), want an unavailable error", err, wire.CodeOf(err))
	}
	st, err := b.JetStream().Stream(ctx, transport.TasksStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 || info.State.FirstSeq != 1 {
		t.Fatalf("queue holds %d tasks from seq %d, want the first 2 kept", info.State.Msgs, info.State.FirstSeq)
	}
}

// TestEmitEvent: events emitted without waiting are stored in the order
// emitted, and one the server cannot store is counted lost, not dropped
// silently.
func TestEmitEvent(t *testing.T) {
	tests := []struct {
		name       string
		noStream   bool // EVENTS deleted before emitting: nothing can be stored
		emit       int
		wantStored int
		wantLost   float64
	}{
		{"stored in order", false, 50, 50, 0},
		{"refused, counted lost", true, 3, 0, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := natstest.Start(t)
			cfg := fastBus()
			reg := prometheus.NewRegistry()
			cfg.Registerer = reg
			b := newBus(t, srv.Conn(t), cfg)
			if tt.noStream {
				if err := b.JetStream().DeleteStream(t.Context(), transport.EventsStream); err != nil {
					t.Fatal(err)
				}
			}
			for i := range tt.emit {
				ev := wire.NewEvent(wire.EventPowerState, "n1")
				ev.Message = fmt.Sprint(i)
				if err := b.EmitEvent(t.Context(), ev); err != nil {
					t.Fatalf("EmitEvent %d: %v", i, err)
				}
			}
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			if err := b.FlushEvents(ctx); err != nil {
				t.Fatalf("FlushEvents: %v", err)
			}
			if got := plainCounter(t, reg, "ironfleet_bus_events_lost_total"); got != tt.wantLost {
				t.Errorf("events lost: got %v, want %v", got, tt.wantLost)
			}
			if tt.noStream {
				return
			}
			var got []string
			if err := b.SubscribeEvents(t.Context(), transport.EventSubscription{Node: "n1"}, func(ev wire.Event) { got = append(got, ev.Message) }); err != nil {
				t.Fatalf("SubscribeEvents: %v", err)
			}
			if len(got) != tt.wantStored {
				t.Fatalf("stored %d events, want %d", len(got), tt.wantStored)
			}
			for i, m := range got {
				if m != fmt.Sprint(i) {
					t.Fatalf("event %d is %q: out of order", i, m)
				}
			}
		})
	}
}

// plainCounter reads an unlabelled counter from a registry.
func plainCounter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}
