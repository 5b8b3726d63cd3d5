package conductor_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/baremetal/v1/nodes"

	"github.com/ironfleet/ironfleet/conductor"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// TestInspectionKeepsInventory: an inspection stores what the agent
// reported in Ironic's inventory shape, for GET /v1/nodes/{node}/inventory.
func TestInspectionKeepsInventory(t *testing.T) {
	e := newEnv(t)
	e.startConductor(t, "c1", nil, nil)
	node := e.enroll(t, "node-i", "")
	e.request(t, node.UUID, wire.OpManage, nil)
	e.waitState(t, node.UUID, wire.StateManageable, 20*time.Second)
	records := transport.NewRecords(e.inv)
	if _, err := records.Inspections.Get(t.Context(), node.UUID); wire.CodeOf(err) != wire.CodeNotFound {
		t.Fatalf("inventory before any inspection: err %v, want not_found", err)
	}
	e.request(t, node.UUID, wire.OpInspect, nil)
	got := e.waitState(t, node.UUID, wire.StateManageable, 20*time.Second)
	if got.LastError != "" {
		t.Fatalf("inspection left last_error %q", got.LastError)
	}
	in, err := records.Inspections.Get(t.Context(), node.UUID)
	if err != nil {
		t.Fatal(err)
	}
	cpu, _ := in.Inventory["cpu"].(map[string]any)
	mem, _ := in.Inventory["memory"].(map[string]any)
	disks, _ := in.Inventory["disks"].([]any)
	root, _ := in.PluginData["root_disk"].(map[string]any)
	checks := []struct {
		name      string
		got, want any
	}{
		{"cpu.count", cpu["count"], float64(4)},
		{"memory.physical_mb", mem["physical_mb"], float64(8192)},
		{"disks", len(disks), 1},
		{"plugin_data.root_disk.name", root["name"], "/dev/vda"},
		{"plugin_data.root_disk.size", root["size"], float64(1 << 30)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v (inventory %v)", c.name, c.got, c.want, in.Inventory)
		}
	}
	for _, key := range []string{"interfaces", "system_vendor", "boot"} {
		if _, ok := in.Inventory[key]; !ok {
			t.Errorf("inventory has no %q: %v", key, in.Inventory)
		}
	}
	// Clients read it with gophercloud's types (Metal3's hardware details).
	raw, err := json.Marshal(map[string]any{"inventory": in.Inventory, "plugin_data": in.PluginData})
	if err != nil {
		t.Fatal(err)
	}
	var data nodes.InventoryData
	if err := json.Unmarshal(raw, &data); err != nil {
		t.Fatalf("gophercloud cannot read the inventory: %v", err)
	}
	std, err := data.PluginData.AsStandardData()
	if err != nil {
		t.Fatal(err)
	}
	if data.Inventory.CPU.Count != 4 || data.Inventory.Memory.PhysicalMb != 8192 || std.RootDisk.Name != "/dev/vda" {
		t.Errorf("gophercloud reads cpu count %d, physical_mb %d, root disk %q", data.Inventory.CPU.Count, data.Inventory.Memory.PhysicalMb, std.RootDisk.Name)
	}
}

// TestFailureWritesHistory: a node's failure is recorded in its history as
// Ironic records it (severity ERROR, the activity, the conductor, the
// states), with last_error's text; a timeout found by the sweep has no
// user.
func TestFailureWritesHistory(t *testing.T) {
	e := newEnv(t)
	e.startConductor(t, "c1", nil, func(c *conductor.Config) { c.WaitTimeout = 300 * time.Millisecond })
	node := e.enroll(t, "node-h", "")
	m, _ := e.machines.Machine("node-h")
	e.request(t, node.UUID, wire.OpManage, nil)
	e.waitState(t, node.UUID, wire.StateManageable, 20*time.Second)
	nodeNoClean(t, e, node.UUID)
	e.request(t, node.UUID, wire.OpProvide, nil)
	e.waitState(t, node.UUID, wire.StateAvailable, 20*time.Second)
	m.OnBoot(nil) // no agent will ever call back
	e.request(t, node.UUID, wire.OpDeploy, nil)
	got := e.waitState(t, node.UUID, wire.StateDeployFailed, 20*time.Second)
	h, err := transport.NewRecords(e.inv).History.Get(t.Context(), node.UUID)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Events) != 1 {
		t.Fatalf("history has %d events, want 1: %+v", len(h.Events), h.Events)
	}
	ev := h.Events[0]
	want := wire.HistoryEvent{UUID: ev.UUID, CreatedAt: ev.CreatedAt, Severity: wire.SeverityError, EventType: "deploying",
		Event: got.LastError, Conductor: "c1", State: wire.StateWaitCallback, TargetProvisionState: wire.StateActive}
	if ev.UUID == "" || ev.CreatedAt.IsZero() || ev != want {
		t.Fatalf("history event %+v, want %+v", ev, want)
	}
}

// TestUndeployEndsAllocation: tearing a node down deletes its allocation
// and clears allocation_uuid and instance_uuid, as Ironic's tear-down does.
func TestUndeployEndsAllocation(t *testing.T) {
	e := newEnv(t)
	e.startConductor(t, "c1", nil, nil)
	node := e.enroll(t, "node-a", "")
	e.request(t, node.UUID, wire.OpManage, nil)
	e.waitState(t, node.UUID, wire.StateManageable, 20*time.Second)
	nodeNoClean(t, e, node.UUID)
	e.request(t, node.UUID, wire.OpProvide, nil)
	e.waitState(t, node.UUID, wire.StateAvailable, 20*time.Second)
	records := transport.NewRecords(e.inv)
	a := wire.Allocation{UUID: wire.NewUUID(), Name: "alloc-a", ResourceClass: "", NodeUUID: node.UUID, State: wire.AllocationActive}
	if err := records.Allocations.Claim(t.Context(), "name", a.Name, a.UUID); err != nil {
		t.Fatal(err)
	}
	if err := records.Allocations.Create(t.Context(), a.UUID, a); err != nil {
		t.Fatal(err)
	}
	if _, err := e.inv.UpdateNode(t.Context(), node.UUID, 0, func(n *wire.Node) error {
		n.AllocationUUID, n.InstanceUUID = a.UUID, a.UUID
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	e.request(t, node.UUID, wire.OpDeploy, nil)
	e.waitState(t, node.UUID, wire.StateActive, 30*time.Second)
	e.request(t, node.UUID, wire.OpUndeploy, nil)
	got := e.waitState(t, node.UUID, wire.StateAvailable, 30*time.Second)
	if got.AllocationUUID != "" || got.InstanceUUID != "" {
		t.Fatalf("after undeploy: allocation_uuid %q, instance_uuid %q", got.AllocationUUID, got.InstanceUUID)
	}
	if _, err := records.Allocations.Get(t.Context(), a.UUID); wire.CodeOf(err) != wire.CodeNotFound {
		t.Fatalf("the allocation outlived the undeploy: %v", err)
	}
	if _, err := records.Allocations.Owner(t.Context(), "name", a.Name); wire.CodeOf(err) != wire.CodeNotFound {
		t.Fatalf("the allocation's name is still taken: %v", err)
	}
}

// TestPowerFailureWritesHistory: a failed power action is in the node's
// history as Ironic's node_power_action records it (no event type).
func TestPowerFailureWritesHistory(t *testing.T) {
	e := newEnv(t)
	e.startConductor(t, "c1", nil, nil)
	node := e.enroll(t, "node-ph", "")
	m, _ := e.machines.Machine("node-ph")
	m.FailNext("set_power", 100)
	e.request(t, node.UUID, wire.OpPower, wire.PowerParams{Target: wire.PowerOn})
	records := transport.NewRecords(e.inv)
	var h wire.NodeHistory
	waitFor(t, "power failure in the history", func() bool {
		var err error
		h, err = records.History.Get(t.Context(), node.UUID)
		return err == nil && len(h.Events) > 0
	})
	n, err := e.inv.Get(t.Context(), node.UUID)
	if err != nil {
		t.Fatal(err)
	}
	if ev := h.Events[0]; ev.Severity != wire.SeverityError || ev.EventType != "UNKNOWN" || ev.Event != n.LastError || ev.User != "test" {
		t.Fatalf("history event %+v, want the power failure %q by user test", ev, n.LastError)
	}
}
