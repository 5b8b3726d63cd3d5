package hardware_test

import (
	"testing"

	"github.com/ironfleet/ironfleet/internal/hardware"
	"github.com/ironfleet/ironfleet/transport/wire"
)

func TestCheckPowerTarget(t *testing.T) {
	tests := []struct {
		name   string
		node   wire.Node
		target wire.PowerState
		err    string
	}{
		{"ipmi soft off", wire.Node{Driver: "ipmi"}, wire.PowerSoftOff, ""},
		{"sim soft reboot", wire.Node{Driver: "sim"}, wire.PowerSoftRebooting, ""},
		{"fake soft off", wire.Node{Driver: "fake-hardware"}, wire.PowerSoftOff, ""},
		{"fake on", wire.Node{Driver: "fake-hardware"}, wire.PowerOn, ""},
		// A power interface ironfleet does not know supports nothing.
		{"unknown interface", wire.Node{Driver: "ipmi", Interfaces: map[string]string{"power": "redfish"}}, wire.PowerSoftOff,
			"The driver ipmi does not support the power state, soft power off"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := hardware.CheckPowerTarget(tc.node, tc.target)
			checkErr(t, err, tc.err)
		})
	}
}

func TestCheckInjectNMI(t *testing.T) {
	tests := []struct {
		name string
		node wire.Node
		err  string
	}{
		{"ipmi", wire.Node{Driver: "ipmi"}, ""},
		{"sim", wire.Node{Driver: "sim"}, ""},
		{"fake management, as Ironic's", wire.Node{Driver: "fake-hardware"},
			"Driver fake-hardware does not support inject_nmi (disabled or not implemented)."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkErr(t, hardware.CheckInjectNMI(tc.node), tc.err)
		})
	}
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("got %v, want nil", err)
	case want != "" && (err == nil || err.Error() != want):
		t.Fatalf("got %v, want %q", err, want)
	case want != "" && wire.CodeOf(err) != wire.CodeInvalidInput:
		t.Fatalf("code %s, want invalid_input", wire.CodeOf(err))
	}
}
