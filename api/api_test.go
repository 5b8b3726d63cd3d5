package api_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/bcrypt"

	"github.com/ironfleet/ironfleet/api"
	"github.com/ironfleet/ironfleet/lock"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

func TestVersions(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name        string
		path        string
		header      string
		wantStatus  int
		wantVersion string // "" means the header must be absent
		wantInBody  string
	}{
		{"root has no version headers", "/", "", 200, "", `"min_version":"1.1"`},
		{"no header is 1.1", "/v1", "", 200, "1.1", `"nodes"`},
		{"latest is the maximum", "/v1", "latest", 200, api.MaxVersion.String(), `"lookup"`},
		{"a version in range", "/v1/nodes", "1.46", 200, "1.46", `"nodes"`},
		{"above the maximum", "/v1/nodes", "1.99", 406, "", `Version 1.99 was requested but the minor version is not supported by this service. The supported version range is: [1.1, 1.95].`},
		{"below the minimum", "/v1/nodes", "1.0", 406, "", "not supported"},
		{"malformed", "/v1/nodes", "abc", 406, "", "Invalid value for X-OpenStack-Ironic-API-Version header"},
		{"major 2", "/v1/nodes", "2.1", 406, "", "Invalid value"},
		{"conductors need 1.49", "/v1/conductors", "1.48", 404, "1.48", "could not be found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.header
			r := e.do(http.MethodGet, tt.path, nil, "X-OpenStack-Ironic-API-Version", h)
			mustStatus(t, r, tt.wantStatus)
			if got := r.header.Get("X-OpenStack-Ironic-API-Version"); got != tt.wantVersion {
				t.Errorf("version header %q, want %q", got, tt.wantVersion)
			}
			if strings.HasPrefix(tt.path, "/v1") {
				if r.header.Get("X-OpenStack-Ironic-API-Minimum-Version") != "1.1" || r.header.Get("X-OpenStack-Ironic-API-Maximum-Version") != api.MaxVersion.String() {
					t.Errorf("min/max headers missing: %v", r.header)
				}
			}
			if !strings.HasPrefix(r.header.Get("Openstack-Request-Id"), "req-") {
				t.Errorf("no request id: %v", r.header)
			}
			if !strings.Contains(strings.ReplaceAll(string(r.body), `\"`, `"`), tt.wantInBody) {
				t.Errorf("body %s does not contain %q", r.body, tt.wantInBody)
			}
		})
	}
}

func TestNodeShapeMatchesIronic(t *testing.T) {
	e := newEnv(t)
	id := e.createNode("shape-1", nil)
	// The recording is at 1.82; TestVersionedNodeFields covers later versions.
	r := e.do(http.MethodGet, "/v1/nodes/"+id, nil, "X-OpenStack-Ironic-API-Version", "1.82")
	mustStatus(t, r, 200)
	got := r.json(t)
	data, err := os.ReadFile(filepath.Join("testdata", "ironic-node-show-1.82.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]any
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	for k := range want {
		if _, ok := got[k]; !ok {
			t.Errorf("key %q of Ironic's node is missing", k)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("key %q is not in Ironic's node", k)
		}
	}
	if got["provision_state"] != "enroll" || got["reservation"] != nil || got["name"] != "shape-1" {
		t.Errorf("node %v", got)
	}
	// 1.1 clients see 1.1's fields only, and a pre-1.11 create starts available (null).
	r = e.do(http.MethodPost, "/v1/nodes", map[string]any{"driver": "sim"}, "X-OpenStack-Ironic-API-Version", "")
	mustStatus(t, r, 201)
	old := r.json(t)
	if _, ok := old["name"]; ok {
		t.Errorf("1.1 node has a name field: %v", old)
	}
	if v, ok := old["provision_state"]; !ok || v != nil {
		t.Errorf("1.1 node provision_state %v, want null (available)", v)
	}
	// name needs 1.5
	r = e.do(http.MethodPost, "/v1/nodes", map[string]any{"driver": "sim", "name": "x"}, "X-OpenStack-Ironic-API-Version", "")
	mustStatus(t, r, 406)
	if r.fault(t)["faultstring"] != "Request not acceptable." {
		t.Errorf("fault %s", r.body)
	}
}

func TestNodeCreateErrors(t *testing.T) {
	e := newEnv(t)
	e.createNode("dup", nil)
	tests := []struct {
		name       string
		body       any
		wantStatus int
		wantFault  string
	}{
		{"duplicate name", map[string]any{"driver": "sim", "name": "dup"}, 409, "A node with name dup already exists."},
		{"unknown driver", map[string]any{"driver": "nosuch"}, 400, `No valid host was found. Reason: No conductor service registered which supports driver nosuch for conductor group "".`},
		{"no driver", map[string]any{"name": "a"}, 400, "Mandatory field missing: driver."},
		{"unknown field", map[string]any{"driver": "sim", "colour": "red"}, 400, "Unknown attribute for node: colour."},
		{"read-only field", map[string]any{"driver": "sim", "provision_state": "active"}, 400, "Unknown attribute"},
		{"bad name", map[string]any{"driver": "sim", "name": "a b"}, 400, "Expected a logical name"},
		{"uuid as name", map[string]any{"driver": "sim", "name": "00000000-0000-0000-0000-000000000001"}, 400, "Expected a logical name"},
		{"wrong type", map[string]any{"driver": "sim", "driver_info": "x"}, 400, "Invalid node"},
		{"not an object", "[1,2]", 400, "not a JSON object"},
		{"truncated", `{"driver":`, 400, "not a JSON object"},
		{"other interface", map[string]any{"driver": "sim", "power_interface": "redfish"}, 400, "Valid interfaces for hardware type sim are sim."},
		{"bad group", map[string]any{"driver": "sim", "conductor_group": "a b"}, 400, "Invalid conductor_group"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(http.MethodPost, "/v1/nodes", tt.body)
			mustStatus(t, r, tt.wantStatus)
			if f := r.fault(t); !strings.Contains(f["faultstring"].(string), tt.wantFault) || f["faultcode"] != "Client" {
				t.Errorf("fault %v, want %q", f, tt.wantFault)
			}
			if r.header.Get("Content-Type") != "application/json; charset=utf-8" {
				t.Errorf("content type %q", r.header.Get("Content-Type"))
			}
		})
	}
}

func TestSecretsMasked(t *testing.T) {
	e := newEnv(t)
	r := e.do(http.MethodPost, "/v1/nodes", map[string]any{"driver": "ipmi", "name": "bmc-1",
		"driver_info": map[string]any{"ipmi_address": "10.0.0.1", "ipmi_username": "admin", "ipmi_password": "s3cret", "snmp_secret": "x2"}})
	mustStatus(t, r, 201)
	id := r.json(t)["uuid"].(string)
	for _, path := range []string{"/v1/nodes/" + id, "/v1/nodes/detail", "/v1/nodes/bmc-1", "/v1/nodes?fields=uuid,driver_info"} {
		r := e.do(http.MethodGet, path, nil)
		mustStatus(t, r, 200)
		if strings.Contains(string(r.body), "s3cret") || strings.Contains(string(r.body), "x2") || !strings.Contains(string(r.body), api.Mask) {
			t.Errorf("%s: secret not masked: %s", path, r.body)
		}
	}
	// Patching another key with the masked document sent back keeps the password.
	r = e.do(http.MethodPatch, "/v1/nodes/"+id, `[{"op":"replace","path":"/driver_info","value":{"ipmi_address":"10.0.0.2","ipmi_username":"admin","ipmi_password":"******","snmp_secret":"******"}}]`)
	mustStatus(t, r, 200)
	n, err := e.inv.Get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if n.DriverInfo["ipmi_password"] != "s3cret" || n.DriverInfo["ipmi_address"] != "10.0.0.2" {
		t.Errorf("driver_info %v", n.DriverInfo)
	}
	// validate checks the driver_info without showing it.
	r = e.do(http.MethodGet, "/v1/nodes/"+id+"/validate", nil)
	mustStatus(t, r, 200)
	if v := r.json(t)["power"].(map[string]any); v["result"] != true {
		t.Errorf("power validation %v", v)
	}
}

func TestNodeList(t *testing.T) {
	e := newEnv(t)
	var ids []string
	for i := range 5 {
		extra := map[string]any{}
		if i%2 == 0 {
			extra["conductor_group"] = "rack1"
		}
		ids = append(ids, e.createNode("list-"+string(rune('a'+i)), extra))
	}
	e.setState(ids[1], wire.StateManageable)
	mustStatus(t, e.do(http.MethodPut, "/v1/nodes/"+ids[2]+"/maintenance", nil), 202)
	uuidsOf := func(r resp) []string {
		var out []string
		for _, n := range r.json(t)["nodes"].([]any) {
			out = append(out, n.(map[string]any)["uuid"].(string))
		}
		slices.Sort(out)
		return out
	}
	sorted := func(s ...string) []string { s = slices.Clone(s); slices.Sort(s); return s }
	tests := []struct {
		query string
		want  []string
	}{
		{"", sorted(ids...)},
		{"?provision_state=manageable", sorted(ids[1])},
		{"?maintenance=true", sorted(ids[2])},
		{"?conductor_group=rack1", sorted(ids[0], ids[2], ids[4])},
		{"?driver=sim&associated=false", sorted(ids...)},
		{"?driver=ipmi", nil},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			r := e.do(http.MethodGet, "/v1/nodes"+tt.query, nil)
			mustStatus(t, r, 200)
			if got := uuidsOf(r); !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	// Pages: follow "next" and check nodes_links carries the same URL.
	var seen []string
	path := "/v1/nodes?limit=2&sort_key=name"
	for range 10 {
		r := e.do(http.MethodGet, path, nil)
		mustStatus(t, r, 200)
		doc := r.json(t)
		for _, n := range doc["nodes"].([]any) {
			seen = append(seen, n.(map[string]any)["name"].(string))
		}
		next, ok := doc["next"].(string)
		if !ok {
			break
		}
		links := doc["nodes_links"].([]any)
		if links[0].(map[string]any)["href"] != next {
			t.Errorf("nodes_links %v, next %s", links, next)
		}
		path = strings.TrimPrefix(next, e.url)
	}
	if want := []string{"list-a", "list-b", "list-c", "list-d", "list-e"}; !slices.Equal(seen, want) {
		t.Errorf("pages gave %v, want %v", seen, want)
	}
	// fields, detail and bad parameters.
	r := e.do(http.MethodGet, "/v1/nodes?fields=uuid,provision_state", nil)
	mustStatus(t, r, 200)
	if n := r.json(t)["nodes"].([]any)[0].(map[string]any); len(n) != 3 {
		t.Errorf("fields: %v", n)
	}
	r = e.do(http.MethodGet, "/v1/nodes/detail?limit=1", nil)
	mustStatus(t, r, 200)
	if n := r.json(t)["nodes"].([]any)[0].(map[string]any); n["driver_info"] == nil {
		t.Errorf("detail: %v", n)
	}
	for _, q := range []string{"?limit=x", "?fields=nosuch", "?sort_key=colour", "?sort_dir=up", "?maintenance=perhaps", "?marker=nope"} {
		mustStatus(t, e.do(http.MethodGet, "/v1/nodes"+q, nil), 400)
	}
}

func TestNodePatch(t *testing.T) {
	e := newEnv(t)
	id := e.createNode("patch-1", nil)
	tests := []struct {
		name       string
		patch      string
		wantStatus int
		check      func(t *testing.T, n map[string]any)
	}{
		{"add extra", `[{"op":"add","path":"/extra/rack","value":"r1"}]`, 200, func(t *testing.T, n map[string]any) {
			if n["extra"].(map[string]any)["rack"] != "r1" {
				t.Errorf("extra %v", n["extra"])
			}
		}},
		{"rename", `[{"op":"replace","path":"/name","value":"patch-2"}]`, 200, func(t *testing.T, n map[string]any) {
			if n["name"] != "patch-2" {
				t.Errorf("name %v", n["name"])
			}
		}},
		{"maintenance on", `[{"op":"replace","path":"/maintenance","value":true},{"op":"add","path":"/maintenance_reason","value":"disk"}]`, 200, func(t *testing.T, n map[string]any) {
			if n["maintenance"] != true || n["maintenance_reason"] != "disk" {
				t.Errorf("maintenance %v %v", n["maintenance"], n["maintenance_reason"])
			}
		}},
		{"read-only provision_state", `[{"op":"replace","path":"/provision_state","value":"active"}]`, 400, nil},
		{"uuid", `[{"op":"replace","path":"/uuid","value":"00000000-0000-0000-0000-000000000000"}]`, 400, nil},
		{"move into a read-only field", `[{"op":"move","from":"/extra","path":"/power_state"}]`, 400, nil},
		{"remove the driver", `[{"op":"remove","path":"/driver"}]`, 400, nil},
		{"unknown driver", `[{"op":"replace","path":"/driver","value":"nosuch"}]`, 400, nil},
		{"wrong type", `[{"op":"replace","path":"/maintenance","value":"yes"}]`, 400, nil},
		{"not a patch", `{"name":"x"}`, 400, nil},
		{"empty patch", `[]`, 400, nil},
		{"failed test op", `[{"op":"test","path":"/name","value":"other"}]`, 400, nil},
		{"bad op", `[{"op":"frobnicate","path":"/name"}]`, 400, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(http.MethodPatch, "/v1/nodes/"+id, tt.patch)
			mustStatus(t, r, tt.wantStatus)
			if tt.check != nil {
				tt.check(t, r.json(t))
			}
		})
	}
	// The record kept its lock-owned fields through all of it.
	n, err := e.inv.Get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if n.ProvisionState != wire.StateEnroll || n.Driver != "sim" || n.Name != "patch-2" {
		t.Errorf("record %+v", n)
	}
	e.createNode("taken", nil)
	mustStatus(t, e.do(http.MethodPatch, "/v1/nodes/"+id, `[{"op":"replace","path":"/name","value":"taken"}]`), 409)
}

func TestProvisionActions(t *testing.T) {
	e := newEnv(t)
	id := e.createNode("prov-1", nil)

	// Accepted: 202, empty body, Location, a task with a ticket, and the lock
	// handed off to that ticket.
	r := e.do(http.MethodPut, "/v1/nodes/prov-1/states/provision", map[string]any{"target": "manage"})
	mustStatus(t, r, 202)
	if len(r.body) != 0 || r.header.Get("Location") != e.url+"/v1/nodes/"+id+"/states" {
		t.Errorf("202 body %q, location %q", r.body, r.header.Get("Location"))
	}
	tasks := e.tasks()
	if len(tasks) != 1 {
		t.Fatalf("%d tasks, want 1", len(tasks))
	}
	task := tasks[0]
	if task.Op != wire.OpManage || task.Node != id || task.Ticket == "" || task.ID == "" || task.RequestedBy != "noauth" {
		t.Errorf("task %+v", task)
	}
	snap, err := e.locker.Snapshot(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if !snap.Held || snap.Claimed || snap.Mode != "handoff" {
		t.Errorf("after the action the lock is %+v, want handed off and unclaimed", snap)
	}
	// The conductor claims the ticket.
	lk, err := e.locker.WithHolder("conductor-1").Acquire(t.Context(), id, &lock.Options{Ticket: task.Ticket, Purpose: "manage"})
	if err != nil {
		t.Fatalf("claiming the task's ticket: %v", err)
	}

	// While the conductor holds it: 409 NodeLocked naming the holder.
	r = e.do(http.MethodPut, "/v1/nodes/"+id+"/states/power", map[string]any{"target": "power on"})
	mustStatus(t, r, 409)
	want := "Node " + id + " is locked by host conductor-1, please retry after the current operation is completed."
	if f := r.fault(t); f["faultstring"] != want {
		t.Errorf("faultstring %q, want %q", f["faultstring"], want)
	}
	mustStatus(t, e.do(http.MethodDelete, "/v1/nodes/"+id, nil), 409)
	// The node shows the holder as its reservation.
	if res := e.do(http.MethodGet, "/v1/nodes/"+id, nil).json(t)["reservation"]; res != "conductor-1" {
		t.Errorf("reservation %v", res)
	}
	if err := lk.Release(t.Context()); err != nil {
		t.Fatal(err)
	}

	e.setState(id, wire.StateManageable)
	tests := []struct {
		name       string
		path       string
		body       any
		wantStatus int
		wantFault  string
		wantOp     wire.Operation
	}{
		{"invalid transition", "states/provision", map[string]any{"target": "active"}, 400,
			`The requested action "active" can not be performed on node "` + id + `" while it is in state "manageable".`, ""},
		{"unknown target", "states/provision", map[string]any{"target": "bogus"}, 400,
			`The requested action "bogus" can not be performed on node "` + id + `" while it is in state "manageable".`, ""},
		{"wrong key", "states/provision", map[string]any{"tgt": "manage"}, 400, "Unexpected arguments: tgt", ""},
		{"clean without steps", "states/provision", map[string]any{"target": "clean"}, 400, "clean_steps", ""},
		{"power off", "states/power", map[string]any{"target": "power off", "timeout": 30}, 202, "", wire.OpPower},
		{"provide", "states/provision", map[string]any{"target": "provide"}, 202, "", wire.OpProvide},
		{"bad power target", "states/power", map[string]any{"target": "sideways"}, 400, `The requested action "sideways" can not be performed`, ""},
		// Ironic refuses power actions while cleaning (NodeStatesController.power).
		{"power while cleaning", "states/power", map[string]any{"target": "power on"}, 400, `while it is in state "cleaning"`, ""},
		{"bad timeout", "states/power", map[string]any{"target": "power on", "timeout": -1}, 400, "timeout has to be positive integer", ""},
		{"boot device", "management/boot_device", map[string]any{"boot_device": "pxe", "persistent": true}, 204, "", wire.OpBootDevice},
		{"bad boot device", "management/boot_device", map[string]any{"boot_device": "floppy"}, 400, "Invalid boot device", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(e.tasks())
			r := e.do(http.MethodPut, "/v1/nodes/"+id+"/"+tt.path, tt.body)
			mustStatus(t, r, tt.wantStatus)
			if tt.wantFault != "" {
				if f := r.fault(t)["faultstring"].(string); !strings.Contains(f, tt.wantFault) {
					t.Errorf("faultstring %q, want %q in it", f, tt.wantFault)
				}
			}
			tasks := e.tasks()
			if tt.wantOp == "" {
				if len(tasks) != before {
					t.Errorf("a refused action published a task")
				}
				return
			}
			if len(tasks) != before+1 || tasks[len(tasks)-1].Op != tt.wantOp {
				t.Fatalf("tasks %+v, want one more %s", tasks[before:], tt.wantOp)
			}
			// Take the handed-off lock as the conductor would, and give it back.
			lk, err := e.locker.Acquire(t.Context(), id, &lock.Options{Ticket: tasks[len(tasks)-1].Ticket})
			if err != nil {
				t.Fatal(err)
			}
			_ = lk.Release(t.Context())
		})
	}
	var p wire.PowerParams
	for _, task := range e.tasks() {
		if task.Op == wire.OpPower {
			_ = json.Unmarshal(task.Params, &p)
		}
	}
	if p.Target != wire.PowerOff || p.TimeoutSeconds != 30 {
		t.Errorf("power params %+v", p)
	}
}

func TestDeleteNode(t *testing.T) {
	e := newEnv(t)
	id := e.createNode("del-1", nil)
	mustStatus(t, e.do(http.MethodPost, "/v1/ports", map[string]any{"node_uuid": id, "address": "52:54:00:00:00:01"}), 201)
	active := e.createNode("del-2", nil)
	e.setState(active, wire.StateActive)

	r := e.do(http.MethodDelete, "/v1/nodes/"+active, nil)
	mustStatus(t, r, 409)
	if f := r.fault(t)["faultstring"].(string); !strings.Contains(f, `while it is in provision state "active"`) {
		t.Errorf("faultstring %q", f)
	}
	mustStatus(t, e.do(http.MethodDelete, "/v1/nodes/del-1", nil), 204)
	mustStatus(t, e.do(http.MethodGet, "/v1/nodes/"+id, nil), 404)
	r = e.do(http.MethodGet, "/v1/ports?address=52:54:00:00:00:01", nil)
	if n := len(r.json(t)["ports"].([]any)); n != 0 {
		t.Errorf("%d ports left after deleting their node", n)
	}
	// In maintenance, any state may be deleted (Ironic's rule).
	mustStatus(t, e.do(http.MethodPut, "/v1/nodes/"+active+"/maintenance", map[string]any{"reason": "dead"}), 202)
	mustStatus(t, e.do(http.MethodDelete, "/v1/nodes/"+active, nil), 204)
	r = e.do(http.MethodGet, "/v1/nodes/00000000-0000-0000-0000-000000000000", nil)
	mustStatus(t, r, 404)
	if f := r.fault(t)["faultstring"]; f != "Node 00000000-0000-0000-0000-000000000000 could not be found." {
		t.Errorf("faultstring %q", f)
	}
}

func TestPorts(t *testing.T) {
	e := newEnv(t)
	id := e.createNode("port-node", nil)
	r := e.do(http.MethodPost, "/v1/ports", map[string]any{"node_uuid": id, "address": "52:54:00:AA:BB:01", "pxe_enabled": true})
	mustStatus(t, r, 201)
	port := r.json(t)
	pid := port["uuid"].(string)
	if port["address"] != "52:54:00:aa:bb:01" || r.header.Get("Location") == "" {
		t.Errorf("port %v", port)
	}
	tests := []call{
		{"duplicate MAC", http.MethodPost, "/v1/ports", map[string]any{"node_uuid": id, "address": "52-54-00-aa-bb-01"}, 409},
		{"bad MAC", http.MethodPost, "/v1/ports", map[string]any{"node_uuid": id, "address": "not-a-mac"}, 400},
		{"unknown node", http.MethodPost, "/v1/ports", map[string]any{"node_uuid": "00000000-0000-0000-0000-000000000000", "address": "52:54:00:aa:bb:02"}, 400},
		{"missing node", http.MethodPost, "/v1/ports", map[string]any{"address": "52:54:00:aa:bb:02"}, 400},
		{"unknown field", http.MethodPost, "/v1/ports", map[string]any{"node_uuid": id, "address": "52:54:00:aa:bb:02", "vlan": 3}, 400},
		{"get", http.MethodGet, "/v1/ports/" + pid, nil, 200},
		{"list by node name", http.MethodGet, "/v1/ports?node=port-node", nil, 200},
		{"list under node", http.MethodGet, "/v1/nodes/" + id + "/ports/detail", nil, 200},
		{"patch MAC", http.MethodPatch, "/v1/ports/" + pid, `[{"op":"replace","path":"/address","value":"52:54:00:aa:bb:03"}]`, 200},
		{"patch node_uuid", http.MethodPatch, "/v1/ports/" + pid, `[{"op":"replace","path":"/node_uuid","value":"` + id + `"}]`, 400},
		{"unknown port", http.MethodGet, "/v1/ports/00000000-0000-0000-0000-000000000000", nil, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustStatus(t, e.do(tt.method, tt.path, tt.body), tt.wantStatus)
		})
	}
	// The lookup index follows the patch.
	n, err := e.inv.NodeByMAC(t.Context(), "52:54:00:aa:bb:03")
	if err != nil || n.UUID != id {
		t.Errorf("NodeByMAC after patch: %v, %v", n.UUID, err)
	}
	mustStatus(t, e.do(http.MethodDelete, "/v1/ports/"+pid, nil), 204)
	mustStatus(t, e.do(http.MethodGet, "/v1/ports/"+pid, nil), 404)
}

func TestAgentLookupAndHeartbeat(t *testing.T) {
	e := newEnv(t)
	id := e.createNode("agent-1", nil)
	mustStatus(t, e.do(http.MethodPost, "/v1/ports", map[string]any{"node_uuid": id, "address": "52:54:00:cc:00:01"}), 201)
	agentHdr := []string{"X-OpenStack-Ironic-API-Version", wire.AgentAPIVersion}
	lookup := "/v1/lookup?addresses=52:54:00:ff:ff:ff,52:54:00:cc:00:01"

	// Not expecting an agent: 404, as Ironic's restricted lookup.
	mustStatus(t, e.do(http.MethodGet, lookup, nil, agentHdr...), 404)
	mustStatus(t, e.do(http.MethodGet, "/v1/lookup?addresses=52:54:00:00:00:09", nil, agentHdr...), 404)
	mustStatus(t, e.do(http.MethodGet, "/v1/lookup", nil, agentHdr...), 400)
	// Lookup is a 1.22 resource.
	mustStatus(t, e.do(http.MethodGet, lookup, nil, "X-OpenStack-Ironic-API-Version", ""), 404)

	e.setState(id, wire.StateWaitCallback)
	r := e.do(http.MethodGet, lookup, nil, agentHdr...)
	mustStatus(t, r, 200)
	var lr wire.LookupResponse
	if err := json.Unmarshal(r.body, &lr); err != nil {
		t.Fatal(err)
	}
	if lr.Node.UUID != id || lr.Config.AgentToken == "" || !lr.Config.AgentTokenRequired || lr.Config.HeartbeatTimeout != 300 {
		t.Errorf("lookup %+v", lr)
	}
	// One-time: a second lookup is refused until the conductor clears it.
	mustStatus(t, e.do(http.MethodGet, lookup, nil, agentHdr...), 409)
	// The token never shows on the node.
	if body := e.do(http.MethodGet, "/v1/nodes/"+id, nil).body; strings.Contains(string(body), lr.Config.AgentToken) {
		t.Errorf("node shows the agent token: %s", body)
	}

	hb := func(token string) resp {
		return e.do(http.MethodPost, "/v1/heartbeat/"+id, wire.HeartbeatRequest{
			CallbackURL: "http://10.0.2.15:9999", AgentToken: token, AgentVersion: "1.0"}, agentHdr...)
	}
	mustStatus(t, hb(""), 401)
	mustStatus(t, hb("wrong"), 403)
	before := len(e.tasks())
	mustStatus(t, hb(lr.Config.AgentToken), 202)
	tasks := e.tasks()
	if len(tasks) != before+1 || tasks[len(tasks)-1].Op != wire.OpHeartbeat || tasks[len(tasks)-1].Ticket != "" {
		t.Fatalf("tasks after heartbeat %+v", tasks[before:])
	}
	var p wire.HeartbeatParams
	if err := json.Unmarshal(tasks[len(tasks)-1].Params, &p); err != nil || p.CallbackURL != "http://10.0.2.15:9999" || p.AgentVersion != "1.0" {
		t.Errorf("heartbeat params %+v, %v", p, err)
	}
	// The heartbeat never waits for the lock: it is accepted while held.
	lk, err := e.locker.WithHolder("conductor-1").Acquire(t.Context(), id, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustStatus(t, hb(lr.Config.AgentToken), 202)
	_ = lk.Release(t.Context())
	r = e.do(http.MethodPost, "/v1/heartbeat/"+id, map[string]any{"callback_url": "ftp://x", "agent_token": lr.Config.AgentToken}, agentHdr...)
	mustStatus(t, r, 400)
}

func TestAuthHTTPBasic(t *testing.T) {
	dir := t.TempDir()
	var lines []string
	for _, u := range []string{"admin", "viewer"} {
		h, err := bcrypt.GenerateFromPassword([]byte(u+"-pw"), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, u+":"+string(h))
	}
	path := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(path, []byte("# users\n"+strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *api.Config) {
		c.Auth, c.HTPasswd = api.AuthHTTPBasic, path
		c.Roles = map[string]api.Role{"viewer": api.RoleReader}
	})
	basic := func(u, p string) []string {
		req, _ := http.NewRequest(http.MethodGet, "/", nil)
		req.SetBasicAuth(u, p)
		return []string{"Authorization", req.Header.Get("Authorization")}
	}
	node := map[string]any{"driver": "sim", "name": "auth-1"}
	tests := []struct {
		name       string
		method     string
		path       string
		body       any
		hdr        []string
		wantStatus int
	}{
		{"no credentials", http.MethodGet, "/v1/nodes", nil, nil, 401},
		{"wrong password", http.MethodGet, "/v1/nodes", nil, basic("admin", "nope"), 401},
		{"unknown user", http.MethodGet, "/v1/nodes", nil, basic("eve", "admin-pw"), 401},
		{"reader reads", http.MethodGet, "/v1/nodes", nil, basic("viewer", "viewer-pw"), 200},
		{"reader cannot write", http.MethodPost, "/v1/nodes", node, basic("viewer", "viewer-pw"), 403},
		{"admin writes", http.MethodPost, "/v1/nodes", node, basic("admin", "admin-pw"), 201},
		{"admin again (cached check)", http.MethodGet, "/v1/nodes/auth-1", nil, basic("admin", "admin-pw"), 200},
		{"discovery is open", http.MethodGet, "/", nil, nil, 200},
		{"health is open", http.MethodGet, "/healthz", nil, nil, 200},
		{"agent lookup needs no basic auth", http.MethodGet, "/v1/lookup?addresses=52:54:00:00:00:01", nil, nil, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(tt.method, tt.path, tt.body, tt.hdr...)
			mustStatus(t, r, tt.wantStatus)
			if tt.wantStatus == 401 && r.header.Get("WWW-Authenticate") == "" {
				t.Errorf("401 without WWW-Authenticate")
			}
		})
	}
	for _, bad := range []string{"user:$1$md5$xyz\n", "", "nocolon\n"} {
		p := filepath.Join(dir, "bad")
		if err := os.WriteFile(p, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := api.New(api.Deps{Nodes: e.inv, Ports: e.inv, Tasks: e.bus, Locks: e.locker, Conductors: e.reg,
			Drivers: drivers(t), DriverNames: []string{"sim"}, Records: transport.NewRecords(e.inv)}, api.Config{Auth: api.AuthHTTPBasic, HTPasswd: p})
		if err == nil {
			t.Errorf("htpasswd %q accepted", bad)
		}
	}
}

func TestLockViewMetricsAndHealth(t *testing.T) {
	e := newEnv(t)
	id := e.createNode("lv-1", nil)
	lk, err := e.locker.WithHolder("conductor-9").Acquire(t.Context(), id, &lock.Options{Purpose: "deploy"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lk.Release(t.Context()) }()
	r := e.do(http.MethodGet, "/v1/locks", nil)
	mustStatus(t, r, 200)
	locks := r.json(t)["locks"].([]any)
	if len(locks) != 1 || locks[0].(map[string]any)["holder"] != "conductor-9" || locks[0].(map[string]any)["purpose"] != "deploy" {
		t.Errorf("locks %s", r.body)
	}
	r = e.do(http.MethodGet, "/v1/locks/lv-1", nil)
	mustStatus(t, r, 200)
	if v := r.json(t); v["node"] != id || v["held"] != true || v["since"] == nil {
		t.Errorf("lock %s", r.body)
	}
	r = e.do(http.MethodGet, "/metrics", nil)
	mustStatus(t, r, 200)
	for _, want := range []string{"ironfleet_lock_held 1", "ironfleet_lock_waiters 0", `ironfleet_lock_line_length{node="` + id + `"} 0`, "ironfleet_api_requests_total"} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	mustStatus(t, e.do(http.MethodGet, "/readyz", nil), 200)
	mustStatus(t, e.do(http.MethodGet, "/healthz", nil), 200)
	r = e.do(http.MethodGet, "/openapi.json", nil)
	mustStatus(t, r, 200)
	if !strings.Contains(string(r.body), `"/v1/nodes/{node}/states/provision"`) {
		t.Errorf("openapi lacks the provision route")
	}
	for _, path := range []string{"/v1/drivers", "/v1/drivers/sim", "/v1/conductors"} {
		mustStatus(t, e.do(http.MethodGet, path, nil), 200)
	}
	mustStatus(t, e.do(http.MethodGet, "/v1/drivers/nosuch", nil), 404)
	mustStatus(t, e.do(http.MethodGet, "/v1/nosuch", nil), 404)
}

func TestOversizedBody(t *testing.T) {
	e := newEnv(t, func(c *api.Config) { c.MaxBodyBytes = 512 })
	big := `{"driver":"sim","extra":{"x":"` + strings.Repeat("a", 1024) + `"}}`
	r := e.do(http.MethodPost, "/v1/nodes", big)
	mustStatus(t, r, 413)
	if r.fault(t)["faultcode"] != "Client" {
		t.Errorf("fault %s", r.body)
	}
}

func TestDependencyDown(t *testing.T) {
	e := newEnv(t)
	id := e.createNode("down-1", nil)
	// Redis down: the action cannot take the lock, 503; reads still work.
	if err := e.rs.Kill(); err != nil {
		t.Fatal(err)
	}
	r := e.do(http.MethodPut, "/v1/nodes/"+id+"/states/provision", map[string]any{"target": "manage"})
	mustStatus(t, r, 503)
	if r.fault(t)["faultcode"] != "Server" {
		t.Errorf("fault %s", r.body)
	}
	mustStatus(t, e.do(http.MethodGet, "/v1/nodes/"+id, nil), 200)
	mustStatus(t, e.do(http.MethodGet, "/readyz", nil), 503)
	mustStatus(t, e.do(http.MethodGet, "/v1/locks", nil), 503)
	if len(e.tasks()) != 0 {
		t.Errorf("a task was published without the lock")
	}
}

// TestActionRefusedWhileNATSIsAway: with the NATS server gone, a
// provision request is refused (503) before it takes
// the node's lock, so nothing is written and there is nothing to undo:
// the node's record and its lock keys are as they were. Without the check
// the request takes the lock and waits out the first move's write.
func TestActionRefusedWhileNATSIsAway(t *testing.T) {
	e := newEnv(t)
	id := e.createNode("nats-away-1", nil)
	before, err := e.inv.Get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(e.rs.Options())
	t.Cleanup(func() { _ = rc.Close() })
	lockKeys := func() []string {
		t.Helper()
		ks, err := rc.Keys(t.Context(), "*{"+id+"}*").Result()
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(ks)
		return ks
	}
	keysBefore := lockKeys()
	e.ns.Stop()
	// The client learns of the server's going when its read fails.
	waitUntil(t, "the NATS connection to see the server gone", func() bool { return !e.nc.IsConnected() })
	r := e.do(http.MethodPut, "/v1/nodes/"+id+"/states/provision", map[string]any{"target": "manage"})
	mustStatus(t, r, 503)
	if r.fault(t)["faultcode"] != "Server" {
		t.Errorf("fault %s", r.body)
	}
	if ks := lockKeys(); !slices.Equal(ks, keysBefore) {
		t.Errorf("the node's lock keys changed from %v to %v: the refused request took the lock", keysBefore, ks)
	}
	// The cache still answers reads, and shows the node as it was.
	n, ok := e.inv.Node(id)
	if !ok || n.ProvisionState != before.ProvisionState || n.Fence != before.Fence {
		t.Errorf("node after the refusal: %+v (found %v), want it as before: %s, fence %d", n, ok, before.ProvisionState, before.Fence)
	}
}

func TestNewValidates(t *testing.T) {
	e := newEnv(t)
	full := api.Deps{Nodes: e.inv, Ports: e.inv, Tasks: e.bus, Locks: e.locker, Conductors: e.reg,
		Drivers: drivers(t), DriverNames: []string{"sim"}, Records: transport.NewRecords(e.inv)}
	tests := []struct {
		name string
		deps func(d api.Deps) api.Deps
		cfg  api.Config
	}{
		{"no nodes", func(d api.Deps) api.Deps { d.Nodes = nil; return d }, api.Config{}},
		{"no locks", func(d api.Deps) api.Deps { d.Locks = nil; return d }, api.Config{}},
		{"no records", func(d api.Deps) api.Deps { d.Records = nil; return d }, api.Config{}},
		{"no drivers", func(d api.Deps) api.Deps { d.DriverNames = nil; return d }, api.Config{}},
		{"unknown auth", func(d api.Deps) api.Deps { return d }, api.Config{Auth: "keystone"}},
		{"http_basic without file", func(d api.Deps) api.Deps { return d }, api.Config{Auth: api.AuthHTTPBasic}},
		{"missing htpasswd", func(d api.Deps) api.Deps { return d }, api.Config{Auth: api.AuthHTTPBasic, HTPasswd: "/nonexistent"}},
		{"bad role", func(d api.Deps) api.Deps { return d }, api.Config{Roles: map[string]api.Role{"u": "root"}}},
		{"negative knob", func(d api.Deps) api.Deps { return d }, api.Config{LockAttempts: -1}},
		{"negative idle timeout", func(d api.Deps) api.Deps { return d }, api.Config{IdleTimeout: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := api.New(tt.deps(full), tt.cfg); err == nil {
				t.Errorf("New accepted it")
			}
		})
	}
}

// TestDeleteNodeForgetsItsLock: deleting a node removes its lock's keys
// from Redis, which otherwise outlive the node forever.
func TestDeleteNodeForgetsItsLock(t *testing.T) {
	e := newEnv(t)
	id := e.createNode("forget-1", nil)
	e.setState(id, wire.StateManageable) // a conductor's work: the lock's keys exist
	rc := redis.NewClient(e.rs.Options())
	t.Cleanup(func() { _ = rc.Close() })
	keys := func() []string {
		t.Helper()
		ks, err := rc.Keys(t.Context(), "*{"+id+"}*").Result()
		if err != nil {
			t.Fatal(err)
		}
		return ks
	}
	if len(keys()) == 0 {
		t.Fatal("no lock keys before the delete: the test proves nothing")
	}
	mustStatus(t, e.do(http.MethodDelete, "/v1/nodes/"+id, nil), 204)
	if ks := keys(); len(ks) != 0 {
		t.Errorf("lock keys left after deleting the node: %v", ks)
	}
}
