package api_test

import (
	"context"
	"net/http"
	"reflect"
	"testing"

	"github.com/ironfleet/ironfleet/lock"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// setPower sets a node's power state in the inventory, as a conductor's
// power sync would.
func (e *env) setPower(uuid string, ps wire.PowerState) {
	e.t.Helper()
	ctx := e.t.Context()
	lk, err := e.locker.Acquire(ctx, uuid, &lock.Options{Purpose: "test"})
	if err != nil {
		e.t.Fatal(err)
	}
	defer func() { _ = lk.Release(context.WithoutCancel(ctx)) }()
	if _, err := e.inv.UpdateNode(ctx, uuid, lk.Token(), func(n *wire.Node) error { n.PowerState = ps; return nil }); err != nil {
		e.t.Fatal(err)
	}
}

// faultIs fails unless r's faultstring is want.
func faultIs(t *testing.T, r resp, want string) {
	t.Helper()
	if got := r.fault(t)["faultstring"]; got != want {
		t.Errorf("faultstring %q, want %q", got, want)
	}
}

// TestVolumeConnectorsAndTargets follows Ironic's volume_connector.py and
// volume_target.py: create (201, Location, unique values 409), show,
// lists (all, by node, short and detail, fields, pages), update and
// delete under the node's lock and only while it is powered off (delete
// also in enroll/manageable), and a node's delete takes them with it.
func TestVolumeConnectorsAndTargets(t *testing.T) {
	e := newEnv(t)
	id := e.createNode("vol-1", nil)
	other := e.createNode("vol-2", nil)
	e.setState(id, wire.StateAvailable)

	r := e.do(http.MethodPost, "/v1/volume/connectors", map[string]any{"node_uuid": id, "type": "iqn", "connector_id": "iqn.2026-01.org.example:a"})
	mustStatus(t, r, http.StatusCreated)
	conn := r.json(t)
	cid := conn["uuid"].(string)
	if loc := r.header.Get("Location"); loc != e.url+"/v1/volume/connectors/"+cid {
		t.Errorf("Location %q", loc)
	}
	for _, k := range []string{"uuid", "node_uuid", "type", "connector_id", "extra", "created_at", "updated_at", "links"} {
		if _, ok := conn[k]; !ok {
			t.Errorf("connector has no %s: %v", k, conn)
		}
	}
	r = e.do(http.MethodPost, "/v1/volume/targets", map[string]any{"node_uuid": id, "volume_type": "iscsi", "volume_id": "vol-a", "boot_index": 0,
		"properties": map[string]any{"target_iqn": "iqn.x", "auth_password": "s3cret"}})
	mustStatus(t, r, http.StatusCreated)
	target := r.json(t)
	tid := target["uuid"].(string)
	if props := target["properties"].(map[string]any); props["auth_password"] != "******" || props["target_iqn"] != "iqn.x" {
		t.Errorf("target properties %v: the password must be masked, the rest shown", props)
	}
	mustStatus(t, e.do(http.MethodPost, "/v1/volume/targets", map[string]any{"node_uuid": id, "volume_type": "iscsi", "volume_id": "vol-b", "boot_index": 1}), 201)
	mustStatus(t, e.do(http.MethodPost, "/v1/volume/targets", map[string]any{"node_uuid": other, "volume_type": "iscsi", "volume_id": "vol-c", "boot_index": 0}), 201)

	t.Run("create errors", func(t *testing.T) {
		for _, tt := range []struct {
			call
			fault string
		}{
			{call{"same type and connector_id", http.MethodPost, "/v1/volume/connectors",
				map[string]any{"node_uuid": other, "type": "iqn", "connector_id": "iqn.2026-01.org.example:a"}, 409},
				"A volume connector with type iqn and connector ID iqn.2026-01.org.example:a already exists."},
			{call{"same boot index on the node", http.MethodPost, "/v1/volume/targets",
				map[string]any{"node_uuid": id, "volume_type": "iscsi", "volume_id": "vol-d", "boot_index": 0}, 409},
				"A volume target with boot index '0' for the same node already exists."},
			{call{"same UUID", http.MethodPost, "/v1/volume/connectors",
				map[string]any{"uuid": cid, "node_uuid": id, "type": "iqn", "connector_id": "other"}, 409},
				"A volume connector with UUID " + cid + " already exists."},
			{call{"no such node", http.MethodPost, "/v1/volume/connectors",
				map[string]any{"node_uuid": wire.NewUUID(), "type": "iqn", "connector_id": "x"}, 400}, ""},
			{call{"node by name", http.MethodPost, "/v1/volume/connectors",
				map[string]any{"node_uuid": "vol-1", "type": "iqn", "connector_id": "x"}, 400}, "Expected a UUID for node_uuid, but received vol-1."},
			{call{"missing type", http.MethodPost, "/v1/volume/connectors", map[string]any{"node_uuid": id, "connector_id": "x"}, 400},
				"'type' is a required property"},
			{call{"unknown field", http.MethodPost, "/v1/volume/targets",
				map[string]any{"node_uuid": id, "volume_type": "iscsi", "volume_id": "v", "boot_index": 5, "size": 1}, 400}, ""},
			{call{"below 1.32", http.MethodGet, "/v1/volume/connectors", nil, 404}, ""},
		} {
			t.Run(tt.name, func(t *testing.T) {
				hdr := []string{}
				if tt.name == "below 1.32" {
					hdr = []string{"X-OpenStack-Ironic-API-Version", "1.31"}
				}
				r := e.do(tt.method, tt.path, tt.body, hdr...)
				mustStatus(t, r, tt.wantStatus)
				if tt.fault != "" {
					faultIs(t, r, tt.fault)
				}
			})
		}
	})

	t.Run("lists", func(t *testing.T) {
		uuids := func(path string) []any {
			t.Helper()
			r := e.do(http.MethodGet, path, nil)
			mustStatus(t, r, http.StatusOK)
			var out []any
			items, _ := r.json(t)["targets"].([]any)
			for _, it := range items {
				out = append(out, it.(map[string]any)["volume_id"])
			}
			return out
		}
		for _, tt := range []struct {
			path string
			want []any
		}{
			{"/v1/volume/targets", []any{"vol-a", "vol-b", "vol-c"}},
			{"/v1/volume/targets?node=vol-1", []any{"vol-a", "vol-b"}},
			{"/v1/nodes/" + other + "/volume/targets", []any{"vol-c"}},
			{"/v1/volume/targets?sort_key=volume_id&sort_dir=desc", []any{"vol-c", "vol-b", "vol-a"}},
			{"/v1/volume/targets?limit=2", []any{"vol-a", "vol-b"}},
		} {
			if got := uuids(tt.path); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("%s: %v, want %v", tt.path, got, tt.want)
			}
		}
		page := e.do(http.MethodGet, "/v1/volume/targets?limit=2", nil).json(t)
		next, _ := page["next"].(string)
		if next == "" {
			t.Fatalf("no next link on a full page: %v", page)
		}
		if got := uuids(next[len(e.url):]); !reflect.DeepEqual(got, []any{"vol-c"}) {
			t.Errorf("second page %v, want [vol-c]", got)
		}
		short := e.do(http.MethodGet, "/v1/volume/connectors", nil).json(t)["connectors"].([]any)[0].(map[string]any)
		if _, ok := short["extra"]; ok || short["connector_id"] != "iqn.2026-01.org.example:a" {
			t.Errorf("a list without detail shows %v, want uuid, node_uuid, type, connector_id and links", short)
		}
		detail := e.do(http.MethodGet, "/v1/volume/connectors?detail=true", nil).json(t)["connectors"].([]any)[0].(map[string]any)
		if _, ok := detail["extra"]; !ok {
			t.Errorf("detail shows %v, want every field", detail)
		}
		fields := e.do(http.MethodGet, "/v1/volume/targets/"+tid+"?fields=boot_index", nil).json(t)
		if len(fields) != 2 || fields["boot_index"] != float64(0) {
			t.Errorf("fields=boot_index shows %v", fields)
		}
		mustStatus(t, e.do(http.MethodGet, "/v1/volume/targets?sort_key=properties", nil), 400)
		mustStatus(t, e.do(http.MethodGet, "/v1/volume/targets?detail=true&fields=uuid", nil), 400)
		mustStatus(t, e.do(http.MethodGet, "/v1/volume/targets?marker="+wire.NewUUID(), nil), 404)
		links := e.do(http.MethodGet, "/v1/nodes/vol-1/volume", nil).json(t)
		if _, ok := links["targets"]; !ok {
			t.Errorf("node volume links %v", links)
		}
	})

	t.Run("updates need the node powered off", func(t *testing.T) {
		patch := `[{"op":"replace","path":"/volume_id","value":"vol-a2"}]`
		e.setPower(id, wire.PowerOn)
		r := e.do(http.MethodPatch, "/v1/volume/targets/"+tid, patch)
		mustStatus(t, r, 400)
		faultIs(t, r, `The requested action "volume target update" can not be performed on node "`+id+`" while it is in state "power on".`)
		mustStatus(t, e.do(http.MethodDelete, "/v1/volume/connectors/"+cid, nil), 400)
		e.setPower(id, wire.PowerOff)
		r = e.do(http.MethodPatch, "/v1/volume/targets/"+tid, patch)
		mustStatus(t, r, 200)
		if got := r.json(t); got["volume_id"] != "vol-a2" || got["properties"].(map[string]any)["auth_password"] != "******" {
			t.Errorf("patched target %v", got)
		}
		mustStatus(t, e.do(http.MethodPatch, "/v1/volume/targets/"+tid, `[{"op":"replace","path":"/boot_index","value":1}]`), 409)
		mustStatus(t, e.do(http.MethodPatch, "/v1/volume/targets/"+tid, `[{"op":"replace","path":"/uuid","value":"x"}]`), 400)
		mustStatus(t, e.do(http.MethodPatch, "/v1/volume/targets/"+tid,
			`[{"op":"copy","from":"/properties/auth_password","path":"/extra/leak"}]`), 400)
		mustStatus(t, e.do(http.MethodPatch, "/v1/volume/connectors/"+cid, `[{"op":"add","path":"/extra/rack","value":"r1"}]`), 200)
	})

	t.Run("lock", func(t *testing.T) {
		ctx := t.Context()
		lk, err := e.locker.WithHolder("conductor-1").Acquire(ctx, id, &lock.Options{Purpose: "deploy", Attempts: 1})
		if err != nil {
			t.Fatal(err)
		}
		mustNodeLocked(t, e.do(http.MethodPatch, "/v1/volume/connectors/"+cid, `[{"op":"add","path":"/extra/x","value":1}]`), id, "conductor-1")
		mustNodeLocked(t, e.do(http.MethodDelete, "/v1/volume/targets/"+tid, nil), id, "conductor-1")
		if err := lk.Release(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("delete", func(t *testing.T) {
		mustStatus(t, e.do(http.MethodDelete, "/v1/volume/targets/"+tid, nil), 204)
		mustStatus(t, e.do(http.MethodGet, "/v1/volume/targets/"+tid, nil), 404)
		// boot index 0 is free again
		mustStatus(t, e.do(http.MethodPost, "/v1/volume/targets", map[string]any{"node_uuid": id, "volume_type": "iscsi", "volume_id": "vol-e", "boot_index": 0}), 201)
	})

	t.Run("a node's delete takes its volume", func(t *testing.T) {
		mustStatus(t, e.do(http.MethodDelete, "/v1/nodes/"+id, nil), 204)
		for _, kind := range []string{"connectors", "targets"} {
			items := e.do(http.MethodGet, "/v1/volume/"+kind+"?detail=true", nil).json(t)[kind].([]any)
			for _, it := range items {
				if it.(map[string]any)["node_uuid"] == id {
					t.Errorf("%s of the deleted node left: %v", kind, it)
				}
			}
		}
		mustStatus(t, e.do(http.MethodPost, "/v1/volume/connectors", map[string]any{"node_uuid": other, "type": "iqn", "connector_id": "iqn.2026-01.org.example:a"}), 201)
	})
}
