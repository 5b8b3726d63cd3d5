//go:build linux

package agentcmd

import (
	"context"
	"log/slog"

	"github.com/ironfleet/ironfleet/agent"
)

// initSystem brings the ramdisk up (mounts, modules, network) when the
// agent is its /init.
func initSystem(ctx context.Context, log *slog.Logger, p agent.BootParams) error {
	return agent.BringUp(ctx, log, p, agent.BringUpConfig{})
}
