package api_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// run sends each call and checks its status (and, when want is set, that
// the body or faultstring contains it).
func (e *env) run(t *testing.T, calls []call, version string, want map[string]string) {
	t.Helper()
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			r := e.do(c.method, c.path, c.body, "X-OpenStack-Ironic-API-Version", version)
			mustStatus(t, r, c.wantStatus)
			if w := want[c.name]; w != "" && !strings.Contains(string(r.body), w) && (r.status < 400 || !strings.Contains(faultString(t, r), w)) {
				t.Fatalf("body %s does not contain %q", r.body, w)
			}
		})
	}
}

func TestDeployTemplates(t *testing.T) {
	e := newEnv(t)
	steps := []map[string]any{{"interface": "bios", "step": "apply_configuration", "args": map[string]any{"settings": []any{}, "admin_password": "s3cret"}, "priority": 150}}
	r := e.do(http.MethodPost, "/v1/deploy_templates", map[string]any{"name": "CUSTOM_BIOS", "steps": steps, "extra": map[string]any{"k": "v"}})
	mustStatus(t, r, http.StatusCreated)
	doc := r.json(t)
	id, _ := doc["uuid"].(string)
	if loc := r.header.Get("Location"); !strings.HasSuffix(loc, "/v1/deploy_templates/"+id) {
		t.Fatalf("Location %q", loc)
	}
	for _, k := range []string{"uuid", "name", "steps", "extra", "created_at", "updated_at", "links"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("template has no %q: %v", k, doc)
		}
	}
	if strings.Contains(string(r.body), "s3cret") {
		t.Errorf("a secret step argument is shown: %s", r.body)
	}
	good := func(name string) map[string]any { return map[string]any{"name": name, "steps": steps} }
	step := func(k string, v any) map[string]any {
		s := map[string]any{"interface": "deploy", "step": "s", "args": map[string]any{}, "priority": 1}
		s[k] = v
		if v == nil {
			delete(s, k)
		}
		return map[string]any{"name": "CUSTOM_X", "steps": []any{s}}
	}
	calls := []call{
		{"duplicate name", http.MethodPost, "/v1/deploy_templates", good("CUSTOM_BIOS"), http.StatusConflict},
		{"not a trait", http.MethodPost, "/v1/deploy_templates", good("bios"), http.StatusBadRequest},
		{"no steps", http.MethodPost, "/v1/deploy_templates", map[string]any{"name": "CUSTOM_Y", "steps": []any{}}, http.StatusBadRequest},
		{"unknown interface", http.MethodPost, "/v1/deploy_templates", step("interface", "console"), http.StatusBadRequest},
		{"negative priority", http.MethodPost, "/v1/deploy_templates", step("priority", -1), http.StatusBadRequest},
		{"no args", http.MethodPost, "/v1/deploy_templates", step("args", nil), http.StatusBadRequest},
		{"unknown step key", http.MethodPost, "/v1/deploy_templates", step("order", 1), http.StatusBadRequest},
		{"duplicate steps", http.MethodPost, "/v1/deploy_templates", map[string]any{"name": "CUSTOM_D", "steps": append(steps, steps...)}, http.StatusBadRequest},
		{"unknown key", http.MethodPost, "/v1/deploy_templates", map[string]any{"name": "CUSTOM_Z", "steps": steps, "owner": "x"}, http.StatusBadRequest},
		{"priority as a string", http.MethodPost, "/v1/deploy_templates", step("priority", "10"), http.StatusCreated},
		{"by name", http.MethodGet, "/v1/deploy_templates/CUSTOM_BIOS", nil, http.StatusOK},
		{"unknown", http.MethodGet, "/v1/deploy_templates/CUSTOM_NONE", nil, http.StatusNotFound},
		{"bad sort key", http.MethodGet, "/v1/deploy_templates?sort_key=steps", nil, http.StatusBadRequest},
	}
	e.run(t, calls, "latest", map[string]string{
		"duplicate name":       "A deploy template with name CUSTOM_BIOS already exists.",
		"not a trait":          "Invalid input for field/attribute name.",
		"unknown interface":    "is not one of bios, deploy, firmware, management, power, raid, vendor",
		"duplicate steps":      "Duplicate deploy steps. A template cannot have multiple deploy steps with the same interface and step. Duplicates: interface: bios, step: apply_configuration",
		"priority as a string": `"priority":10`,
		"unknown":              "Deploy template CUSTOM_NONE could not be found.",
		"bad sort key":         "The sort_key value steps is an invalid field for sorting",
	})

	t.Run("versions", func(t *testing.T) {
		mustStatus(t, e.do(http.MethodGet, "/v1/deploy_templates", nil, "X-OpenStack-Ironic-API-Version", "1.54"), http.StatusNotFound)
		v1 := e.do(http.MethodGet, "/v1", nil).json(t)
		if _, ok := v1["deploy_templates"]; !ok {
			t.Errorf("GET /v1 does not list deploy_templates: %v", v1)
		}
		old := e.do(http.MethodGet, "/v1", nil, "X-OpenStack-Ironic-API-Version", "1.54").json(t)
		if _, ok := old["deploy_templates"]; ok {
			t.Errorf("GET /v1 at 1.54 lists deploy_templates")
		}
	})
	t.Run("list", func(t *testing.T) {
		list := e.do(http.MethodGet, "/v1/deploy_templates", nil).json(t)["deploy_templates"].([]any)
		if len(list) != 2 {
			t.Fatalf("%d templates, want 2", len(list))
		}
		first := list[0].(map[string]any)
		if _, ok := first["steps"]; ok || first["name"] != "CUSTOM_BIOS" {
			t.Errorf("list item %v: want uuid, name and links only, oldest first", first)
		}
		detail := e.do(http.MethodGet, "/v1/deploy_templates?detail=true", nil).json(t)["deploy_templates"].([]any)
		if _, ok := detail[0].(map[string]any)["steps"]; !ok {
			t.Errorf("detail item %v has no steps", detail[0])
		}
		page := e.do(http.MethodGet, "/v1/deploy_templates?limit=1", nil).json(t)
		if next, _ := page["next"].(string); !strings.Contains(next, "marker="+id) {
			t.Errorf("page of 1: next %q, want a marker at %s", next, id)
		}
		// fields without uuid: the next link still names the page's last
		// template (it once read the uuid from what the page showed).
		page = e.do(http.MethodGet, "/v1/deploy_templates?limit=1&fields=name", nil).json(t)
		if next, _ := page["next"].(string); !strings.Contains(next, "marker="+id) {
			t.Errorf("page of 1 with fields=name: next %q, want a marker at %s", next, id)
		}
		// A full last page has a next link too, as Ironic's has_next
		// (api/controllers/v1/collection.py): the page after it is empty.
		second := list[1].(map[string]any)["uuid"].(string)
		page = e.do(http.MethodGet, "/v1/deploy_templates?limit=1&marker="+id, nil).json(t)
		if next, _ := page["next"].(string); !strings.Contains(next, "marker="+second) {
			t.Errorf("full last page: next %q, want a marker at %s", next, second)
		}
		page = e.do(http.MethodGet, "/v1/deploy_templates?limit=1&marker="+second, nil).json(t)
		if got := page["deploy_templates"].([]any); len(got) != 0 || page["next"] != nil {
			t.Errorf("after the last: %v, want no templates and no next", page)
		}
	})
	t.Run("patch renames", func(t *testing.T) {
		r := e.do(http.MethodPatch, "/v1/deploy_templates/"+id, []map[string]any{
			{"op": "replace", "path": "/name", "value": "CUSTOM_BIOS2"},
			{"op": "replace", "path": "/steps/0/priority", "value": 10},
		})
		mustStatus(t, r, http.StatusOK)
		if doc := r.json(t); doc["name"] != "CUSTOM_BIOS2" || !strings.Contains(string(r.body), `"priority":10`) {
			t.Fatalf("patched %s", r.body)
		}
		mustStatus(t, e.do(http.MethodGet, "/v1/deploy_templates/CUSTOM_BIOS2", nil), http.StatusOK)
		mustStatus(t, e.do(http.MethodPost, "/v1/deploy_templates", good("CUSTOM_BIOS")), http.StatusCreated) // the old name is free
		bad := e.do(http.MethodPatch, "/v1/deploy_templates/"+id, []map[string]any{{"op": "replace", "path": "/name", "value": "lower"}})
		mustStatus(t, bad, http.StatusBadRequest)
		if got := faultString(t, bad); !strings.HasPrefix(got, "Invalid input for field/attribute name.") {
			t.Errorf("faultstring %q", got)
		}
		mustStatus(t, e.do(http.MethodPatch, "/v1/deploy_templates/"+id, []map[string]any{{"op": "replace", "path": "/uuid", "value": id}}), http.StatusBadRequest)
	})
	t.Run("delete", func(t *testing.T) {
		mustStatus(t, e.do(http.MethodDelete, "/v1/deploy_templates/"+id, nil), http.StatusNoContent)
		mustStatus(t, e.do(http.MethodGet, "/v1/deploy_templates/"+id, nil), http.StatusNotFound)
		mustStatus(t, e.do(http.MethodPost, "/v1/deploy_templates", good("CUSTOM_BIOS2")), http.StatusCreated)
	})
}

// makeFree makes a node one an allocation may take: available, powered,
// resource class gold, with traits.
func (e *env) makeFree(uuid string, traits ...string) {
	e.t.Helper()
	e.edit(uuid, func(n *wire.Node) {
		n.ProvisionState, n.PowerState, n.ResourceClass, n.Traits = wire.StateAvailable, wire.PowerOff, "gold", traits
	})
}

func TestAllocations(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	node := e.createNode("n1", nil)
	alloc := func(body map[string]any) map[string]any {
		t.Helper()
		r := e.do(http.MethodPost, "/v1/allocations", body)
		mustStatus(t, r, http.StatusCreated)
		return r.json(t)
	}

	// Nothing free yet: the allocation is created in error, as Ironic's is.
	none := alloc(map[string]any{"resource_class": "gold", "name": "first"})
	wantErr := fmt.Sprintf("Failed to process allocation %s: no available nodes match the resource class gold.", none["uuid"])
	if none["state"] != wire.AllocationError || none["last_error"] != wantErr || none["node_uuid"] != nil {
		t.Fatalf("allocation with no node free: %v, want error %q", none, wantErr)
	}
	e.makeFree(node, "CUSTOM_A")
	traits := alloc(map[string]any{"resource_class": "gold", "traits": []string{"CUSTOM_B"}})
	if traits["state"] != wire.AllocationError || !strings.Contains(traits["last_error"].(string), "no suitable nodes have the requested traits CUSTOM_B") {
		t.Fatalf("allocation with missing traits: %v", traits)
	}

	a := alloc(map[string]any{"resource_class": "gold", "traits": []string{"CUSTOM_A"}, "name": "mine", "candidate_nodes": []string{"n1"}, "extra": map[string]any{"k": 1}})
	id, _ := a["uuid"].(string)
	if a["state"] != wire.AllocationActive || a["node_uuid"] != node || a["last_error"] != nil {
		t.Fatalf("allocation %v, want active on %s", a, node)
	}
	if cands := a["candidate_nodes"].([]any); len(cands) != 1 || cands[0] != node {
		t.Errorf("candidate_nodes %v, want the node's UUID", cands)
	}
	n := e.do(http.MethodGet, "/v1/nodes/"+node, nil).json(t)
	if n["allocation_uuid"] != id || n["instance_uuid"] != id || !strings.Contains(fmt.Sprint(n["instance_info"]), "CUSTOM_A") {
		t.Fatalf("reserved node: allocation_uuid %v, instance_uuid %v, instance_info %v; want %s and the traits", n["allocation_uuid"], n["instance_uuid"], n["instance_info"], id)
	}
	if got := e.do(http.MethodGet, "/v1/nodes/n1/allocation", nil).json(t); got["uuid"] != id {
		t.Errorf("node's allocation %v", got)
	}
	other := e.createNode("n2", nil)
	calls := []call{
		{"taken node is not free", http.MethodPost, "/v1/allocations", map[string]any{"resource_class": "gold", "candidate_nodes": []string{node}}, http.StatusCreated},
		{"duplicate name", http.MethodPost, "/v1/allocations", map[string]any{"resource_class": "gold", "name": "mine"}, http.StatusConflict},
		{"unknown candidate", http.MethodPost, "/v1/allocations", map[string]any{"resource_class": "gold", "candidate_nodes": []string{"nope"}}, http.StatusBadRequest},
		{"no resource class", http.MethodPost, "/v1/allocations", map[string]any{"name": "x"}, http.StatusBadRequest},
		{"bad trait", http.MethodPost, "/v1/allocations", map[string]any{"resource_class": "gold", "traits": []string{"lower"}}, http.StatusBadRequest},
		{"bad name", http.MethodPost, "/v1/allocations", map[string]any{"resource_class": "gold", "name": "a b"}, http.StatusBadRequest},
		{"unknown key", http.MethodPost, "/v1/allocations", map[string]any{"resource_class": "gold", "node_uuid": node}, http.StatusBadRequest},
		{"by name", http.MethodGet, "/v1/allocations/mine", nil, http.StatusOK},
		{"fields", http.MethodGet, "/v1/allocations/mine?fields=uuid,state", nil, http.StatusOK},
		{"unknown", http.MethodGet, "/v1/allocations/nope", nil, http.StatusNotFound},
		{"no allocation", http.MethodGet, "/v1/nodes/" + other + "/allocation", nil, http.StatusNotFound},
		{"filter by node", http.MethodGet, "/v1/allocations?node=n1&state=active", nil, http.StatusOK},
		{"filter by unknown node", http.MethodGet, "/v1/allocations?node=nope", nil, http.StatusBadRequest},
		{"delete the allocated node", http.MethodDelete, "/v1/nodes/" + node, nil, http.StatusConflict},
	}
	e.run(t, calls, "latest", map[string]string{
		"taken node is not free":    "none of the requested nodes are available and match the resource class gold",
		"duplicate name":            "An allocation with name mine already exists.",
		"unknown candidate":         "Node nope could not be found.",
		"no resource class":         "The resource_class field is mandatory when not backfilling",
		"by name":                   id,
		"fields":                    `"state":"active"`,
		"unknown":                   "Allocation nope could not be found.",
		"no allocation":             "Allocation for node " + other + " was not found",
		"filter by node":            id,
		"delete the allocated node": fmt.Sprintf("Node %s is associated with instance %s.", node, id),
	})

	t.Run("versions", func(t *testing.T) {
		old := []struct {
			path, version string
			method        string
			body          any
			want          int
		}{
			{"/v1/allocations", "1.51", http.MethodGet, nil, http.StatusNotFound},
			{"/v1/nodes/n1/allocation", "1.51", http.MethodGet, nil, http.StatusNotFound},
			{"/v1/allocations/" + id, "1.56", http.MethodPatch, []map[string]any{{"op": "add", "path": "/extra/x", "value": 1}}, http.StatusNotFound},
			{"/v1/allocations", "1.57", http.MethodPost, map[string]any{"resource_class": "gold", "node": node}, http.StatusBadRequest},
			{"/v1/allocations", "1.59", http.MethodPost, map[string]any{"resource_class": "gold", "owner": "p"}, http.StatusNotAcceptable},
			{"/v1/allocations?owner=p", "1.59", http.MethodGet, nil, http.StatusNotAcceptable},
		}
		for _, o := range old {
			mustStatus(t, e.do(o.method, o.path, o.body, "X-OpenStack-Ironic-API-Version", o.version), o.want)
		}
		if doc := e.do(http.MethodGet, "/v1/allocations/"+id, nil, "X-OpenStack-Ironic-API-Version", "1.59").json(t); doc["uuid"] != id {
			t.Errorf("allocation at 1.59: %v", doc)
		} else if _, ok := doc["owner"]; ok {
			t.Errorf("owner shown at 1.59: %v", doc)
		}
		if v1 := e.do(http.MethodGet, "/v1", nil).json(t); v1["allocations"] == nil {
			t.Errorf("GET /v1 does not list allocations: %v", v1)
		}
	})
	t.Run("patch", func(t *testing.T) {
		r := e.do(http.MethodPatch, "/v1/allocations/mine", []map[string]any{{"op": "replace", "path": "/name", "value": "renamed"}, {"op": "add", "path": "/extra/y", "value": 2}})
		mustStatus(t, r, http.StatusOK)
		if doc := r.json(t); doc["name"] != "renamed" || fmt.Sprint(doc["extra"]) != "map[k:1 y:2]" {
			t.Fatalf("patched %s", r.body)
		}
		mustStatus(t, e.do(http.MethodPatch, "/v1/allocations/renamed", []map[string]any{{"op": "replace", "path": "/resource_class", "value": "x"}}), http.StatusBadRequest)
		mustStatus(t, e.do(http.MethodPost, "/v1/allocations", map[string]any{"resource_class": "gold", "name": "mine"}), http.StatusCreated) // the old name is free
	})
	t.Run("delete refused while active", func(t *testing.T) {
		e.edit(node, func(n *wire.Node) { n.ProvisionState = wire.StateActive })
		r := e.do(http.MethodDelete, "/v1/allocations/"+id, nil)
		mustStatus(t, r, http.StatusConflict)
		if want := "because the node is active (and maintenance mode is off)"; !strings.Contains(faultString(t, r), want) {
			t.Fatalf("faultstring %q, want %q", faultString(t, r), want)
		}
		e.edit(node, func(n *wire.Node) { n.ProvisionState = wire.StateAvailable })
	})
	t.Run("delete frees the node", func(t *testing.T) {
		mustStatus(t, e.do(http.MethodDelete, "/v1/nodes/n1/allocation", nil), http.StatusNoContent)
		n := e.do(http.MethodGet, "/v1/nodes/"+node, nil).json(t)
		if n["allocation_uuid"] != nil || n["instance_uuid"] != nil {
			t.Fatalf("node after its allocation's deletion: allocation_uuid %v, instance_uuid %v", n["allocation_uuid"], n["instance_uuid"])
		}
		mustStatus(t, e.do(http.MethodGet, "/v1/allocations/"+id, nil), http.StatusNotFound)
	})
	t.Run("removing instance_uuid ends the allocation", func(t *testing.T) {
		again := alloc(map[string]any{"resource_class": "gold"})
		if again["node_uuid"] != node {
			t.Fatalf("allocation %v, want it on %s", again, node)
		}
		over := e.do(http.MethodPatch, "/v1/nodes/"+node, []map[string]any{{"op": "replace", "path": "/instance_uuid", "value": wire.NewUUID()}})
		mustStatus(t, over, http.StatusConflict)
		if want := fmt.Sprintf("Node %s is associated with instance %s.", node, again["uuid"]); !strings.Contains(faultString(t, over), want) {
			t.Fatalf("faultstring %q, want %q", faultString(t, over), want)
		}
		r := e.do(http.MethodPatch, "/v1/nodes/"+node, []map[string]any{{"op": "remove", "path": "/instance_uuid"}})
		mustStatus(t, r, http.StatusOK)
		if doc := r.json(t); doc["allocation_uuid"] != nil || doc["instance_uuid"] != nil {
			t.Fatalf("node after removing instance_uuid: %s", r.body)
		}
		mustStatus(t, e.do(http.MethodGet, "/v1/allocations/"+again["uuid"].(string), nil), http.StatusNotFound)
	})
	t.Run("backfill", func(t *testing.T) {
		instance := wire.NewUUID()
		e.edit(other, func(n *wire.Node) {
			n.ProvisionState, n.ResourceClass, n.InstanceUUID = wire.StateActive, "silver", instance
		})
		r := e.do(http.MethodPost, "/v1/allocations", map[string]any{"node": "n2"})
		mustStatus(t, r, http.StatusCreated)
		if doc := r.json(t); doc["uuid"] != instance || doc["state"] != wire.AllocationActive || doc["resource_class"] != "silver" || doc["node_uuid"] != other {
			t.Fatalf("backfilled %s", r.body)
		}
		bad := e.do(http.MethodPost, "/v1/allocations", map[string]any{"node": node})
		mustStatus(t, bad, http.StatusBadRequest)
		if !strings.Contains(faultString(t, bad), `Node must be in the "active" state`) {
			t.Fatalf("backfill of an available node: %s", bad.body)
		}
	})
	t.Run("node deletion takes its allocations", func(t *testing.T) {
		e.edit(other, func(n *wire.Node) { n.Maintenance = true })
		mustStatus(t, e.do(http.MethodDelete, "/v1/nodes/"+other, nil), http.StatusNoContent)
		left, err := transport.NewRecords(e.inv).Allocations.List(ctx, func(a wire.Allocation) bool { return a.NodeUUID == other })
		if err != nil || len(left) != 0 {
			t.Fatalf("allocations of a deleted node: %+v, %v", left, err)
		}
	})
}

// TestAllocationsRace: allocations racing for fewer nodes never share one.
func TestAllocationsRace(t *testing.T) {
	e := newEnv(t)
	var nodes []string
	for i := range 3 {
		id := e.createNode(fmt.Sprintf("r%d", i), nil)
		e.makeFree(id)
		nodes = append(nodes, id)
	}
	got := make(chan map[string]any, 5)
	for range 5 {
		go func() {
			r := e.do(http.MethodPost, "/v1/allocations", map[string]any{"resource_class": "gold"})
			got <- r.json(t)
		}()
	}
	var taken []string
	errs := 0
	for range 5 {
		doc := <-got
		switch doc["state"] {
		case wire.AllocationActive:
			taken = append(taken, doc["node_uuid"].(string))
		case wire.AllocationError:
			errs++
		}
	}
	slices.Sort(taken)
	slices.Sort(nodes)
	if !slices.Equal(taken, nodes) || errs != 2 {
		t.Fatalf("nodes taken %v and %d errors; want each of %v once and 2 errors", taken, errs, nodes)
	}
}

func TestNodeHistoryAndInventory(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	node := e.createNode("h1", nil)
	records := transport.NewRecords(e.inv)
	long := strings.Repeat("x", 300)
	for _, ev := range []wire.HistoryEvent{
		{Severity: wire.SeverityError, EventType: "deploying", Event: "first", Conductor: "c1", User: "admin"},
		{Severity: wire.SeverityError, EventType: "cleaning", Event: long, Conductor: "c1"},
	} {
		if err := records.AddHistory(ctx, node, ev); err != nil {
			t.Fatal(err)
		}
	}
	list := e.do(http.MethodGet, "/v1/nodes/h1/history", nil)
	mustStatus(t, list, http.StatusOK)
	events := list.json(t)["history"].([]any)
	if len(events) != 2 {
		t.Fatalf("history %s", list.body)
	}
	first, second := events[0].(map[string]any), events[1].(map[string]any)
	if first["event"] != "first" || first["severity"] != "ERROR" || first["event_type"] != nil {
		t.Errorf("first event %v: want event, severity, no event_type without detail", first)
	}
	if ev := second["event"].(string); len(ev) != 254 || !strings.HasSuffix(ev, "...") {
		t.Errorf("a long event is %d characters without detail, want 251 and ...", len(ev))
	}
	detail := e.do(http.MethodGet, "/v1/nodes/h1/history?detail=true", nil).json(t)["history"].([]any)
	d := detail[0].(map[string]any)
	if d["event_type"] != "deploying" || d["conductor"] != "c1" || d["user"] != "admin" {
		t.Errorf("detailed event %v", d)
	}
	id, _ := first["uuid"].(string)
	calls := []call{
		{"one event", http.MethodGet, "/v1/nodes/h1/history/" + id, nil, http.StatusOK},
		{"unknown event", http.MethodGet, "/v1/nodes/h1/history/" + wire.NewUUID(), nil, http.StatusNotFound},
		{"newest first", http.MethodGet, "/v1/nodes/h1/history?sort_dir=desc&limit=1", nil, http.StatusOK},
		{"no inventory yet", http.MethodGet, "/v1/nodes/h1/inventory", nil, http.StatusNotFound},
		{"unknown node", http.MethodGet, "/v1/nodes/nope/history", nil, http.StatusNotFound},
	}
	e.run(t, calls, "latest", map[string]string{
		"one event":        `"event_type":"deploying"`,
		"unknown event":    "Node history record",
		"newest first":     `"event":"xxxxxxxxxx`,
		"no inventory yet": fmt.Sprintf("Node inventory record for node %s could not be found.", node),
		"unknown node":     "Node nope could not be found.",
	})
	mustStatus(t, e.do(http.MethodGet, "/v1/nodes/h1/history", nil, "X-OpenStack-Ironic-API-Version", "1.77"), http.StatusNotFound)

	inv := wire.Inspection{Inventory: map[string]any{"cpu": map[string]any{"count": 4}}, PluginData: map[string]any{"root_disk": map[string]any{"name": "/dev/vda"}}}
	if err := records.SetInspection(ctx, node, inv); err != nil {
		t.Fatal(err)
	}
	r := e.do(http.MethodGet, "/v1/nodes/h1/inventory", nil)
	mustStatus(t, r, http.StatusOK)
	if got := r.json(t); fmt.Sprint(got["inventory"]) != "map[cpu:map[count:4]]" || fmt.Sprint(got["plugin_data"]) != "map[root_disk:map[name:/dev/vda]]" {
		t.Fatalf("inventory %s", r.body)
	}
	mustStatus(t, e.do(http.MethodGet, "/v1/nodes/h1/inventory", nil, "X-OpenStack-Ironic-API-Version", "1.80"), http.StatusNotFound)

	mustStatus(t, e.do(http.MethodDelete, "/v1/nodes/"+node, nil), http.StatusNoContent)
	if _, err := records.History.Get(ctx, node); wire.CodeOf(err) != wire.CodeNotFound {
		t.Errorf("history outlived its node: %v", err)
	}
	if _, err := records.Inspections.Get(ctx, node); wire.CodeOf(err) != wire.CodeNotFound {
		t.Errorf("inventory outlived its node: %v", err)
	}
}
