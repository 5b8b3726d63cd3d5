package api_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/ironfleet/ironfleet/internal/configdrive"
	"github.com/ironfleet/ironfleet/lock"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// TestProvisionConfigDrive: a deploy's or rebuild's configdrive is read
// as Ironic's API reads it (ironic/api/controllers/v1/utils.py
// check_allow_configdrive: the targets, _CONFIG_DRIVE_SCHEMA, the dict
// from 1.56 and vendor_data from 1.59, all 400) and further checked (a
// string must be an http(s) URL or base64 of an ISO, gzipped or not), then
// travels with the task as wire.StepsParams.ConfigDrive. A refused request
// publishes nothing.
func TestProvisionConfigDrive(t *testing.T) {
	e := newEnv(t)
	info := map[string]any{"instance_info": map[string]any{"image_source": "http://x/i.img", "image_checksum": strings.Repeat("a", 64)}}
	avail := e.createNode("cd-avail", info)
	e.setState(avail, wire.StateAvailable)
	active := e.createNode("cd-active", info)
	e.setState(active, wire.StateActive)
	manageable := e.createNode("cd-manageable", nil)
	e.setState(manageable, wire.StateManageable)

	iso, err := configdrive.Build(configdrive.Contents{UserData: "#cloud-config\n"}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	encoded, err := configdrive.Encode(iso)
	if err != nil {
		t.Fatal(err)
	}
	notISO, _ := configdrive.Encode([]byte(strings.Repeat("not an iso ", 4000)))
	dict := map[string]any{"meta_data": map[string]any{"uuid": "x", "public_keys": map[string]any{"k": "ssh-ed25519 AAAA"}},
		"user_data": "#cloud-config\n", "network_data": map[string]any{"links": []any{}}}
	withVendor := map[string]any{"meta_data": map[string]any{}, "vendor_data": map[string]any{"v": 1}}

	tests := []struct {
		name       string
		node       string
		version    string
		target     string
		configdr   any
		wantStatus int
		wantFault  string
		want       *wire.ConfigDrive
		restore    wire.ProvisionState
	}{
		{"gzipped base64 ISO (nova)", avail, "1.1", "active", encoded, 202, "", &wire.ConfigDrive{Image: encoded}, wire.StateAvailable},
		{"URL", avail, "1.1", "active", "https://cd.example/node.iso.gz", 202, "", &wire.ConfigDrive{Image: "https://cd.example/node.iso.gz"}, wire.StateAvailable},
		{"dict at 1.56 (Metal3)", avail, "1.56", "active", dict, 202, "", &wire.ConfigDrive{
			MetaData: dict["meta_data"].(map[string]any), NetworkData: dict["network_data"].(map[string]any), UserData: "#cloud-config\n"}, wire.StateAvailable},
		{"dict with vendor_data at 1.59", avail, "1.59", "active", withVendor, 202, "", &wire.ConfigDrive{
			VendorData: map[string]any{"v": float64(1)}}, wire.StateAvailable},
		{"rebuild at 1.35", active, "1.35", "rebuild", encoded, 202, "", &wire.ConfigDrive{Image: encoded}, wire.StateActive},
		{"null is none", avail, "latest", "active", nil, 202, "", nil, wire.StateAvailable},

		{"rebuild below 1.35", active, "1.34", "rebuild", encoded, 400,
			"Adding a config drive is only supported when setting provision state to active", nil, ""},
		{"with provide", manageable, "latest", "provide", encoded, 400,
			"Adding a config drive is only supported when setting provision state to active, rebuild", nil, ""},
		{"dict below 1.56", avail, "1.55", "active", dict, 400,
			"Providing a JSON object for configdrive is only supported starting with API version 1.56", nil, ""},
		{"vendor_data below 1.59", avail, "1.58", "active", withVendor, 400,
			"Providing vendor_data in configdrive is only supported starting with API version 1.59", nil, ""},
		{"unknown key in the dict", avail, "latest", "active", map[string]any{"meta_data": map[string]any{}, "userdata": "x"}, 400,
			"Invalid configdrive format: Additional properties are not allowed ('userdata' was unexpected)", nil, ""},
		{"meta_data not an object", avail, "latest", "active", map[string]any{"meta_data": "x"}, 400,
			"Invalid configdrive format: configdrive.meta_data", nil, ""},
		{"a number", avail, "latest", "active", 42, 400, "Invalid configdrive format", nil, ""},
		{"not base64", avail, "latest", "active", "{not json}", 400,
			"Invalid configdrive format: it is neither a JSON, nor a URL, nor a base64 string", nil, ""},
		{"base64 of no ISO", avail, "latest", "active", notISO, 400, "Invalid configdrive format: not an ISO 9660 image", nil, ""},
		{"a URL the agent cannot fetch", avail, "latest", "active", "ftp://cd.example/node.iso", 400,
			`Invalid configdrive format: "ftp://cd.example/node.iso" is not an http:// or https:// URL`, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(e.tasks())
			body := map[string]any{"target": tt.target, "configdrive": tt.configdr}
			r := e.do(http.MethodPut, "/v1/nodes/"+tt.node+"/states/provision", body, "X-OpenStack-Ironic-API-Version", tt.version)
			mustStatus(t, r, tt.wantStatus)
			tasks := e.tasks()
			if tt.wantStatus != http.StatusAccepted {
				if f := r.fault(t)["faultstring"].(string); !strings.Contains(f, tt.wantFault) {
					t.Errorf("faultstring %q, want %q in it", f, tt.wantFault)
				}
				if len(tasks) != before {
					t.Errorf("a refused request published %d tasks", len(tasks)-before)
				}
				return
			}
			if len(tasks) != before+1 {
				t.Fatalf("%d tasks published, want 1", len(tasks)-before)
			}
			task := tasks[len(tasks)-1]
			var p wire.StepsParams
			if len(task.Params) > 0 {
				if err := json.Unmarshal(task.Params, &p); err != nil {
					t.Fatal(err)
				}
			}
			if !reflect.DeepEqual(p.ConfigDrive, tt.want) {
				t.Errorf("task carries config drive %+v, want %+v", p.ConfigDrive, tt.want)
			}
			if strings.Contains(string(task.Params), `"configdrive":"`) {
				t.Errorf("the config drive also travels untyped: %s", task.Params)
			}
			// Play the conductor: claim the task's ticket, put the node back.
			lk, err := e.locker.Acquire(t.Context(), tt.node, &lock.Options{Ticket: task.Ticket})
			if err != nil {
				t.Fatal(err)
			}
			_ = lk.Release(t.Context())
			e.setState(tt.node, tt.restore)
		})
	}
}
