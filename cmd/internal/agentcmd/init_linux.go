//go:build linux

package agentcmd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"golang.org/x/sys/unix"

	"github.com/ironfleet/ironfleet/agent"
)

// initSystem brings the ramdisk up (mounts, modules, network) when the
// agent is its /init.
func initSystem(ctx context.Context, log *slog.Logger, p agent.BootParams) error {
	return agent.BringUp(ctx, log, p, agent.BringUpConfig{})
}

// mountProc mounts /proc when the agent is /init, before the kernel command
// line is read from /proc/cmdline: nothing has mounted it yet. BringUp
// mounts the rest (and finds /proc already there).
func mountProc() error {
	if err := os.MkdirAll("/proc", 0o555); err != nil { //nolint:gosec // a mount point is world-readable
		return err
	}
	err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
	if err != nil && !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("mount /proc: %w", err)
	}
	return nil
}
