package api_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/ironfleet/ironfleet/lock"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// actionCase is one request of an action table test: the version, the
// body, the status and Ironic's faultstring wanted, and the operation a
// 202/204 publishes.
type actionCase struct {
	name      string
	version   string
	body      any
	status    int
	fault     string
	op        wire.Operation
	setUp     func(e *env, id string)
	checkTask func(t *testing.T, task wire.Task)
}

// runActions sends each case to path of node id and checks the answer and
// what was published; a published task's handed-off lock is taken and
// given back as a conductor would.
func runActions(t *testing.T, e *env, id, path string, cases []actionCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setUp != nil {
				tc.setUp(e, id)
			}
			before := len(e.tasks())
			r := e.do(http.MethodPut, "/v1/nodes/"+id+"/"+path, tc.body, "X-OpenStack-Ironic-API-Version", tc.version)
			mustStatus(t, r, tc.status)
			if tc.fault != "" {
				if got := r.fault(t)["faultstring"]; got != tc.fault {
					t.Fatalf("faultstring %q, want %q", got, tc.fault)
				}
			}
			tasks := e.tasks()
			if tc.op == "" {
				if len(tasks) != before {
					t.Fatalf("a refused action published %+v", tasks[before:])
				}
				return
			}
			if len(tasks) != before+1 || tasks[before].Op != tc.op {
				t.Fatalf("tasks %+v, want one more %s", tasks[before:], tc.op)
			}
			if tc.checkTask != nil {
				tc.checkTask(t, tasks[before])
			}
			lk, err := e.locker.Acquire(t.Context(), id, &lock.Options{Ticket: tasks[before].Ticket})
			if err != nil {
				t.Fatal(err)
			}
			_ = lk.Release(t.Context())
		})
	}
}

func wantPower(target wire.PowerState, timeout int) func(t *testing.T, task wire.Task) {
	return func(t *testing.T, task wire.Task) {
		t.Helper()
		var p wire.PowerParams
		if err := json.Unmarshal(task.Params, &p); err != nil {
			t.Fatal(err)
		}
		if p.Target != target || p.TimeoutSeconds != timeout {
			t.Fatalf("power params %+v, want target %q, timeout %d", p, target, timeout)
		}
	}
}

// setInterface sets a node's interface directly in the inventory, as a
// PATCH racing a request could leave it, to reach the refusals of
// interfaces no ironfleet hardware type offers today.
func setInterface(e *env, id, kind, impl string) {
	e.t.Helper()
	if _, err := e.inv.UpdateNode(e.t.Context(), id, 0, func(n *wire.Node) error {
		if n.Interfaces == nil {
			n.Interfaces = map[string]string{}
		}
		n.Interfaces[kind] = impl
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	if err := e.inv.Sync(e.t.Context()); err != nil {
		e.t.Fatal(err)
	}
}

// TestSoftPowerAPI: soft power targets and timeout, checked as Ironic's
// NodeStatesController.power checks them (ironic/api/controllers/v1/node.py)
// and in its order, and the power interface's supported states as its
// conductor's change_node_power_state.
func TestSoftPowerAPI(t *testing.T) {
	e := newEnv(t)
	id := e.createNode("soft-api", nil)
	e.setState(id, wire.StateManageable)
	cases := []actionCase{
		{name: "soft power off", version: "1.27", body: map[string]any{"target": "soft power off"}, status: 202,
			op: wire.OpPower, checkTask: wantPower(wire.PowerSoftOff, 0)},
		{name: "soft reboot with a timeout", version: "1.27", body: map[string]any{"target": "soft rebooting", "timeout": 60}, status: 202,
			op: wire.OpPower, checkTask: wantPower(wire.PowerSoftRebooting, 60)},
		{name: "timeout as a string, as Ironic's int()", version: "latest", body: map[string]any{"target": "power off", "timeout": "30"}, status: 202,
			op: wire.OpPower, checkTask: wantPower(wire.PowerOff, 30)},
		{name: "null timeout is none", version: "1.1", body: map[string]any{"target": "power on", "timeout": nil}, status: 202,
			op: wire.OpPower, checkTask: wantPower(wire.PowerOn, 0)},
		{name: "soft power off before 1.27", version: "1.26", body: map[string]any{"target": "soft power off"}, status: 406,
			fault: "Request not acceptable."},
		{name: "timeout before 1.27", version: "1.26", body: map[string]any{"target": "power on", "timeout": 10}, status: 406},
		{name: "version before a bad target", version: "1.26", body: map[string]any{"target": "soft rebooting", "timeout": "x"}, status: 406},
		{name: "timeout zero", version: "1.27", body: map[string]any{"target": "soft power off", "timeout": 0}, status: 400,
			fault: "timeout has to be positive integer"},
		{name: "timeout not an integer", version: "1.27", body: map[string]any{"target": "soft power off", "timeout": "soon"}, status: 400,
			fault: "Expected an integer for timeout: soon"},
		{name: "timeout a fraction", version: "1.27", body: map[string]any{"target": "power off", "timeout": 1.5}, status: 400,
			fault: "Expected an integer for timeout: 1.5"},
		{name: "unknown target", version: "1.27", body: map[string]any{"target": "soft power on"}, status: 400,
			fault: `The requested action "soft power on" can not be performed on node "` + id + `" while it is in state "None".`},
		{name: "while cleaning", version: "1.27", body: map[string]any{"target": "soft power off"}, status: 400,
			setUp: func(e *env, id string) { e.setState(id, wire.StateCleanWait) },
			fault: `The requested action "soft power off" can not be performed on node "` + id + `" while it is in state "clean wait".`},
		{name: "a power interface without soft power", version: "1.27", body: map[string]any{"target": "soft power off"}, status: 400,
			setUp: func(e *env, id string) { e.setState(id, wire.StateManageable); setInterface(e, id, "power", "redfish") },
			fault: "The driver sim does not support the power state, soft power off"},
		{name: "which still powers off", version: "1.27", body: map[string]any{"target": "power off"}, status: 400,
			fault: "The driver sim does not support the power state, power off"},
	}
	runActions(t, e, id, "states/power", cases)
}

// TestInjectNMIAPI: PUT management/inject_nmi is 1.29's (404 below, as
// Ironic's InjectNmiController), 204, published under the node's lock
// (409 while someone holds it), and refused for a management interface
// that cannot, with Ironic's UnsupportedDriverExtension.
func TestInjectNMIAPI(t *testing.T) {
	e := newEnv(t)
	id := e.createNode("nmi-api", nil)
	var held *lock.Lock
	cases := []actionCase{
		{name: "before 1.29", version: "1.28", body: map[string]any{}, status: 404},
		{name: "inject", version: "1.29", body: map[string]any{}, status: 204, op: wire.OpInjectNMI},
		{name: "no body", version: "latest", status: 204, op: wire.OpInjectNMI},
		{name: "unexpected argument", version: "latest", body: map[string]any{"force": true}, status: 400,
			fault: "Unexpected arguments: force"},
		{name: "locked", version: "latest", body: map[string]any{}, status: 409,
			setUp: func(e *env, id string) {
				var err error
				if held, err = e.locker.Acquire(e.t.Context(), id, &lock.Options{Purpose: "test"}); err != nil {
					e.t.Fatal(err)
				}
			}},
		{name: "fake management", version: "latest", body: map[string]any{}, status: 400,
			setUp: func(e *env, id string) {
				_ = held.Release(e.t.Context())
				setInterface(e, id, "management", "fake")
			},
			fault: "Driver sim does not support inject_nmi (disabled or not implemented)."},
	}
	runActions(t, e, id, "management/inject_nmi", cases)
	if r := e.do(http.MethodPut, "/v1/nodes/nope/management/inject_nmi", map[string]any{}); r.status != 404 {
		t.Fatalf("unknown node: status %d, want 404", r.status)
	}
}
