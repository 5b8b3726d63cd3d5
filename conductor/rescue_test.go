package conductor_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/conductor/sim"
	"github.com/ironfleet/ironfleet/lock"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// enrollQuiet creates a simulated machine and its node (driver sim, the
// interfaces given) in state, with a PXE port, but no agent ever answers
// its boots: a flow that boots the agent stays in its wait state.
func (e *env) enrollQuiet(t *testing.T, name string, state wire.ProvisionState, interfaces map[string]string) wire.Node {
	t.Helper()
	mac := fmt.Sprintf("52:54:01:%02x:%02x:%02x", len(name), name[0], name[len(name)-1])
	if _, err := e.machines.Add(name, mac); err != nil {
		t.Fatal(err)
	}
	n, err := e.inv.CreateNode(t.Context(), wire.Node{
		UUID: wire.NewUUID(), Name: name, Driver: "sim", Interfaces: interfaces,
		DriverInfo:     map[string]any{sim.KeyMachine: name},
		InstanceInfo:   map[string]any{"image_source": e.imageURL, "image_checksum": e.imageSHA},
		ProvisionState: state, CreatedAt: time.Now().UTC(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.inv.CreatePort(t.Context(), wire.Port{UUID: wire.NewUUID(), NodeUUID: n.UUID, Address: mac, PXEEnable: true, CreatedAt: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	return n
}

// setState puts a node in state aiming for target, as a conductor would
// (under the node's lock, with its fencing token).
func (e *env) setState(t *testing.T, node string, state, target wire.ProvisionState) {
	t.Helper()
	e.edit(t, node, func(n *wire.Node) { n.ProvisionState, n.TargetProvisionState = state, target })
}

// edit changes a node under its lock, with its fencing token.
func (e *env) edit(t *testing.T, node string, fn func(*wire.Node)) {
	t.Helper()
	lk, err := e.locks.Acquire(t.Context(), node, &lock.Options{Purpose: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lk.Release(context.WithoutCancel(t.Context())) }()
	if _, err := e.inv.UpdateNode(t.Context(), node, lk.Token(), func(n *wire.Node) error {
		fn(n)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// want is a node's expected state after an action: where it is, where it
// aims, and a fragment of its last_error ("" for none).
type want struct {
	state, target wire.ProvisionState
	lastError     string
}

func (e *env) mustBe(t *testing.T, node string, w want) wire.Node {
	t.Helper()
	n := e.waitState(t, node, w.state, 20*time.Second)
	if n.TargetProvisionState != w.target {
		t.Errorf("node %s in %q aims for %q, want %q", n.Name, n.ProvisionState, n.TargetProvisionState, w.target)
	}
	if (w.lastError == "") != (n.LastError == "") || !strings.Contains(n.LastError, w.lastError) {
		t.Errorf("node %s in %q: last_error %q, want %q", n.Name, n.ProvisionState, n.LastError, w.lastError)
	}
	return n
}

// TestAdoptRescueUnrescueService takes a node with the fake rescue
// interface through adopt (manageable → adopting → active without
// deploying), rescue and unrescue (the rescue password kept in
// instance_info only while rescued), and servicing with power steps, then
// an unknown service step (service failed, naming it) and its abort back
// to active, all through real NATS and Redis.
func TestAdoptRescueUnrescueService(t *testing.T) {
	e := newEnv(t)
	e.startConductor(t, "c1", nil, nil)
	node := e.enrollQuiet(t, "rescue-1", wire.StateManageable, map[string]string{"rescue": "fake"})
	m, _ := e.machines.Machine("rescue-1")
	if err := m.SetPower(t.Context(), wire.PowerOn); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name   string
		op     wire.Operation
		params any
		want   want
		check  func(t *testing.T, n wire.Node)
	}{
		{"adopt", wire.OpAdopt, nil, want{state: wire.StateActive}, func(t *testing.T, n wire.Node) {
			if n.PowerState != wire.PowerOn {
				t.Errorf("adopted node's power %q, want the machine's (power on)", n.PowerState)
			}
		}},
		{"rescue", wire.OpRescue, wire.RescueParams{RescuePassword: "s3cret"}, want{state: wire.StateRescue}, func(t *testing.T, n wire.Node) {
			if n.InstanceInfo["rescue_password"] != "s3cret" {
				t.Errorf("instance_info %v lacks the rescue password", n.InstanceInfo)
			}
		}},
		{"unrescue", wire.OpUnrescue, nil, want{state: wire.StateActive}, func(t *testing.T, n wire.Node) {
			if _, ok := n.InstanceInfo["rescue_password"]; ok {
				t.Errorf("instance_info %v keeps the rescue password after unrescue", n.InstanceInfo)
			}
		}},
		{"service power steps", wire.OpService, map[string]any{"service_steps": []map[string]any{
			{"interface": "power", "step": "power_off"}, {"interface": "power", "step": "power_on"},
		}}, want{state: wire.StateActive}, func(t *testing.T, n wire.Node) {
			if n.PowerState != wire.PowerOn || m.State().Power != wire.PowerOn {
				t.Errorf("after power_off, power_on: node %q, machine %q; want power on", n.PowerState, m.State().Power)
			}
		}},
		{"service unknown step", wire.OpService, map[string]any{"service_steps": []map[string]any{
			{"interface": "bios", "step": "apply_configuration"},
		}}, want{state: wire.StateServiceFailed, target: wire.StateActive, lastError: "bios.apply_configuration"}, nil},
		{"abort service failed", wire.OpAbort, nil, want{state: wire.StateActive, lastError: "By request, the service operation was aborted"}, nil},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			e.request(t, node.UUID, s.op, s.params)
			e.waitQueueEmpty(t, 20*time.Second)
			n := e.mustBe(t, node.UUID, s.want)
			if s.check != nil {
				s.check(t, n)
			}
		})
	}
}

// TestFlowsEndWhereIronicsDo: each case puts a node in a state, asks for
// an operation through the API's path (internal/dispatch), and checks
// where the node ends and what it aims for. No agent answers, so flows
// that boot one stay in their wait state, aiming where Ironic aims: that
// is what 'baremetal node provide --wait' reads.
func TestFlowsEndWhereIronicsDo(t *testing.T) {
	e := newEnv(t)
	e.startConductor(t, "c1", nil, nil)
	tests := []struct {
		name          string
		from, target  wire.ProvisionState
		interfaces    map[string]string
		steps         []wire.Step // the flow's steps recorded on the node, as a hold leaves them
		op            wire.Operation
		params        any
		want          want
		noMachine     bool
		afterOp       wire.Operation
		afterWant     *want
		afterUnlocked bool
	}{
		{name: "provide waits for the agent aiming available", from: wire.StateManageable, op: wire.OpProvide,
			want:    want{state: wire.StateCleanWait, target: wire.StateAvailable},
			afterOp: wire.OpAbort, afterWant: &want{state: wire.StateCleanFailed, target: wire.StateAvailable, lastError: "Aborted"}},
		{name: "manual clean aims for manageable", from: wire.StateManageable, op: wire.OpClean,
			params: wire.StepsParams{CleanSteps: []wire.Step{{Interface: "deploy", Step: "erase_devices_metadata"}}},
			want:   want{state: wire.StateCleanWait, target: wire.StateManageable}},
		{name: "deleted from wait call-back tears down and cleans", from: wire.StateAvailable, op: wire.OpDeploy,
			want:    want{state: wire.StateWaitCallback, target: wire.StateActive},
			afterOp: wire.OpUndeploy, afterWant: &want{state: wire.StateCleanWait, target: wire.StateAvailable}},
		{name: "unhold deploy hold", from: wire.StateDeployHold, target: wire.StateActive, op: wire.OpUnhold,
			steps: []wire.Step{{Interface: "deploy", Step: "deploy", Priority: 100}},
			want:  want{state: wire.StateWaitCallback, target: wire.StateActive}},
		{name: "unhold clean hold of a manual clean", from: wire.StateCleanHold, target: wire.StateManageable, op: wire.OpUnhold,
			steps: []wire.Step{{Interface: "deploy", Step: "erase_devices_metadata"}},
			want:  want{state: wire.StateCleanWait, target: wire.StateManageable}},
		{name: "unhold service hold continues servicing", from: wire.StateServiceHold, target: wire.StateActive, op: wire.OpUnhold,
			want: want{state: wire.StateActive}},
		{name: "abort deploy hold", from: wire.StateDeployHold, target: wire.StateActive, op: wire.OpAbort,
			want: want{state: wire.StateDeployFailed, target: wire.StateActive, lastError: "Aborted by request while in deploy hold"}},
		{name: "abort service wait ends active", from: wire.StateServiceWait, target: wire.StateActive, op: wire.OpAbort,
			want: want{state: wire.StateActive, lastError: "By request, the service operation was aborted"}},
		{name: "rescue on a no-rescue node fails it", from: wire.StateActive, op: wire.OpRescue,
			params: wire.RescueParams{RescuePassword: "x"},
			want:   want{state: wire.StateRescueFailed, target: wire.StateRescue, lastError: "does not support rescue (disabled or not implemented)"}},
		{name: "adopt of an unreachable BMC fails", from: wire.StateManageable, op: wire.OpAdopt, noMachine: true,
			want: want{state: wire.StateAdoptFailed, target: wire.StateActive, lastError: "Error while attempting to adopt node"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := e.enrollQuiet(t, fmt.Sprintf("flow-%d", i), tt.from, tt.interfaces)
			if tt.noMachine {
				e.edit(t, n.UUID, func(n *wire.Node) { n.DriverInfo[sim.KeyMachine] = "nowhere" })
			}
			if tt.target != "" {
				e.setState(t, n.UUID, tt.from, tt.target)
			}
			if tt.steps != nil {
				e.edit(t, n.UUID, func(n *wire.Node) { n.Steps, n.StepIndex = tt.steps, 0 })
			}
			e.request(t, n.UUID, tt.op, tt.params)
			e.waitQueueEmpty(t, 20*time.Second)
			e.mustBe(t, n.UUID, tt.want)
			if tt.afterWant != nil {
				e.request(t, n.UUID, tt.afterOp, nil)
				e.waitQueueEmpty(t, 20*time.Second)
				e.mustBe(t, n.UUID, *tt.afterWant)
			}
		})
	}
}
