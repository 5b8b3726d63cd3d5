package api_test

import (
	"net/http"
	"testing"

	"github.com/ironfleet/ironfleet/transport/wire"
)

// TestChassis follows Ironic's chassis.py: CRUD, nodes joining with
// chassis_uuid (400 for a chassis that does not exist, removal from 1.25),
// the chassis's nodes list and the nodes list's chassis_uuid filter, and
// ChassisNotEmpty while nodes are in it.
func TestChassis(t *testing.T) {
	e := newEnv(t)
	r := e.do(http.MethodPost, "/v1/chassis", map[string]any{"description": "rack 1", "extra": map[string]any{"row": "a"}})
	mustStatus(t, r, http.StatusCreated)
	ch := r.json(t)
	cid := ch["uuid"].(string)
	if ch["description"] != "rack 1" || r.header.Get("Location") != e.url+"/v1/chassis/"+cid {
		t.Errorf("created chassis %v, Location %q", ch, r.header.Get("Location"))
	}
	in := e.createNode("ch-1", map[string]any{"chassis_uuid": cid})
	out := e.createNode("ch-2", nil)

	for _, tt := range []struct {
		call
		fault string
		hdr   []string
	}{
		{call{"node in a chassis that does not exist", http.MethodPost, "/v1/nodes",
			map[string]any{"driver": "sim", "chassis_uuid": "1be26c0b-03f2-4d2e-ae87-c02d7f33c123"}, 400},
			"Chassis 1be26c0b-03f2-4d2e-ae87-c02d7f33c123 could not be found.", nil},
		{call{"unknown field", http.MethodPost, "/v1/chassis", map[string]any{"name": "x"}, 400}, "", nil},
		{call{"description too long", http.MethodPost, "/v1/chassis", map[string]any{"description": string(make([]byte, 256))}, 400}, "", nil},
		{call{"show unknown", http.MethodGet, "/v1/chassis/" + wire.NewUUID(), nil, 404}, "", nil},
		{call{"delete with nodes", http.MethodDelete, "/v1/chassis/" + cid, nil, 400},
			"Cannot complete the requested action because chassis " + cid + " contains nodes.", nil},
		{call{"remove a node's chassis at 1.24", http.MethodPatch, "/v1/nodes/" + in, `[{"op":"remove","path":"/chassis_uuid"}]`, 406}, "",
			[]string{"X-OpenStack-Ironic-API-Version", "1.24"}},
		{call{"patch description", http.MethodPatch, "/v1/chassis/" + cid, `[{"op":"replace","path":"/description","value":"rack 2"}]`, 200}, "", nil},
		{call{"patch uuid", http.MethodPatch, "/v1/chassis/" + cid, `[{"op":"replace","path":"/uuid","value":"x"}]`, 400}, "", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(tt.method, tt.path, tt.body, tt.hdr...)
			mustStatus(t, r, tt.wantStatus)
			if tt.fault != "" {
				faultIs(t, r, tt.fault)
			}
		})
	}

	nodes := func(path string) []string {
		t.Helper()
		r := e.do(http.MethodGet, path, nil)
		mustStatus(t, r, http.StatusOK)
		var ids []string
		for _, n := range r.json(t)["nodes"].([]any) {
			ids = append(ids, n.(map[string]any)["uuid"].(string))
		}
		return ids
	}
	for _, path := range []string{"/v1/chassis/" + cid + "/nodes", "/v1/nodes?chassis_uuid=" + cid, "/v1/chassis/" + cid + "/nodes/detail"} {
		if got := nodes(path); len(got) != 1 || got[0] != in {
			t.Errorf("%s: %v, want [%s]", path, got, in)
		}
	}
	if got := e.do(http.MethodGet, "/v1/nodes/"+in, nil).json(t)["chassis_uuid"]; got != cid {
		t.Errorf("node chassis_uuid %v, want %s", got, cid)
	}
	if got := e.do(http.MethodGet, "/v1/chassis", nil).json(t)["chassis"].([]any); len(got) != 1 || got[0].(map[string]any)["description"] != "rack 2" {
		t.Errorf("chassis list %v", got)
	}

	mustStatus(t, e.do(http.MethodPatch, "/v1/nodes/"+out, `[{"op":"add","path":"/chassis_uuid","value":"`+cid+`"}]`), 200)
	for _, id := range []string{in, out} {
		mustStatus(t, e.do(http.MethodPatch, "/v1/nodes/"+id, `[{"op":"remove","path":"/chassis_uuid"}]`), 200)
	}
	mustStatus(t, e.do(http.MethodDelete, "/v1/chassis/"+cid, nil), 204)
	mustStatus(t, e.do(http.MethodGet, "/v1/chassis/"+cid+"/nodes", nil), 404)
}
