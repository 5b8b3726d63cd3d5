package hardware_test

import (
	"strings"
	"testing"

	"github.com/ironfleet/ironfleet/internal/hardware"
	"github.com/ironfleet/ironfleet/transport/wire"
)

func TestEveryTypeOffersEveryKindWithItsDefaultEnabled(t *testing.T) {
	for name, typ := range hardware.Types {
		if typ.Name != name {
			t.Errorf("type %q is named %q", name, typ.Name)
		}
		for _, k := range hardware.Kinds {
			o, ok := typ.Offers[k]
			if !ok || o.Default == "" || o.Enabled[0] != o.Default {
				t.Errorf("%s: %s offer %+v: want a default listed first", name, k, o)
			}
		}
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		driver string
		kind   hardware.Kind
		impl   string
		err    string
	}{
		{"ipmi", hardware.Boot, "ipxe", ""},
		{"ipmi", hardware.Boot, "pxe", ""},
		{"ipmi", hardware.Inspect, "no-inspect", ""},
		{"ipmi", hardware.Inspect, "inspector", "Could not find the following interface in the 'ironic.hardware.interfaces.inspect' entrypoint: inspector. Valid interfaces for hardware type ipmi are agent, no-inspect."},
		{"fake-hardware", hardware.Deploy, "fake", ""},
		{"fake-hardware", hardware.Deploy, "direct", "Valid interfaces for hardware type fake-hardware are fake."},
		{"sim", hardware.Power, "ipmitool", "Valid interfaces for hardware type sim are sim."},
	}
	for _, tc := range tests {
		t.Run(tc.driver+"/"+string(tc.kind)+"/"+tc.impl, func(t *testing.T) {
			// The message must not depend on map order: ask many times.
			for range 20 {
				err := hardware.Types[tc.driver].Check(tc.kind, tc.impl)
				switch {
				case tc.err == "" && err != nil:
					t.Fatalf("Check: %v", err)
				case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
					t.Fatalf("Check: %v, want %q", err, tc.err)
				case tc.err != "" && wire.CodeOf(err) != wire.CodeInvalidInput:
					t.Fatalf("code %s, want invalid_input", wire.CodeOf(err))
				}
			}
		})
	}
}

func TestOfPrefersTheNodesChoice(t *testing.T) {
	n := wire.Node{Driver: "ipmi", Interfaces: map[string]string{"boot": "ipxe"}}
	if got := hardware.Of(n, hardware.Boot); got != "ipxe" {
		t.Errorf("boot = %q, want ipxe", got)
	}
	if got := hardware.Of(n, hardware.Deploy); got != "direct" {
		t.Errorf("deploy = %q, want the default direct", got)
	}
	if got, ok := hardware.KindOfField("raid_interface"); !ok || got != hardware.Raid {
		t.Errorf("KindOfField(raid_interface) = %q, %v", got, ok)
	}
	if _, ok := hardware.KindOfField("driver"); ok {
		t.Error("driver is not an interface")
	}
}

func TestUnsupported(t *testing.T) {
	tests := []struct {
		name string
		node wire.Node
		kind hardware.Kind
		err  string
	}{
		{"ipmi default inspect", wire.Node{Driver: "ipmi"}, hardware.Inspect, ""},
		{"ipmi no-inspect", wire.Node{Driver: "ipmi", Interfaces: map[string]string{"inspect": "no-inspect"}}, hardware.Inspect,
			"Driver ipmi does not support inspect (disabled or not implemented)."},
		{"ipmi console", wire.Node{Driver: "ipmi"}, hardware.Console, "Driver ipmi does not support console (disabled or not implemented)."},
		{"fake console", wire.Node{Driver: "fake-hardware"}, hardware.Console, ""},
		{"noop network", wire.Node{Driver: "ipmi"}, hardware.Network, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := hardware.Unsupported(tc.node, tc.kind)
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("Unsupported: %v, want nil", err)
			case tc.err != "" && (err == nil || err.Error() != tc.err):
				t.Fatalf("Unsupported: %v, want %q", err, tc.err)
			case tc.err != "" && wire.CodeOf(err) != wire.CodeInvalidInput:
				t.Fatalf("code %s, want invalid_input", wire.CodeOf(err))
			}
		})
	}
}

func TestBootDevices(t *testing.T) {
	if got := hardware.BootDevices(wire.Node{Driver: "fake-hardware"}); len(got) != 1 || got[0] != wire.BootPXE {
		t.Errorf("fake-hardware boot devices %v, want [pxe]", got)
	}
	if got := hardware.BootDevices(wire.Node{Driver: "ipmi"}); len(got) != 2 {
		t.Errorf("ipmi boot devices %v, want [pxe disk]", got)
	}
}
