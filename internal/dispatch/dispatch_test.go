package dispatch_test

import (
	"context"
	"errors"
	"sync"
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

// rig is a real bus, inventory and lock.
type rig struct {
	bus   *transport.Bus
	inv   *transport.Inventory
	locks *lock.Locker
}

func newRig(t *testing.T) *rig {
	t.Helper()
	ctx := t.Context()
	ns := natstest.Start(t)
	bus, err := transport.NewBus(ctx, ns.Conn(t), transport.BusConfig{})
	if err != nil {
		t.Fatal(err)
	}
	inv, err := transport.NewInventory(ctx, bus.JetStream(), transport.InventoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(inv.Close)
	opts := redistest.Start(t).Options()
	opts.ContextTimeoutEnabled = true
	rc := redis.NewClient(opts)
	t.Cleanup(func() { _ = rc.Close() })
	locks, err := lock.New(ctx, rc, lock.Config{TTL: 2 * time.Second, Holder: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = locks.Close() })
	return &rig{bus: bus, inv: inv, locks: locks}
}

func (r *rig) node(t *testing.T, state wire.ProvisionState) wire.Node {
	t.Helper()
	n, err := r.inv.CreateNode(t.Context(), wire.Node{UUID: wire.NewUUID(), Driver: "sim", ProvisionState: state, CreatedAt: time.Now().UTC()})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// hold takes n's lock as the API does before dispatching.
func (r *rig) hold(t *testing.T, n wire.Node) *lock.Lock {
	t.Helper()
	lk, err := r.locks.Acquire(t.Context(), n.UUID, &lock.Options{Purpose: "deploy"})
	if err != nil {
		t.Fatal(err)
	}
	return lk
}

// failingBus refuses every task, as NATS does when it is down.
type failingBus struct{ *transport.Bus }

func (failingBus) Publish(context.Context, wire.Task) (uint64, error) {
	return 0, wire.Errorf(wire.CodeUnavailable, "nats: no servers available")
}

// TestRequestMovesPublishesAndHandsOff: a deploy is moved to deploying
// under the lock, published with its ticket and first move, and the lock
// is handed to that ticket, which its consumer then claims.
func TestRequestMovesPublishesAndHandsOff(t *testing.T) {
	r := newRig(t)
	ctx := t.Context()
	n := r.node(t, wire.StateAvailable)
	lk := r.hold(t, n)
	task, err := dispatch.New(r.bus, r.inv, dispatch.Config{}).Request(ctx, lk, n, wire.OpDeploy, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.inv.Get(ctx, n.UUID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ProvisionState != wire.StateDeploying || got.TargetProvisionState != wire.StateActive || got.Fence != lk.Token() {
		t.Fatalf("node %s → %s, fence %d; want deploying → active with fence %d", got.ProvisionState, got.TargetProvisionState, got.Fence, lk.Token())
	}
	if task.Ticket == "" || task.FirstMove == nil || task.FirstMove.From != wire.StateAvailable || task.FirstMove.To != wire.StateDeploying {
		t.Fatalf("task %+v: want a ticket and the first move available → deploying", task)
	}
	claimed, err := r.locks.Acquire(ctx, n.UUID, &lock.Options{Mode: lock.Patient, Ticket: task.Ticket, Purpose: "deploy"})
	if err != nil {
		t.Fatalf("the task's consumer cannot claim its ticket: %v", err)
	}
	if claimed.Token() <= lk.Token() {
		t.Fatalf("claimed token %d, not above the API's %d", claimed.Token(), lk.Token())
	}
	_ = claimed.Release(ctx)
}

// timeoutBus answers no task before the caller's deadline, as an
// overloaded server does: the publish fails with that deadline.
type timeoutBus struct{ *transport.Bus }

func (timeoutBus) Publish(ctx context.Context, t wire.Task) (uint64, error) {
	<-ctx.Done()
	return 0, wire.Errorf(wire.CodeUnavailable, "transport: publish task %s: %w", t.ID, ctx.Err())
}

// TestFailedPublishUndoesTheFirstMove: when the task cannot be published,
// the node is left as it was found, the error says so
// (ErrNotPublished, with the bus's code), and the caller still holds the
// lock — also when the publish failed because the caller's context ran
// out, which the undo must not share (it once did, leaving nodes of the
// 10k-node bench in cleaning with no task).
func TestFailedPublishUndoesTheFirstMove(t *testing.T) {
	tests := []struct {
		name    string
		bus     func(*transport.Bus) dispatch.Tasks
		timeout time.Duration // of the request's context; 0: none
	}{
		{"NATS down", func(b *transport.Bus) dispatch.Tasks { return failingBus{b} }, 0},
		{"publish outlives the request's deadline", func(b *transport.Bus) dispatch.Tasks { return timeoutBus{b} }, 200 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			ctx := t.Context()
			n := r.node(t, wire.StateAvailable)
			lk := r.hold(t, n)
			rctx := ctx
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				rctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			d := dispatch.New(tt.bus(r.bus), r.inv, dispatch.Config{SettleTimeout: 500 * time.Millisecond})
			_, err := d.Request(rctx, lk, n, wire.OpDeploy, "test", nil)
			if !errors.Is(err, dispatch.ErrNotPublished) || wire.CodeOf(err) != wire.CodeUnavailable {
				t.Fatalf("err = %v (code %q), want ErrNotPublished coded unavailable", err, wire.CodeOf(err))
			}
			got, err := r.inv.Get(ctx, n.UUID)
			if err != nil {
				t.Fatal(err)
			}
			if got.ProvisionState != wire.StateAvailable || got.TargetProvisionState != "" {
				t.Fatalf("node left %s → %q, want available as found", got.ProvisionState, got.TargetProvisionState)
			}
			if err := lk.Release(ctx); err != nil {
				t.Fatalf("the lock is no longer the caller's: %v", err)
			}
		})
	}
}

// TestRequestRefusesWhatTheRulesRefuse: an impossible request writes and
// publishes nothing and names the allowed targets.
func TestRequestRefusesWhatTheRulesRefuse(t *testing.T) {
	r := newRig(t)
	ctx := t.Context()
	n := r.node(t, wire.StateEnroll)
	lk := r.hold(t, n)
	defer func() { _ = lk.Release(context.WithoutCancel(ctx)) }()
	_, err := dispatch.New(r.bus, r.inv, dispatch.Config{}).Request(ctx, lk, n, wire.OpDeploy, "test", nil)
	if wire.CodeOf(err) != wire.CodeInvalidTransition {
		t.Fatalf("err = %v (code %q), want invalid_transition", err, wire.CodeOf(err))
	}
	if got, _ := r.inv.Get(ctx, n.UUID); got.ProvisionState != wire.StateEnroll {
		t.Fatalf("node moved to %s", got.ProvisionState)
	}
}

// lossyNodes is the real inventory with lost answers: the first `stored`
// writes are stored and then answered with a timeout; after those, the
// next `unanswered` writes are neither stored nor answered (the timeout
// an overloaded process gives). Both are what the 10k-node bench met.
type lossyNodes struct {
	*transport.Inventory
	mu                 sync.Mutex
	stored, unanswered int
}

func (l *lossyNodes) UpdateNode(ctx context.Context, uuid string, fence uint64, fn func(*wire.Node) error) (wire.Node, error) {
	l.mu.Lock()
	store, drop := l.stored > 0, l.stored == 0 && l.unanswered > 0
	switch {
	case store:
		l.stored--
	case drop:
		l.unanswered--
	}
	l.mu.Unlock()
	if drop {
		return wire.Node{}, wire.Errorf(wire.CodeUnavailable, "transport: update node %s: %w", uuid, context.DeadlineExceeded)
	}
	n, err := l.Inventory.UpdateNode(ctx, uuid, fence, fn)
	if store && err == nil {
		return wire.Node{}, wire.Errorf(wire.CodeUnavailable, "transport: update node %s: %w", uuid, context.DeadlineExceeded)
	}
	return n, err
}

// lossyBus publishes for real but answers the first `stored` publishes
// with a timeout, as a lost ack does.
type lossyBus struct {
	*transport.Bus
	mu     sync.Mutex
	stored int
}

func (b *lossyBus) Publish(ctx context.Context, t wire.Task) (uint64, error) {
	seq, err := b.Bus.Publish(ctx, t)
	b.mu.Lock()
	defer b.mu.Unlock()
	if err == nil && b.stored > 0 {
		b.stored--
		return 0, wire.Errorf(wire.CodeUnavailable, "transport: publish task %s: %w", t.ID, context.DeadlineExceeded)
	}
	return seq, err
}

// tasksStored counts the messages of the task stream.
func (r *rig) tasksStored(t *testing.T) uint64 {
	t.Helper()
	st, err := r.bus.JetStream().Stream(t.Context(), transport.TasksStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// TestLostAnswersAreSettled: a first move or a task publish whose answer is
// lost after it was stored is sent again until an answer says what
// happened, and the dispatch succeeds: the node moved once, recording the
// task, exactly one task stored, the lock handed to its ticket.
func TestLostAnswersAreSettled(t *testing.T) {
	tests := []struct {
		name  string
		nodes func(*transport.Inventory) dispatch.Nodes
		bus   func(*transport.Bus) dispatch.Tasks
	}{
		{"first move stored, its answer lost",
			func(i *transport.Inventory) dispatch.Nodes { return &lossyNodes{Inventory: i, stored: 1} },
			func(b *transport.Bus) dispatch.Tasks { return b }},
		{"first move neither stored nor answered, twice",
			func(i *transport.Inventory) dispatch.Nodes { return &lossyNodes{Inventory: i, unanswered: 2} },
			func(b *transport.Bus) dispatch.Tasks { return b }},
		{"task stored, its answer lost twice",
			func(i *transport.Inventory) dispatch.Nodes { return i },
			func(b *transport.Bus) dispatch.Tasks { return &lossyBus{Bus: b, stored: 2} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			ctx := t.Context()
			n := r.node(t, wire.StateAvailable)
			lk := r.hold(t, n)
			task, err := dispatch.New(tt.bus(r.bus), tt.nodes(r.inv), dispatch.Config{}).Request(ctx, lk, n, wire.OpDeploy, "test", nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := r.inv.Get(ctx, n.UUID)
			if err != nil {
				t.Fatal(err)
			}
			if got.ProvisionState != wire.StateDeploying || got.Dispatched == nil || got.Dispatched.Task != task.ID || got.Dispatched.Op != wire.OpDeploy {
				t.Fatalf("node %s, dispatched %+v; want deploying by task %s", got.ProvisionState, got.Dispatched, task.ID)
			}
			if n := r.tasksStored(t); n != 1 {
				t.Fatalf("%d tasks stored, want 1", n)
			}
			claimed, err := r.locks.Acquire(ctx, n.UUID, &lock.Options{Mode: lock.Patient, Ticket: task.Ticket, Purpose: "deploy"})
			if err != nil {
				t.Fatalf("the task's consumer cannot claim its ticket: %v", err)
			}
			_ = claimed.Release(ctx)
		})
	}
}

// TestRetryTakesOverAnUnfinishedFirstMove: when no answer comes within the
// settle timeout, the first move may be stored with no task published and
// the request fails (503 at the API). The client's retry, under the lock,
// finds the node in that first move (dispatch.Unfinished) and dispatches
// it afresh: no second move, the node records the new task, one task
// stored. A request for another operation is still refused.
func TestRetryTakesOverAnUnfinishedFirstMove(t *testing.T) {
	r := newRig(t)
	ctx := t.Context()
	n := r.node(t, wire.StateAvailable)
	lk := r.hold(t, n)
	lossy := &lossyNodes{Inventory: r.inv, stored: 1, unanswered: 1 << 20}
	d := dispatch.New(r.bus, lossy, dispatch.Config{SettleTimeout: 300 * time.Millisecond})
	if _, err := d.Request(ctx, lk, n, wire.OpDeploy, "test", nil); wire.CodeOf(err) != wire.CodeUnavailable {
		t.Fatalf("err = %v (code %q), want unavailable", err, wire.CodeOf(err))
	}
	if err := lk.Release(ctx); err != nil {
		t.Fatal(err)
	}
	stuck, err := r.inv.Get(ctx, n.UUID)
	if err != nil {
		t.Fatal(err)
	}
	if stuck.ProvisionState != wire.StateDeploying || stuck.Dispatched == nil || r.tasksStored(t) != 0 {
		t.Fatalf("node %s, dispatched %+v, %d tasks: want the first move stored and no task", stuck.ProvisionState, stuck.Dispatched, r.tasksStored(t))
	}
	lost := stuck.Dispatched.Task

	lk = r.hold(t, stuck)
	if _, err := dispatch.New(r.bus, r.inv, dispatch.Config{}).Request(ctx, lk, stuck, wire.OpManage, "test", nil); wire.CodeOf(err) != wire.CodeInvalidTransition {
		t.Fatalf("manage of the deploying node: err = %v (code %q), want invalid_transition", err, wire.CodeOf(err))
	}
	task, err := dispatch.New(r.bus, r.inv, dispatch.Config{}).Request(ctx, lk, stuck, wire.OpDeploy, "test", nil)
	if err != nil {
		t.Fatalf("the retry: %v", err)
	}
	got, err := r.inv.Get(ctx, n.UUID)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case task.ID == lost:
		t.Fatalf("the retry's task has the lost task's ID %s", lost)
	case task.FirstMove == nil || task.FirstMove.From != wire.StateAvailable || task.FirstMove.To != wire.StateDeploying:
		t.Fatalf("the retry's task has first move %+v, want available → deploying", task.FirstMove)
	case got.ProvisionState != wire.StateDeploying || got.Dispatched == nil || got.Dispatched.Task != task.ID:
		t.Fatalf("node %s, dispatched %+v; want deploying by the retry's task %s", got.ProvisionState, got.Dispatched, task.ID)
	case !got.ProvisionUpdatedAt.Equal(stuck.ProvisionUpdatedAt):
		t.Fatalf("provision_updated_at %s → %s: the move was made twice", stuck.ProvisionUpdatedAt, got.ProvisionUpdatedAt)
	case r.tasksStored(t) != 1:
		t.Fatalf("%d tasks stored, want 1", r.tasksStored(t))
	}
}
