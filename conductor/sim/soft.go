package sim

import (
	"context"

	"github.com/ironfleet/ironfleet/transport/wire"
)

// IgnoreShutdown makes the machine's operating system ignore soft power off
// requests, as a hung one or one without ACPI support does (true), or honour
// them again (false).
func (m *Machine) IgnoreShutdown(ignore bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ignoreShutdown = ignore
}

// SoftPowerOff asks the machine's operating system to shut down, through
// the simulated BMC (IPMI's chassis control "soft shutdown", an ACPI power
// button press). It returns once the BMC took the request: the machine
// powers off Timings.Shutdown later, unless it was powered off or rebooted
// in the meantime, or its OS ignores the request (IgnoreShutdown). A
// machine that is off is left alone.
func (m *Machine) SoftPowerOff(ctx context.Context) error { //nolint:contextcheck // the shutdown outlives the request, on the fleet's context, as a boot does
	if err := m.bmc(ctx, OpSoftPowerOff, "soft power off", m.fleet.cfg.Timings.Status); err != nil {
		return err
	}
	m.mu.Lock()
	if m.power != wire.PowerOn || m.ignoreShutdown {
		m.mu.Unlock()
		return nil
	}
	boot := m.boots
	m.mu.Unlock()
	sctx, stop, err := m.fleet.startBoot() // the shutdown is the fleet's goroutine, as a boot is
	if err != nil {
		return m.bmcError("soft power off", err, "")
	}
	go func() {
		defer m.fleet.wg.Done()
		defer stop()
		if m.fleet.sleep(sctx, m.fleet.cfg.Timings.Shutdown) != nil {
			return
		}
		// Only the boot that was asked to shut down powers off.
		m.cutPower(func() bool { return m.power == wire.PowerOn && m.boots == boot })
	}()
	return nil
}

// InjectNMI injects a non-maskable interrupt through the simulated BMC
// (IPMI's chassis control "pulse diagnostic interrupt"). The machine
// records it (State.NMIs); its operating system does nothing more.
func (m *Machine) InjectNMI(ctx context.Context) error {
	if err := m.bmc(ctx, OpInjectNMI, "inject nmi", m.fleet.cfg.Timings.Status); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.nmis++
	return nil
}
