package api_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/ironfleet/ironfleet/api"
	"github.com/ironfleet/ironfleet/internal/provision"
	"github.com/ironfleet/ironfleet/lock"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// provisionTargets are the targets of PUT …/states/provision, each with
// the body keys its request needs.
var provisionTargets = []struct {
	name string
	body map[string]any
}{
	{"manage", nil}, {"provide", nil}, {"active", nil}, {"deploy", nil}, {"deleted", nil}, {"undeploy", nil},
	{"rebuild", nil}, {"inspect", nil}, {"clean", map[string]any{"clean_steps": []any{map[string]any{"interface": "power", "step": "power_off"}}}}, {"abort", nil},
	{"adopt", nil}, {"rescue", map[string]any{"rescue_password": "pw"}}, {"unrescue", nil}, {"unhold", nil},
	{"service", map[string]any{"service_steps": []any{map[string]any{"interface": "power", "step": "reboot"}}}},
}

// TestProvisionTransitionsThroughTheAPI is generated from
// provision.Transitions: from representative states, every target is
// asked for through the real API, which answers 202 (and publishes the
// operation) exactly when the table has the transition and the served
// microversions reach it, 406 when the transition needs a newer one than
// the API serves, and 400 otherwise.
func TestProvisionTransitionsThroughTheAPI(t *testing.T) {
	e := newEnv(t)
	id := e.createNode("table-1", nil)
	// The fake rescue interface (sim offers only no-rescue): set as a
	// node of fake-hardware would have it.
	e.edit(id, func(n *wire.Node) { n.Interfaces = map[string]string{"rescue": "fake"} })
	states := []wire.ProvisionState{
		wire.StateEnroll, wire.StateManageable, wire.StateAvailable, wire.StateActive, wire.StateWaitCallback,
		wire.StateCleanWait, wire.StateInspectWait, wire.StateDeployHold, wire.StateCleanHold, wire.StateServiceHold,
		wire.StateDeployFailed, wire.StateCleanFailed, wire.StateAdoptFailed, wire.StateRescue, wire.StateRescueWait,
		wire.StateServiceFailed, wire.StateError, wire.StateDeploying,
	}
	for _, st := range states {
		for _, tg := range provisionTargets {
			t.Run(string(st)+"/"+tg.name, func(t *testing.T) {
				e.edit(id, func(n *wire.Node) { n.ProvisionState, n.TargetProvisionState, n.Step = st, "", "" })
				op, err := provision.ParseTarget(tg.name)
				if err != nil {
					t.Fatal(err)
				}
				want := http.StatusBadRequest
				if tr, err := provision.Apply(id, st, op); err == nil {
					want = http.StatusAccepted
					if !api.MaxVersion.AtLeast(tr.MinVersion) {
						want = http.StatusNotAcceptable
					}
				}
				body := map[string]any{"target": tg.name}
				for k, v := range tg.body {
					body[k] = v
				}
				before := len(e.tasks())
				r := e.do(http.MethodPut, "/v1/nodes/"+id+"/states/provision", body)
				mustStatus(t, r, want)
				tasks := e.tasks()
				if want != http.StatusAccepted {
					if len(tasks) != before {
						t.Fatalf("a refused action published a task")
					}
					if want == http.StatusBadRequest {
						wantMsg := fmt.Sprintf("The requested action %q can not be performed on node %q while it is in state %q.", tg.name, id, st)
						if f := r.fault(t)["faultstring"].(string); !strings.HasPrefix(f, wantMsg) {
							t.Errorf("faultstring %q, want it to start %q", f, wantMsg)
						}
					}
					return
				}
				if len(tasks) != before+1 || tasks[len(tasks)-1].Op != op {
					t.Fatalf("tasks %+v, want one more %s", tasks[before:], op)
				}
				// Claim the handed-off lock as the conductor would, and give it back.
				lk, err := e.locker.Acquire(t.Context(), id, &lock.Options{Ticket: tasks[len(tasks)-1].Ticket})
				if err != nil {
					t.Fatal(err)
				}
				_ = lk.Release(t.Context())
			})
		}
	}
}

// TestProvisionVersions: each target and transition at the microversion
// Ironic gates it at (406 below), and the state checked first where Ironic
// checks it first (unhold, service, the abort edges).
func TestProvisionVersions(t *testing.T) {
	e := newEnv(t)
	id := e.createNode("ver-1", nil)
	e.edit(id, func(n *wire.Node) { n.Interfaces = map[string]string{"rescue": "fake"} })
	tests := []struct {
		state   wire.ProvisionState
		target  string
		body    map[string]any
		version int
		want    int
	}{
		{wire.StateManageable, "adopt", nil, 16, 406},
		{wire.StateManageable, "adopt", nil, 17, 202},
		{wire.StateEnroll, "adopt", nil, 16, 406}, // the name's version comes before the state
		{wire.StateActive, "rescue", map[string]any{"rescue_password": "pw"}, 37, 406},
		{wire.StateActive, "rescue", map[string]any{"rescue_password": "pw"}, 38, 202},
		{wire.StateRescue, "unrescue", nil, 37, 406},
		{wire.StateRescue, "unrescue", nil, 38, 202},
		{wire.StateInspectWait, "abort", nil, 40, 406},
		{wire.StateInspectWait, "abort", nil, 41, 202},
		{wire.StateCleanWait, "abort", nil, 13, 202},
		{wire.StateCleanWait, "abort", nil, 12, 406},
		{wire.StateWaitCallback, "abort", nil, api.MaxVersion.Minor, 406}, // 1.110
		{wire.StateAvailable, "deploy", nil, 72, 406},
		{wire.StateAvailable, "active", nil, 72, 202},
		{wire.StateActive, "unhold", nil, api.MaxVersion.Minor, 400}, // the state before the version
		{wire.StateDeployHold, "unhold", nil, 84, 406},
		{wire.StateAvailable, "service", map[string]any{"service_steps": []any{}}, 86, 400},
		{wire.StateActive, "service", map[string]any{"service_steps": []any{map[string]any{"interface": "power", "step": "reboot"}}}, 86, 406},
	}
	if api.MaxVersion.AtLeast(85) {
		tests = append(tests, struct {
			state   wire.ProvisionState
			target  string
			body    map[string]any
			version int
			want    int
		}{wire.StateDeployHold, "unhold", nil, 85, 202})
	}
	for _, tt := range tests {
		if tt.version > api.MaxVersion.Minor {
			continue
		}
		t.Run(fmt.Sprintf("%s/%s@1.%d", tt.state, tt.target, tt.version), func(t *testing.T) {
			e.edit(id, func(n *wire.Node) { n.ProvisionState, n.TargetProvisionState, n.Step = tt.state, "", "" })
			body := map[string]any{"target": tt.target}
			for k, v := range tt.body {
				body[k] = v
			}
			r := e.do(http.MethodPut, "/v1/nodes/"+id+"/states/provision", body, "X-OpenStack-Ironic-API-Version", fmt.Sprintf("1.%d", tt.version))
			mustStatus(t, r, tt.want)
			if tt.want == http.StatusAccepted {
				tasks := e.tasks()
				lk, err := e.locker.Acquire(t.Context(), id, &lock.Options{Ticket: tasks[len(tasks)-1].Ticket})
				if err != nil {
					t.Fatal(err)
				}
				_ = lk.Release(t.Context())
			}
		})
	}
}

// TestProvisionRequestChecks: the body checks of rescue and service, in
// Ironic's words.
func TestProvisionRequestChecks(t *testing.T) {
	e := newEnv(t)
	id := e.createNode("chk-1", nil)
	e.edit(id, func(n *wire.Node) { n.ProvisionState = wire.StateActive })
	serviceWant := http.StatusBadRequest
	if !api.MaxVersion.AtLeast(87) {
		serviceWant = http.StatusNotAcceptable // the version is checked before the steps
	}
	tests := []struct {
		name  string
		body  map[string]any
		want  int
		fault string
	}{
		{"rescue on no-rescue", map[string]any{"target": "rescue", "rescue_password": "pw"}, 400,
			"Failed to rescue instance None for node " + id + ": Validation failed: Driver sim does not support rescue (disabled or not implemented)."},
		{"rescue without password", map[string]any{"target": "rescue"}, 400,
			`A non-empty "rescue_password" is required when setting target provision state to rescue`},
		{"rescue with a blank password", map[string]any{"target": "rescue", "rescue_password": "  "}, 400,
			`A non-empty "rescue_password" is required when setting target provision state to rescue`},
		{"rescue_password elsewhere", map[string]any{"target": "deleted", "rescue_password": "pw"}, 400,
			`"rescue_password" is only valid when setting target provision state to rescue`},
		{"service_steps elsewhere", map[string]any{"target": "deleted", "service_steps": []any{}}, 400,
			`"service_steps" is only valid when setting target provision state to service`},
		{"service without steps", map[string]any{"target": "service"}, serviceWant, `"service_steps" is required`},
		{"service with a bad step", map[string]any{"target": "service", "service_steps": []any{map[string]any{"interface": "power", "step": "reboot", "priority": 1}}},
			serviceWant, `additional property "priority" is not allowed`},
		{"service with a bad interface", map[string]any{"target": "service", "service_steps": []any{map[string]any{"interface": "disk", "step": "x"}}},
			serviceWant, `"interface" must be one of`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(http.MethodPut, "/v1/nodes/"+id+"/states/provision", tt.body)
			mustStatus(t, r, tt.want)
			if tt.want == http.StatusBadRequest {
				if f := r.fault(t)["faultstring"].(string); !strings.Contains(f, tt.fault) {
					t.Errorf("faultstring %q, want %q in it", f, tt.fault)
				}
			}
			if len(e.tasks()) != 0 {
				t.Fatal("a refused request published a task")
			}
		})
	}
}

// TestLockedNodeAnswers409First: while someone holds a node's lock, an
// impossible transition answers 409 NodeLocked naming the holder, as
// Ironic's API does for a node with a reservation; once free, 400.
func TestLockedNodeAnswers409First(t *testing.T) {
	e := newEnv(t)
	id := e.createNode("lk409-1", nil)
	e.edit(id, func(n *wire.Node) { n.ProvisionState = wire.StateDeploying })
	lk, err := e.locker.WithHolder("conductor-1").Acquire(t.Context(), id, &lock.Options{Purpose: "deploy", Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"active", "deleted", "manage"} {
		mustNodeLocked(t, e.do(http.MethodPut, "/v1/nodes/"+id+"/states/provision", map[string]any{"target": target}), id, "conductor-1")
	}
	if err := lk.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	r := e.do(http.MethodPut, "/v1/nodes/"+id+"/states/provision", map[string]any{"target": "active"})
	mustStatus(t, r, http.StatusBadRequest)
}

// TestDeleteFollowsIronic: a node not in maintenance may be deleted exactly
// in Ironic's states (DELETE_ALLOWED_STATES and available), and the
// refusal lists them as Ironic does; in maintenance, in any state.
func TestDeleteFollowsIronic(t *testing.T) {
	e := newEnv(t)
	for st := range provision.States {
		t.Run(string(st), func(t *testing.T) {
			id := e.createNode("", nil)
			e.edit(id, func(n *wire.Node) { n.ProvisionState = st })
			r := e.do(http.MethodDelete, "/v1/nodes/"+id, nil)
			if slices.Contains([]wire.ProvisionState{wire.StateManageable, wire.StateEnroll, wire.StateAdoptFailed, wire.StateAvailable}, st) {
				mustStatus(t, r, http.StatusNoContent)
				return
			}
			mustStatus(t, r, http.StatusConflict)
			want := fmt.Sprintf(`Can not delete node %q while it is in provision state %q. Valid provision states to perform deletion are: "('manageable', 'enroll', 'adopt failed', 'available')", or set the node into maintenance mode`, id, st)
			if f := r.fault(t)["faultstring"]; f != want {
				t.Errorf("faultstring %q, want %q", f, want)
			}
			e.edit(id, func(n *wire.Node) { n.Maintenance = true })
			mustStatus(t, e.do(http.MethodDelete, "/v1/nodes/"+id, nil), http.StatusNoContent)
		})
	}
	t.Run("associated with an instance", func(t *testing.T) {
		id := e.createNode("", nil)
		e.edit(id, func(n *wire.Node) {
			n.ProvisionState, n.InstanceUUID = wire.StateAvailable, "9d3c1c3e-5f8e-4f58-9d0e-6b1b1f0a6a01"
		})
		r := e.do(http.MethodDelete, "/v1/nodes/"+id, nil)
		mustStatus(t, r, http.StatusConflict)
		if f := r.fault(t)["faultstring"]; f != "Node "+id+" is associated with instance 9d3c1c3e-5f8e-4f58-9d0e-6b1b1f0a6a01." {
			t.Errorf("faultstring %q", f)
		}
		e.edit(id, func(n *wire.Node) { n.Maintenance = true })
		mustStatus(t, e.do(http.MethodDelete, "/v1/nodes/"+id, nil), http.StatusNoContent)
	})
}
