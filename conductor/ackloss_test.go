package conductor_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/conductor"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// ackLosing is a conductor's task bus that loses the ack of one task: once
// the conductor's handler has finished the first task lose picks, the
// conductor's NATS connection is cut, as a crash between finishing and
// acking does. JetStream redelivers the task to another conductor.
type ackLosing struct {
	conductor.Tasks
	lose func(wire.Task) bool
	cut  func()
	once sync.Once
	lost chan struct{}
}

func (a *ackLosing) Consume(ctx context.Context, group string, h transport.Handler, cfg transport.ConsumeConfig) error {
	return a.Tasks.Consume(ctx, group, func(ctx context.Context, t wire.Task, d transport.Delivery) transport.Outcome {
		out := h(ctx, t, d)
		if a.lose(t) {
			a.once.Do(func() { a.cut(); close(a.lost) })
		}
		return out
	}, cfg)
}

// TestRedeliveryAfterALostAckRunsNothingAgain: a power task that finished
// but whose ack was lost is redelivered to another conductor after
// AckWait; by then a newer request has run. The redelivery must change
// nothing: the machine ends in the last requested state, and a reboot runs
// once. (Before, the redelivered task claimed its ticket again once the
// first copy had released it, and ran a second time.)
func TestRedeliveryAfterALostAckRunsNothingAgain(t *testing.T) {
	tests := []struct {
		name string
		// first is the task whose ack is lost; then, if set, is requested
		// after it.
		first, then wire.PowerState
	}{
		{"power off then on", wire.PowerOff, wire.PowerOn},
		{"reboot", wire.PowerRebooting, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			node := e.enroll(t, "ack-node", "")
			m, _ := e.machines.Machine("ack-node")
			if err := m.SetPower(t.Context(), wire.PowerOn); err != nil {
				t.Fatal(err)
			}
			var losing *ackLosing
			var c1 *conductorProc
			e.deps = func(host string, d *conductor.Deps) {
				if host != "c1" {
					return
				}
				losing = &ackLosing{Tasks: d.Tasks, lost: make(chan struct{}), cut: func() { c1.nc.Close() },
					lose: func(task wire.Task) bool {
						var p wire.PowerParams
						_ = json.Unmarshal(task.Params, &p)
						return task.Op == wire.OpPower && p.Target == tt.first
					}}
				d.Tasks = losing
			}
			c1 = e.startConductor(t, "c1", nil, nil)
			e.deps = nil
			boots := m.State().Boots
			e.request(t, node.UUID, wire.OpPower, wire.PowerParams{Target: tt.first})
			select {
			case <-losing.lost:
			case <-time.After(20 * time.Second):
				t.Fatal("the first power task never finished")
			}
			c1.stop()
			e.startConductor(t, "c2", nil, nil)
			want := wire.PowerOn
			if tt.then != "" {
				e.request(t, node.UUID, wire.OpPower, wire.PowerParams{Target: tt.then})
				want = tt.then
			}
			// The lost-ack task comes back after AckWait; wait until the
			// work queue is empty: every task, the redelivered one too, acked.
			e.waitQueueEmpty(t, 30*time.Second)
			st := m.State()
			if st.Power != want {
				t.Fatalf("machine is %s, want %s (the last requested)", st.Power, want)
			}
			if tt.first == wire.PowerRebooting && st.Boots != boots+1 {
				t.Fatalf("machine booted %d times, want once", st.Boots-boots)
			}
		})
	}
}

// losingContinuation is a task bus that loses the first continuation of op
// it is asked to publish, as a conductor that dies between moving the node
// on and publishing its continuation does: the publisher believes it sent
// it, nobody ever receives it.
type losingContinuation struct {
	conductor.Tasks
	op   wire.Operation
	once sync.Once
	lost chan struct{}
}

func (l *losingContinuation) Publish(ctx context.Context, t wire.Task) (uint64, error) {
	dropped := false
	if t.Op == l.op {
		l.once.Do(func() { dropped = true; close(l.lost) })
	}
	if dropped {
		return 1, nil
	}
	return l.Tasks.Publish(ctx, t)
}

// TestLostContinuationIsPublishedAgain: a node moved into its
// continuation's step whose continuation task never arrives is not left
// there for the recovery sweep: once it has sat in the step for
// OrphanAfter with its lock free, its agent's next heartbeat publishes the
// continuation again, and cleaning finishes.
func TestLostContinuationIsPublishedAgain(t *testing.T) {
	e := newEnv(t)
	losing := &losingContinuation{op: wire.OpContinueClean, lost: make(chan struct{})}
	e.deps = func(_ string, d *conductor.Deps) { losing.Tasks = d.Tasks; d.Tasks = losing }
	e.startConductor(t, "c1", nil, func(c *conductor.Config) { c.OrphanAfter = 300 * time.Millisecond })
	node := e.enroll(t, "orphan", "")
	e.request(t, node.UUID, wire.OpManage, nil)
	e.waitState(t, node.UUID, wire.StateManageable, 20*time.Second)
	e.request(t, node.UUID, wire.OpProvide, nil)
	select {
	case <-losing.lost:
	case <-time.After(20 * time.Second):
		t.Fatal("cleaning never got to its continuation")
	}
	if got := e.waitState(t, node.UUID, wire.StateAvailable, 20*time.Second); got.LastError != "" {
		t.Fatalf("available with last_error %q", got.LastError)
	}
}
