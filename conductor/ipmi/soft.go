package ipmi

import (
	"context"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/command/chassis"
)

// SoftPowerOff asks the machine's operating system to shut down: chassis
// control "soft shutdown" (ipmitool's "power soft", an ACPI power button
// press; Ironic's _soft_power_off in ironic/drivers/modules/ipmitool.py).
// It returns once the BMC accepted the command; whether and when the
// machine goes off is the operating system's, and the caller waits for it.
func (b *BMC) SoftPowerOff(ctx context.Context) error {
	return b.chassisControl(ctx, "soft power off", chassis.ChassisControlSoftShutdown)
}

// InjectNMI injects a non-maskable interrupt: chassis control "pulse
// diagnostic interrupt" (ipmitool's "power diag", as Ironic's
// IPMIManagement.inject_nmi sends).
func (b *BMC) InjectNMI(ctx context.Context) error {
	return b.chassisControl(ctx, "inject nmi", chassis.ChassisControlDiagnosticInterrupt)
}

func (b *BMC) chassisControl(ctx context.Context, op string, ctl chassis.ChassisControl) error {
	ctx, cancel := b.deadline(ctx)
	defer cancel()
	return b.do(ctx, op, func(ctx context.Context, c *client.Client) error {
		_, err := c.ChassisControl(ctx, ctl)
		return err
	})
}
