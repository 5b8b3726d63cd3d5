// Package agentcmd is the command line of the on-node agent, shared by
// `ironfleet agent` and the small ironfleet-agent binary that goes into
// the deploy ramdisk: it reads flags and the kernel command line, wires the
// agent and runs it.
package agentcmd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/ironfleet/ironfleet/agent"
	"github.com/ironfleet/ironfleet/agent/protocol"
)

// New returns the agent command, named use ("agent" as a subcommand,
// "ironfleet-agent" as a binary). It reads the persistent --log-level flag
// of its parent when there is one.
func New(use string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: "Run the on-node agent: look the node up, heartbeat, serve the command API",
		Long: `The agent runs on a machine booted into the deploy ramdisk. It looks its node
up at the API by its NICs' MACs, heartbeats with its callback URL and agent token,
and serves the command API the conductor drives (inventory, write_image,
erase_disk, power_off, reboot).

Settings come from flags, then from the kernel command line (ironfleet.api_url=…
ironfleet.listen=… ironfleet.callback_url=… ironfleet.lookup_timeout=…
ironfleet.log_level=…), then defaults: a flag given explicitly wins.`,
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE:         run,
	}
	f := cmd.Flags()
	f.String("api-url", "", "ironfleet API the agent looks up and heartbeats at (kernel: ironfleet.api_url)")
	f.String("listen", ":9999", "command API listen address (kernel: ironfleet.listen)")
	f.String("callback-url", "", "callback URL to advertise (default: http://<address routing to the API>:<port>)")
	f.StringSlice("macs", nil, "MACs to look the node up by (default: the physical NICs in /sys/class/net)")
	f.String("root", "/", "root of the /proc and /sys trees to read the hardware from")
	f.String("cmdline", "/proc/cmdline", "kernel command line to read ironfleet.* settings from; empty to ignore")
	f.Duration("lookup-timeout", agent.DefaultLookupTimeout, "give up when the lookup has not succeeded for this long (kernel: ironfleet.lookup_timeout)")
	f.Duration("stall-timeout", agent.DefaultStallTimeout, "abort an image download that receives nothing for this long")
	f.String("power", "host", "how reboot and power_off act: host (reboot(2); needs CAP_SYS_BOOT) or none (refuse)")
	return cmd
}

// settings is the agent's resolved configuration.
type settings struct {
	apiURL, listen, callbackURL, root, power string
	macs                                     []string
	lookupTimeout, stallTimeout              time.Duration
	logLevel                                 string
	boot                                     agent.BootParams
}

func resolve(cmd *cobra.Command) (settings, error) {
	f := cmd.Flags()
	var s settings
	s.apiURL, _ = f.GetString("api-url")
	s.listen, _ = f.GetString("listen")
	s.callbackURL, _ = f.GetString("callback-url")
	s.macs, _ = f.GetStringSlice("macs")
	s.root, _ = f.GetString("root")
	s.lookupTimeout, _ = f.GetDuration("lookup-timeout")
	s.stallTimeout, _ = f.GetDuration("stall-timeout")
	s.power, _ = f.GetString("power")
	s.logLevel, _ = f.GetString("log-level")
	if s.logLevel == "" {
		s.logLevel = "info"
	}
	path, _ := f.GetString("cmdline")
	if path != "" {
		b, err := os.ReadFile(path) //nolint:gosec // the operator names the file
		switch {
		case errors.Is(err, fs.ErrNotExist) && !f.Changed("cmdline"):
			// No /proc/cmdline (not Linux, a container): flags only.
		case err != nil:
			return s, fmt.Errorf("--cmdline: %w", err)
		default:
			if s.boot, err = agent.ParseCmdline(string(b)); err != nil {
				return s, fmt.Errorf("%s: %w", path, err)
			}
		}
	}
	b := s.boot
	if !f.Changed("api-url") && b.APIURL != "" {
		s.apiURL = b.APIURL
	}
	if !f.Changed("listen") && b.Listen != "" {
		s.listen = b.Listen
	}
	if !f.Changed("callback-url") && b.CallbackURL != "" {
		s.callbackURL = b.CallbackURL
	}
	if !f.Changed("lookup-timeout") && b.LookupTimeout > 0 {
		s.lookupTimeout = b.LookupTimeout
	}
	if !f.Changed("log-level") && b.LogLevel != "" {
		s.logLevel = b.LogLevel
	}
	if s.apiURL == "" {
		return s, errors.New("no API URL: give --api-url or ironfleet.api_url= on the kernel command line")
	}
	if s.power != "host" && s.power != "none" {
		return s, fmt.Errorf("--power %q: want host or none", s.power)
	}
	if s.lookupTimeout <= 0 || s.stallTimeout <= 0 {
		return s, errors.New("--lookup-timeout and --stall-timeout must be positive")
	}
	return s, nil
}

func run(cmd *cobra.Command, _ []string) error {
	if os.Getpid() == 1 {
		// The ramdisk's /init: /proc/cmdline needs /proc.
		if err := mountProc(); err != nil {
			return fmt.Errorf("init: %w", err)
		}
	}
	s, err := resolve(cmd)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(s.logLevel)); err != nil {
		return fmt.Errorf("log level %q: want debug, info, warn or error", s.logLevel)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx := cmd.Context()

	if os.Getpid() == 1 {
		// The ramdisk's /init: bring the system up far enough to talk.
		if err := initSystem(ctx, log, s.boot); err != nil {
			return fmt.Errorf("init: %w", err)
		}
	}
	if len(s.macs) == 0 {
		if s.macs, err = agent.MACs(s.root); err != nil {
			return err
		}
		if len(s.macs) == 0 {
			return fmt.Errorf("no physical NICs under %s: give --macs", filepath.Join(s.root, "sys/class/net"))
		}
	}
	l, err := new(net.ListenConfig).Listen(ctx, "tcp", s.listen)
	if err != nil {
		return fmt.Errorf("command API: %w", err)
	}
	if s.callbackURL == "" {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		s.callbackURL, err = agent.CallbackURL(cctx, s.apiURL, l.Addr())
		cancel()
		if err != nil {
			_ = l.Close()
			return err
		}
	}
	var machine agent.Machine = agent.HostMachine{}
	if s.power == "none" {
		machine = refusingMachine{}
	}
	root := s.root
	a, err := agent.New(machine, agent.Config{
		APIURL:      s.apiURL,
		MACs:        s.macs,
		CallbackURL: s.callbackURL,
		Logger:      log,
		Lookup:      agent.LookupConfig{Timeout: s.lookupTimeout},
		Commands: agent.CommandConfig{
			StallTimeout: s.stallTimeout,
			Inventory:    func(context.Context) (protocol.Inventory, error) { return agent.ReadInventory(root) },
		},
	})
	if err != nil {
		_ = l.Close()
		return err
	}
	log.Info("agent starting", "api", s.apiURL, "listen", l.Addr().String(), "callback", s.callbackURL, "macs", s.macs)
	return a.Serve(ctx, l)
}

// refusingMachine is --power=none: the agent runs somewhere it must not
// reboot (a developer's machine, a container).
type refusingMachine struct{}

func (refusingMachine) Reboot(context.Context) error {
	return errors.New("reboot refused: the agent runs with --power=none")
}

func (refusingMachine) PowerOff(context.Context) error {
	return errors.New("power off refused: the agent runs with --power=none")
}
