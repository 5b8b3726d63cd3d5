//go:build !linux

package agentcmd

import (
	"context"
	"errors"
	"log/slog"

	"github.com/ironfleet/ironfleet/agent"
)

func initSystem(context.Context, *slog.Logger, agent.BootParams) error {
	return errors.New("running as init is only supported on Linux")
}

func mountProc() error { return nil }
