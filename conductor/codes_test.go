package conductor_test

import (
	"context"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/conductor"
	"github.com/ironfleet/ironfleet/conductor/sim"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// TestFailureEventsCarryCodes: each kind of failure reaches subscribers
// through the real bus as a task.failed event with its own code, not
// "internal" (which means a bug): the code is set where the failure is
// met (the BMC driver, the agent boundary, the wait sweep, the node's
// rules) and survives the wire.
func TestFailureEventsCarryCodes(t *testing.T) {
	e := newEnv(t)
	e.startConductor(t, "c1", nil, func(c *conductor.Config) { c.WaitTimeout = 500 * time.Millisecond })

	// available enrolls a node and takes it to available without cleaning.
	available := func(t *testing.T, name string) (wire.Node, *sim.Machine) {
		t.Helper()
		n := e.enroll(t, name, "")
		m, _ := e.machines.Machine(name)
		e.request(t, n.UUID, wire.OpManage, nil)
		e.waitState(t, n.UUID, wire.StateManageable, 20*time.Second)
		nodeNoClean(t, e, n.UUID)
		e.request(t, n.UUID, wire.OpProvide, nil)
		e.waitState(t, n.UUID, wire.StateAvailable, 20*time.Second)
		return n, m
	}
	setInstance := func(t *testing.T, uuid string, info map[string]any) {
		t.Helper()
		if _, err := e.inv.UpdateNode(t.Context(), uuid, 0, func(n *wire.Node) error { n.InstanceInfo = info; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		want wire.Code
		// cause makes the failure happen to a fresh node named name.
		cause func(t *testing.T, name string) wire.Node
	}{
		{"bmc", wire.CodeBMC, func(t *testing.T, name string) wire.Node {
			n := e.enroll(t, name, "")
			m, _ := e.machines.Machine(name)
			m.FailNext(sim.OpPowerState, 100) // verification reads the power state
			e.request(t, n.UUID, wire.OpManage, nil)
			return n
		}},
		{"agent", wire.CodeAgent, func(t *testing.T, name string) wire.Node {
			n, _ := available(t, name)
			setInstance(t, n.UUID, map[string]any{"image_source": e.imageURL, "image_checksum": "00" + e.imageSHA[2:]})
			e.request(t, n.UUID, wire.OpDeploy, nil)
			return n
		}},
		{"wait timeout", wire.CodeTimeout, func(t *testing.T, name string) wire.Node {
			n, m := available(t, name)
			m.OnBoot(nil) // no agent will ever call back
			e.request(t, n.UUID, wire.OpDeploy, nil)
			return n
		}},
		{"bad instance_info", wire.CodeInvalidInput, func(t *testing.T, name string) wire.Node {
			n, _ := available(t, name)
			setInstance(t, n.UUID, map[string]any{})
			e.request(t, n.UUID, wire.OpDeploy, nil)
			return n
		}},
		{"invalid transition", wire.CodeInvalidTransition, func(t *testing.T, name string) wire.Node {
			n := e.enroll(t, name, "")
			// Published as a task that raced another would be: the API
			// refuses it up front, the conductor under the lock.
			if _, err := e.bus.Publish(t.Context(), wire.NewTask(wire.OpDeploy, n, "test", nil)); err != nil {
				t.Fatal(err)
			}
			return n
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events := make(chan wire.Event, 64)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			name := "node-code-" + string(rune('a'+i))
			// Subscribe to every node's events from now on, and pick this one's.
			since := time.Now()
			go func() {
				_ = e.bus.SubscribeEvents(ctx, transport.EventSubscription{Since: since, Follow: true}, func(ev wire.Event) {
					if ev.Type == wire.EventTaskFailed {
						events <- ev
					}
				})
			}()
			n := tt.cause(t, name)
			deadline := time.After(30 * time.Second)
			for {
				select {
				case ev := <-events:
					if ev.Node != n.UUID {
						continue
					}
					if ev.Code != tt.want {
						t.Fatalf("task.failed code %q (%s), want %q", ev.Code, ev.Message, tt.want)
					}
					return
				case <-deadline:
					t.Fatalf("no task.failed event for %s", n.UUID)
				}
			}
		})
	}
}
