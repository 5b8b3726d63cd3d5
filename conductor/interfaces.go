package conductor

import (
	"context"
	"maps"

	"github.com/ironfleet/ironfleet/internal/hardware"
	"github.com/ironfleet/ironfleet/internal/provision"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// This file is where the conductor reads a node's driver interfaces
// (internal/hardware.Of) to decide what a step of a flow does: the flows
// ask here instead of testing driver names. The interfaces that do work
// are the agent's (direct deploy, agent inspection, PXE/iPXE boot); the
// fake ones, as Ironic's (ironic/drivers/modules/fake.py), complete at
// once and touch nothing; the no-* ones refuse.

// FakeHardware is the PowerDriver of Ironic's fake-hardware type: its
// nodes need no driver_info (FakePower.validate accepts anything), their
// power state is whatever was last set (FakePower.get_power_state returns
// the node's), and setting it or the boot device succeeds at once.
func FakeHardware() PowerDriver { return fakeDriver{} }

type fakeDriver struct{}

func (fakeDriver) ValidateDriverInfo(map[string]any) error { return nil }

func (fakeDriver) NodePower(n wire.Node) (Power, error) { return &fakePower{state: n.PowerState}, nil }

// Properties: every fake interface's get_properties is empty.
func (fakeDriver) Properties() map[string]string { return map[string]string{} }

// fakePower is one job's fake power: it starts from the node's recorded
// state and remembers what it was set to, which the job then records.
type fakePower struct{ state wire.PowerState }

func (p *fakePower) PowerState(context.Context) (wire.PowerState, error) { return p.state, nil }

func (p *fakePower) SetPower(_ context.Context, target wire.PowerState) error {
	switch target {
	case wire.PowerOn, wire.PowerRebooting:
		p.state = wire.PowerOn
	case wire.PowerOff:
		p.state = wire.PowerOff
	default:
		return wire.Errorf(wire.CodeInvalidInput, "set_power_state called with an invalid power state: %s.", target)
	}
	return nil
}

// SoftPowerOff is immediate: Ironic's fake power supports the soft states
// and completes them at once (ironic/drivers/modules/fake.py).
func (p *fakePower) SoftPowerOff(context.Context) error {
	p.state = wire.PowerOff
	return nil
}

// SetBootDevice accepts the devices Ironic's fake management supports
// (hardware.BootDevices).
func (p *fakePower) SetBootDevice(_ context.Context, dev wire.BootDevice, _ bool) error {
	if dev != wire.BootPXE {
		return wire.Errorf(wire.CodeInvalidInput, "Invalid boot device %s specified.", dev)
	}
	return nil
}

// fakeBoot is the fake boot interface: no network boot configs.
type fakeBoot struct{}

func (fakeBoot) Prepare(context.Context, wire.Node, []string, wire.BootParams) error { return nil }
func (fakeBoot) CleanUp(context.Context, wire.Node, []string) error                  { return nil }

// boot is the node's boot interface: PXE and iPXE share the conductor's
// boot configs (both loaders find theirs there); fake writes none.
func (w *job) boot() Boot {
	if hardware.Of(w.node, hardware.Boot) == hardware.Fake {
		return fakeBoot{}
	}
	return w.c.d.Boot
}

// deploysAtOnce says the node's deploy interface is fake: a deploy, an
// undeploy and cleaning complete at once, with no agent, no image and no
// power action (FakeDeploy's deploy returns DEPLOYDONE, its tear_down
// DELETED, and it has no clean steps).
func (w *job) deploysAtOnce() bool {
	return hardware.Of(w.node, hardware.Deploy) == hardware.Fake
}

// deployable checks what a deploy needs before it starts: instance_info's
// traits, for every deploy interface (Ironic's start_deploy in
// ironic/conductor/deployments.py: provision.CheckInstanceTraits), and the
// image and the boot mode (wire.NodeBootMode: Ironic's AgentDeploy.validate
// checks the capabilities) for a deploy interface that writes one (not
// fake, whose core step does nothing: FakeDeploy).
func (w *job) deployable() error {
	if err := provision.CheckInstanceTraits(w.node); err != nil {
		return wire.Errorf(wire.CodeInvalidInput, "Failed to validate deploy or power info for node %s: %w", w.node.UUID, err)
	}
	if w.deploysAtOnce() {
		return nil
	}
	if _, err := wire.NodeBootMode(w.node); err != nil {
		return wire.Errorf(wire.CodeInvalidInput, "Failed to validate deploy or power info for node %s: %w", w.node.UUID, err)
	}
	// The agent deploy's validate checks the root device hints (Ironic's
	// CustomAgentDeploy.validate: get_root_device_for_deploy); the API
	// refuses them first, this catches a PATCH that raced the request.
	if _, err := w.rootDeviceHints(); err != nil {
		return wire.Errorf(wire.CodeInvalidInput, "Failed to validate deploy or power info for node %s: %w", w.node.UUID, err)
	}
	_, err := imageOf(w.node)
	return err
}

// inspectsAtOnce says the node's inspect interface does not boot the
// agent: fake inspection completes at once, no-inspect refuses.
func (w *job) inspectsAtOnce() bool {
	return hardware.Of(w.node, hardware.Inspect) != hardware.Agent
}

// inspectAtOnce is a fake inspection (FakeInspect returns MANAGEABLE and
// records nothing), or no-inspect's refusal. The API refuses no-inspect
// before it publishes; a task finds it here only when a PATCH of the
// inspect interface raced the request.
func (w *job) inspectAtOnce(f first) error {
	if err := hardware.Unsupported(w.node, hardware.Inspect); err != nil {
		if f.made {
			return w.fail(err)
		}
		return w.update(func(n *wire.Node) { n.LastError = err.Error() })
	}
	if err := f.make(nil); err != nil {
		return err
	}
	return w.next(provision.EventDone, func(n *wire.Node) { n.Step, n.Agent, n.LastError = "", nil, "" })
}

// Describe gives a PowerDriver the descriptions of the driver_info keys it
// reads, which GET /v1/drivers/{d}/properties lists (Drivers.Properties).
func Describe(d PowerDriver, properties map[string]string) PowerDriver {
	return described{PowerDriver: d, properties: properties}
}

type described struct {
	PowerDriver
	properties map[string]string
}

func (d described) Properties() map[string]string { return maps.Clone(d.properties) }

// Properties describes the driver_info keys a hardware type reads, by key,
// as Ironic's driver properties: nothing for a driver that describes none.
// An unknown driver is wire.CodeNotFound.
func (d Drivers) Properties(driver string) (map[string]string, error) {
	drv, ok := d[driver]
	if !ok || drv == nil {
		return nil, wire.Errorf(wire.CodeNotFound, "Could not find the following driver(s) or hardware type(s): %s.", driver)
	}
	if p, ok := drv.(interface{ Properties() map[string]string }); ok {
		if props := p.Properties(); props != nil {
			return props, nil
		}
	}
	return map[string]string{}, nil
}
