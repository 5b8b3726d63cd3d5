package conductor

import (
	"context"
	"errors"

	"github.com/ironfleet/ironfleet/transport/wire"
)

// Power drives one node's power and boot device (its BMC, or a simulated
// machine). Implementations retry what is worth retrying themselves and
// return errors whose message is fit for the node's last_error: they carry
// wire.CodeBMC (wire.CodeInvalidInput for a bad target or device) and never
// contain credentials. When ctx is cancelled, the error wraps
// context.Cause(ctx) instead, so a lost lock is recognisable.
type Power interface {
	// PowerState reads the machine's current power state (PowerOn or PowerOff).
	PowerState(ctx context.Context) (wire.PowerState, error)
	// SetPower drives the machine to target (PowerOn, PowerOff or
	// PowerRebooting) and returns once it is there. It is idempotent: a
	// machine already in the target state is left alone, and rebooting a
	// machine that is off powers it on.
	SetPower(ctx context.Context, target wire.PowerState) error
	// SetBootDevice sets where the machine boots from: on the next boot only,
	// or on every boot when persistent.
	SetBootDevice(ctx context.Context, dev wire.BootDevice, persistent bool) error
}

// Boot prepares and cleans up a node's network boot: per-node boot configs
// keyed by the MACs of its PXE-enabled ports, written when a deploy, clean or
// inspection starts and removed when it ends.
type Boot interface {
	// Prepare writes the node's boot configs for macs; calling it again
	// replaces them.
	Prepare(ctx context.Context, node wire.Node, macs []string, params wire.BootParams) error
	// CleanUp removes the node's boot configs for macs; configs already gone
	// are not an error.
	CleanUp(ctx context.Context, node wire.Node, macs []string) error
}

// PowerDriver builds a node's Power from its driver_info. One exists per
// driver name ("ipmi", "sim").
type PowerDriver interface {
	// ValidateDriverInfo checks a node's driver_info without touching the
	// hardware; its error says which key is wrong and never echoes secrets.
	ValidateDriverInfo(info map[string]any) error
	// NodePower returns the Power of node. It does not contact the BMC.
	NodePower(node wire.Node) (Power, error)
}

// ErrUnknownDriver is returned for a node whose driver has no PowerDriver.
var ErrUnknownDriver = errors.New("conductor: unknown driver")

// Drivers maps driver names to their PowerDriver.
type Drivers map[string]PowerDriver

// ValidateDriverInfo checks node's driver_info with the PowerDriver of its
// driver. Errors carry wire.CodeInvalidInput.
func (d Drivers) ValidateDriverInfo(node wire.Node) error {
	drv, err := d.lookup(node)
	if err != nil {
		return err
	}
	if err := drv.ValidateDriverInfo(node.DriverInfo); err != nil {
		if wire.CodeOf(err) != wire.CodeInternal {
			return err
		}
		return wire.Errorf(wire.CodeInvalidInput, "%w", err)
	}
	return nil
}

// Power returns the Power of node, built by the PowerDriver of its driver.
func (d Drivers) Power(node wire.Node) (Power, error) {
	drv, err := d.lookup(node)
	if err != nil {
		return nil, err
	}
	return drv.NodePower(node)
}

func (d Drivers) lookup(node wire.Node) (PowerDriver, error) {
	drv, ok := d[node.Driver]
	if !ok || drv == nil {
		return nil, wire.Errorf(wire.CodeInvalidInput, "%w %q", ErrUnknownDriver, node.Driver)
	}
	return drv, nil
}

// NewPowerDriver adapts a validate function and a constructor returning any
// concrete Power to a PowerDriver, so that driver packages need not import
// this one: conductor.NewPowerDriver(ipmi.Validate, ipmiDriver.NodePower).
func NewPowerDriver[P Power](validate func(map[string]any) error, build func(wire.Node) (P, error)) PowerDriver {
	return powerDriver[P]{validate: validate, build: build}
}

type powerDriver[P Power] struct {
	validate func(map[string]any) error
	build    func(wire.Node) (P, error)
}

func (d powerDriver[P]) ValidateDriverInfo(info map[string]any) error { return d.validate(info) }

func (d powerDriver[P]) NodePower(node wire.Node) (Power, error) {
	p, err := d.build(node)
	if err != nil {
		return nil, err
	}
	return p, nil
}
