package api_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/api"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// serveUpTo raises the served microversion range to minor for one test,
// for endpoints newer than what this branch serves yet (firmware, 1.86;
// the range itself is raised by another part of issue 15). A no-op once
// api.MaxVersion reaches minor.
func serveUpTo(t *testing.T, minor int) {
	t.Helper()
	if api.MaxVersion.Minor >= minor {
		return
	}
	was := api.MaxVersion
	api.MaxVersion = api.Version{Minor: minor}
	t.Cleanup(func() { api.MaxVersion = was })
}

func strPtr(s string) *string { return &s }

// cacheReports writes what a conductor caches at verify on node id.
func cacheReports(e *env, id string, bios []wire.BiosSetting, fw []wire.FirmwareComponent) {
	e.t.Helper()
	if _, err := e.inv.UpdateNode(e.t.Context(), id, 0, func(n *wire.Node) error {
		n.Bios, n.Firmware = bios, fw
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	if err := e.inv.Sync(e.t.Context()); err != nil {
		e.t.Fatal(err)
	}
}

type readCase struct {
	name    string
	path    string
	version string
	status  int
	fault   string
	check   func(t *testing.T, body map[string]any)
}

func runReads(t *testing.T, e *env, cases []readCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(http.MethodGet, tc.path, nil, "X-OpenStack-Ironic-API-Version", tc.version)
			mustStatus(t, r, tc.status)
			if tc.fault != "" {
				if got := r.fault(t)["faultstring"]; got != tc.fault {
					t.Fatalf("faultstring %q, want %q", got, tc.fault)
				}
			}
			if tc.check != nil {
				tc.check(t, r.json(t))
			}
		})
	}
}

// listOf returns the list under key, each an object.
func listOf(t *testing.T, body map[string]any, key string) []map[string]any {
	t.Helper()
	list, ok := body[key].([]any)
	if !ok {
		t.Fatalf("%s is %T, want a list: %v", key, body[key], body)
	}
	out := make([]map[string]any, 0, len(list))
	for _, it := range list {
		out = append(out, it.(map[string]any))
	}
	return out
}

// sortedKeys lists an object's keys, sorted.
func sortedKeys(m map[string]any) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return strings.Join(ks, ",")
}

// TestBiosAPI: GET /v1/nodes/{n}/bios and /bios/{name} as Ironic's
// NodeBiosController (ironic/api/controllers/v1/bios.py): 1.40, empty for
// no-bios, the registry fields with detail and on a setting's GET from
// 1.74, fields and detail only from 1.74 (its query schemas' words), and
// BIOSSettingNotFound.
func TestBiosAPI(t *testing.T) {
	e := newEnv(t)
	none := e.createNode("no-bios", nil)
	id := e.createNode("fake-bios", nil)
	now := time.Now().UTC()
	cacheReports(e, id, []wire.BiosSetting{
		{Name: "BootMode", Value: strPtr("Uefi"), AttributeType: strPtr("Enumeration"), AllowableValues: []string{"Bios", "Uefi"}, CreatedAt: now},
		{Name: "L2Cache", Value: strPtr("on"), CreatedAt: now, UpdatedAt: now},
	}, nil)
	cases := []readCase{
		{name: "before 1.40", path: "/v1/nodes/" + id + "/bios", version: "1.39", status: 404},
		{name: "no-bios is empty", path: "/v1/nodes/" + none + "/bios", version: "1.40", status: 200,
			check: func(t *testing.T, b map[string]any) {
				if got := listOf(t, b, "bios"); len(got) != 0 {
					t.Fatalf("bios %v, want []", got)
				}
			}},
		{name: "list at 1.40", path: "/v1/nodes/fake-bios/bios", version: "1.40", status: 200,
			check: func(t *testing.T, b map[string]any) {
				got := listOf(t, b, "bios")
				if len(got) != 2 || sortedKeys(got[0]) != "created_at,links,name,updated_at,value" || got[0]["name"] != "BootMode" || got[0]["value"] != "Uefi" {
					t.Fatalf("bios %v", got)
				}
				if got[0]["updated_at"] != nil || got[1]["updated_at"] == nil {
					t.Errorf("updated_at %v, %v; want null, then a time", got[0]["updated_at"], got[1]["updated_at"])
				}
				self := got[0]["links"].([]any)[0].(map[string]any)["href"].(string)
				if !strings.HasSuffix(self, "/v1/nodes/fake-bios/bios/BootMode") {
					t.Errorf("self link %q, want the node as named in the request", self)
				}
			}},
		{name: "detail before 1.74", path: "/v1/nodes/" + id + "/bios?detail=True", version: "1.73", status: 400,
			fault: "Schema error: Additional properties are not allowed ('detail' was unexpected)"},
		{name: "detail at 1.74", path: "/v1/nodes/" + id + "/bios?detail=True", version: "1.74", status: 200,
			check: func(t *testing.T, b map[string]any) {
				got := listOf(t, b, "bios")[0]
				if got["attribute_type"] != "Enumeration" || len(got["allowable_values"].([]any)) != 2 {
					t.Fatalf("setting %v, want its registry", got)
				}
				if _, ok := got["read_only"]; !ok || got["read_only"] != nil {
					t.Errorf("read_only %v, want null", got["read_only"])
				}
			}},
		{name: "fields", path: "/v1/nodes/" + id + "/bios?fields=name", version: "1.74", status: 200,
			check: func(t *testing.T, b map[string]any) {
				if got := listOf(t, b, "bios")[0]; sortedKeys(got) != "created_at,links,name,updated_at" {
					t.Fatalf("setting %v, want name and what Ironic always adds", got)
				}
			}},
		{name: "unknown field", path: "/v1/nodes/" + id + "/bios?fields=colour", version: "1.74", status: 400,
			fault: "Schema error: 'colour' is not one of ['allowable_values', 'attribute_type', 'created_at', 'lower_bound', 'links', 'max_length', 'min_length', 'name', 'node_uuid', 'read_only', 'reset_required', 'unique', 'updated_at', 'value']"},
		{name: "fields and detail", path: "/v1/nodes/" + id + "/bios?fields=name&detail=True", version: "1.74", status: 400,
			fault: "Can not specify ?detail=True and fields in the same request."},
		{name: "unknown query", path: "/v1/nodes/" + id + "/bios?sort=name&a=1", version: "1.74", status: 400,
			fault: "Schema error: Additional properties are not allowed ('a', 'sort' were unexpected)"},
		{name: "one setting at 1.40", path: "/v1/nodes/" + id + "/bios/BootMode", version: "1.40", status: 200,
			check: func(t *testing.T, b map[string]any) {
				got, ok := b["BootMode"].(map[string]any)
				if !ok || len(b) != 1 || sortedKeys(got) != "created_at,links,name,updated_at,value" {
					t.Fatalf("body %v, want {BootMode: setting}", b)
				}
			}},
		{name: "one setting at 1.74", path: "/v1/nodes/" + id + "/bios/L2Cache", version: "1.74", status: 200,
			check: func(t *testing.T, b map[string]any) {
				got := b["L2Cache"].(map[string]any)
				if _, ok := got["upper_bound"]; !ok || got["attribute_type"] != nil || got["value"] != "on" {
					t.Fatalf("setting %v, want the registry fields, null", got)
				}
			}},
		{name: "no such setting", path: "/v1/nodes/" + id + "/bios/Turbo", version: "1.40", status: 404,
			fault: "Node " + id + " doesn't have a BIOS setting 'Turbo'"},
	}
	runReads(t, e, cases)

	// The settings are the node's: gone with it.
	mustStatus(t, e.do(http.MethodDelete, "/v1/nodes/"+id, nil), http.StatusNoContent)
	mustStatus(t, e.do(http.MethodGet, "/v1/nodes/"+id+"/bios", nil), http.StatusNotFound)
}

// TestFirmwareAPI: GET /v1/nodes/{n}/firmware as Ironic's
// NodeFirmwareController (ironic/api/controllers/v1/firmware.py): 1.86,
// empty for no-firmware, the fields of versions below 1.114.
func TestFirmwareAPI(t *testing.T) {
	serveUpTo(t, 86)
	e := newEnv(t)
	none := e.createNode("no-fw", nil)
	id := e.createNode("fake-fw", nil)
	now := time.Now().UTC()
	cacheReports(e, id, nil, []wire.FirmwareComponent{
		{Component: "bios", InitialVersion: "1.0.0", CurrentVersion: "1.0.1", CreatedAt: now, UpdatedAt: now},
		{Component: "bmc", InitialVersion: "2.0", CurrentVersion: "2.0", CreatedAt: now},
	})
	cases := []readCase{
		{name: "before 1.86", path: "/v1/nodes/" + id + "/firmware", version: "1.85", status: 404},
		{name: "no-firmware is empty", path: "/v1/nodes/" + none + "/firmware", version: "1.86", status: 200,
			check: func(t *testing.T, b map[string]any) {
				if got := listOf(t, b, "firmware"); len(got) != 0 {
					t.Fatalf("firmware %v, want []", got)
				}
			}},
		{name: "list", path: "/v1/nodes/" + id + "/firmware", version: "1.86", status: 200,
			check: func(t *testing.T, b map[string]any) {
				got := listOf(t, b, "firmware")
				if len(got) != 2 || sortedKeys(got[0]) != "component,created_at,current_version,initial_version,last_version_flashed,updated_at" {
					t.Fatalf("firmware %v", got)
				}
				if got[0]["component"] != "bios" || got[0]["current_version"] != "1.0.1" || got[0]["last_version_flashed"] != nil || got[1]["updated_at"] != nil {
					t.Fatalf("firmware %v", got)
				}
			}},
		{name: "fields", path: "/v1/nodes/" + id + "/firmware?fields=component", version: "1.86", status: 200,
			check: func(t *testing.T, b map[string]any) {
				if got := listOf(t, b, "firmware")[1]; sortedKeys(got) != "component,created_at,updated_at" || got["component"] != "bmc" {
					t.Fatalf("component %v", got)
				}
			}},
		{name: "identity fields are 1.114's", path: "/v1/nodes/" + id + "/firmware?fields=vendor,component,model", version: "1.86", status: 400,
			fault: "Fields model, vendor are not allowed in this API version. They require at least API version 1.114."},
		{name: "unknown query", path: "/v1/nodes/" + id + "/firmware?limit=1", version: "1.86", status: 400,
			fault: "Schema error: Additional properties are not allowed ('limit' was unexpected)"},
	}
	runReads(t, e, cases)
}
