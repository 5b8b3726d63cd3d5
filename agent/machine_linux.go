//go:build linux

package agent

import (
	"context"
	"fmt"
	"syscall"
)

// HostMachine is the machine the agent runs on, rebooted and powered off
// through the kernel (reboot(2), after sync(2)); the agent needs
// CAP_SYS_BOOT, as it has when it is a ramdisk's init.
type HostMachine struct{}

// Reboot syncs and restarts the machine. On success it does not return.
func (HostMachine) Reboot(context.Context) error {
	syscall.Sync()
	if err := syscall.Reboot(syscall.LINUX_REBOOT_CMD_RESTART); err != nil {
		return fmt.Errorf("reboot: %w", err)
	}
	return nil
}

// PowerOff syncs and powers the machine off. On success it does not return.
func (HostMachine) PowerOff(context.Context) error {
	syscall.Sync()
	if err := syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		return fmt.Errorf("power off: %w", err)
	}
	return nil
}
