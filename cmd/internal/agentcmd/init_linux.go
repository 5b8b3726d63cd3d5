//go:build linux

package agentcmd

import (
	"context"
	"log/slog"

	"github.com/ironfleet/ironfleet/agent"
)

// initSystem brings a ramdisk up far enough for the agent when it runs as
// /init. For now it only says what it would need; mounting, module loading
// and NIC configuration come with the ramdisk (issue 9).
func initSystem(_ context.Context, log *slog.Logger, p agent.BootParams) error {
	log.Warn("running as pid 1, but system init is not implemented yet: expecting /proc, /sys and the network to be up",
		"ip", p.IP, "gateway", p.Gateway, "modules", p.Modules)
	return nil
}
