package sim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/ironfleet/ironfleet/transport/wire"
)

// Errors a Machine's BMC side returns (inside a *wire.Error with CodeBMC).
var (
	// ErrInjected: a failure injected with FailNext.
	ErrInjected = errors.New("sim: injected BMC failure")
	// ErrNoAnswer: a hang injected with HangNext ran out (or the caller's
	// context ended first).
	ErrNoAnswer = errors.New("sim: BMC did not answer")
	// ErrClosed: the machine's fleet has been closed.
	ErrClosed = errors.New("sim: fleet closed")
)

// Op names a BMC operation faults can be injected into.
type Op string

// Operations of the Power interface.
const (
	OpPowerState    Op = "power_state"
	OpSetPower      Op = "set_power"
	OpSetBootDevice Op = "set_boot_device"
	OpSoftPowerOff  Op = "soft_power_off"
	OpInjectNMI     Op = "inject_nmi"
)

// BootFunc is called when a machine has booted from dev (after
// Timings.Boot), on a goroutine the fleet owns. ctx is cancelled when the
// machine powers off or resets; the function should return soon after.
type BootFunc func(ctx context.Context, dev wire.BootDevice)

// Machine is a simulated bare-metal machine: power, boot device with IPMI's
// next-boot/persistent semantics, realistic delays, injectable BMC faults,
// and hooks where a simulated agent starts and stops. Its BMC side
// implements the conductor's Power interface; Reboot and PowerOff are what
// the operating system (the agent) on it can do. Safe for concurrent use.
type Machine struct {
	fleet *Fleet
	name  string
	macs  []string

	mu         sync.Mutex
	power      wire.PowerState
	persistent wire.BootDevice // where every boot goes unless next is set
	next       wire.BootDevice // one-time boot device, "" when none
	bootedFrom wire.BootDevice
	boots      int
	stopBoot   context.CancelFunc // cancels the running boot's context
	fails      map[Op]int
	hangs      map[Op]int
	onBoot     BootFunc
	onPowerOff func()
	// ignoreShutdown: the operating system ignores ACPI shutdown requests.
	ignoreShutdown bool
	nmis           int
	// serial is the machine's serial port (its console).
	serial serial
}

// Name is the machine's name in its fleet (driver_info's sim_machine).
func (m *Machine) Name() string { return m.name }

// MACs are the machine's NICs' MAC addresses, normalised (aa:bb:…).
func (m *Machine) MACs() []string { return append([]string(nil), m.macs...) }

// String names the machine.
func (m *Machine) String() string { return "simulated machine " + m.name }

// OnBoot sets the function called each time the machine has booted.
// Set it before powering the machine on; nil removes it.
func (m *Machine) OnBoot(f BootFunc) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.onBoot = f
}

// OnPowerOff sets the function called each time the machine loses power
// (power off, and the off half of a reboot), after the boot context has
// been cancelled. It must not call back into the machine's power methods.
func (m *Machine) OnPowerOff(f func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.onPowerOff = f
}

// FailNext makes the next n calls of op fail at once with ErrInjected, as
// a BMC answering with an error does.
func (m *Machine) FailNext(op Op, n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fails[op] = n
}

// HangNext makes the next n calls of op hang, as a BMC that does not
// answer: each returns ErrNoAnswer after Config.BMCTimeout, or when the
// caller's context ends if that is sooner.
func (m *Machine) HangNext(op Op, n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.hangs[op] = n
}

// State is a snapshot of a machine, for tests and dashboards.
type State struct {
	Power wire.PowerState
	// NextBoot is the one-time boot device ("" when none); BootDevice is the
	// persistent one.
	NextBoot, BootDevice wire.BootDevice
	// BootedFrom is where the last boot went; Boots counts boots.
	BootedFrom wire.BootDevice
	Boots      int
	// NMIs counts the non-maskable interrupts injected.
	NMIs int
}

// State returns a snapshot of the machine.
func (m *Machine) State() State {
	m.mu.Lock()
	defer m.mu.Unlock()
	return State{Power: m.power, NextBoot: m.next, BootDevice: m.persistent, BootedFrom: m.bootedFrom, Boots: m.boots, NMIs: m.nmis}
}

// PowerState reads the power state through the simulated BMC.
func (m *Machine) PowerState(ctx context.Context) (wire.PowerState, error) {
	if err := m.bmc(ctx, OpPowerState, "power status", m.fleet.cfg.Timings.Status); err != nil {
		return wire.PowerUnknown, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.power, nil
}

// SetPower drives the machine to target through the simulated BMC, taking
// Timings.PowerOn / PowerOff. Idempotent: a machine already there is left
// alone; rebooting a machine that is off powers it on.
func (m *Machine) SetPower(ctx context.Context, target wire.PowerState) error {
	switch target {
	case wire.PowerOn, wire.PowerOff, wire.PowerRebooting:
	default:
		return wire.Errorf(wire.CodeInvalidInput, "sim: unsupported power target %q", target)
	}
	if err := m.bmc(ctx, OpSetPower, "set power "+string(target), m.fleet.cfg.Timings.Status); err != nil {
		return err
	}
	return m.setPower(ctx, target)
}

// SetBootDevice sets the boot device through the simulated BMC: for the
// next boot only, or for every boot when persistent (which also clears a
// pending one-time device, as IPMI's single boot-flags parameter does).
func (m *Machine) SetBootDevice(ctx context.Context, dev wire.BootDevice, persistent bool) error {
	switch dev {
	case wire.BootPXE, wire.BootDisk:
	default:
		return wire.Errorf(wire.CodeInvalidInput, "sim: unsupported boot device %q", dev)
	}
	if err := m.bmc(ctx, OpSetBootDevice, "set boot device "+string(dev), m.fleet.cfg.Timings.BootDevice); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if persistent {
		m.persistent, m.next = dev, ""
	} else {
		m.next = dev
	}
	return nil
}

// Reboot is the operating system rebooting the machine (the agent after
// writing an image): off, then on, through no BMC, so no injected fault
// applies. Safe to call from the machine's own BootFunc: once started, the
// reboot completes even though it cancels that BootFunc's ctx (only closing
// the fleet stops it); ctx is checked only before.
func (m *Machine) Reboot(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return m.canceled(ctx, "reboot")
	}
	ctx, stop := m.fleet.untilClosed(ctx)
	defer stop()
	return m.setPower(ctx, wire.PowerRebooting)
}

// PowerOff is the operating system shutting the machine down; like Reboot,
// it completes once started.
func (m *Machine) PowerOff(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return m.canceled(ctx, "power off")
	}
	ctx, stop := m.fleet.untilClosed(ctx)
	defer stop()
	return m.setPower(ctx, wire.PowerOff)
}

// bmc simulates one BMC exchange: an injected failure or hang, else delay.
func (m *Machine) bmc(ctx context.Context, op Op, what string, delay time.Duration) error {
	m.mu.Lock()
	fail, hang := m.fails[op] > 0, false
	if fail {
		m.fails[op]--
	} else if m.hangs[op] > 0 {
		m.hangs[op]--
		hang = true
	}
	m.mu.Unlock()
	switch {
	case fail:
		return m.bmcError(what, ErrInjected, "")
	case hang:
		err := m.fleet.sleep(ctx, m.fleet.cfg.BMCTimeout)
		if errors.Is(err, context.Canceled) {
			return m.canceled(ctx, what)
		}
		return m.bmcError(what, ErrNoAnswer, errSuffix(err))
	}
	if err := m.fleet.sleep(ctx, delay); err != nil {
		return m.canceled(ctx, what)
	}
	return nil
}

func errSuffix(err error) string {
	if err != nil {
		return " (" + err.Error() + ")"
	}
	return ""
}

func (m *Machine) bmcError(what string, kind error, suffix string) error {
	return wire.Errorf(wire.CodeBMC, "%w: %s of %s failed%s", kind, what, m.name, suffix)
}

func (m *Machine) canceled(ctx context.Context, what string) error {
	return fmt.Errorf("sim: %s of %s: %w", what, m.name, context.Cause(ctx))
}

func (m *Machine) setPower(ctx context.Context, target wire.PowerState) error {
	m.mu.Lock()
	cur := m.power
	m.mu.Unlock()
	switch {
	case target == wire.PowerRebooting:
		if cur == wire.PowerOn {
			if err := m.switchOff(ctx); err != nil {
				return err
			}
		}
		return m.switchOn(ctx)
	case cur == target:
		return nil
	case target == wire.PowerOn:
		return m.switchOn(ctx)
	default:
		return m.switchOff(ctx)
	}
}

func (m *Machine) switchOn(ctx context.Context) error { //nolint:contextcheck // a boot outlives the call that started it
	if err := m.fleet.sleep(ctx, m.fleet.cfg.Timings.PowerOn); err != nil {
		return m.canceled(ctx, "power on")
	}
	configured := m.pxeConfigured()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.power == wire.PowerOn {
		return nil
	}
	dev := m.persistent
	if m.next != "" {
		dev, m.next = m.next, ""
	}
	if dev == wire.BootPXE && !configured {
		dev = wire.BootDisk // boot.ipxe found no config: exit to the disk
	}
	bootCtx, stop, err := m.fleet.startBoot()
	if err != nil {
		return m.bmcError("power on", err, "")
	}
	m.power, m.stopBoot = wire.PowerOn, stop
	m.boots++
	m.bootedFrom = dev
	f, delay := m.onBoot, m.fleet.cfg.Timings.Boot
	m.Print(fmt.Sprintf("[sim] %s: power on, boot %d from %s", m.name, m.boots, dev))
	go func() { // counted in the fleet's WaitGroup by startBoot
		defer m.fleet.wg.Done()
		defer stop()
		if m.fleet.sleep(bootCtx, delay) != nil {
			return
		}
		m.Print(fmt.Sprintf("[sim] %s: booted from %s", m.name, dev))
		if f != nil {
			f(bootCtx, dev)
		}
	}()
	return nil
}

// pxeConfigured reports whether a PXE boot would find a config for one of
// the machine's MACs.
func (m *Machine) pxeConfigured() bool {
	f := m.fleet.cfg.PXEConfigured
	if f == nil {
		return true
	}
	for _, mac := range m.macs {
		if f(mac) {
			return true
		}
	}
	return false
}

func (m *Machine) switchOff(ctx context.Context) error {
	if err := m.fleet.sleep(ctx, m.fleet.cfg.Timings.PowerOff); err != nil {
		return m.canceled(ctx, "power off")
	}
	m.cutPower(func() bool { return m.power == wire.PowerOn })
	return nil
}

// cutPower turns the machine off if still (under its lock) says so: the
// boot's context is cancelled, then OnPowerOff's function is called.
func (m *Machine) cutPower(still func() bool) {
	m.mu.Lock()
	if !still() {
		m.mu.Unlock()
		return
	}
	m.power = wire.PowerOff
	stop, f := m.stopBoot, m.onPowerOff
	m.stopBoot = nil
	m.mu.Unlock()
	m.Print(fmt.Sprintf("[sim] %s: power off", m.name))
	if stop != nil {
		stop()
	}
	if f != nil {
		f()
	}
}

// jitter spreads d by ±fraction.
func jitter(d time.Duration, fraction float64) time.Duration {
	if d <= 0 || fraction <= 0 {
		return d
	}
	return time.Duration(float64(d) * (1 + fraction*(2*rand.Float64()-1))) //nolint:gosec // simulation, not security
}
