package api_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/ironfleet/ironfleet/lock"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// TestPortgroups follows Ironic's portgroup.py: create (201, Location,
// unique name and MAC 409, mode defaulting to active-backup), show by UUID
// or name, lists (by node, address, detail, fields), ports joining with
// portgroup_uuid (1.24; only their node's), a portgroup's ports, delete
// refused while it has ports, VIFs preferring portgroups, versions (404
// below 1.23, mode and properties from 1.26), the node's lock, and a node's
// delete taking its portgroups.
func TestPortgroups(t *testing.T) {
	e := newEnv(t)
	id := e.createNode("pg-1", nil)
	other := e.createNode("pg-2", nil)

	r := e.do(http.MethodPost, "/v1/portgroups", map[string]any{"node_uuid": id, "name": "bond0", "address": "52:54:00:BB:00:01",
		"properties": map[string]any{"miimon": "100"}})
	mustStatus(t, r, http.StatusCreated)
	pg := r.json(t)
	pgID := pg["uuid"].(string)
	if pg["mode"] != "active-backup" || pg["address"] != "52:54:00:bb:00:01" || pg["standalone_ports_supported"] != true {
		t.Errorf("created portgroup %v: want mode active-backup, a normalised MAC, standalone ports", pg)
	}
	if loc := r.header.Get("Location"); loc != e.url+"/v1/portgroups/"+pgID {
		t.Errorf("Location %q", loc)
	}

	for _, tt := range []struct {
		call
		fault string
		hdr   []string
	}{
		{call{"same name", http.MethodPost, "/v1/portgroups", map[string]any{"node_uuid": other, "name": "bond0"}, 409},
			"A portgroup with name bond0 already exists.", nil},
		{call{"same MAC", http.MethodPost, "/v1/portgroups", map[string]any{"node_uuid": other, "address": "52:54:00:bb:00:01"}, 409},
			"A portgroup with MAC address 52:54:00:bb:00:01 already exists.", nil},
		{call{"bad name", http.MethodPost, "/v1/portgroups", map[string]any{"node_uuid": other, "name": "bad name"}, 400},
			"Cannot create portgroup with invalid name 'bad name'", nil},
		{call{"no node", http.MethodPost, "/v1/portgroups", map[string]any{"name": "bond9"}, 400}, "'node_uuid' is a required property", nil},
		{call{"mode below 1.26", http.MethodPost, "/v1/portgroups", map[string]any{"node_uuid": other, "mode": "802.3ad"}, 406}, "",
			[]string{"X-OpenStack-Ironic-API-Version", "1.25"}},
		{call{"below 1.23", http.MethodGet, "/v1/portgroups", nil, 404}, "", []string{"X-OpenStack-Ironic-API-Version", "1.22"}},
		{call{"show by name", http.MethodGet, "/v1/portgroups/bond0", nil, 200}, "", nil},
		{call{"detail below 1.43", http.MethodGet, "/v1/portgroups?detail=true", nil, 400}, "Invalid query parameter ?detail=true received.",
			[]string{"X-OpenStack-Ironic-API-Version", "1.42"}},
		{call{"show unknown", http.MethodGet, "/v1/portgroups/bond9", nil, 404}, "Portgroup bond9 could not be found.", nil},
		{call{"port in another node's portgroup", http.MethodPost, "/v1/ports",
			map[string]any{"node_uuid": other, "address": "52:54:00:bb:01:01", "portgroup_uuid": pgID}, 400},
			"Port can not be added to a portgroup belonging to a different node.", nil},
		{call{"port portgroup_uuid below 1.24", http.MethodPost, "/v1/ports",
			map[string]any{"node_uuid": id, "address": "52:54:00:bb:01:02", "portgroup_uuid": pgID}, 406}, "",
			[]string{"X-OpenStack-Ironic-API-Version", "1.23"}},
		{call{"move to a node that does not exist", http.MethodPatch, "/v1/portgroups/" + pgID,
			`[{"op":"replace","path":"/node_uuid","value":"1be26c0b-03f2-4d2e-ae87-c02d7f33c123"}]`, 400}, "", nil},
		{call{"bad name in a patch", http.MethodPatch, "/v1/portgroups/" + pgID, `[{"op":"replace","path":"/name","value":"a b"}]`, 400},
			"Portgroup " + pgID + ": Cannot change name to invalid name 'a b'", nil},
		{call{"remove mode", http.MethodPatch, "/v1/portgroups/" + pgID, `[{"op":"remove","path":"/mode"}]`, 400},
			"'mode' is a mandatory attribute and can not be removed", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(tt.method, tt.path, tt.body, tt.hdr...)
			mustStatus(t, r, tt.wantStatus)
			if tt.fault != "" {
				faultIs(t, r, tt.fault)
			}
		})
	}

	if got := e.do(http.MethodGet, "/v1/portgroups/"+pgID, nil, "X-OpenStack-Ironic-API-Version", "1.25").json(t); got["mode"] != nil {
		t.Errorf("mode shown at 1.25: %v", got)
	}
	r = e.do(http.MethodPatch, "/v1/portgroups/bond0", `[{"op":"replace","path":"/mode","value":"802.3ad"},{"op":"replace","path":"/name","value":"bond1"}]`)
	mustStatus(t, r, http.StatusOK)
	if got := r.json(t); got["mode"] != "802.3ad" || got["name"] != "bond1" {
		t.Errorf("patched portgroup %v", got)
	}
	mustStatus(t, e.do(http.MethodGet, "/v1/portgroups/bond0", nil), 404)
	mustStatus(t, e.do(http.MethodPost, "/v1/portgroups", map[string]any{"node_uuid": other, "name": "bond0"}), 201) // the old name is free

	t.Run("move to another node", func(t *testing.T) {
		move := func(from, to string) resp {
			return e.do(http.MethodPatch, "/v1/portgroups/"+pgID, `[{"op":"replace","path":"/node_uuid","value":"`+to+`"}]`)
		}
		e.setState(other, wire.StateAvailable)
		r := move(id, other)
		mustStatus(t, r, http.StatusConflict)
		faultIs(t, r, "Portgroup "+pgID+" can not be associated to node "+other+
			" unless the node is in a enroll, inspecting, inspect wait, manageable state or in maintenance mode. Current state is 'available'.")
		e.setState(other, wire.StateManageable)
		r = e.do(http.MethodPost, "/v1/ports", map[string]any{"node_uuid": id, "address": "52:54:00:bb:01:09", "portgroup_uuid": pgID})
		mustStatus(t, r, http.StatusCreated)
		mustStatus(t, move(id, other), http.StatusBadRequest) // it has a port
		mustStatus(t, e.do(http.MethodDelete, "/v1/ports/"+r.json(t)["uuid"].(string), nil), http.StatusNoContent)
		r = move(id, other)
		mustStatus(t, r, http.StatusOK)
		if got := r.json(t)["node_uuid"]; got != other {
			t.Errorf("moved portgroup node_uuid %v, want %s", got, other)
		}
		mustStatus(t, move(other, id), http.StatusOK) // id is in enroll
	})

	r = e.do(http.MethodPost, "/v1/ports", map[string]any{"node_uuid": id, "address": "52:54:00:bb:01:03", "portgroup_uuid": pgID, "pxe_enabled": false})
	mustStatus(t, r, http.StatusCreated)
	member := r.json(t)["uuid"].(string)
	if got := r.json(t)["portgroup_uuid"]; got != pgID {
		t.Errorf("port portgroup_uuid %v, want %s", got, pgID)
	}
	r = e.do(http.MethodPost, "/v1/ports", map[string]any{"node_uuid": id, "address": "52:54:00:bb:01:04", "pxe_enabled": true})
	mustStatus(t, r, http.StatusCreated)
	lone := r.json(t)["uuid"].(string)

	t.Run("lists", func(t *testing.T) {
		for _, tt := range []struct {
			path, key string
			want      int
		}{
			{"/v1/portgroups", "portgroups", 2},
			{"/v1/nodes/pg-1/portgroups", "portgroups", 1},
			{"/v1/portgroups?node=" + other, "portgroups", 1},
			{"/v1/portgroups?address=52:54:00:bb:00:01", "portgroups", 1},
			{"/v1/portgroups/detail", "portgroups", 2},
			{"/v1/portgroups/" + pgID + "/ports", "ports", 1},
			{"/v1/ports?portgroup=bond1", "ports", 1},
			{"/v1/nodes/pg-1/ports?portgroup=bond1", "ports", 1},
			{"/v1/nodes/pg-2/ports?portgroup=bond1", "ports", 0},
		} {
			r := e.do(http.MethodGet, tt.path, nil)
			mustStatus(t, r, http.StatusOK)
			if got := len(r.json(t)[tt.key].([]any)); got != tt.want {
				t.Errorf("%s: %d %s, want %d", tt.path, got, tt.key, tt.want)
			}
		}
		short := e.do(http.MethodGet, "/v1/portgroups?node="+id, nil).json(t)["portgroups"].([]any)[0].(map[string]any)
		if len(short) != 4 || short["name"] != "bond1" {
			t.Errorf("short portgroup %v, want uuid, address, name, links", short)
		}
		detail := e.do(http.MethodGet, "/v1/portgroups/detail?node="+id, nil).json(t)["portgroups"].([]any)[0].(map[string]any)
		if detail["mode"] != "802.3ad" {
			t.Errorf("detail portgroup %v", detail)
		}
	})

	t.Run("VIFs prefer the portgroup", func(t *testing.T) {
		mustStatus(t, e.do(http.MethodPost, "/v1/nodes/"+id+"/vifs", map[string]any{"id": "vif-pg"}), 204)
		info := e.do(http.MethodGet, "/v1/portgroups/"+pgID, nil).json(t)["internal_info"].(map[string]any)
		if info["tenant_vif_port_id"] != "vif-pg" {
			t.Errorf("portgroup internal_info %v, want the VIF", info)
		}
		mustStatus(t, e.do(http.MethodPost, "/v1/nodes/"+id+"/vifs", map[string]any{"id": "vif-port"}), 204)
		info = e.do(http.MethodGet, "/v1/ports/"+lone, nil).json(t)["internal_info"].(map[string]any)
		if info["tenant_vif_port_id"] != "vif-port" {
			t.Errorf("lone port internal_info %v, want the second VIF", info)
		}
		mustStatus(t, e.do(http.MethodPost, "/v1/nodes/"+id+"/vifs", map[string]any{"id": "vif-3"}), 400)
		mustStatus(t, e.do(http.MethodPost, "/v1/nodes/"+id+"/vifs", map[string]any{"id": "vif-3", "port_uuid": member, "portgroup_uuid": pgID}), 400)
		mustStatus(t, e.do(http.MethodDelete, "/v1/nodes/"+id+"/vifs/vif-pg", nil), 204)
		if info := e.do(http.MethodGet, "/v1/portgroups/"+pgID, nil).json(t)["internal_info"].(map[string]any); len(info) != 0 {
			t.Errorf("portgroup internal_info %v after detach", info)
		}
	})

	t.Run("lock", func(t *testing.T) {
		ctx := t.Context()
		lk, err := e.locker.WithHolder("conductor-1").Acquire(ctx, id, &lock.Options{Purpose: "deploy", Attempts: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = lk.Release(context.WithoutCancel(ctx)) })
		mustNodeLocked(t, e.do(http.MethodPost, "/v1/portgroups", map[string]any{"node_uuid": id, "name": "bond5"}), id, "conductor-1")
		mustNodeLocked(t, e.do(http.MethodPatch, "/v1/portgroups/"+pgID, `[{"op":"add","path":"/extra/x","value":1}]`), id, "conductor-1")
		mustNodeLocked(t, e.do(http.MethodDelete, "/v1/portgroups/"+pgID, nil), id, "conductor-1")
		if err := lk.Release(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("delete", func(t *testing.T) {
		r := e.do(http.MethodDelete, "/v1/portgroups/"+pgID, nil)
		mustStatus(t, r, 400)
		faultIs(t, r, "Cannot complete the requested action because portgroup "+pgID+" contains ports.")
		mustStatus(t, e.do(http.MethodPatch, "/v1/ports/"+member, `[{"op":"remove","path":"/portgroup_uuid"}]`), 200)
		mustStatus(t, e.do(http.MethodDelete, "/v1/portgroups/"+pgID, nil), 204)
		mustStatus(t, e.do(http.MethodGet, "/v1/portgroups/"+pgID, nil), 404)
	})

	t.Run("a node's delete takes its portgroups", func(t *testing.T) {
		mustStatus(t, e.do(http.MethodDelete, "/v1/nodes/"+other, nil), 204)
		if got := e.do(http.MethodGet, "/v1/portgroups", nil).json(t)["portgroups"].([]any); len(got) != 0 {
			t.Errorf("portgroups %v left", got)
		}
		mustStatus(t, e.do(http.MethodPost, "/v1/portgroups", map[string]any{"node_uuid": id, "name": "bond0"}), 201) // its name is free
	})
}
