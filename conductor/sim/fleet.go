// Package sim simulates bare-metal machines for dev fleets, tests and
// benchmarks: power, boot device (next boot or persistent), realistic and
// configurable delays, injectable BMC failures and hangs, and hooks where a
// simulated agent (package agent) starts when a machine boots and stops when
// it powers off.
//
// A Fleet holds the machines by name and MAC and owns every goroutine they
// start; it is the PowerDriver of driver "sim", whose driver_info names the
// machine: {"sim_machine": "sim-0001"}. A machine costs a few hundred bytes,
// plus one goroutine while it is booting or its BootFunc runs: thousands fit
// in a process.
//
// Timings are the delays the conductor sees; the zero Timings make every
// action instant (unit tests), RealisticTimings those of the lab's
// ipmi_sim + QEMU machines (lab.md), for benchmarks that should feel like
// hardware.
package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ironfleet/ironfleet/internal/wait"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// KeyMachine is the driver_info key naming a node's simulated machine.
const KeyMachine = "sim_machine"

// Errors of the fleet.
var (
	// ErrUnknownMachine: driver_info names no machine of the fleet.
	ErrUnknownMachine = errors.New("sim: unknown machine")
	// ErrInvalidInfo: driver_info lacks a usable sim_machine.
	ErrInvalidInfo = errors.New("sim: invalid driver_info")
	// ErrDuplicate: a machine name or MAC is already in the fleet.
	ErrDuplicate = errors.New("sim: duplicate machine")
)

// Timings are how long a simulated machine takes. Zero means instant.
type Timings struct {
	// Status is one BMC round trip (power status, and the check before a
	// power action).
	Status time.Duration
	// PowerOn and PowerOff are how long a power action takes to complete.
	PowerOn, PowerOff time.Duration
	// BootDevice is how long setting the boot device takes.
	BootDevice time.Duration
	// Boot is from power on until the boot device has the machine (POST,
	// PXE, kernel): when BootFunc is called.
	Boot time.Duration
	// Shutdown is how long the operating system takes to shut down and
	// power the machine off after a soft power off (ACPI) request.
	Shutdown time.Duration
	// Jitter spreads every delay by ±this fraction (0.2 = ±20 %).
	Jitter float64
}

// RealisticTimings are modelled on the lab's machines (lab.md): an IPMI
// exchange with ipmi_sim, a QEMU VM started by its chassis program, and
// iPXE + kernel + ramdisk until the agent runs (~12 s under TCG).
func RealisticTimings() Timings {
	return Timings{
		Status:     50 * time.Millisecond,
		PowerOn:    500 * time.Millisecond,
		PowerOff:   300 * time.Millisecond,
		BootDevice: 50 * time.Millisecond,
		Boot:       12 * time.Second,
		Shutdown:   3 * time.Second,
		Jitter:     0.2,
	}
}

// Config holds a fleet's settings; every zero value is documented.
type Config struct {
	// Timings apply to every machine; the zero value is instant.
	Timings Timings
	// BMCTimeout is how long an injected hang lasts; zero means 5s.
	BMCTimeout time.Duration
	// PXEConfigured, when set, is asked at each PXE boot whether a boot
	// config exists for a MAC (pxe.Configs.Configured); a machine none of
	// whose MACs has one falls through to its disk, as boot.ipxe makes real
	// machines do. Nil means every PXE boot finds its config.
	PXEConfigured func(mac string) bool
	// Logger receives one debug record per machine added; nil discards.
	Logger *slog.Logger
}

// Fleet is a set of simulated machines, looked up by name or MAC. It owns
// the goroutines its machines start; Close stops and waits for them.
type Fleet struct {
	cfg    Config
	base   context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.RWMutex
	closed bool
	byName map[string]*Machine
	byMAC  map[string]*Machine
}

// NewFleet returns an empty fleet.
func NewFleet(cfg Config) *Fleet {
	if cfg.BMCTimeout <= 0 {
		cfg.BMCTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Fleet{cfg: cfg, base: ctx, cancel: cancel, byName: map[string]*Machine{}, byMAC: map[string]*Machine{}}
}

// Add creates a machine, powered off, booting from disk, with the given
// NICs. Names and MACs are unique in the fleet.
func (f *Fleet) Add(name string, macs ...string) (*Machine, error) {
	if name == "" || strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' }) {
		return nil, fmt.Errorf("sim: machine name %q is empty or has spaces", name)
	}
	norm := make([]string, 0, len(macs))
	for _, mac := range macs {
		hw, err := net.ParseMAC(mac)
		if err != nil {
			return nil, fmt.Errorf("sim: machine %s: %w", name, err)
		}
		norm = append(norm, hw.String())
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, ErrClosed
	}
	if _, ok := f.byName[name]; ok {
		return nil, fmt.Errorf("%w: name %s", ErrDuplicate, name)
	}
	for _, mac := range norm {
		if other, ok := f.byMAC[mac]; ok {
			return nil, fmt.Errorf("%w: MAC %s is %s's", ErrDuplicate, mac, other.name)
		}
	}
	m := &Machine{
		fleet: f, name: name, macs: norm,
		power: wire.PowerOff, persistent: wire.BootDisk,
		fails: map[Op]int{}, hangs: map[Op]int{},
	}
	f.byName[name] = m
	for _, mac := range norm {
		f.byMAC[mac] = m
	}
	f.cfg.Logger.Debug("simulated machine added", "machine", name, "macs", norm)
	return m, nil
}

// Machine returns the machine called name.
func (f *Fleet) Machine(name string) (*Machine, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	m, ok := f.byName[name]
	return m, ok
}

// ByMAC returns the machine with a NIC of that MAC (any notation).
func (f *Fleet) ByMAC(mac string) (*Machine, bool) {
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return nil, false
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	m, ok := f.byMAC[hw.String()]
	return m, ok
}

// Machines returns every machine, by name.
func (f *Fleet) Machines() []*Machine {
	f.mu.RLock()
	ms := make([]*Machine, 0, len(f.byName))
	for _, m := range f.byName {
		ms = append(ms, m)
	}
	f.mu.RUnlock()
	sort.Slice(ms, func(i, j int) bool { return ms[i].name < ms[j].name })
	return ms
}

// Validate checks a "sim" driver_info without looking at any fleet: it
// must name a machine.
func Validate(driverInfo map[string]any) error {
	_, err := machineName(driverInfo)
	return err
}

func machineName(driverInfo map[string]any) (string, error) {
	v, ok := driverInfo[KeyMachine]
	name, isStr := v.(string)
	if !ok || !isStr || strings.TrimSpace(name) == "" {
		return "", wire.Errorf(wire.CodeInvalidInput, "%w: %s must name a simulated machine", ErrInvalidInfo, KeyMachine)
	}
	return strings.TrimSpace(name), nil
}

// ValidateDriverInfo checks that driverInfo names a machine of this fleet.
func (f *Fleet) ValidateDriverInfo(driverInfo map[string]any) error {
	_, err := f.lookup(driverInfo)
	return err
}

// NodePower returns the machine node's driver_info names; it is the
// node's Power.
func (f *Fleet) NodePower(node wire.Node) (*Machine, error) {
	m, err := f.lookup(node.DriverInfo)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", node.UUID, err)
	}
	return m, nil
}

func (f *Fleet) lookup(driverInfo map[string]any) (*Machine, error) {
	name, err := machineName(driverInfo)
	if err != nil {
		return nil, err
	}
	m, ok := f.Machine(name)
	if !ok {
		return nil, wire.Errorf(wire.CodeInvalidInput, "%w %q", ErrUnknownMachine, name)
	}
	return m, nil
}

// Close cancels every running boot (BootFuncs see their context end),
// waits for their goroutines, and refuses to power machines on afterwards.
func (f *Fleet) Close() {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	f.cancel()
	f.wg.Wait()
}

// untilClosed returns a context with ctx's values that ends only when the
// fleet closes: for actions that complete once started.
func (f *Fleet) untilClosed(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(f.base, cancel)
	return ctx, func() { stop(); cancel() }
}

// startBoot returns the context of a new boot and counts its goroutine.
func (f *Fleet) startBoot() (context.Context, context.CancelFunc, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return nil, nil, ErrClosed
	}
	f.wg.Add(1)
	ctx, cancel := context.WithCancel(f.base)
	return ctx, cancel, nil
}

// sleep waits d (jittered) or until ctx ends.
func (f *Fleet) sleep(ctx context.Context, d time.Duration) error {
	return wait.Sleep(ctx, jitter(d, f.cfg.Timings.Jitter))
}
