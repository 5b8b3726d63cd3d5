package lab

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ironfleet/ironfleet/internal/wait"
)

//go:embed chassis.sh
var chassisScript []byte

// ErrNoQEMU is wrapped when qemu-system-x86_64 is not installed.
var ErrNoQEMU = errors.New("lab: qemu-system-x86_64 not found on PATH (Debian: apt-get install qemu-system-x86 ipxe-qemu)")

// MachineConfig describes one emulated machine. Dir and MAC are required.
type MachineConfig struct {
	// Dir holds the machine's files: disk, serial log, pidfile, chassis
	// program and its log.
	Dir string
	// MAC of the virtio NIC, e.g. 52:54:00:12:34:56.
	MAC string
	// DiskSize is the size of the blank (sparse) virtio disk; zero means 64 MiB.
	DiskSize int64
	// MemoryMiB is the guest's memory; zero means 512.
	MemoryMiB int
	// TFTP is the host address ("127.0.0.1:6969") of the TFTP server the
	// NIC's iPXE fetches boot.ipxe from when it PXE-boots; the guest sees
	// the host as 10.0.2.2 (QEMU user networking). Empty: no boot file.
	TFTP string
	// AgentPort, when not zero, forwards host 127.0.0.1:AgentPort to the
	// guest's port 9999 (the agent's command API), which the host could not
	// reach otherwise: QEMU's user network only lets the guest out.
	AgentPort int
	// Kernel, Initrd and Append boot a kernel directly instead of the
	// firmware's boot order (to test a ramdisk without PXE).
	Kernel, Initrd, Append string
	// SerialLine, when not empty, connects the serial port as a client to
	// this host:port (a SerialLine's MachineAddr, where the BMC's SOL is
	// on the other end), reconnecting every second until it is there; the
	// serial log goes on being appended to Machine.Serial.
	SerialLine string
	// QEMU is the binary; empty means qemu-system-x86_64 on PATH.
	QEMU string
	// Owner is the process the machine belongs to: when it dies, a
	// watchdog started with QEMU kills the VM (which is daemonized and
	// would survive it). Zero means no watchdog.
	Owner int
	// Firmware is what the machine boots with at its next power-on:
	// FirmwareBIOS (SeaBIOS, also what "" means) or FirmwareUEFI (OVMF).
	// SetFirmware changes it between power-ons, as an operator does in
	// the firmware's setup.
	Firmware string
	// OVMFCode and OVMFVars are the UEFI firmware and the template of its
	// variable store (copied per machine, kept across power cycles as a
	// real machine's NVRAM is); empty means Debian's ovmf 4 MiB build.
	OVMFCode, OVMFVars string
	// ExtraDisks are blank virtio disks after the first (vdb, vdc, …), each
	// with the serial number the guest reads, which root device hints
	// match. The firmware boots them before the first disk (boot index
	// 1, 2, … in QEMU's boot order), and the NIC before them when the BMC
	// asked for PXE.
	ExtraDisks []DiskConfig
}

// DiskConfig is a machine's additional disk.
type DiskConfig struct {
	// Size of the blank (sparse) disk; zero means 64 MiB.
	Size int64
	// Serial is the virtio-blk serial number (/sys/block/vdX/serial); at
	// most 20 characters, letters, digits, "-" and "_".
	Serial string
}

// Firmware kinds of MachineConfig.Firmware and SetFirmware.
const (
	FirmwareBIOS = "bios"
	FirmwareUEFI = "uefi"
)

// Debian's ovmf package: the firmware and its variable store template.
const (
	DefaultOVMFCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	DefaultOVMFVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// ErrNoOVMF is wrapped when a UEFI machine's firmware is not installed.
var ErrNoOVMF = errors.New("lab: OVMF not found (Debian: apt-get install ovmf)")

// Machine is a QEMU VM with a blank disk and one NIC, powered on and off by
// its chassis program, which ipmi_sim runs (ipmitest.WithChassisProgram)
// or a test runs directly (PowerOn, PowerOff). QEMU runs daemonized, so it
// outlives whoever started it: Kill it when done.
type Machine struct {
	// Dir is the machine's directory; Disk its raw disk image; Serial the
	// file its serial console is appended to; Program its chassis program.
	Dir, Disk, Serial, Program string
	// MAC is the NIC's address.
	MAC string
	// ExtraDisks are the raw images of MachineConfig.ExtraDisks, in order.
	ExtraDisks []string
}

// NewMachine writes a machine's disk and chassis program under cfg.Dir. It
// starts nothing.
func NewMachine(cfg MachineConfig) (*Machine, error) {
	if cfg.Dir == "" {
		return nil, errors.New("lab: MachineConfig.Dir is required")
	}
	hw, err := net.ParseMAC(cfg.MAC)
	if err != nil || len(hw) != 6 {
		return nil, fmt.Errorf("lab: MAC %q is not an Ethernet MAC address", cfg.MAC)
	}
	if cfg.DiskSize <= 0 {
		cfg.DiskSize = 64 << 20
	}
	if cfg.MemoryMiB <= 0 {
		cfg.MemoryMiB = 512
	}
	if cfg.QEMU == "" {
		cfg.QEMU = "qemu-system-x86_64"
	}
	bin, err := exec.LookPath(cfg.QEMU)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoQEMU, err)
	}
	for _, s := range []string{cfg.Dir, cfg.Kernel, cfg.Initrd, cfg.Append, cfg.TFTP} {
		if strings.ContainsAny(s, "'\n\\$`\"") {
			return nil, fmt.Errorf("lab: machine setting %q contains quotes, $ or line breaks", s)
		}
	}
	m := &Machine{
		Dir:     cfg.Dir,
		Disk:    filepath.Join(cfg.Dir, "disk.raw"),
		Serial:  filepath.Join(cfg.Dir, "serial.log"),
		Program: filepath.Join(cfg.Dir, "chassis.sh"),
		MAC:     hw.String(),
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(m.Disk, nil, 0o600); err != nil {
		return nil, err
	}
	if err := os.Truncate(m.Disk, cfg.DiskSize); err != nil {
		return nil, err
	}
	netdev := "user,id=n0"
	if cfg.TFTP != "" {
		_, port, err := net.SplitHostPort(cfg.TFTP)
		if err != nil {
			return nil, fmt.Errorf("lab: TFTP address %q: %w", cfg.TFTP, err)
		}
		netdev += ",bootfile=tftp://10.0.2.2:" + port + "/boot.ipxe"
	}
	if cfg.AgentPort != 0 {
		netdev += ",hostfwd=tcp:127.0.0.1:" + strconv.Itoa(cfg.AgentPort) + "-:9999"
	}
	serial := "file,id=s0,append=on,path=" + m.Serial
	if cfg.SerialLine != "" {
		host, port, err := net.SplitHostPort(cfg.SerialLine)
		if err != nil {
			return nil, fmt.Errorf("lab: serial line %q: %w", cfg.SerialLine, err)
		}
		serial = "socket,id=s0,host=" + host + ",port=" + port +
			",server=off,reconnect=1,logfile=" + m.Serial + ",logappend=on"
	}
	args := []string{
		"-accel", "tcg", "-m", strconv.Itoa(cfg.MemoryMiB), "-smp", "1", "-nodefaults", "-display", "none",
		"-chardev", serial, "-serial", "chardev:s0",
		"-netdev", netdev, "-device", "virtio-net-pci,netdev=n0,mac=" + m.MAC,
		// No image locking: a power cycle starts the next QEMU while the
		// killed one may still be releasing the file.
		"-drive", "file=" + m.Disk + ",if=virtio,format=raw,file.locking=off",
	}
	owner := ""
	if cfg.Owner > 0 {
		owner = strconv.Itoa(cfg.Owner)
	}
	env := fmt.Sprintf("QEMU='%s'\nQEMU_ARGS='%s'\nKERNEL='%s'\nINITRD='%s'\nAPPEND='%s'\nOWNER='%s'\n",
		bin, strings.Join(args, " "), cfg.Kernel, cfg.Initrd, cfg.Append, owner)
	extra, err := m.extraSettings(cfg)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(cfg.Dir, "machine.env"), []byte(env+extra), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(m.Program, chassisScript, 0o700); err != nil { //nolint:gosec // an executable script by design
		return nil, err
	}
	return m, nil
}

// extraSettings creates the extra disks and the firmware choice and
// returns their machine.env lines: EXTRA_ARGS (the disks), OVMF_CODE and
// OVMF_VARS, read by the chassis program at each power-on.
func (m *Machine) extraSettings(cfg MachineConfig) (string, error) {
	if cfg.OVMFCode == "" {
		cfg.OVMFCode = DefaultOVMFCode
	}
	if cfg.OVMFVars == "" {
		cfg.OVMFVars = DefaultOVMFVars
	}
	var args []string
	for i, d := range cfg.ExtraDisks {
		if d.Size <= 0 {
			d.Size = 64 << 20
		}
		if len(d.Serial) > 20 || strings.ContainsFunc(d.Serial, func(r rune) bool {
			return (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && r != '-' && r != '_'
		}) {
			return "", fmt.Errorf("lab: disk serial %q: at most 20 letters, digits, - or _", d.Serial)
		}
		p := filepath.Join(m.Dir, fmt.Sprintf("disk%d.raw", i+1))
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			return "", err
		}
		if err := os.Truncate(p, d.Size); err != nil {
			return "", err
		}
		m.ExtraDisks = append(m.ExtraDisks, p)
		// A PCI slot after the first disk's: QEMU creates -device disks
		// before -drive if=virtio ones, and the guest names disks in
		// slot order, so the first disk would not be vda otherwise.
		dev := fmt.Sprintf("virtio-blk-pci,drive=xd%d,bootindex=%d,addr=0x%x", i+1, i+1, 0x10+i)
		if d.Serial != "" {
			dev += ",serial=" + d.Serial
		}
		args = append(args, "-drive", fmt.Sprintf("file=%s,if=none,id=xd%d,format=raw,file.locking=off", p, i+1), "-device", dev)
	}
	for _, s := range []string{cfg.OVMFCode, cfg.OVMFVars} {
		if strings.ContainsAny(s, "'\n\\$`\",") {
			return "", fmt.Errorf("lab: OVMF path %q contains quotes, commas, $ or line breaks", s)
		}
	}
	if cfg.Firmware == FirmwareUEFI {
		for _, f := range []string{cfg.OVMFCode, cfg.OVMFVars} {
			if _, err := os.Stat(f); err != nil {
				return "", fmt.Errorf("%w: %w", ErrNoOVMF, err)
			}
		}
	}
	if err := m.SetFirmware(cfg.Firmware); err != nil {
		return "", err
	}
	bootIndex := ""
	if len(args) > 0 {
		bootIndex = "1"
	}
	return fmt.Sprintf("EXTRA_ARGS='%s'\nBOOTINDEX='%s'\nOVMF_CODE='%s'\nOVMF_VARS='%s'\n", strings.Join(args, " "), bootIndex, cfg.OVMFCode, cfg.OVMFVars), nil
}

// SetFirmware sets the firmware the machine boots with from its next
// power-on: FirmwareBIOS ("" too) or FirmwareUEFI.
func (m *Machine) SetFirmware(fw string) error {
	switch fw {
	case "", FirmwareBIOS:
		fw = FirmwareBIOS
	case FirmwareUEFI:
	default:
		return fmt.Errorf("lab: firmware %q is not %s or %s", fw, FirmwareBIOS, FirmwareUEFI)
	}
	return os.WriteFile(filepath.Join(m.Dir, "firmware"), []byte(fw+"\n"), 0o600)
}

// chassis runs the chassis program as ipmi_sim would.
func (m *Machine) chassis(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, m.Program, append([]string{m.Dir}, args...)...).Output() //nolint:gosec // our own program
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			errOut, _ := os.ReadFile(filepath.Join(m.Dir, "qemu.err"))
			return "", fmt.Errorf("lab: chassis %s: %w: %s%s", strings.Join(args, " "), err, ee.Stderr, errOut)
		}
		return "", fmt.Errorf("lab: chassis %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}

// PowerOn starts the machine (booting from the network once when its boot
// device is "pxe"), as the BMC's chassis power-up does.
func (m *Machine) PowerOn(ctx context.Context) error {
	_, err := m.chassis(ctx, "set", "power", "1")
	return err
}

// SetBootDevice records the device of the next boot ("pxe", "default").
func (m *Machine) SetBootDevice(ctx context.Context, dev string) error {
	_, err := m.chassis(ctx, "set", "boot", dev)
	return err
}

// Running reports whether the QEMU process is alive.
func (m *Machine) Running(ctx context.Context) (bool, error) {
	out, err := m.chassis(ctx, "get", "power")
	return out == "power:1", err
}

// BootDevice is the boot device the BMC last set, as ipmi_sim passes it
// ("pxe", "default" for the disk), "" when never set. A PXE boot consumes
// "pxe": the machine records "default" once it has started from the network.
func (m *Machine) BootDevice() string {
	b, err := os.ReadFile(filepath.Join(m.Dir, "boot"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// Kill stops QEMU if it runs. Call it in t.Cleanup: the daemonized QEMU is
// nobody's child and would outlive the test.
func (m *Machine) Kill() {
	b, err := os.ReadFile(filepath.Join(m.Dir, "qemu.pid"))
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

// ChassisEvent is one line of the chassis program's log: what the BMC told
// the machine, and when.
type ChassisEvent struct {
	At   time.Time
	What string // "set power 1", "started once=n,order=c", "stopped", …
}

// ChassisLog reads the chassis program's log.
func (m *Machine) ChassisLog() ([]ChassisEvent, error) {
	b, err := os.ReadFile(filepath.Join(m.Dir, "chassis.log"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var evs []ChassisEvent
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		ts, what, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(ts, 64)
		if err != nil {
			continue
		}
		sec := int64(f)
		evs = append(evs, ChassisEvent{At: time.Unix(sec, int64((f-float64(sec))*1e9)), What: what})
	}
	return evs, sc.Err()
}

// SerialSize is how much the serial console has printed so far: an offset
// for SerialContains and WaitSerial to look past (the log spans every boot).
func (m *Machine) SerialSize() int64 {
	st, err := os.Stat(m.Serial)
	if err != nil {
		return 0
	}
	return st.Size()
}

// SerialContains reports whether the serial console has printed marker
// after offset from.
func (m *Machine) SerialContains(marker string, from int64) bool {
	b, err := os.ReadFile(m.Serial)
	if err != nil || int64(len(b)) < from {
		return false
	}
	return bytes.Contains(b[from:], []byte(marker))
}

// WaitSerial waits until the serial console prints marker after offset
// from, or ctx ends.
func (m *Machine) WaitSerial(ctx context.Context, marker string, from int64, poll time.Duration) error {
	for {
		if m.SerialContains(marker, from) {
			return nil
		}
		if err := wait.Sleep(ctx, poll); err != nil {
			return fmt.Errorf("lab: %q not on the serial console: %w", marker, err)
		}
	}
}
