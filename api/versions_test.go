package api_test

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ironfleet/ironfleet/api"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

const verHdr = "X-OpenStack-Ironic-API-Version"

// ver is the header pair of a microversion 1.minor.
func ver(minor int) []string { return []string{verHdr, "1." + strconv.Itoa(minor)} }

// TestVersionedNodeFields checks each node field of 1.83–1.89 (and the
// ones past MaxVersion) is absent below its version and present from it,
// in a GET, in fields, in a create and in a PATCH.
func TestVersionedNodeFields(t *testing.T) {
	e := newEnv(t)
	parent := e.createNode("vf-parent", nil)
	id := e.createNode("vf-node", nil)
	tests := []struct {
		field string
		minor int
		value any // a non-null value to write; nil: read-only
	}{
		{"parent_node", 83, parent},
		{"firmware_interface", 86, "no-firmware"},
		{"service_step", 87, nil},
		{"disable_power_off", 95, false},
		{"instance_name", 104, "vm-1"},
		{"health", 109, nil},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			below := ver(min(tt.minor-1, api.MaxVersion.Minor))
			got := e.do(http.MethodGet, "/v1/nodes/"+id, nil, below...).json(t)
			if _, ok := got[tt.field]; ok {
				t.Errorf("%s present at %s", tt.field, below[1])
			}
			r := e.do(http.MethodGet, "/v1/nodes/"+id+"?fields="+tt.field, nil, below...)
			mustStatus(t, r, http.StatusNotAcceptable)
			r = e.do(http.MethodGet, "/v1/nodes?fields=uuid,"+tt.field, nil, below...)
			mustStatus(t, r, http.StatusNotAcceptable)
			if tt.value != nil {
				body := map[string]any{"driver": "sim", tt.field: tt.value}
				r = e.do(http.MethodPost, "/v1/nodes", body, below...)
				mustStatus(t, r, http.StatusNotAcceptable)
				if got := faultString(t, r); got != "Request not acceptable." {
					t.Errorf("faultstring %q", got)
				}
				// null is the default, accepted at any version (Ironic's reject_fields_in_newer_versions).
				r = e.do(http.MethodPost, "/v1/nodes", map[string]any{"driver": "sim", tt.field: nil}, below...)
				mustStatus(t, r, http.StatusCreated)
				patch := `[{"op":"add","path":"/` + tt.field + `","value":"x"}]`
				mustStatus(t, e.do(http.MethodPatch, "/v1/nodes/"+id, patch, below...), http.StatusNotAcceptable)
			}
			if tt.minor > api.MaxVersion.Minor {
				return
			}
			at := ver(tt.minor)
			got = e.do(http.MethodGet, "/v1/nodes/"+id, nil, at...).json(t)
			if _, ok := got[tt.field]; !ok {
				t.Errorf("%s missing at %s: %v", tt.field, at[1], got)
			}
			r = e.do(http.MethodGet, "/v1/nodes/"+id+"?fields="+tt.field, nil, at...)
			mustStatus(t, r, http.StatusOK)
			if doc := r.json(t); len(doc) != 2 {
				t.Errorf("fields=%s gave %v, want it and links", tt.field, doc)
			}
			if tt.value != nil {
				r = e.do(http.MethodPost, "/v1/nodes", map[string]any{"driver": "sim", tt.field: tt.value}, at...)
				mustStatus(t, r, http.StatusCreated)
				if got := r.json(t)[tt.field]; got != tt.value {
					t.Errorf("created %s = %v, want %v", tt.field, got, tt.value)
				}
			}
		})
	}
}

// TestFieldsParameter checks fields on node gets and lists against
// Ironic's check_for_invalid_fields: one 400 naming every unknown field,
// sub-resource links are not fields.
func TestFieldsParameter(t *testing.T) {
	e := newEnv(t)
	id := e.createNode("fields-1", nil)
	tests := []struct {
		name, path string
		wantStatus int
		wantFault  string
	}{
		{"get", "/v1/nodes/" + id + "?fields=uuid,name", 200, ""},
		{"unknown fields named together", "/v1/nodes/" + id + "?fields=uuid,colour,size", 400, `Field(s) "colour, size" are not valid`},
		{"a link is not a field", "/v1/nodes/" + id + "?fields=ports", 400, `Field(s) "ports" are not valid`},
		{"list", "/v1/nodes?fields=uuid,owner", 200, ""},
		{"list of nothing refuses too", "/v1/nodes?owner=nobody&fields=colour", 400, `Field(s) "colour" are not valid`},
		{"fields with detail", "/v1/nodes?fields=uuid&detail=true", 400, "Can not specify ?detail=True and fields in the same request."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(http.MethodGet, tt.path, nil)
			mustStatus(t, r, tt.wantStatus)
			if tt.wantFault != "" && faultString(t, r) != tt.wantFault {
				t.Errorf("faultstring %q, want %q", faultString(t, r), tt.wantFault)
			}
		})
	}
}

// TestNodeListFilters checks every node list filter: what it keeps, and
// 406 below its version with Ironic's words.
func TestNodeListFilters(t *testing.T) {
	e := newEnv(t)
	inst := "5a0f8e5c-1b6e-4e0b-9d55-0d7a1a6b8f01"
	a := e.createNode("flt-a", map[string]any{"owner": "p1", "lessee": "p2", "resource_class": "gpu",
		"instance_uuid": inst, "description": "rack 4, slot 2"})
	b := e.createNode("flt-b", map[string]any{"owner": "p2", "resource_class": "cpu"})
	child := e.createNode("flt-child", map[string]any{"parent_node": a, "owner": "p1"})
	e.edit(b, func(n *wire.Node) { n.Conductor, n.Maintenance, n.Fault = "cond-1", true, "power failure" })
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
		{"", sorted(a, b)},
		{"?instance_uuid=" + inst, sorted(a)},
		{"?instance_uuid=" + strings.ToUpper(inst), sorted(a)},
		{"?resource_class=gpu", sorted(a)},
		{"?owner=p2", sorted(b)},
		{"?lessee=p2", sorted(a)},
		{"?project=p2", sorted(a, b)},
		{"?fault=power+failure", sorted(b)},
		{"?conductor=cond-1", sorted(b)},
		{"?description_contains=slot", sorted(a)},
		{"?retired=false", sorted(a, b)},
		{"?retired=true", nil},
		{"?sharded=false", sorted(a, b)},
		{"?sharded=true", nil},
		{"?shard=s1,s2", nil},
		{"?include_children=true", sorted(a, b, child)},
		{"?parent_node=" + a, sorted(child)},
		{"?parent_node=flt-a", sorted(child)},
		{"?parent_node=flt-b", nil},
		{"?owner=p1", sorted(a)},
		{"?include_children=true&owner=p1", sorted(a, child)},
		{"?sort_key=id", sorted(a, b)},
		{"?sort_key=resource_class&sort_dir=desc", sorted(a, b)},
	}
	for _, tt := range tests {
		t.Run("keeps"+tt.query, func(t *testing.T) {
			r := e.do(http.MethodGet, "/v1/nodes"+tt.query, nil)
			mustStatus(t, r, 200)
			if got := uuidsOf(r); !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	// The instance_uuid query is a lookup: no next link even at limit 1.
	if doc := e.do(http.MethodGet, "/v1/nodes?limit=1&instance_uuid="+inst, nil).json(t); doc["next"] != nil {
		t.Errorf("instance_uuid list has a next link: %v", doc)
	}
	refused := []struct {
		query      string
		minor      int
		wantStatus int
		wantFault  string
	}{
		{"?resource_class=gpu", 20, 406, "Request not acceptable. The minimal required API version should be 1.21"},
		{"?fault=power+failure", 41, 406, "Request not acceptable. The minimal required API version should be 1.42"},
		{"?conductor=cond-1", 48, 406, "Request not acceptable. The minimal required API version should be 1.49"},
		{"?owner=p1", 49, 406, "Request not acceptable. The minimal required API version should be 1.50"},
		{"?lessee=p1", 64, 406, "Request not acceptable. The minimal required API version should be 1.65"},
		{"?shard=s1", 81, 406, "Request not acceptable. The minimal required API version should be 1.82"},
		{"?sharded=true", 81, 406, "Request not acceptable. The minimal required API version should be 1.82"},
		{"?include_children=true", 82, 406, "Request not acceptable. The minimal required API version should be 1.83"},
		{"?parent_node=" + a, 82, 406, "Request not acceptable. The minimal required API version should be 1.83"},
		{"?fault=bored", 89, 400, `Unrecognized fault "bored" is specified, allowed faults are ('power failure', 'clean failure', 'rescue abort failure', 'service failure')`},
		{"?instance_uuid=nope", 89, 400, `Expected a UUID for instance_uuid but received "nope".`},
		{"?retired=perhaps", 89, 400, ""},
		{"?include_children=perhaps", 89, 400, ""},
		{"?sort_key=owner", 49, 406, "Request not acceptable."},
		{"?sort_key=driver_info", 89, 400, ""},
	}
	for _, tt := range refused {
		t.Run("refuses"+tt.query, func(t *testing.T) {
			r := e.do(http.MethodGet, "/v1/nodes"+tt.query, nil, ver(tt.minor)...)
			mustStatus(t, r, tt.wantStatus)
			if tt.wantFault != "" && faultString(t, r) != tt.wantFault {
				t.Errorf("faultstring %q, want %q", faultString(t, r), tt.wantFault)
			}
		})
	}
}

// TestChildNodes checks parent_node (1.83): it must name a node the
// child may link to, it hides the child from plain lists, and
// GET …/children lists it in Ironic's shape.
func TestChildNodes(t *testing.T) {
	e := newEnv(t)
	parent := e.createNode("parent-1", map[string]any{"owner": "p1"})
	other := e.createNode("other-owner", map[string]any{"owner": "p2"})
	r := e.do(http.MethodPost, "/v1/nodes", map[string]any{"driver": "sim", "name": "child-1", "owner": "p1", "parent_node": "parent-1"})
	mustStatus(t, r, http.StatusCreated)
	child := r.json(t)
	if child["parent_node"] != parent {
		t.Errorf("parent_node %v, want the parent's UUID %s", child["parent_node"], parent)
	}
	childID := child["uuid"].(string)

	r = e.do(http.MethodGet, "/v1/nodes/parent-1/children", nil)
	mustStatus(t, r, http.StatusOK)
	doc := r.json(t)
	if got := doc["children"].([]any); len(got) != 1 || got[0] != childID {
		t.Errorf("children %v, want [%s]", got, childID)
	}
	if l := doc["links"].(map[string]any); l["rel"] != "children" || !strings.HasSuffix(l["href"].(string), "/v1/nodes?parent_node="+parent) {
		t.Errorf("links %v", l)
	}
	mustStatus(t, e.do(http.MethodGet, "/v1/nodes/parent-1/children", nil, ver(82)...), http.StatusNotFound)
	mustStatus(t, e.do(http.MethodGet, "/v1/nodes/nosuch/children", nil), http.StatusNotFound)
	// Ironic hides children from plain lists at every version
	// (_add_nodes_filters does not look at the version).
	for _, minor := range []int{1, 82, 89} {
		r := e.do(http.MethodGet, "/v1/nodes", nil, ver(minor)...)
		mustStatus(t, r, http.StatusOK)
		if strings.Contains(string(r.body), childID) {
			t.Errorf("1.%d: the child is in the plain list", minor)
		}
	}
	mustStatus(t, e.do(http.MethodGet, "/v1/nodes/"+childID, nil, ver(82)...), http.StatusOK)

	bad := func(v string) string {
		return "Unable to apply the requested parent_node '" + v + "'. Requested value was invalid."
	}
	tests := []struct {
		name       string
		method     string
		path       string
		body       any
		wantStatus int
		wantFault  string
	}{
		{"create: no such node", http.MethodPost, "/v1/nodes", map[string]any{"driver": "sim", "parent_node": "nosuch"}, 400, bad("nosuch")},
		{"create: another owner's", http.MethodPost, "/v1/nodes", map[string]any{"driver": "sim", "owner": "p1", "parent_node": other}, 400, bad(other)},
		{"patch: itself", http.MethodPatch, "/v1/nodes/" + childID, `[{"op":"replace","path":"/parent_node","value":"child-1"}]`, 400, bad("child-1")},
		{"patch: other fields keep the parent", http.MethodPatch, "/v1/nodes/" + childID, `[{"op":"add","path":"/extra/k","value":"v"}]`, 200, ""},
		{"patch: remove the parent", http.MethodPatch, "/v1/nodes/" + childID, `[{"op":"remove","path":"/parent_node"}]`, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(tt.method, tt.path, tt.body)
			mustStatus(t, r, tt.wantStatus)
			if tt.wantFault != "" && faultString(t, r) != tt.wantFault {
				t.Errorf("faultstring %q, want %q", faultString(t, r), tt.wantFault)
			}
		})
	}
	if !strings.Contains(string(e.do(http.MethodGet, "/v1/nodes", nil).body), childID) {
		t.Errorf("a node without a parent is not in the plain list")
	}
}

// TestVirtualMedia checks vmedia attach and detach (1.89): the request is
// checked as Ironic checks it, then refused because no ironfleet driver
// has virtual media.
func TestVirtualMedia(t *testing.T) {
	e := newEnv(t)
	id := e.createNode("vmedia-1", nil)
	path := "/v1/nodes/" + id + "/vmedia"
	attach := map[string]any{"device_type": "cdrom", "image_url": "http://images/boot.iso"}
	tests := []struct {
		name       string
		method     string
		path       string
		body       any
		minor      int
		wantStatus int
		wantFault  string
	}{
		{"show before 1.93", http.MethodGet, path, nil, 92, 404, ""},
		{"show", http.MethodGet, path, nil, 93, 400, "Driver sim does not support get_virtual_media (disabled or not implemented)."},
		{"attach before 1.89", http.MethodPost, path, attach, 88, 404, ""},
		{"detach before 1.89", http.MethodDelete, path, nil, 88, 404, ""},
		{"attach", http.MethodPost, path, attach, 89, 400, "Driver sim does not support attach_virtual_media (disabled or not implemented)."},
		{"detach", http.MethodDelete, path, nil, 89, 400, "Driver sim does not support detach_virtual_media (disabled or not implemented)."},
		{"detach cdrom", http.MethodDelete, path + "?device_types=cdrom", nil, 89, 400, "Driver sim does not support detach_virtual_media (disabled or not implemented)."},
		{"detach a bad device", http.MethodDelete, path + "?device_types=cdrom,usb", nil, 89, 400, "Invalid device type(s) usb (valid are disk, cdrom, floppy)"},
		{"attach: no image", http.MethodPost, path, map[string]any{"device_type": "cdrom"}, 89, 400, "Schema error for vmedia: 'image_url' is a required property"},
		{"attach: bad device", http.MethodPost, path, map[string]any{"device_type": "usb", "image_url": "http://x/y"}, 89, 400, "Schema error for vmedia: 'usb' is not one of ['disk', 'cdrom', 'floppy']"},
		{"attach: bad scheme", http.MethodPost, path, map[string]any{"device_type": "cdrom", "image_url": "ftp://x/y"}, 89, 400, "Unsupported or missing URL scheme: ftp"},
		{"attach: extra key", http.MethodPost, path, map[string]any{"device_type": "cdrom", "image_url": "http://x/y", "insecure": true}, 89, 400, "Schema error for vmedia: Additional properties are not allowed ('insecure' was unexpected)"},
		{"attach: unknown node", http.MethodPost, "/v1/nodes/nosuch/vmedia", attach, 89, 404, "Node nosuch could not be found."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(tt.method, tt.path, tt.body, ver(tt.minor)...)
			mustStatus(t, r, tt.wantStatus)
			if tt.wantFault != "" && faultString(t, r) != tt.wantFault {
				t.Errorf("faultstring %q, want %q", faultString(t, r), tt.wantFault)
			}
		})
	}
}

// TestPortListQueries checks the port list's fields, filters and sort,
// with the query Metal3's baremetal-operator sends to find a MAC's node
// (pkg/provisioner/ironic/ironic.go getPorts/registration: address and
// fields=node_uuid,uuid,address).
func TestPortListQueries(t *testing.T) {
	e := newEnv(t)
	id := e.createNode("pq-node", nil)
	other := e.createNode("pq-other", nil)
	var ports []string
	for i, n := range []string{id, id, other} {
		r := e.do(http.MethodPost, "/v1/ports", map[string]any{"node_uuid": n, "address": "52:54:00:dd:00:0" + strconv.Itoa(i)})
		mustStatus(t, r, http.StatusCreated)
		ports = append(ports, r.json(t)["uuid"].(string))
	}
	r := e.do(http.MethodGet, "/v1/ports?address=52:54:00:DD:00:01&fields=node_uuid,uuid,address", nil, ver(89)...)
	mustStatus(t, r, http.StatusOK)
	list := r.json(t)["ports"].([]any)
	if len(list) != 1 {
		t.Fatalf("ports %v, want one", list)
	}
	if p := list[0].(map[string]any); p["node_uuid"] != id || p["uuid"] != ports[1] || p["address"] != "52:54:00:dd:00:01" || len(p) != 4 {
		t.Errorf("port %v, want node_uuid, uuid, address and links", p)
	}
	count := func(r resp) int { return len(r.json(t)["ports"].([]any)) }
	tests := []struct {
		name       string
		query      string
		minor      int
		wantStatus int
		wantCount  int
		wantFault  string
	}{
		{"all", "", 89, 200, 3, ""},
		{"by node", "?node=pq-node", 89, 200, 2, ""},
		{"by node_uuid", "?node_uuid=" + other, 89, 200, 1, ""},
		{"node and address both apply", "?node=pq-other&address=52:54:00:dd:00:01", 89, 200, 0, ""},
		{"shard: no node has one", "?shard=s1", 89, 200, 0, ""},
		{"description_contains: no port has one", "?description_contains=x", 89, 200, 0, ""},
		{"fields before 1.8", "?fields=uuid", 7, 406, 0, ""},
		{"name field before 1.88", "?fields=uuid,name", 87, 406, 0, ""},
		{"unknown field", "?fields=uuid,vlan", 89, 400, 0, `Field(s) "vlan" are not valid`},
		{"detail", "?detail=true", 89, 200, 3, ""},
		{"detail before 1.43", "?detail=true", 42, 400, 0, "Invalid query parameter ?detail=true received."},
		{"portgroup", "?portgroup=pg1", 89, 404, 0, "Portgroup pg1 could not be found."},
		{"portgroup before 1.24", "?portgroup=pg1", 23, 406, 0, ""},
		{"conductor_groups is 1.99", "?conductor_groups=a", 89, 406, 0, "Request not acceptable. The minimal required API version should be 1.99"},
		{"shard before 1.82", "?shard=s1", 81, 406, 0, ""},
		{"bad sort key", "?sort_key=colour", 89, 400, 0, ""},
		{"sort by a field too new", "?sort_key=name", 87, 406, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(http.MethodGet, "/v1/ports"+tt.query, nil, ver(tt.minor)...)
			mustStatus(t, r, tt.wantStatus)
			if tt.wantStatus == 200 && count(r) != tt.wantCount {
				t.Errorf("%d ports, want %d: %s", count(r), tt.wantCount, r.body)
			}
			if tt.wantFault != "" && faultString(t, r) != tt.wantFault {
				t.Errorf("faultstring %q, want %q", faultString(t, r), tt.wantFault)
			}
		})
	}
	// Sorting by address, descending.
	r = e.do(http.MethodGet, "/v1/ports?sort_key=address&sort_dir=desc", nil)
	mustStatus(t, r, http.StatusOK)
	var got []string
	for _, p := range r.json(t)["ports"].([]any) {
		got = append(got, p.(map[string]any)["uuid"].(string))
	}
	if want := []string{ports[2], ports[1], ports[0]}; !slices.Equal(got, want) {
		t.Errorf("sorted %v, want %v", got, want)
	}
	// fields on a port's GET.
	r = e.do(http.MethodGet, "/v1/ports/"+ports[0]+"?fields=node_uuid", nil)
	mustStatus(t, r, http.StatusOK)
	if doc := r.json(t); doc["node_uuid"] != id || len(doc) != 2 {
		t.Errorf("port fields %v", doc)
	}
	// GET /v1/nodes/ (Metal3 with an empty UUID) is the node list, as in
	// Ironic, where the collection ignores a trailing slash.
	r = e.do(http.MethodGet, "/v1/nodes/", nil)
	mustStatus(t, r, http.StatusOK)
	if _, ok := r.json(t)["nodes"]; !ok {
		t.Errorf("GET /v1/nodes/: %s", r.body)
	}
}

// TestPortNames checks port names (1.88): unique, written at create and
// by PATCH, a path may name a port by name or MAC, and older versions
// neither see nor write them.
func TestPortNames(t *testing.T) {
	e := newEnv(t)
	id := e.createNode("pn-node", nil)
	r := e.do(http.MethodPost, "/v1/ports", map[string]any{"node_uuid": id, "address": "52:54:00:ee:00:01", "name": "eth0"}, ver(88)...)
	mustStatus(t, r, http.StatusCreated)
	p1 := r.json(t)
	if p1["name"] != "eth0" {
		t.Errorf("created port %v", p1)
	}
	r = e.do(http.MethodPost, "/v1/ports", map[string]any{"node_uuid": id, "address": "52:54:00:ee:00:02"})
	mustStatus(t, r, http.StatusCreated)
	p2 := r.json(t)["uuid"].(string)
	tests := []struct {
		name       string
		method     string
		path       string
		body       any
		minor      int
		wantStatus int
		wantFault  string
	}{
		{"by name", http.MethodGet, "/v1/ports/eth0", nil, 89, 200, ""},
		{"by MAC", http.MethodGet, "/v1/ports/52:54:00:ee:00:01", nil, 89, 200, ""},
		{"no such name", http.MethodGet, "/v1/ports/eth9", nil, 89, 404, "Port eth9 could not be found."},
		{"name before 1.88", http.MethodPost, "/v1/ports", map[string]any{"node_uuid": id, "address": "52:54:00:ee:00:03", "name": "eth3"}, 87, 406, ""},
		{"duplicate name", http.MethodPost, "/v1/ports", map[string]any{"node_uuid": id, "address": "52:54:00:ee:00:03", "name": "eth0"}, 89, 409, "A port with name eth0 already exists."},
		{"duplicate MAC, new name", http.MethodPost, "/v1/ports", map[string]any{"node_uuid": id, "address": "52:54:00:ee:00:02", "name": "eth4"}, 89, 409, "A port with MAC address 52:54:00:ee:00:02 already exists."},
		{"a UUID as name", http.MethodPost, "/v1/ports", map[string]any{"node_uuid": id, "address": "52:54:00:ee:00:03", "name": id}, 89, 400, ""},
		{"a MAC as name", http.MethodPost, "/v1/ports", map[string]any{"node_uuid": id, "address": "52:54:00:ee:00:03", "name": "52:54:00:ee:00:09"}, 89, 400, ""},
		{"patch to a taken name", http.MethodPatch, "/v1/ports/" + p2, `[{"op":"add","path":"/name","value":"eth0"}]`, 89, 409, "A port with name eth0 already exists."},
		{"patch name before 1.88", http.MethodPatch, "/v1/ports/" + p2, `[{"op":"add","path":"/name","value":"eth1"}]`, 87, 406, ""},
		{"patch a name", http.MethodPatch, "/v1/ports/" + p2, `[{"op":"add","path":"/name","value":"eth1"}]`, 89, 200, ""},
		{"found by its new name", http.MethodGet, "/v1/ports/eth1", nil, 89, 200, ""},
		{"rename frees the old name", http.MethodPatch, "/v1/ports/eth0", `[{"op":"replace","path":"/name","value":"eth5"}]`, 89, 200, ""},
		{"old name is gone", http.MethodGet, "/v1/ports/eth0", nil, 89, 404, ""},
		{"old name is free", http.MethodPatch, "/v1/ports/eth1", `[{"op":"replace","path":"/name","value":"eth0"}]`, 89, 200, ""},
		{"node_ident before 1.94", http.MethodPost, "/v1/ports", map[string]any{"node_ident": "pn-node", "address": "52:54:00:ee:00:0a"}, 93, 406, ""},
		{"node_ident by name", http.MethodPost, "/v1/ports", map[string]any{"node_ident": "pn-node", "address": "52:54:00:ee:00:0a"}, 94, 201, ""},
		{"node_ident and node_uuid", http.MethodPost, "/v1/ports", map[string]any{"node_ident": "pn-node", "node_uuid": id, "address": "52:54:00:ee:00:0b"}, 94, 400, "Only one of node_uuid and node_ident may be given."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(tt.method, tt.path, tt.body, ver(tt.minor)...)
			mustStatus(t, r, tt.wantStatus)
			if tt.wantFault != "" && faultString(t, r) != tt.wantFault {
				t.Errorf("faultstring %q, want %q", faultString(t, r), tt.wantFault)
			}
		})
	}
	if _, ok := e.do(http.MethodGet, "/v1/ports/"+p2, nil, ver(87)...).json(t)["name"]; ok {
		t.Errorf("1.87 sees a port name")
	}
	// Deleting a port frees its name.
	mustStatus(t, e.do(http.MethodDelete, "/v1/ports/eth0", nil), http.StatusNoContent)
	r = e.do(http.MethodPost, "/v1/ports", map[string]any{"node_uuid": id, "address": "52:54:00:ee:00:07", "name": "eth0"})
	mustStatus(t, r, http.StatusCreated)
}

// TestFleetFields checks fields on conductors (from 1.49, with detail's
// fields) and drivers (from 1.77), as Ironic's conductor.py and
// driver.py take it.
func TestFleetFields(t *testing.T) {
	e := newEnv(t)
	runUntilCleanup(t, "conductor registration", func(ctx context.Context) error {
		return e.reg.Register(ctx, transport.ConductorInfo{Host: "cond-f1", Groups: []string{""}, Drivers: []string{"sim"}})
	})
	waitUntil(t, "the conductor registers", func() bool {
		return strings.Contains(string(e.do(http.MethodGet, "/v1/conductors", nil).body), "cond-f1")
	})
	tests := []struct {
		name       string
		path       string
		minor      int
		wantStatus int
		wantKeys   []string // of the (first) document, links aside
	}{
		{"conductors", "/v1/conductors?fields=hostname,drivers", 89, 200, []string{"drivers", "hostname"}},
		{"a conductor", "/v1/conductors/cond-f1?fields=alive", 89, 200, []string{"alive"}},
		{"conductors: unknown field", "/v1/conductors?fields=colour", 89, 400, nil},
		{"conductors: fields and detail", "/v1/conductors?fields=hostname&detail=true", 89, 400, nil},
		{"drivers", "/v1/drivers?fields=name", 77, 200, []string{"name"}},
		{"a driver", "/v1/drivers/sim?fields=name,hosts", 89, 200, []string{"hosts", "name"}},
		{"drivers before 1.77", "/v1/drivers?fields=name", 76, 406, nil},
		{"a driver: unknown field", "/v1/drivers/sim?fields=colour", 89, 400, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(http.MethodGet, tt.path, nil, ver(tt.minor)...)
			mustStatus(t, r, tt.wantStatus)
			if tt.wantKeys == nil {
				return
			}
			doc := r.json(t)
			for _, list := range []string{"conductors", "drivers"} {
				if items, ok := doc[list].([]any); ok && strings.HasPrefix(tt.path, "/v1/"+list+"?") {
					doc = items[0].(map[string]any)
				}
			}
			var keys []string
			for k := range doc {
				if k != "links" {
					keys = append(keys, k)
				}
			}
			slices.Sort(keys)
			if !slices.Equal(keys, tt.wantKeys) {
				t.Errorf("keys %v, want %v (%v)", keys, tt.wantKeys, doc)
			}
		})
	}
}

// TestDisablePowerOff checks 1.95's disable_power_off: shown as false,
// false accepted (current Metal3 sends it on every create), true refused,
// since ironfleet's flows power nodes off.
func TestDisablePowerOff(t *testing.T) {
	e := newEnv(t)
	body := map[string]any{"driver": "sim", "name": "dpo-1", "disable_power_off": false}
	r := e.do(http.MethodPost, "/v1/nodes", body, ver(95)...)
	mustStatus(t, r, http.StatusCreated)
	if got, ok := r.json(t)["disable_power_off"]; !ok || got != false {
		t.Errorf("disable_power_off %v (present %v), want false", got, ok)
	}
	tests := []struct {
		name       string
		method     string
		path       string
		body       any
		wantStatus int
	}{
		{"create with true", http.MethodPost, "/v1/nodes", map[string]any{"driver": "sim", "disable_power_off": true}, 400},
		{"patch to true", http.MethodPatch, "/v1/nodes/dpo-1", `[{"op":"replace","path":"/disable_power_off","value":true}]`, 400},
		{"patch to false", http.MethodPatch, "/v1/nodes/dpo-1", `[{"op":"replace","path":"/disable_power_off","value":false}]`, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(tt.method, tt.path, tt.body, ver(95)...)
			mustStatus(t, r, tt.wantStatus)
			if tt.wantStatus == 400 && !strings.Contains(faultString(t, r), "disable_power_off") {
				t.Errorf("faultstring %q does not name disable_power_off", faultString(t, r))
			}
		})
	}
}

// TestJSONSuffix checks a path's ".json" is dropped below 1.91, as
// Ironic's JsonExtensionMiddleware does, and kept from 1.91.
func TestJSONSuffix(t *testing.T) {
	e := newEnv(t)
	id := e.createNode("suffix-1", nil)
	tests := []struct {
		minor      int
		wantStatus int
	}{{90, 200}, {91, 404}}
	for _, tt := range tests {
		t.Run("1."+strconv.Itoa(tt.minor), func(t *testing.T) {
			mustStatus(t, e.do(http.MethodGet, "/v1/nodes/"+id+".json", nil, ver(tt.minor)...), tt.wantStatus)
		})
	}
}
