package fleet

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ironfleet/ironfleet/conductor"
	"github.com/ironfleet/ironfleet/conductor/ipmi"
	"github.com/ironfleet/ironfleet/conductor/sim"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// Hardware types a fleet may offer. sim needs simulated machines in the
// conductor's process, so only a dev fleet's conductors run it; an API
// process may accept it (for conductors of a dev fleet, or benchmarks).
const (
	IPMI         = "ipmi"
	FakeHardware = "fake-hardware"
	Sim          = "sim"
)

// DefaultHardwareTypes are what `ironfleet conductor` and `ironfleet api`
// offer when not told (Ironic's enabled_hardware_types): real machines
// over IPMI, and fake-hardware, which Ironic clients' test suites enroll
// their nodes with.
var DefaultHardwareTypes = []string{IPMI, FakeHardware}

// errValidateOnly is what a validate-only driver answers when asked to
// drive hardware: the API process validates driver_info, it never powers
// anything.
var errValidateOnly = errors.New("fleet: this driver only validates driver_info in the API process")

// ValidateOnlyDrivers are the hardware types an API process accepts among
// ipmi, fake-hardware and sim (nil means DefaultHardwareTypes), checking
// driver_info as the conductors' drivers would. The conductors of the
// fleet should offer the same types: the API refuses nodes of any other.
func ValidateOnlyDrivers(types []string) (conductor.Drivers, error) {
	none := func(wire.Node) (conductor.Power, error) { return nil, errValidateOnly }
	return hardwareTypes(types, []string{IPMI, FakeHardware, Sim}, func(name string) conductor.PowerDriver {
		switch name {
		case IPMI:
			return conductor.Describe(conductor.NewPowerDriver(ipmi.Validate, none), ipmi.Properties)
		case Sim:
			return conductor.Describe(conductor.NewPowerDriver(sim.Validate, none), sim.Properties)
		}
		return conductor.FakeHardware()
	})
}

// hardwareTypes builds the drivers of types (nil means
// DefaultHardwareTypes), each one of known, with build.
func hardwareTypes(types, known []string, build func(name string) conductor.PowerDriver) (conductor.Drivers, error) {
	if types == nil {
		types = DefaultHardwareTypes
	}
	drivers := conductor.Drivers{}
	for _, t := range types {
		t = strings.TrimSpace(t)
		if !slices.Contains(known, t) {
			return nil, fmt.Errorf("fleet: unknown hardware type %q: want one of %s", t, strings.Join(known, ", "))
		}
		drivers[t] = build(t)
	}
	if len(drivers) == 0 {
		return nil, errors.New("fleet: no hardware type enabled")
	}
	return drivers, nil
}
