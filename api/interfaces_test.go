package api_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/ironfleet/ironfleet/transport/wire"
)

// createFake creates a fake-hardware node, which needs no driver_info.
func (e *env) createFake(name string, extra map[string]any) string {
	e.t.Helper()
	body := map[string]any{"driver": "fake-hardware", "name": name}
	for k, v := range extra {
		body[k] = v
	}
	r := e.do(http.MethodPost, "/v1/nodes", body)
	mustStatus(e.t, r, http.StatusCreated)
	return r.json(e.t)["uuid"].(string)
}

// TestNodeInterfacesCreateAndPatch: a node chooses among its hardware
// type's enabled interfaces at create and by PATCH (Metal3 registers ipmi
// nodes with boot_interface ipxe and inspect_interface no-inspect); an
// interface the type does not offer is 400 naming the choices; a driver
// change resets the interfaces the new type does not offer to its
// defaults.
func TestNodeInterfacesCreateAndPatch(t *testing.T) {
	e := newEnv(t)
	r := e.do(http.MethodPost, "/v1/nodes", map[string]any{
		"driver": "ipmi", "name": "metal3-host", "driver_info": map[string]any{"ipmi_address": "10.0.0.9"},
		"boot_interface": "ipxe", "inspect_interface": "no-inspect",
	})
	mustStatus(t, r, http.StatusCreated)
	id := r.json(t)["uuid"].(string)

	show := func(want map[string]string) {
		t.Helper()
		doc := e.do(http.MethodGet, "/v1/nodes/"+id, nil).json(t)
		for k, v := range want {
			if doc[k] != v {
				t.Errorf("%s = %v, want %s", k, doc[k], v)
			}
		}
	}
	show(map[string]string{"driver": "ipmi", "boot_interface": "ipxe", "inspect_interface": "no-inspect", "deploy_interface": "direct", "power_interface": "ipmitool"})

	tests := []struct {
		name   string
		patch  string
		status int
		fault  string
		want   map[string]string
	}{
		{"deploy interface", `[{"op":"replace","path":"/deploy_interface","value":"direct"}]`, 200, "", map[string]string{"deploy_interface": "direct"}},
		{"boot back to pxe", `[{"op":"replace","path":"/boot_interface","value":"pxe"}]`, 200, "", map[string]string{"boot_interface": "pxe"}},
		{"boot to ipxe", `[{"op":"replace","path":"/boot_interface","value":"ipxe"}]`, 200, "", map[string]string{"boot_interface": "ipxe"}},
		{"unknown deploy", `[{"op":"replace","path":"/deploy_interface","value":"ramdisk"}]`, 400,
			"Could not find the following interface in the 'ironic.hardware.interfaces.deploy' entrypoint: ramdisk. Valid interfaces for hardware type ipmi are direct.",
			map[string]string{"deploy_interface": "direct"}},
		{"unknown boot", `[{"op":"replace","path":"/boot_interface","value":"redfish-virtual-media"}]`, 400,
			"Could not find the following interface in the 'ironic.hardware.interfaces.boot' entrypoint: redfish-virtual-media. Valid interfaces for hardware type ipmi are pxe, ipxe.",
			map[string]string{"boot_interface": "ipxe"}},
		{"remove resets to the default", `[{"op":"remove","path":"/inspect_interface"}]`, 200, "", map[string]string{"inspect_interface": "agent"}},
		{"inspect back to no-inspect", `[{"op":"replace","path":"/inspect_interface","value":"no-inspect"}]`, 200, "", map[string]string{"inspect_interface": "no-inspect"}},
		// ipxe and ipmitool are not fake-hardware's: its defaults replace
		// them; no-inspect it offers too, so the choice stays.
		{"driver change", `[{"op":"replace","path":"/driver","value":"fake-hardware"}]`, 200, "",
			map[string]string{"driver": "fake-hardware", "boot_interface": "fake", "power_interface": "fake", "deploy_interface": "fake", "inspect_interface": "no-inspect"}},
		{"driver and interface together", `[{"op":"replace","path":"/driver","value":"ipmi"},{"op":"replace","path":"/boot_interface","value":"ipxe"}]`, 200, "",
			map[string]string{"driver": "ipmi", "boot_interface": "ipxe", "power_interface": "ipmitool", "inspect_interface": "no-inspect"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(http.MethodPatch, "/v1/nodes/"+id, tc.patch)
			mustStatus(t, r, tc.status)
			if tc.fault != "" {
				// The same words every time, with nothing around them.
				if got, _ := r.fault(t)["faultstring"].(string); got != tc.fault {
					t.Fatalf("faultstring %q, want %q", got, tc.fault)
				}
			}
			show(tc.want)
		})
	}
}

// TestValidateByInterface: validate answers for every interface but
// vendor, as Ironic's validate_driver_interfaces: a fake-hardware node with
// nothing set is valid throughout (as the recorded Ironic answer,
// node-validate-1.82.json); an ipmi node's no-* interfaces are false with
// Ironic's UnsupportedDriverExtension words.
func TestValidateByInterface(t *testing.T) {
	e := newEnv(t)
	fake := e.createFake("fake-v", nil)
	metal := e.createNode("", map[string]any{"driver": "ipmi", "driver_info": map[string]any{"ipmi_address": "10.0.0.7"},
		"inspect_interface": "no-inspect", "instance_info": map[string]any{"image_source": "http://images/x.img"}})
	noPort := e.createNode("", map[string]any{"driver": "ipmi", "driver_info": map[string]any{}})
	traits := e.createFake("fake-traits", map[string]any{"instance_info": map[string]any{"traits": []string{"CUSTOM_GPU"}}})
	badMode := e.createNode("", map[string]any{"driver": "ipmi", "driver_info": map[string]any{"ipmi_address": "10.0.0.8"},
		"properties":    map[string]any{"capabilities": "boot_mode:legacy"},
		"instance_info": map[string]any{"image_source": "http://images/x.img"}})

	keys := []string{"bios", "boot", "console", "deploy", "firmware", "inspect", "management", "network", "power", "raid", "rescue", "storage"}
	tests := []struct {
		name   string
		node   string
		result map[string]bool
		reason map[string]string
	}{
		{"fake-hardware", fake, map[string]bool{"bios": true, "boot": true, "console": true, "deploy": true, "firmware": true, "inspect": true,
			"management": true, "network": true, "power": true, "raid": true, "rescue": true, "storage": true}, nil},
		{"ipmi", metal, map[string]bool{"deploy": true, "power": true, "management": true, "network": true, "storage": true,
			"inspect": false, "console": false, "raid": false, "bios": false, "rescue": false, "boot": false},
			map[string]string{
				"inspect": "Driver ipmi does not support inspect (disabled or not implemented).",
				"console": "Driver ipmi does not support console (disabled or not implemented).",
				"raid":    "Driver ipmi does not support raid (disabled or not implemented).",
				"boot":    "no PXE-enabled port",
			}},
		{"ipmi without driver_info or image", noPort, map[string]bool{"power": false, "management": false, "inspect": false, "deploy": false},
			map[string]string{"power": "ipmi_address", "deploy": "missing instance_info.image_source"}},
		{"instance traits", traits, map[string]bool{"deploy": false, "power": true},
			map[string]string{"deploy": "is missing traits CUSTOM_GPU"}},
		// deploy_utils.validate_capabilities, as AgentDeploy.validate runs it.
		{"bad boot mode", badMode, map[string]bool{"deploy": false, "power": true},
			map[string]string{"deploy": "The parameter 'boot_mode' from properties/capabilities has an invalid value: 'legacy'. Acceptable values are: bios, uefi."}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(http.MethodGet, "/v1/nodes/"+tc.node+"/validate", nil)
			mustStatus(t, r, http.StatusOK)
			doc := r.json(t)
			var got []string
			for k := range doc {
				got = append(got, k)
			}
			slices.Sort(got)
			if !slices.Equal(got, keys) {
				t.Fatalf("interfaces %v, want %v", got, keys)
			}
			for k, want := range tc.result {
				v, _ := doc[k].(map[string]any)
				if v["result"] != want {
					t.Errorf("%s: %v, want result %v", k, v, want)
				}
				if _, hasReason := v["reason"]; want && hasReason {
					t.Errorf("%s: a reason for success: %v", k, v)
				}
			}
			for k, want := range tc.reason {
				v, _ := doc[k].(map[string]any)
				if reason, _ := v["reason"].(string); !strings.Contains(reason, want) {
					t.Errorf("%s: reason %q, want %q", k, reason, want)
				}
			}
		})
	}
}

// TestInterfacesRefuseAtTheAPI: what a node's interfaces cannot do is
// refused before anything is published: inspection with no-inspect (400,
// Ironic's inspect_hardware validates the inspect interface first), and a
// boot device its management interface does not support (fake management
// supports only pxe, as Ironic's FakeManagement).
func TestInterfacesRefuseAtTheAPI(t *testing.T) {
	e := newEnv(t)
	noInspect := e.createFake("fake-noinspect", map[string]any{"inspect_interface": "no-inspect"})
	e.setState(noInspect, wire.StateManageable)
	fake := e.createFake("fake-bd", nil)
	tests := []struct {
		name   string
		method string
		path   string
		body   any
		status int
		fault  string
	}{
		{"inspect with no-inspect", http.MethodPut, "/v1/nodes/" + noInspect + "/states/provision", map[string]any{"target": "inspect"}, 400,
			"Driver fake-hardware does not support inspect (disabled or not implemented)."},
		{"fake boot from disk", http.MethodPut, "/v1/nodes/" + fake + "/management/boot_device", map[string]any{"boot_device": "disk"}, 400,
			"Invalid boot device disk specified."},
		{"fake boot from floppy", http.MethodPut, "/v1/nodes/" + fake + "/management/boot_device", map[string]any{"boot_device": "floppy"}, 400,
			"Invalid boot device floppy specified."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(tc.method, tc.path, tc.body)
			mustStatus(t, r, tc.status)
			if got, _ := r.fault(t)["faultstring"].(string); got != tc.fault {
				t.Fatalf("faultstring %q, want %q", got, tc.fault)
			}
		})
	}
	if n := len(e.tasks()); n != 0 {
		t.Errorf("%d tasks published for refused requests", n)
	}
	supported := func(id string) []any {
		r := e.do(http.MethodGet, "/v1/nodes/"+id+"/management/boot_device/supported", nil)
		mustStatus(t, r, http.StatusOK)
		got, _ := r.json(t)["supported_boot_devices"].([]any)
		return got
	}
	if got := supported(fake); !slices.Equal(got, []any{"pxe"}) {
		t.Errorf("fake-hardware supports %v, want [pxe]", got)
	}
	if got := supported(e.createNode("sim-bd", nil)); !slices.Equal(got, []any{"pxe", "disk"}) {
		t.Errorf("sim supports %v, want [pxe disk]", got)
	}
	// pxe is fine: the task is published.
	mustStatus(t, e.do(http.MethodPut, "/v1/nodes/"+fake+"/management/boot_device", map[string]any{"boot_device": "pxe"}), http.StatusNoContent)
}

// TestResetInterfaces: PATCH's ?reset_interfaces=True (1.45) with a driver
// change puts every interface the patch does not write back to the new
// type's default, as Ironic's update_node; without a driver change it is
// 400, before 1.45 406.
func TestResetInterfaces(t *testing.T) {
	e := newEnv(t)
	id := e.createNode("", map[string]any{"driver": "ipmi", "driver_info": map[string]any{"ipmi_address": "10.0.0.5"},
		"boot_interface": "ipxe", "inspect_interface": "no-inspect", "rescue_interface": "no-rescue"})
	tests := []struct {
		name    string
		version string
		query   string
		patch   string
		status  int
		fault   string
		want    map[string]string
	}{
		{"before 1.45", "1.44", "?reset_interfaces=True", `[{"op":"replace","path":"/driver","value":"fake-hardware"}]`, 406, "Request not acceptable.", map[string]string{"driver": "ipmi"}},
		{"without a driver change", "1.45", "?reset_interfaces=True", `[{"op":"add","path":"/extra/x","value":"x"}]`, 400,
			"The reset_interfaces parameter can only be used when changing the node's driver.", map[string]string{"driver": "ipmi"}},
		{"not a boolean", "1.45", "?reset_interfaces=perhaps", `[{"op":"replace","path":"/driver","value":"fake-hardware"}]`, 400, "reset_interfaces", map[string]string{"driver": "ipmi"}},
		{"reset", "1.45", "?reset_interfaces=True",
			`[{"op":"replace","path":"/driver","value":"fake-hardware"},{"op":"add","path":"/rescue_interface","value":"no-rescue"}]`, 200, "",
			map[string]string{"driver": "fake-hardware", "boot_interface": "fake", "inspect_interface": "fake", "rescue_interface": "no-rescue"}},
		{"false keeps what the new type offers", "1.45", "?reset_interfaces=false", `[{"op":"replace","path":"/driver","value":"ipmi"}]`, 200, "",
			map[string]string{"driver": "ipmi", "boot_interface": "pxe", "rescue_interface": "no-rescue", "inspect_interface": "agent"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(http.MethodPatch, "/v1/nodes/"+id+tc.query, tc.patch, versionHeader, tc.version)
			mustStatus(t, r, tc.status)
			if tc.fault != "" {
				if got, _ := r.fault(t)["faultstring"].(string); !strings.Contains(got, tc.fault) {
					t.Fatalf("faultstring %q, want %q", got, tc.fault)
				}
			}
			doc := e.do(http.MethodGet, "/v1/nodes/"+id, nil).json(t)
			for k, v := range tc.want {
				if doc[k] != v {
					t.Errorf("%s = %v, want %s", k, doc[k], v)
				}
			}
		})
	}
}

// TestInterfacesFixedWhileBusy: an interface may change only in enroll,
// inspecting, inspect wait, manageable or available, or in maintenance
// (409 InvalidState otherwise, as Ironic's update_node): the conductor
// decides a flow's steps by the node's interfaces.
func TestInterfacesFixedWhileBusy(t *testing.T) {
	e := newEnv(t)
	id := e.createFake("fake-busy", nil)
	e.setState(id, wire.StateActive)
	tests := []struct {
		name   string
		patch  string
		status int
		fault  string
		want   string // deploy_interface after
	}{
		{"active", `[{"op":"replace","path":"/inspect_interface","value":"no-inspect"}]`, 409,
			"Node " + id + " can not have inspect_interface updated unless it is in one of allowed (enroll, inspecting, inspect wait, manageable, available) states or in maintenance mode. Current state is 'active'.", "fake"},
		{"the same value is no change", `[{"op":"replace","path":"/deploy_interface","value":"fake"}]`, 200, "", "fake"},
		{"other fields still change", `[{"op":"add","path":"/extra/x","value":"y"}]`, 200, "", "fake"},
		{"in maintenance", `[{"op":"replace","path":"/maintenance","value":true},{"op":"replace","path":"/inspect_interface","value":"no-inspect"}]`, 200, "", "fake"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(http.MethodPatch, "/v1/nodes/"+id, tc.patch)
			mustStatus(t, r, tc.status)
			if tc.fault != "" {
				if got, _ := r.fault(t)["faultstring"].(string); got != tc.fault {
					t.Fatalf("faultstring %q, want %q", got, tc.fault)
				}
			}
		})
	}
	if doc := e.do(http.MethodGet, "/v1/nodes/"+id, nil).json(t); doc["inspect_interface"] != "no-inspect" {
		t.Errorf("inspect_interface %v, want no-inspect (changed in maintenance)", doc["inspect_interface"])
	}
}
