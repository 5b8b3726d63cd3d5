package conductor_test

import (
	"strings"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/conductor"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// withFakeHardware makes e's conductors offer fake-hardware beside sim.
func withFakeHardware(e *env) {
	e.deps = func(_ string, d *conductor.Deps) { d.Drivers["fake-hardware"] = conductor.FakeHardware() }
}

// enrollFake creates a fake-hardware node: no driver_info, no port, no
// image.
func (e *env) enrollFake(t *testing.T, name string, interfaces map[string]string, instanceInfo map[string]any) wire.Node {
	t.Helper()
	n, err := e.inv.CreateNode(t.Context(), wire.Node{
		UUID: wire.NewUUID(), Name: name, Driver: "fake-hardware", Interfaces: interfaces,
		InstanceInfo: instanceInfo, ProvisionState: wire.StateEnroll, CreatedAt: time.Now().UTC(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestFakeHardwareCompletesAtOnce: a fake-hardware node with no
// driver_info, no port and no image goes through its whole life — verify,
// inspect, cleaning, deploy, power, boot device, undeploy — with no agent
// and no boot config, every flow completing in the task that started it,
// as Ironic's fake interfaces do.
func TestFakeHardwareCompletesAtOnce(t *testing.T) {
	e := newEnv(t)
	withFakeHardware(e)
	e.startConductor(t, "c1", nil, nil)
	node := e.enrollFake(t, "fake-1", nil, nil)

	steps := []struct {
		op     wire.Operation
		params any
		want   wire.ProvisionState
		power  wire.PowerState
	}{
		// A fake node's power state is what was last set: none yet.
		{wire.OpManage, nil, wire.StateManageable, wire.PowerUnknown},
		{wire.OpInspect, nil, wire.StateManageable, wire.PowerUnknown},
		{wire.OpProvide, nil, wire.StateAvailable, wire.PowerUnknown},
		{wire.OpPower, wire.PowerParams{Target: wire.PowerOn}, wire.StateAvailable, wire.PowerOn},
		{wire.OpDeploy, nil, wire.StateActive, wire.PowerOn},
		{wire.OpPower, wire.PowerParams{Target: wire.PowerOff}, wire.StateActive, wire.PowerOff},
		{wire.OpPower, wire.PowerParams{Target: wire.PowerRebooting}, wire.StateActive, wire.PowerOn},
		{wire.OpPower, wire.PowerParams{Target: wire.PowerSoftOff}, wire.StateActive, wire.PowerOff},
		{wire.OpPower, wire.PowerParams{Target: wire.PowerSoftRebooting}, wire.StateActive, wire.PowerOn},
		{wire.OpBootDevice, wire.BootDeviceParams{Device: wire.BootPXE, Persistent: true}, wire.StateActive, wire.PowerOn},
		// Ironic's fake tear_down leaves the power alone.
		{wire.OpUndeploy, nil, wire.StateAvailable, wire.PowerOn},
	}
	for _, s := range steps {
		e.request(t, node.UUID, s.op, s.params)
		e.waitQueueEmpty(t, 20*time.Second)
		got := e.waitState(t, node.UUID, s.want, 20*time.Second)
		if got.LastError != "" || got.Step != "" || got.TargetProvisionState != "" || got.TargetPowerState != "" {
			t.Fatalf("after %s: last_error %q, step %q, target %q, target power %q", s.op, got.LastError, got.Step, got.TargetProvisionState, got.TargetPowerState)
		}
		if got.PowerState != s.power {
			t.Fatalf("after %s: power %q, want %q", s.op, got.PowerState, s.power)
		}
		if s.op == wire.OpBootDevice && (got.BootDevice != wire.BootPXE || !got.BootDevicePersistent) {
			t.Fatalf("boot device %q persistent %v, want pxe persistent", got.BootDevice, got.BootDevicePersistent)
		}
	}
}

// TestFakeHardwareRefuses: what Ironic's fake deploy and the no-*
// interfaces refuse, the conductor refuses too, saying why.
func TestFakeHardwareRefuses(t *testing.T) {
	tests := []struct {
		name         string
		interfaces   map[string]string
		instanceInfo map[string]any
		from         []wire.Operation
		op           wire.Operation
		params       any
		want         wire.ProvisionState
		lastError    string
	}{
		{
			name: "no-inspect", interfaces: map[string]string{"inspect": "no-inspect"},
			from: []wire.Operation{wire.OpManage}, op: wire.OpInspect, want: wire.StateInspectFailed,
			lastError: "Driver fake-hardware does not support inspect (disabled or not implemented).",
		},
		{
			name: "instance traits not a list", instanceInfo: map[string]any{"traits": "CUSTOM_X"},
			from: []wire.Operation{wire.OpManage, wire.OpProvide}, op: wire.OpDeploy, want: wire.StateDeployFailed,
			lastError: "instance_info field. A list of strings is expected.",
		},
		{
			name: "instance traits the node lacks", instanceInfo: map[string]any{"traits": []any{"CUSTOM_GPU"}},
			from: []wire.Operation{wire.OpManage, wire.OpProvide}, op: wire.OpDeploy, want: wire.StateDeployFailed,
			lastError: "is missing traits CUSTOM_GPU",
		},
		{
			name: "boot from disk", from: []wire.Operation{wire.OpManage}, op: wire.OpBootDevice,
			params: wire.BootDeviceParams{Device: wire.BootDisk}, want: wire.StateManageable,
			lastError: "Invalid boot device disk specified.",
		},
	}
	e := newEnv(t)
	withFakeHardware(e)
	e.startConductor(t, "c1", nil, nil)
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			node := e.enrollFake(t, "refuse-"+string(rune('a'+i)), tc.interfaces, tc.instanceInfo)
			for _, op := range tc.from {
				e.request(t, node.UUID, op, nil)
				e.waitQueueEmpty(t, 20*time.Second)
			}
			e.request(t, node.UUID, tc.op, tc.params)
			e.waitQueueEmpty(t, 20*time.Second)
			got := e.waitState(t, node.UUID, tc.want, 20*time.Second)
			if !strings.Contains(got.LastError, tc.lastError) {
				t.Fatalf("last_error %q, want it to contain %q", got.LastError, tc.lastError)
			}
		})
	}
}
