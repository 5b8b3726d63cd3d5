package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// envPrefix prefixes the environment variable that can set each flag:
// --api-addr is also IRONFLEET_API_ADDR. A flag given on the command line wins.
const envPrefix = "IRONFLEET_"

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "ironfleet",
		Short: "Bare-metal provisioning fleet: API, conductors and agents over NATS JetStream and Redis",
		Long: `ironfleet provisions bare-metal machines: an Ironic-compatible API publishes node
tasks to NATS JetStream, conductors take each node's fair lock in Redis and drive
its BMC over IPMI and its boot over PXE, and an agent on the machine writes the image.

Every flag can also be set by an environment variable: IRONFLEET_ followed by the
flag's name in upper case with dashes as underscores (--api-addr → IRONFLEET_API_ADDR).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return applyEnv(cmd.Flags())
		},
	}
	root.PersistentFlags().String("log-level", "info", "log level: debug, info, warn or error")
	root.AddCommand(
		newVersionCmd(),
		newDevCmd(),
		newAgentCmd(),
		newEventsCmd(),
		newAPICmd(),
		newConductorCmd(),
		newWatchCmd(),
		newBenchCmd(),
		newSimCmd(),
	)
	return root
}

// applyEnv sets every flag not given on the command line from its
// environment variable, if that is set.
func applyEnv(fs *pflag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || err != nil {
			return
		}
		name := envPrefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("environment %s=%q: %w", name, v, serr)
			}
		}
	})
	return err
}

// newLogger builds the process logger from --log-level.
func newLogger(cmd *cobra.Command) (*slog.Logger, error) {
	lvl, _ := cmd.Flags().GetString("log-level")
	var level slog.Level
	if err := level.UnmarshalText([]byte(lvl)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", lvl)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})), nil
}
