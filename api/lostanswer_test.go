package api_test

import (
	"net/http"
	"testing"

	"github.com/ironfleet/ironfleet/transport/wire"
)

// TestRetryOfARequestWhoseAnswerWasLost: a node left in the first move of
// a request whose task never started (its answer lost: 503; the node
// records the move's task, wire.Node.Dispatched) accepts the client's
// retry of that request — 202, a task taking the move over, no second
// move — where Ironic would refuse the transition; anything else is
// refused as before, and so is the retry once the task began (a step).
func TestRetryOfARequestWhoseAnswerWasLost(t *testing.T) {
	deploy := &wire.Dispatched{Task: wire.NewUUID(), Op: wire.OpDeploy,
		Move: &wire.Move{From: wire.StateAvailable, To: wire.StateDeploying, Target: wire.StateActive}}
	provide := &wire.Dispatched{Task: wire.NewUUID(), Op: wire.OpProvide,
		Move: &wire.Move{From: wire.StateManageable, To: wire.StateCleaning, Target: wire.StateAvailable}}
	tests := []struct {
		name       string
		dispatched *wire.Dispatched
		step       string
		target     string
		want       int
	}{
		{"deploy retried", deploy, "", "active", http.StatusAccepted},
		{"provide retried", provide, "", "provide", http.StatusAccepted},
		{"another operation", deploy, "", "manage", http.StatusBadRequest},
		{"the task began", deploy, "boot", "active", http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			id := e.createNode("lost-1", nil)
			e.edit(id, func(n *wire.Node) {
				m := tt.dispatched.Move
				n.ProvisionState, n.TargetProvisionState, n.Step = m.To, m.Target, tt.step
				n.Dispatched = tt.dispatched
			})
			r := e.do(http.MethodPut, "/v1/nodes/"+id+"/states/provision", map[string]any{"target": tt.target})
			mustStatus(t, r, tt.want)
			tasks := e.tasks()
			if tt.want != http.StatusAccepted {
				if len(tasks) != 0 {
					t.Fatalf("%d tasks published, want none", len(tasks))
				}
				return
			}
			if len(tasks) != 1 {
				t.Fatalf("%d tasks published, want 1", len(tasks))
			}
			task := tasks[0]
			if task.ID == tt.dispatched.Task || task.Op != tt.dispatched.Op || task.FirstMove == nil || *task.FirstMove != *tt.dispatched.Move {
				t.Fatalf("task %s %s first move %+v; want a new %s task with the move %+v", task.ID, task.Op, task.FirstMove, tt.dispatched.Op, *tt.dispatched.Move)
			}
			n, err := e.inv.Get(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			if n.Dispatched == nil || n.Dispatched.Task != task.ID || n.ProvisionState != tt.dispatched.Move.To {
				t.Fatalf("node %s dispatched %+v; want %s by task %s", n.ProvisionState, n.Dispatched, tt.dispatched.Move.To, task.ID)
			}
		})
	}
}
