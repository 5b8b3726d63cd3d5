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
	cmd.SetArgs(args(os.Getpid(), os.Args[1:]))
	err := cmd.ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ironfleet-agent:", err)
		os.Exit(1)
	}
}

// args is the command line the agent parses. As a ramdisk's /init (pid 1)
// it takes none: the kernel hands init the command line words it does not
// know, and under UEFI iPXE puts the kernel image's name first ("kernel
// initrd=ramdisk …"), which would read as a subcommand; the agent reads
// its settings from /proc/cmdline itself (ironfleet.* arguments).
func args(pid int, given []string) []string {
	if pid == 1 {
		return []string{}
	}
	return given
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
