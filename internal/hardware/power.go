package hardware

import (
	"slices"

	"github.com/ironfleet/ironfleet/transport/wire"
)

// allPowerTargets are the power targets of Ironic's ipmitool and fake
// power interfaces (IPMIPower and FakePower.get_supported_power_states in
// ironic/drivers/modules/ipmitool.py and fake.py): every target the API
// accepts.
var allPowerTargets = []wire.PowerState{
	wire.PowerOn, wire.PowerOff, wire.PowerRebooting, wire.PowerSoftRebooting, wire.PowerSoftOff,
}

// powerTargets are the targets each power interface supports (Ironic's
// get_supported_power_states). A simulated machine's operating system
// shuts down on request as a real one does, so sim supports them all.
var powerTargets = map[string][]wire.PowerState{
	IPMITool: allPowerTargets,
	SimPower: allPowerTargets,
	Fake:     allPowerTargets,
}

// CheckPowerTarget reports whether node n's power interface supports
// target; the error is Ironic's (change_node_power_state in
// ironic/conductor/manager.py: InvalidParameterValue, a 400), which names
// the driver, not the interface.
func CheckPowerTarget(n wire.Node, target wire.PowerState) error {
	if slices.Contains(powerTargets[Of(n, Power)], target) {
		return nil
	}
	return wire.Errorf(wire.CodeInvalidInput, "The driver %s does not support the power state, %s", n.Driver, target)
}

// nmiCapable are the management interfaces that can inject a
// non-maskable interrupt. Ironic's ipmitool does ("power diag",
// IPMIManagement.inject_nmi); its fake management does not implement it,
// so the base ManagementInterface.inject_nmi refuses (ironic/drivers/base.py),
// and neither does ironfleet's.
var nmiCapable = []string{IPMITool, SimPower}

// CheckInjectNMI reports whether node n's management interface can inject
// an NMI; the error is Ironic's UnsupportedDriverExtension (a 400).
func CheckInjectNMI(n wire.Node) error {
	if slices.Contains(nmiCapable, Of(n, Management)) {
		return nil
	}
	return wire.Errorf(wire.CodeInvalidInput, "Driver %s does not support inject_nmi (disabled or not implemented).", n.Driver)
}
