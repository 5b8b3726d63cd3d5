package conductor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ironfleet/ironfleet/internal/hardware"
	"github.com/ironfleet/ironfleet/internal/wait"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// SoftPower is a Power whose machine can be asked to shut down by its
// operating system (ACPI): IPMI's chassis control "soft shutdown", a
// simulated machine's OS. The conductor checks for it when a soft power
// off or soft reboot is asked for (API 1.27).
type SoftPower interface {
	// SoftPowerOff asks the operating system to shut down and returns once
	// the request was taken, not when the machine is off: the conductor
	// waits for that, up to the request's timeout.
	SoftPowerOff(ctx context.Context) error
}

// NMIInjector is a Power that can inject a non-maskable interrupt
// (management/inject_nmi, API 1.29).
type NMIInjector interface {
	InjectNMI(ctx context.Context) error
}

// ErrPowerStateFailure is the error of a machine that did not reach the
// power state asked for in time; its words are Ironic's PowerStateFailure.
var ErrPowerStateFailure = errors.New("Failed to set node power state") //nolint:staticcheck,revive // Ironic's words, in last_error

// SoftPowerOff checks the node's lock, then asks the machine to shut down;
// errors.ErrUnsupported when its driver cannot.
func (p leased) SoftPowerOff(ctx context.Context) error {
	sp, ok := p.Power.(SoftPower)
	if !ok {
		return errors.ErrUnsupported
	}
	if err := p.check(); err != nil {
		return err
	}
	return sp.SoftPowerOff(ctx)
}

// InjectNMI checks the node's lock, then injects an NMI;
// errors.ErrUnsupported when the driver cannot.
func (p leased) InjectNMI(ctx context.Context) error {
	ni, ok := p.Power.(NMIInjector)
	if !ok {
		return errors.ErrUnsupported
	}
	if err := p.check(); err != nil {
		return err
	}
	return ni.InjectNMI(ctx)
}

// changePower carries out a power action on pw, a leased Power. A hard
// action is bounded by the request's timeout, if any; a soft power off
// asks the OS to shut down and waits for the machine to go off up to the
// request's timeout or Config.SoftPowerOffTimeout, and a soft reboot then
// powers it on (bounded by the request's timeout again), as Ironic's
// ipmitool power interface does.
func (w *job) changePower(pw Power, p wire.PowerParams) error {
	if err := hardware.CheckPowerTarget(w.node, p.Target); err != nil {
		return err
	}
	timeout := time.Duration(p.TimeoutSeconds) * time.Second
	bounded := func(f func(ctx context.Context) error) error {
		ctx := w.ctx
		if timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		return f(ctx)
	}
	if p.Target != wire.PowerSoftOff && p.Target != wire.PowerSoftRebooting {
		return bounded(func(ctx context.Context) error { return pw.SetPower(ctx, p.Target) })
	}
	soft := timeout
	if soft <= 0 {
		soft = w.c.cfg.SoftPowerOffTimeout
	}
	if err := w.softPowerOff(pw, soft); err != nil {
		if errors.Is(err, errors.ErrUnsupported) {
			return wire.Errorf(wire.CodeInvalidInput, "The driver %s does not support the power state, %s", w.node.Driver, p.Target)
		}
		return err
	}
	if p.Target == wire.PowerSoftOff {
		return nil
	}
	return bounded(func(ctx context.Context) error { return pw.SetPower(ctx, wire.PowerOn) })
}

// softPowerOff asks a machine that is on to shut down and waits up to
// timeout for it to be off (Ironic's node_wait_for_power_state); a machine
// already off is left alone, as Ironic skips the action.
func (w *job) softPowerOff(pw Power, timeout time.Duration) error {
	cur, err := pw.PowerState(w.ctx)
	if err != nil {
		return err
	}
	if cur == wire.PowerOff {
		return nil
	}
	sp, ok := pw.(SoftPower)
	if !ok {
		return errors.ErrUnsupported
	}
	if err := sp.SoftPowerOff(w.ctx); err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for {
		if err := wait.Sleep(w.ctx, min(w.c.cfg.PowerPoll, time.Until(deadline))); err != nil {
			return fmt.Errorf("waiting for the machine to power off: %w", context.Cause(w.ctx))
		}
		cur, err := pw.PowerState(w.ctx)
		if err != nil {
			return err
		}
		if cur == wire.PowerOff {
			return nil
		}
		if !time.Now().Before(deadline) {
			w.log("the machine did not power off in time after a soft power off", "timeout", timeout)
			return wire.Errorf(wire.CodeTimeout, "%w to %s.", ErrPowerStateFailure, wire.PowerOff)
		}
	}
}

// injectNMI injects a non-maskable interrupt into the node's machine
// (Ironic's inject_nmi: a management call under the node's lock). The API
// refuses a management interface that cannot before publishing; a failure
// here is recorded in last_error, as a boot device failure is.
func (w *job) injectNMI() error {
	err := hardware.CheckInjectNMI(w.node)
	if err == nil {
		var pw Power
		if pw, err = w.powerOf(); err == nil {
			if ni, ok := pw.(NMIInjector); ok {
				err = ni.InjectNMI(w.ctx)
			} else {
				err = errors.ErrUnsupported
			}
		}
		if errors.Is(err, errors.ErrUnsupported) {
			err = wire.Errorf(wire.CodeInvalidInput, "Driver %s does not support inject_nmi (disabled or not implemented).", w.node.Driver)
		}
	}
	if err == nil {
		w.log("NMI injected")
		return nil
	}
	return w.update(func(n *wire.Node) { n.LastError = fmt.Sprintf("Failed to inject NMI: %v", err) })
}
