package fleet

import (
	"context"
	"errors"
	"log/slog"
	"net"

	"github.com/bsm/redislock"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ironfleet/ironfleet/conductor"
	"github.com/ironfleet/ironfleet/conductor/ipmi"
	"github.com/ironfleet/ironfleet/conductor/pxe"
	"github.com/ironfleet/ironfleet/internal/hardware"
	"github.com/ironfleet/ironfleet/transport"
)

// ConductorConfig is one conductor process: the conductor itself, its
// network boot files and optionally the TFTP server that serves them.
type ConductorConfig struct {
	// Conductor configures the conductor. Its Host is required: it names
	// the conductor in the registry, its events, its metrics and as the
	// holder of its node locks.
	Conductor conductor.Config
	// TFTPRoot is where boot configs are written (and served from). Required.
	TFTPRoot string
	// Boot, when set, is the boot config writer to use (conductors sharing
	// a TFTP root in one process share it); nil means one on TFTPRoot.
	Boot *pxe.Configs
	// TFTPListen, when set, runs a TFTP server on that UDP address.
	TFTPListen string
	// IPXEDir, when set, is where iPXE's BIOS and EFI loaders are copied
	// to TFTPRoot from (pxe.Config.IPXEDir); unused when Boot is set.
	IPXEDir string
	// IPMI configures the ipmi driver.
	IPMI ipmi.Config
	// HardwareTypes are the hardware types the conductor offers among ipmi
	// and fake-hardware; nil means DefaultHardwareTypes.
	HardwareTypes []string
	// Drivers are more hardware types (e.g. "sim" in a dev fleet).
	Drivers conductor.Drivers
	// Consoles are more console interfaces (e.g. "sim" in a dev fleet);
	// ipmitool-socat is always there.
	Consoles map[string]conductor.ConsoleDriver
	// Socat configures the ipmitool-socat console.
	Socat ipmi.SocatConfig
	// Handoff replaces the continuations' handoff: only ironfleet bench
	// fleet sets it (conductor.Deps.Handoff).
	Handoff conductor.Handoff
	// Logger and Registerer are passed on; nil means slog.Default() and none.
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Conductor is a conductor and its TFTP server, ready to Run.
type Conductor struct {
	*conductor.Conductor
	Boot *pxe.Configs
	tftp *pxe.Server
	cfg  ConductorConfig
}

// NewConductor wires a conductor on infra.
func NewConductor(infra *Infra, cfg ConductorConfig) (*Conductor, error) {
	if cfg.Conductor.Host == "" {
		return nil, errors.New("fleet: ConductorConfig.Conductor.Host is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registerer != nil {
		// Several conductors may share a process (a dev fleet): tell their
		// metrics apart.
		cfg.Registerer = prometheus.WrapRegistererWith(prometheus.Labels{"conductor": cfg.Conductor.Host}, cfg.Registerer)
	}
	boot := cfg.Boot
	if boot == nil {
		var err error
		if boot, err = pxe.NewConfigs(pxe.Config{Root: cfg.TFTPRoot, IPXEDir: cfg.IPXEDir, Logger: cfg.Logger}); err != nil {
			return nil, err
		}
	}
	cfg.IPMI.Logger, cfg.IPMI.Registerer = cfg.Logger, cfg.Registerer
	ipmiDriver, err := ipmi.New(cfg.IPMI)
	if err != nil {
		return nil, err
	}
	drivers, err := hardwareTypes(cfg.HardwareTypes, []string{IPMI, FakeHardware}, func(name string) conductor.PowerDriver {
		if name == IPMI {
			return conductor.Describe(conductor.NewPowerDriver(ipmiDriver.ValidateDriverInfo, ipmiDriver.NodePower), ipmi.Properties)
		}
		return conductor.FakeHardware()
	})
	if err != nil {
		return nil, err
	}
	for name, d := range cfg.Drivers {
		drivers[name] = d
	}
	if cfg.Socat.Logger == nil {
		cfg.Socat.Logger = cfg.Logger
	}
	socat := ipmi.NewSocatConsole(cfg.Socat)
	consoles := map[string]conductor.ConsoleDriver{hardware.IPMISocat: conductor.NewConsoleDriver(socat.StartConsole, socat.TerminalPort)}
	for name, d := range cfg.Consoles {
		consoles[name] = d
	}
	cc := cfg.Conductor
	cc.Logger, cc.Registerer = cfg.Logger, cfg.Registerer
	c, err := conductor.New(conductor.Deps{
		Consoles: consoles,
		Tasks:    infra.Bus, Nodes: infra.Inventory, Locks: infra.Locks.WithHolder(cc.Host), Registry: infra.Registry,
		Leases: redislock.New(infra.Redis), Drivers: drivers, Boot: boot, Handoff: cfg.Handoff,
		Records: transport.NewRecords(infra.Inventory),
	}, cc)
	if err != nil {
		return nil, err
	}
	tftp, err := pxe.NewServer(pxe.ServerConfig{Root: cfg.TFTPRoot, Logger: cfg.Logger, Registerer: cfg.Registerer})
	if err != nil {
		return nil, err
	}
	return &Conductor{Conductor: c, Boot: boot, tftp: tftp, cfg: cfg}, nil
}

// ListenTFTP opens the TFTP server's socket, if one is configured, so that
// a bad address is reported before anything runs.
func (c *Conductor) ListenTFTP(ctx context.Context) (net.PacketConn, error) {
	if c.cfg.TFTPListen == "" {
		return nil, nil
	}
	return new(net.ListenConfig).ListenPacket(ctx, "udp", c.cfg.TFTPListen)
}

// Serve runs the conductor (and the TFTP server on pc, when not nil) until ctx ends.
func (c *Conductor) Serve(ctx context.Context, pc net.PacketConn) error {
	if pc == nil {
		return c.Run(ctx)
	}
	errc := make(chan error, 1)
	go func() { errc <- c.tftp.Serve(ctx, pc) }()
	err := c.Run(ctx)
	if terr := <-errc; err == nil {
		err = terr
	}
	return err
}
