// Command ironfleet is the one binary of the ironfleet bare-metal
// provisioning fleet: `ironfleet dev` runs the whole fleet in one process,
// and the other subcommands run or inspect its parts.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ironfleet:", err)
		os.Exit(1)
	}
}
