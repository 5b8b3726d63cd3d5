// Command ironfleet-agent is the on-node agent alone, small enough for the
// deploy ramdisk: the same command as `ironfleet agent`, without the API,
// conductor, NATS and Redis code of the main binary.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ironfleet/ironfleet/cmd/internal/agentcmd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	cmd := agentcmd.New("ironfleet-agent")
	cmd.PersistentFlags().String("log-level", "info", "log level: debug, info, warn or error")
	cmd.PreRunE = func(*cobra.Command, []string) error { return applyEnv(cmd.Flags()) }
	err := cmd.ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ironfleet-agent:", err)
		os.Exit(1)
	}
}

// applyEnv sets every flag not given on the command line from IRONFLEET_<NAME>
// (upper case, dashes as underscores), as `ironfleet` does.
func applyEnv(fs *pflag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || err != nil {
			return
		}
		name := "IRONFLEET_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("environment %s=%q: %w", name, v, serr)
			}
		}
	})
	return err
}
