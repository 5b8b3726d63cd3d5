//go:build !linux

package agent

import (
	"context"
	"errors"
)

// HostMachine is the machine the agent runs on. Rebooting and powering off
// are only implemented on Linux.
type HostMachine struct{}

// Reboot is not supported on this system.
func (HostMachine) Reboot(context.Context) error {
	return errors.ErrUnsupported
}

// PowerOff is not supported on this system.
func (HostMachine) PowerOff(context.Context) error {
	return errors.ErrUnsupported
}
