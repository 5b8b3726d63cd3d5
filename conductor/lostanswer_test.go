package conductor_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/conductor"
	"github.com/ironfleet/ironfleet/internal/dispatch"
	"github.com/ironfleet/ironfleet/lock"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// lostAnswers is the real inventory whose first write is stored but
// answered with a timeout, and whose next `unanswered` writes are neither
// stored nor answered: an overloaded process's NATS connection, as the
// 10k-node bench met it.
type lostAnswers struct {
	*transport.Inventory
	mu         sync.Mutex
	stored     bool
	unanswered int
}

func (l *lostAnswers) UpdateNode(ctx context.Context, uuid string, fence uint64, fn func(*wire.Node) error) (wire.Node, error) {
	l.mu.Lock()
	store, drop := !l.stored, l.stored && l.unanswered > 0
	l.stored = true
	if drop {
		l.unanswered--
	}
	l.mu.Unlock()
	lost := wire.Errorf(wire.CodeUnavailable, "transport: update node %s: %w", uuid, context.DeadlineExceeded)
	if drop {
		return wire.Node{}, lost
	}
	n, err := l.Inventory.UpdateNode(ctx, uuid, fence, fn)
	if store && err == nil {
		return wire.Node{}, lost
	}
	return n, err
}

// TestLostFirstMoveAnswer: a deploy whose first move is stored but whose
// answer is lost takes its node to active with the deploy run once,
// whether the dispatch learns of the move by sending it again, or never
// does (503) and the node is recovered by the client's retry, by the lost
// task stored after all, or by both.
func TestLostFirstMoveAnswer(t *testing.T) {
	tests := []struct {
		name string
		// unanswered writes after the stored one; enough to outlast the
		// settle timeout makes the request fail.
		unanswered int
		// lateTask publishes the task the failed request would have;
		// retry asks again as a client given 503 does.
		lateTask, retry bool
		// sweep lets the recovery sweep find the node first (RecoverAfter
		// short): it fails the node, and the test then asks again.
		sweep bool
	}{
		{name: "the move sent again finds itself stored", unanswered: 1},
		{name: "the retry takes the move over", unanswered: 1 << 20, retry: true},
		{name: "the lost task stored late goes on from its move", unanswered: 1 << 20, lateTask: true},
		{name: "the retry takes over from the lost task stored late", unanswered: 1 << 20, lateTask: true, retry: true},
		{name: "nobody asks: the recovery sweep fails the node, which is asked again", unanswered: 1 << 20, sweep: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			withFakeHardware(e)
			ctx := t.Context()
			node := e.enrollFake(t, "fake-1", nil, nil)
			e.setState(t, node.UUID, wire.StateAvailable, wire.StateNone)

			lk, err := e.locks.WithHolder("api").Acquire(ctx, node.UUID, &lock.Options{Purpose: "deploy"})
			if err != nil {
				t.Fatal(err)
			}
			n, err := e.inv.Get(ctx, node.UUID)
			if err != nil {
				t.Fatal(err)
			}
			lossy := &lostAnswers{Inventory: e.inv, unanswered: tt.unanswered}
			d := dispatch.New(e.bus, lossy, dispatch.Config{SettleTimeout: 500 * time.Millisecond})
			_, err = d.Request(ctx, lk, n, wire.OpDeploy, "test", nil)
			failed := tt.unanswered > 10
			if failed != (err != nil) {
				t.Fatalf("request: err = %v, want failed %v", err, failed)
			}
			if failed {
				_ = lk.Release(ctx)
				moved, err := e.inv.Get(ctx, node.UUID)
				if err != nil {
					t.Fatal(err)
				}
				if moved.ProvisionState != wire.StateDeploying || moved.Dispatched == nil {
					t.Fatalf("node %s, dispatched %+v: want the first move stored", moved.ProvisionState, moved.Dispatched)
				}
				if tt.lateTask {
					late := wire.NewTask(wire.OpDeploy, moved, "test", nil)
					late.ID, late.FirstMove, late.Ticket = moved.Dispatched.Task, moved.Dispatched.Move, lock.NewTicket()
					if _, err := e.bus.Publish(ctx, late); err != nil {
						t.Fatal(err)
					}
				}
				if tt.retry {
					e.request(t, node.UUID, wire.OpDeploy, nil)
				}
			}
			var mod func(*conductor.Config)
			if tt.sweep {
				mod = func(c *conductor.Config) { c.RecoverAfter = 200 * time.Millisecond }
			}
			e.startConductor(t, "c1", nil, mod)
			if tt.sweep {
				failed := e.waitState(t, node.UUID, wire.StateDeployFailed, 30*time.Second)
				if !strings.Contains(failed.LastError, "never started") {
					t.Fatalf("last_error %q, want it to say the task never started", failed.LastError)
				}
				e.request(t, node.UUID, wire.OpDeploy, nil)
			}
			e.waitState(t, node.UUID, wire.StateActive, 30*time.Second)
			e.waitQueueEmpty(t, 30*time.Second)

			// A deploy that runs moves its node on from deploying, once.
			var ran, noLonger int
			if err := e.bus.SubscribeEvents(ctx, transport.EventSubscription{Node: node.UUID}, func(ev wire.Event) {
				switch {
				case ev.Op != wire.OpDeploy:
				case ev.Type == wire.EventProvisionState && ev.From == string(wire.StateDeploying):
					ran++
				case ev.Type == wire.EventTaskFailed:
					noLonger++
				}
			}); err != nil {
				t.Fatal(err)
			}
			wantNoLonger := 0
			if tt.lateTask && tt.retry {
				wantNoLonger = 1 // the late task finds its move taken over
			}
			if ran != 1 || noLonger != wantNoLonger {
				t.Fatalf("deploy tasks: %d ran, %d no longer applied; want 1 and %d", ran, noLonger, wantNoLonger)
			}
		})
	}
}

// unansweredWrite is a conductor's inventory whose first write of a
// power state change while a node is deploying is neither stored nor
// answered: a timeout in an overloaded process.
type unansweredWrite struct {
	conductor.Nodes
	mu   sync.Mutex
	lost bool
}

func (u *unansweredWrite) UpdateNode(ctx context.Context, uuid string, fence uint64, fn func(*wire.Node) error) (wire.Node, error) {
	cur, err := u.Get(ctx, uuid)
	if err != nil {
		return wire.Node{}, err
	}
	next := cur
	if err := fn(&next); err == nil && cur.ProvisionState == wire.StateDeploying && next.PowerState != cur.PowerState {
		u.mu.Lock()
		lose := !u.lost
		u.lost = true
		u.mu.Unlock()
		if lose {
			return wire.Node{}, wire.Errorf(wire.CodeUnavailable, "transport: update node %s: %w", uuid, context.DeadlineExceeded)
		}
	}
	return u.Nodes.UpdateNode(ctx, uuid, fence, fn)
}

func (u *unansweredWrite) didLose() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.lost
}

// TestUnansweredWriteDoesNotFailTheNode: a conductor's node write that the
// inventory does not answer is not the node's failure (the 10,000-node run
// failed 14 deploys so, setting the power to boot the agent): the task is
// retried, its redelivery resumes the boot, and the deploy finishes with
// no last_error.
func TestUnansweredWriteDoesNotFailTheNode(t *testing.T) {
	e := newEnv(t)
	unanswered := &unansweredWrite{}
	e.deps = func(_ string, d *conductor.Deps) { unanswered.Nodes = d.Nodes; d.Nodes = unanswered }
	e.startConductor(t, "c1", nil, nil)
	node := e.enroll(t, "unanswered", "")
	e.request(t, node.UUID, wire.OpManage, nil)
	e.waitState(t, node.UUID, wire.StateManageable, 20*time.Second)
	e.request(t, node.UUID, wire.OpProvide, nil)
	e.waitState(t, node.UUID, wire.StateAvailable, 20*time.Second)
	e.request(t, node.UUID, wire.OpDeploy, nil)
	got := e.waitNode(t, node.UUID, "deployed or failed", func(n wire.Node) bool {
		return n.ProvisionState == wire.StateActive || n.ProvisionState == wire.StateDeployFailed
	})
	if !unanswered.didLose() {
		t.Fatal("no power write was lost: the test tests nothing")
	}
	if got.ProvisionState != wire.StateActive || got.LastError != "" {
		t.Fatalf("node %s, last_error %q; want active with none", got.ProvisionState, got.LastError)
	}
}
