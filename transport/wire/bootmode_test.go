package wire_test

import (
	"strings"
	"testing"

	"github.com/ironfleet/ironfleet/transport/wire"
)

// TestNodeBootMode follows Ironic's boot_mode_utils.get_boot_mode and
// deploy_utils.validate_capabilities: instance_info wins, properties lock
// the node to a mode, bad values are refused with the field named.
func TestNodeBootMode(t *testing.T) {
	tests := []struct {
		name    string
		props   map[string]any
		inst    map[string]any
		want    wire.BootMode
		wantErr string // part of the error, "" for none
	}{
		{"nothing: the default", nil, nil, wire.DefaultBootMode, ""},
		{"properties string", map[string]any{"capabilities": "boot_mode:bios,secure_boot:false"}, nil, wire.BootModeBIOS, ""},
		{"properties string with spaces", map[string]any{"capabilities": "cpu_vt:true, boot_mode : uefi"}, nil, wire.BootModeUEFI, ""},
		{"properties object", map[string]any{"capabilities": map[string]any{"boot_mode": "bios"}}, nil, wire.BootModeBIOS, ""},
		{"properties without boot_mode", map[string]any{"capabilities": "cpu_vt:true"}, nil, wire.DefaultBootMode, ""},
		{"instance_info object", nil, map[string]any{"capabilities": map[string]any{"boot_mode": "bios"}}, wire.BootModeBIOS, ""},
		{"instance_info JSON text", nil, map[string]any{"capabilities": `{"boot_mode": "uefi"}`}, wire.BootModeUEFI, ""},
		{"upper case", nil, map[string]any{"capabilities": map[string]any{"boot_mode": "UEFI"}}, wire.BootModeUEFI, ""},
		{"both agree", map[string]any{"capabilities": "boot_mode:bios"}, map[string]any{"capabilities": map[string]any{"boot_mode": "bios"}}, wire.BootModeBIOS, ""},
		{"instance_info disagrees with properties", map[string]any{"capabilities": "boot_mode:bios"},
			map[string]any{"capabilities": map[string]any{"boot_mode": "uefi"}}, "", "boot mode uefi violates node properties/capabilities bios"},
		{"bad properties value", map[string]any{"capabilities": "boot_mode:legacy"}, nil, "",
			"The parameter 'boot_mode' from properties/capabilities has an invalid value: 'legacy'. Acceptable values are: bios, uefi."},
		{"bad instance_info value", nil, map[string]any{"capabilities": map[string]any{"boot_mode": "efi"}}, "",
			"The parameter 'boot_mode' from instance_info['capabilities'] has an invalid value: 'efi'"},
		{"instance_info boot_mode not a string", nil, map[string]any{"capabilities": map[string]any{"boot_mode": true}}, "", "instance_info['capabilities'] has an invalid value: a boolean"},
		{"instance_info capabilities a list", nil, map[string]any{"capabilities": []any{"boot_mode:uefi"}}, "", "A dictionary or a \"jsonified\" dictionary is expected"},
		{"instance_info capabilities bad JSON", nil, map[string]any{"capabilities": "boot_mode:uefi"}, "", "A dictionary or a \"jsonified\" dictionary is expected"},
		{"properties capabilities a number", map[string]any{"capabilities": 3.0}, nil, "", "properties/capabilities must be a string of key:value pairs or an object, got a number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := wire.NodeBootMode(wire.Node{UUID: "n1", Properties: tt.props, InstanceInfo: tt.inst})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || wire.CodeOf(err) != wire.CodeInvalidInput {
					t.Fatalf("NodeBootMode = %q, %v; want an %s error containing %q", got, err, wire.CodeInvalidInput, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("NodeBootMode = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
