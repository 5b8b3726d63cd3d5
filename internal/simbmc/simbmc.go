// Package simbmc puts a network BMC in front of simulated machines
// (conductor/sim): each machine gets go-ipmi's reference BMC (pkg/server,
// RMCP+ and IPMI v1.5 on one UDP port) whose chassis commands drive the
// machine. Conductors in other processes then manage simulated machines
// with the real ipmi driver, exactly as they manage hardware; `ironfleet
// sim` serves a fleet of them.
package simbmc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/bougou/go-ipmi/pkg/bmc"
	"github.com/bougou/go-ipmi/pkg/clock"
	"github.com/bougou/go-ipmi/pkg/hal"
	"github.com/bougou/go-ipmi/pkg/hal/mock"
	"github.com/bougou/go-ipmi/pkg/server"
	"github.com/bougou/go-ipmi/pkg/transport/udp"
	"github.com/bougou/go-ipmi/pkg/types"

	"github.com/ironfleet/ironfleet/transport/wire"
)

// ErrConfig is returned by New for a Config the BMC cannot serve with.
var ErrConfig = errors.New("simbmc: invalid config")

// Machine is what the BMC drives: conductor/sim's Machine.
type Machine interface {
	Name() string
	PowerState(ctx context.Context) (wire.PowerState, error)
	SetPower(ctx context.Context, target wire.PowerState) error
	SetBootDevice(ctx context.Context, dev wire.BootDevice, persistent bool) error
}

// Defaults of Config, applied where a field is empty.
const (
	DefaultHost     = "127.0.0.1"
	DefaultUsername = "admin"
	DefaultPassword = "password"
)

// Config holds a BMC's settings; every zero value is documented.
type Config struct {
	// Host is the IP address to listen on; empty means DefaultHost.
	Host string
	// Port is the UDP port; 0 means any free port (see BMC.Port).
	Port int
	// Username and Password are the BMC's administrator account. Empty
	// means DefaultUsername and DefaultPassword. IPMI allows at most 16 and
	// 20 bytes.
	Username, Password string
	// Logger receives one debug record per chassis command; nil discards.
	Logger *slog.Logger
}

// BMC is one simulated machine's BMC, listening once New returns and
// answering while Serve runs.
type BMC struct {
	cfg  Config
	conn *udp.Conn
	srv  *server.Server
	port int
}

// New listens for IPMI on cfg's address for machine m.
func New(m Machine, cfg Config) (*BMC, error) {
	if m == nil {
		return nil, fmt.Errorf("%w: nil machine", ErrConfig)
	}
	if cfg.Host == "" {
		cfg.Host = DefaultHost
	}
	if cfg.Username == "" {
		cfg.Username = DefaultUsername
	}
	if cfg.Password == "" {
		cfg.Password = DefaultPassword
	}
	if len(cfg.Username) > 16 || len(cfg.Password) > 20 {
		return nil, fmt.Errorf("%w: IPMI user names are at most 16 bytes and passwords 20", ErrConfig)
	}
	if net.ParseIP(cfg.Host) == nil {
		return nil, fmt.Errorf("%w: host %q is not an IP address", ErrConfig, cfg.Host)
	}
	if cfg.Port < 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("%w: port %d", ErrConfig, cfg.Port)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}

	var guid [16]byte
	copy(guid[:], "ironfleet-sim")
	b := bmc.New(bmc.DeviceInfo{
		DeviceID: 32, DeviceRevision: 1, FirmwareMajor: 1, IPMIVersion: 0x20,
		ManufacturerID: 0x000157, ProductID: 0x0001,
	}, guid, &machineHAL{HAL: mock.New(), chassis: &chassis{m: m, log: cfg.Logger.With("machine", m.Name())}},
		bmc.WithClock(clock.Real))
	u, err := b.Users.Add(2, cfg.Username)
	if err != nil {
		return nil, fmt.Errorf("simbmc: user %q: %w", cfg.Username, err)
	}
	u.SetPassword([]byte(cfg.Password))
	u.Enabled = true
	u.ChannelAccess[1] = bmc.UserChannelAccess{MaxPrivilege: bmc.PrivilegeLevelAdministrator, Enabled: true}

	conn, err := udp.Listen(net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)))
	if err != nil {
		return nil, fmt.Errorf("simbmc: listen: %w", err)
	}
	port := 0
	if a, ok := conn.LocalAddr().(*net.UDPAddr); ok {
		port = a.Port
	}
	return &BMC{cfg: cfg, conn: conn, srv: server.NewServer(b, conn), port: port}, nil
}

// Port is the UDP port the BMC answers on.
func (b *BMC) Port() int { return b.port }

// Addr is the BMC's host:port.
func (b *BMC) Addr() string { return net.JoinHostPort(b.cfg.Host, strconv.Itoa(b.port)) }

// DriverInfo is the driver_info of a node of driver "ipmi" managed
// through this BMC (lanplus, cipher suite 3).
func (b *BMC) DriverInfo() map[string]any {
	return map[string]any{
		"ipmi_address":      b.cfg.Host,
		"ipmi_port":         b.port,
		"ipmi_username":     b.cfg.Username,
		"ipmi_password":     b.cfg.Password,
		"ipmi_cipher_suite": 3,
	}
}

// Serve answers IPMI until ctx is done, then closes the socket. Call it
// once. (go-ipmi answers each packet on a goroutine of its own that it
// does not wait for; each ends with its reply.)
func (b *BMC) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { _ = b.srv.Close() })
	defer stop()
	err := b.srv.Serve(ctx)
	_ = b.srv.Close()
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("simbmc: serve %s: %w", b.Addr(), err)
	}
	return nil
}

// Close closes the socket of a BMC that will not be served.
func (b *BMC) Close() error { return b.srv.Close() }

// machineHAL is go-ipmi's in-memory HAL (sensors, FRU, LAN settings) with
// a chassis that is the simulated machine.
type machineHAL struct {
	*mock.HAL
	chassis *chassis
}

func (h *machineHAL) Chassis() hal.ChassisHAL { return h.chassis }

// chassis maps IPMI chassis commands onto a Machine.
type chassis struct {
	m   Machine
	log *slog.Logger

	mu    sync.Mutex
	flags *types.BootOptionParam_BootFlags
}

// opTimeout bounds one chassis operation: the go-ipmi server's context
// lasts as long as the server.
const opTimeout = 30 * time.Second

func (c *chassis) PowerState(ctx context.Context) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	p, err := c.m.PowerState(ctx)
	return p == wire.PowerOn, err
}

func (c *chassis) SetPower(ctx context.Context, on bool) error {
	target := wire.PowerOff
	if on {
		target = wire.PowerOn
	}
	return c.power(ctx, target)
}

func (c *chassis) power(ctx context.Context, target wire.PowerState) error {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	c.log.DebugContext(ctx, "chassis control", "target", target)
	return c.m.SetPower(ctx, target)
}

func (c *chassis) PowerCycle(ctx context.Context) error { return c.power(ctx, wire.PowerRebooting) }
func (c *chassis) ColdReset(ctx context.Context) error  { return c.power(ctx, wire.PowerRebooting) }
func (c *chassis) WarmReset(ctx context.Context) error  { return c.power(ctx, wire.PowerRebooting) }

func (c *chassis) Identify(context.Context, uint8) error { return nil }

func (c *chassis) IntrusionState(context.Context) (bool, error) { return false, hal.ErrNotSupported }

// SetBootFlags sets the machine's boot device from the boot flags the
// ipmi driver sends (force PXE or force disk; next boot or persistent).
func (c *chassis) SetBootFlags(ctx context.Context, flags *types.BootOptionParam_BootFlags) error {
	if flags == nil {
		return hal.ErrNotSupported
	}
	if flags.BootFlagsValid {
		var dev wire.BootDevice
		switch flags.BootDeviceSelector {
		case types.BootDeviceSelectorForcePXE:
			dev = wire.BootPXE
		case types.BootDeviceSelectorForceHardDrive:
			dev = wire.BootDisk
		case types.BootDeviceSelectorNoOverride:
		default:
			return fmt.Errorf("simbmc: boot device selector %#x: %w", uint8(flags.BootDeviceSelector), hal.ErrNotSupported)
		}
		if dev != "" {
			ctx, cancel := context.WithTimeout(ctx, opTimeout)
			defer cancel()
			c.log.DebugContext(ctx, "boot device", "device", dev, "persistent", flags.Persist)
			if err := c.m.SetBootDevice(ctx, dev, flags.Persist); err != nil {
				return err
			}
		}
	}
	cp := *flags
	c.mu.Lock()
	c.flags = &cp
	c.mu.Unlock()
	return nil
}

func (c *chassis) GetBootFlags(context.Context) (*types.BootOptionParam_BootFlags, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.flags == nil {
		return &types.BootOptionParam_BootFlags{}, nil
	}
	cp := *c.flags
	return &cp, nil
}

func (c *chassis) SetBootInfoAcknowledge(context.Context, *types.BootOptionParam_BootInfoAcknowledge) error {
	return nil
}

func (c *chassis) GetBootInfoAcknowledge(context.Context) (*types.BootOptionParam_BootInfoAcknowledge, error) {
	return nil, hal.ErrNotSupported
}
