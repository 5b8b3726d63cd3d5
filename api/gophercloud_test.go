package api_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/baremetal/httpbasic"
	"github.com/gophercloud/gophercloud/v2/openstack/baremetal/noauth"
	"github.com/gophercloud/gophercloud/v2/openstack/baremetal/v1/allocations"
	"github.com/gophercloud/gophercloud/v2/openstack/baremetal/v1/nodes"
	"github.com/gophercloud/gophercloud/v2/openstack/baremetal/v1/ports"
	"github.com/gophercloud/gophercloud/v2/pagination"
	"golang.org/x/crypto/bcrypt"

	"github.com/ironfleet/ironfleet/api"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// TestGophercloud drives the API with gophercloud v2's baremetal client,
// unchanged, in both of Ironic's standalone auth modes: everything a client
// does that needs no conductor. (With a conductor the same flow continues to
// "active"; that test lives with the conductor.)
func TestGophercloud(t *testing.T) {
	h, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(htpasswd, []byte("operator:"+string(h)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	modes := []struct {
		name   string
		opt    envOption
		client func(endpoint string) (*gophercloud.ServiceClient, error)
	}{
		{"noauth", func(*api.Config) {}, func(ep string) (*gophercloud.ServiceClient, error) {
			return noauth.NewBareMetalNoAuth(noauth.EndpointOpts{IronicEndpoint: ep})
		}},
		{"http_basic", func(c *api.Config) { c.Auth, c.HTPasswd = api.AuthHTTPBasic, htpasswd }, func(ep string) (*gophercloud.ServiceClient, error) {
			return httpbasic.NewBareMetalHTTPBasic(httpbasic.EndpointOpts{IronicEndpoint: ep, IronicUser: "operator", IronicUserPassword: "pw"})
		}},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			e := newEnv(t, m.opt)
			client, err := m.client(e.url + "/v1")
			if err != nil {
				t.Fatal(err)
			}
			client.Microversion = "1.82"
			gophercloudFlow(t, e, client)
		})
	}
}

func gophercloudFlow(t *testing.T, e *env, client *gophercloud.ServiceClient) {
	ctx := t.Context()
	// Create nodes and a port each.
	var uuids []string
	for i := range 5 {
		name := "gc-" + string(rune('a'+i))
		n, err := nodes.Create(ctx, client, nodes.CreateOpts{
			Name: name, Driver: "sim", DriverInfo: map[string]any{"sim_machine": name, "sim_password": "hidden"},
			ConductorGroup: "rack1",
		}).Extract()
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		if n.ProvisionState != "enroll" || n.DriverInfo["sim_password"] != api.Mask {
			t.Errorf("created node %+v", n)
		}
		uuids = append(uuids, n.UUID)
		mac := "52:54:00:00:10:0" + string(rune('0'+i))
		if _, err := ports.Create(ctx, client, ports.CreateOpts{NodeUUID: n.UUID, Address: mac}).Extract(); err != nil {
			t.Fatalf("create port: %v", err)
		}
	}
	// A duplicate name is a 409 to gophercloud too.
	_, err := nodes.Create(ctx, client, nodes.CreateOpts{Name: "gc-a", Driver: "sim"}).Extract()
	if !gophercloud.ResponseCodeIs(err, http.StatusConflict) {
		t.Errorf("duplicate create: %v, want 409", err)
	}

	// List through pages of 2: gophercloud follows nodes_links.
	var names []string
	pages := 0
	err = nodes.ListDetail(client, nodes.ListOpts{Limit: 2, SortKey: "name", ConductorGroup: "rack1"}).EachPage(ctx,
		func(_ context.Context, p pagination.Page) (bool, error) {
			ns, err := nodes.ExtractNodes(p)
			if err != nil {
				return false, err
			}
			pages++
			for _, n := range ns {
				names = append(names, n.Name)
			}
			return true, nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"gc-a", "gc-b", "gc-c", "gc-d", "gc-e"}; !slices.Equal(names, want) || pages < 3 {
		t.Errorf("listed %v in %d pages, want %v in 3+", names, pages, want)
	}
	all, err := nodes.List(client, nodes.ListOpts{ProvisionState: nodes.Enroll, Fields: []string{"uuid", "name"}}).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ns, _ := nodes.ExtractNodes(all); len(ns) != 5 {
		t.Errorf("filtered list has %d nodes", len(ns))
	}

	// Get by name, patch.
	n, err := nodes.Get(ctx, client, "gc-a").Extract()
	if err != nil || n.UUID != uuids[0] {
		t.Fatalf("get by name: %+v, %v", n, err)
	}
	n, err = nodes.Update(ctx, client, n.UUID, nodes.UpdateOpts{
		nodes.UpdateOperation{Op: nodes.AddOp, Path: "/instance_info/image_source", Value: "http://images/x.qcow2"},
		nodes.UpdateOperation{Op: nodes.ReplaceOp, Path: "/description", Value: "rack 1, slot 1"},
	}).Extract()
	if err != nil || n.InstanceInfo["image_source"] != "http://images/x.qcow2" || n.Description != "rack 1, slot 1" {
		t.Fatalf("update: %+v, %v", n, err)
	}
	_, err = nodes.Update(ctx, client, n.UUID, nodes.UpdateOpts{
		nodes.UpdateOperation{Op: nodes.ReplaceOp, Path: "/provision_state", Value: "active"},
	}).Extract()
	if !gophercloud.ResponseCodeIs(err, http.StatusBadRequest) {
		t.Errorf("patching provision_state: %v, want 400", err)
	}

	// Provision: accepted (202) and invalid (400).
	if err := nodes.ChangeProvisionState(ctx, client, uuids[0], nodes.ProvisionStateOpts{Target: nodes.TargetManage}).ExtractErr(); err != nil {
		t.Fatalf("manage: %v", err)
	}
	err = nodes.ChangeProvisionState(ctx, client, uuids[1], nodes.ProvisionStateOpts{Target: nodes.TargetActive}).ExtractErr()
	if !gophercloud.ResponseCodeIs(err, http.StatusBadRequest) {
		t.Errorf("deploy from enroll: %v, want 400", err)
	}
	// Power: 202.
	if err := nodes.ChangePowerState(ctx, client, uuids[1], nodes.PowerStateOpts{Target: nodes.PowerOn}).ExtractErr(); err != nil {
		t.Fatalf("power on: %v", err)
	}
	// 409 while the lock is held (here by the manage task's ticket, never
	// claimed since no conductor runs: it stays reserved for its claim timeout).
	err = nodes.ChangePowerState(ctx, client, uuids[0], nodes.PowerStateOpts{Target: nodes.PowerOff}).ExtractErr()
	if !gophercloud.ResponseCodeIs(err, http.StatusConflict) {
		t.Errorf("power while the manage task holds the lock: %v, want 409", err)
	}
	// Boot device and validate.
	if err := nodes.SetBootDevice(ctx, client, uuids[2], nodes.BootDeviceOpts{BootDevice: "pxe"}).ExtractErr(); err != nil {
		t.Errorf("boot device: %v", err)
	}
	if _, err := nodes.Validate(ctx, client, uuids[2]).Extract(); err != nil {
		t.Errorf("validate: %v", err)
	}
	// Delete: enroll nodes may go; the handed-off one is locked.
	if err := nodes.Delete(ctx, client, uuids[4]).ExtractErr(); err != nil {
		t.Errorf("delete: %v", err)
	}
	if _, err := nodes.Get(ctx, client, uuids[4]).Extract(); !gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
		t.Errorf("get after delete: %v, want 404", err)
	}
	if err := nodes.Delete(ctx, client, uuids[0]).ExtractErr(); !gophercloud.ResponseCodeIs(err, http.StatusConflict) {
		t.Errorf("delete of a locked node: %v, want 409", err)
	}
	// The tasks a conductor would get.
	var ops []wire.Operation
	for _, task := range e.tasks() {
		ops = append(ops, task.Op)
	}
	if want := []wire.Operation{wire.OpManage, wire.OpPower, wire.OpBootDevice}; !slices.Equal(ops, want) {
		t.Errorf("published %v, want %v", ops, want)
	}
	snap, err := e.locker.Snapshot(ctx, uuids[0])
	if err != nil || !snap.Held || snap.Mode != "handoff" {
		t.Errorf("manage's lock %+v, %v", snap, err)
	}
}

// TestGophercloudAllocationsAndInventory drives allocations and a node's
// inventory with gophercloud v2's clients, unchanged: create (a match and
// a failure), get, list page by page, delete; the inventory as its
// InventoryData.
func TestGophercloudAllocationsAndInventory(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	client, err := noauth.NewBareMetalNoAuth(noauth.EndpointOpts{IronicEndpoint: e.url + "/v1"})
	if err != nil {
		t.Fatal(err)
	}
	client.Microversion = "1.82"
	node := e.createNode("gca", nil)
	e.makeFree(node, "CUSTOM_GPU")
	a, err := allocations.Create(ctx, client, allocations.CreateOpts{ResourceClass: "gold", Traits: []string{"CUSTOM_GPU"}, Name: "gc-alloc",
		Extra: map[string]string{"k": "v"}}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if a.State != allocations.Active || a.NodeUUID != node || a.Extra["k"] != "v" {
		t.Fatalf("allocation %+v, want active on %s", a, node)
	}
	failed, err := allocations.Create(ctx, client, allocations.CreateOpts{ResourceClass: "gold"}).Extract()
	if err != nil || failed.State != allocations.Error || failed.LastError == "" {
		t.Fatalf("allocation with nothing free: %+v, %v; want state error with last_error", failed, err)
	}
	if got, err := allocations.Get(ctx, client, "gc-alloc").Extract(); err != nil || got.UUID != a.UUID {
		t.Fatalf("get by name: %+v, %v", got, err)
	}
	var seen []string
	err = allocations.List(client, allocations.ListOpts{Limit: 1}).EachPage(ctx, func(_ context.Context, p pagination.Page) (bool, error) {
		all, err := allocations.ExtractAllocations(p)
		for _, x := range all {
			seen = append(seen, x.UUID)
		}
		return true, err
	})
	if err != nil || len(seen) != 2 {
		t.Fatalf("listed %v, %v; want both allocations, a page each", seen, err)
	}
	if err := allocations.Delete(ctx, client, a.UUID).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	if _, err := allocations.Get(ctx, client, a.UUID).Extract(); !gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
		t.Fatalf("get after delete: %v, want 404", err)
	}

	if _, err := nodes.GetInventory(ctx, client, node).Extract(); !gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
		t.Fatalf("inventory before inspection: %v, want 404", err)
	}
	in := wire.Inspection{
		Inventory: map[string]any{"cpu": map[string]any{"count": 8, "model_name": "x", "frequency": nil},
			"memory": map[string]any{"physical_mb": 4096, "total": 4 << 30}, "disks": []any{map[string]any{"name": "/dev/sda", "size": 1 << 30}}},
		PluginData: map[string]any{"root_disk": map[string]any{"name": "/dev/sda"}},
	}
	if err := transport.NewRecords(e.inv).SetInspection(ctx, node, in); err != nil {
		t.Fatal(err)
	}
	data, err := nodes.GetInventory(ctx, client, node).Extract()
	if err != nil {
		t.Fatal(err)
	}
	std, err := data.PluginData.AsStandardData()
	if err != nil || data.Inventory.CPU.Count != 8 || data.Inventory.Memory.PhysicalMb != 4096 || std.RootDisk.Name != "/dev/sda" {
		t.Fatalf("inventory %+v, plugin data %+v, %v", data.Inventory, std, err)
	}
}

// TestGophercloudNovaResources drives what gophercloud v2's baremetal
// client offers of the resources on nova's path: VIF attach, list and
// detach (nodes.AttachVirtualInterface, …), a port's portgroup_uuid and
// internal_info, a node's traits and chassis_uuid, and the chassis_uuid
// filter (nodes.ListOpts). Chassis, portgroups, traits and volume writes
// have no gophercloud call; they are created through the raw API.
func TestGophercloudNovaResources(t *testing.T) {
	e := newEnv(t)
	client, err := noauth.NewBareMetalNoAuth(noauth.EndpointOpts{IronicEndpoint: e.url + "/v1"})
	if err != nil {
		t.Fatal(err)
	}
	client.Microversion = "1.82"
	ctx := t.Context()

	r := e.do(http.MethodPost, "/v1/chassis", map[string]any{"description": "rack"})
	mustStatus(t, r, http.StatusCreated)
	chassis := r.json(t)["uuid"].(string)
	id := e.createNode("gc-nova", map[string]any{"chassis_uuid": chassis})
	e.createNode("gc-other", nil)
	r = e.do(http.MethodPost, "/v1/portgroups", map[string]any{"node_uuid": id, "name": "gc-bond"})
	mustStatus(t, r, http.StatusCreated)
	pg := r.json(t)["uuid"].(string)
	mustStatus(t, e.do(http.MethodPut, "/v1/nodes/"+id+"/traits", map[string]any{"traits": []string{"CUSTOM_GOLD"}}), http.StatusNoContent)

	p, err := ports.Create(ctx, client, ports.CreateOpts{NodeUUID: id, Address: "52:54:00:cc:00:01", PortGroupUUID: pg}).Extract()
	if err != nil {
		t.Fatalf("create a port in a portgroup: %v", err)
	}
	if p.PortGroupUUID != pg {
		t.Errorf("port portgroup_uuid %q, want %q", p.PortGroupUUID, pg)
	}
	lone, err := ports.Create(ctx, client, ports.CreateOpts{NodeUUID: id, Address: "52:54:00:cc:00:02"}).Extract()
	if err != nil {
		t.Fatal(err)
	}

	n, err := nodes.Get(ctx, client, id).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(n.Traits, []string{"CUSTOM_GOLD"}) || n.ChassisUUID != chassis {
		t.Errorf("node traits %v, chassis %q; want [CUSTOM_GOLD], %s", n.Traits, n.ChassisUUID, chassis)
	}
	var inChassis []string
	err = nodes.List(client, nodes.ListOpts{ChassisUUID: chassis}).EachPage(ctx, func(_ context.Context, page pagination.Page) (bool, error) {
		ns, err := nodes.ExtractNodes(page)
		for _, n := range ns {
			inChassis = append(inChassis, n.UUID)
		}
		return true, err
	})
	if err != nil || !slices.Equal(inChassis, []string{id}) {
		t.Errorf("nodes in the chassis %v, %v; want [%s]", inChassis, err, id)
	}

	for _, vif := range []string{"gc-vif-1", "gc-vif-2"} {
		if err := nodes.AttachVirtualInterface(ctx, client, id, nodes.VirtualInterfaceOpts{ID: vif}).ExtractErr(); err != nil {
			t.Fatalf("attach %s: %v", vif, err)
		}
	}
	if err := nodes.AttachVirtualInterface(ctx, client, id, nodes.VirtualInterfaceOpts{ID: "gc-vif-1"}).ExtractErr(); !gophercloud.ResponseCodeIs(err, http.StatusConflict) {
		t.Errorf("attaching twice: %v, want 409", err)
	}
	vifs, err := nodes.ListVirtualInterfaces(ctx, client, id).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if len(vifs) != 2 || vifs[0].ID != "gc-vif-2" || vifs[1].ID != "gc-vif-1" {
		t.Errorf("vifs %+v, want gc-vif-2 on the lone port, then gc-vif-1 on the portgroup", vifs)
	}
	got, err := ports.Get(ctx, client, lone.UUID).Extract()
	if err != nil || got.InternalInfo["tenant_vif_port_id"] != "gc-vif-2" {
		t.Errorf("lone port internal_info %v, %v", got.InternalInfo, err)
	}
	for _, vif := range []string{"gc-vif-1", "gc-vif-2"} {
		if err := nodes.DetachVirtualInterface(ctx, client, id, vif).ExtractErr(); err != nil {
			t.Errorf("detach %s: %v", vif, err)
		}
	}
	if err := nodes.DetachVirtualInterface(ctx, client, id, "gc-vif-1").ExtractErr(); !gophercloud.ResponseCodeIs(err, http.StatusBadRequest) {
		t.Errorf("detaching twice: %v, want 400", err)
	}
}
