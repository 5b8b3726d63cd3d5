package dispatch_test

import (
	"context"
	"errors"
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
			_, err := dispatch.New(tt.bus(r.bus), r.inv, dispatch.Config{}).Request(rctx, lk, n, wire.OpDeploy, "test", nil)
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
