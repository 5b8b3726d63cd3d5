package api_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/ironfleet/ironfleet/api"
)

const versionHeader = "X-OpenStack-Ironic-API-Version"

// TestDriverShapeByVersion: a driver carries the fields of the request's
// microversion, as ironic/api/controllers/v1/driver.py gates them: the
// properties links from 1.14, type from 1.30, and, in a detailed list or a
// single driver from 1.30, default_<kind>_interface and
// enabled_<kind>_interfaces — storage from 1.33, rescue 1.38, bios 1.40,
// firmware 1.86.
func TestDriverShapeByVersion(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name    string
		version string
		path    string
		has     []string
		hasNot  []string
	}{
		{"list 1.1", "1.1", "/v1/drivers", []string{"name", "hosts", "links"}, []string{"properties", "type", "default_boot_interface"}},
		{"list 1.14", "1.14", "/v1/drivers", []string{"properties"}, []string{"type"}},
		{"list 1.30", "1.30", "/v1/drivers", []string{"type"}, []string{"default_boot_interface", "enabled_boot_interfaces"}},
		{"detail 1.30", "1.30", "/v1/drivers?detail=True", []string{"default_boot_interface", "enabled_deploy_interfaces", "default_vendor_interface", "enabled_network_interfaces"},
			[]string{"default_storage_interface", "default_rescue_interface", "default_bios_interface", "default_firmware_interface"}},
		{"detail 1.33", "1.33", "/v1/drivers?detail=true", []string{"default_storage_interface", "enabled_storage_interfaces"}, []string{"default_rescue_interface"}},
		{"detail 1.38", "1.38", "/v1/drivers?detail=1", []string{"default_rescue_interface", "enabled_rescue_interfaces"}, []string{"default_bios_interface"}},
		{"detail 1.40", "1.40", "/v1/drivers?detail=True", []string{"default_bios_interface", "enabled_bios_interfaces"}, []string{"default_firmware_interface"}},
		{"detail false", "1.40", "/v1/drivers?detail=False", []string{"type"}, []string{"default_boot_interface"}},
		{"show 1.29", "1.29", "/v1/drivers/ipmi", []string{"name", "properties"}, []string{"type", "default_boot_interface"}},
		{"show 1.30", "1.30", "/v1/drivers/ipmi", []string{"type", "default_boot_interface", "enabled_inspect_interfaces"}, []string{"default_storage_interface"}},
		{"show 1.82", "1.82", "/v1/drivers/ipmi", []string{"default_bios_interface", "default_rescue_interface", "default_storage_interface"}, []string{"default_firmware_interface"}},
	}
	if api.MaxVersion.Minor >= 86 {
		tests = append(tests, struct {
			name    string
			version string
			path    string
			has     []string
			hasNot  []string
		}{"show 1.86", "1.86", "/v1/drivers/ipmi", []string{"default_firmware_interface", "enabled_firmware_interfaces"}, nil})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(http.MethodGet, tc.path, nil, versionHeader, tc.version)
			mustStatus(t, r, http.StatusOK)
			var docs []map[string]any
			if strings.HasPrefix(tc.path, "/v1/drivers?") || tc.path == "/v1/drivers" {
				var list struct {
					Drivers []map[string]any `json:"drivers"`
				}
				if err := json.Unmarshal(r.body, &list); err != nil {
					t.Fatal(err)
				}
				docs = list.Drivers
				if len(docs) != 3 {
					t.Fatalf("%d drivers, want ipmi, sim and fake-hardware: %s", len(docs), r.body)
				}
			} else {
				docs = []map[string]any{r.json(t)}
			}
			for _, d := range docs {
				for _, k := range tc.has {
					if _, ok := d[k]; !ok {
						t.Errorf("driver %v lacks %s", d["name"], k)
					}
				}
				for _, k := range tc.hasNot {
					if _, ok := d[k]; ok {
						t.Errorf("driver %v has %s at %s", d["name"], k, tc.version)
					}
				}
			}
		})
	}
}

// TestDriverInterfaces: the interfaces a driver reports are its hardware
// type's (internal/hardware.Types), default first among the enabled.
func TestDriverInterfaces(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		driver, field string
		want          any
	}{
		{"ipmi", "default_boot_interface", "pxe"},
		{"ipmi", "enabled_boot_interfaces", []any{"pxe", "ipxe"}},
		{"ipmi", "enabled_inspect_interfaces", []any{"agent", "no-inspect"}},
		{"ipmi", "default_power_interface", "ipmitool"},
		{"ipmi", "default_network_interface", "noop"},
		{"sim", "default_management_interface", "sim"},
		{"fake-hardware", "default_deploy_interface", "fake"},
		{"fake-hardware", "enabled_inspect_interfaces", []any{"fake", "agent", "no-inspect"}},
		{"fake-hardware", "enabled_storage_interfaces", []any{"noop", "fake"}},
		{"fake-hardware", "type", "dynamic"},
	}
	for _, tc := range tests {
		t.Run(tc.driver+"/"+tc.field, func(t *testing.T) {
			r := e.do(http.MethodGet, "/v1/drivers/"+tc.driver, nil)
			mustStatus(t, r, http.StatusOK)
			got, _ := json.Marshal(r.json(t)[tc.field])
			want, _ := json.Marshal(tc.want)
			if string(got) != string(want) {
				t.Errorf("%s = %s, want %s", tc.field, got, want)
			}
		})
	}
}

// TestDriverQueries: detail and type need 1.30, fields 1.77 (406 below);
// type is classic or dynamic (no classic drivers exist); fields and detail
// together are refused, as Ironic's DriversController.get_all.
func TestDriverQueries(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name    string
		version string
		path    string
		status  int
		fault   string
		drivers int // -1: not a list
		keys    []string
	}{
		{"detail before 1.30", "1.29", "/v1/drivers?detail=True", 406, "Request not acceptable.", -1, nil},
		{"type before 1.30", "1.29", "/v1/drivers?type=dynamic", 406, "Request not acceptable.", -1, nil},
		{"bad type", "1.30", "/v1/drivers?type=static", 400, `"type" filter must be one of "classic" or "dynamic", if specified.`, -1, nil},
		{"bad detail", "1.30", "/v1/drivers?detail=maybe", 400, "Invalid value for detail", -1, nil},
		{"classic", "1.30", "/v1/drivers?type=classic", 200, "", 0, nil},
		{"dynamic", "1.30", "/v1/drivers?type=dynamic", 200, "", 3, nil},
		{"fields before 1.77", "1.76", "/v1/drivers?fields=name", 406, "Request not acceptable.", -1, nil},
		{"fields with detail", "1.77", "/v1/drivers?fields=name&detail=True", 400, "Can not specify ?detail=True and fields in the same request.", -1, nil},
		{"fields", "1.77", "/v1/drivers?fields=name,hosts", 200, "", 3, []string{"hosts", "links", "name"}},
		{"unknown field", "1.77", "/v1/drivers?fields=colour", 400, "colour", -1, nil},
		{"show fields", "1.77", "/v1/drivers/sim?fields=default_boot_interface", 200, "", -1, []string{"default_boot_interface", "links"}},
		{"unknown driver", "1.30", "/v1/drivers/nosuch", 404, "Could not find the following driver(s) or hardware type(s): nosuch.", -1, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(http.MethodGet, tc.path, nil, versionHeader, tc.version)
			mustStatus(t, r, tc.status)
			if tc.fault != "" {
				if got, _ := r.fault(t)["faultstring"].(string); !strings.Contains(got, tc.fault) {
					t.Fatalf("faultstring %q, want %q", got, tc.fault)
				}
				return
			}
			docs := []map[string]any{r.json(t)}
			if tc.drivers >= 0 {
				var list struct {
					Drivers []map[string]any `json:"drivers"`
				}
				if err := json.Unmarshal(r.body, &list); err != nil {
					t.Fatal(err)
				}
				if len(list.Drivers) != tc.drivers {
					t.Fatalf("%d drivers, want %d: %s", len(list.Drivers), tc.drivers, r.body)
				}
				docs = list.Drivers
			}
			for _, d := range docs {
				if tc.keys == nil {
					continue
				}
				var keys []string
				for k := range d {
					keys = append(keys, k)
				}
				slices.Sort(keys)
				if !slices.Equal(keys, tc.keys) {
					t.Errorf("keys %v, want %v", keys, tc.keys)
				}
			}
		})
	}
}

// TestDriverProperties: GET /v1/drivers/{d}/properties lists the
// driver_info keys the hardware type reads, with descriptions (Ironic's
// get_properties of its default interfaces): fake-hardware none. The RAID
// logical disk properties are refused as Ironic refuses them for a driver
// without RAID (404), 406 before 1.12.
func TestDriverProperties(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name    string
		version string
		path    string
		status  int
		keys    []string
		fault   string
	}{
		{"ipmi", "1.1", "/v1/drivers/ipmi/properties", 200,
			[]string{"ipmi_address", "ipmi_cipher_suite", "ipmi_disable_boot_timeout", "ipmi_password", "ipmi_port", "ipmi_priv_level", "ipmi_retries", "ipmi_terminal_port", "ipmi_timeout", "ipmi_username"}, ""},
		{"sim", "1.82", "/v1/drivers/sim/properties", 200, []string{"sim_machine"}, ""},
		{"fake-hardware", "1.82", "/v1/drivers/fake-hardware/properties", 200, []string{}, ""},
		{"unknown", "1.82", "/v1/drivers/nosuch/properties", 404, nil, "Could not find the following driver(s) or hardware type(s): nosuch."},
		{"raid", "1.82", "/v1/drivers/fake-hardware/raid/logical_disk_properties", 404, nil, "Driver fake-hardware does not support raid (disabled or not implemented)."},
		{"raid before 1.12", "1.11", "/v1/drivers/ipmi/raid/logical_disk_properties", 406, nil, "Request not acceptable."},
		{"raid unknown", "1.82", "/v1/drivers/nosuch/raid/logical_disk_properties", 404, nil, "Could not find the following driver(s)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(http.MethodGet, tc.path, nil, versionHeader, tc.version)
			mustStatus(t, r, tc.status)
			if tc.fault != "" {
				if got, _ := r.fault(t)["faultstring"].(string); !strings.Contains(got, tc.fault) {
					t.Fatalf("faultstring %q, want %q", got, tc.fault)
				}
				return
			}
			props := map[string]string{}
			if err := json.Unmarshal(r.body, &props); err != nil {
				t.Fatalf("body %s: %v", r.body, err)
			}
			keys := []string{}
			for k, d := range props {
				keys = append(keys, k)
				if !strings.HasSuffix(d, ".") {
					t.Errorf("%s: description %q is not a sentence", k, d)
				}
			}
			slices.Sort(keys)
			if !slices.Equal(keys, tc.keys) {
				t.Errorf("keys %v, want %v", keys, tc.keys)
			}
		})
	}
	if d := map[string]string{}; json.Unmarshal(e.do(http.MethodGet, "/v1/drivers/ipmi/properties", nil).body, &d) != nil || !strings.HasSuffix(d["ipmi_address"], "Required.") {
		t.Errorf("ipmi_address is not described as required: %q", d["ipmi_address"])
	}
}
