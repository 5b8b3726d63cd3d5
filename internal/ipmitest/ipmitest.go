// Package ipmitest gives a test its own real BMC: Debian's ipmi_sim (package
// openipmi) on a free UDP port of 127.0.0.1, speaking IPMI 2.0 lanplus.
//
// Start writes an ipmi_sim LAN config, an emulator command file and a
// chassis_control program into t.TempDir(), runs `ipmi_sim -c … -f … -s … -n`
// as a child process that dies with the test process, waits until it answers
// a session handshake, and kills it in t.Cleanup.
//
// The default chassis_control program is a small shell script that records
// what the BMC was told in files of the harness directory (see PowerOn,
// BootDevice, Calls) and returns at once, as ipmi_sim requires: it is
// single-threaded and reads the program's output to EOF. WithChassisProgram
// plugs in another program (one that starts a QEMU VM, say); it is run as
// `<program> <dir> get power|boot` and `<program> <dir> set <what> <value>`,
// where dir is the harness directory, and must answer as the default one does.
//
// When ipmi_sim is not installed the test is skipped with the reason, except
// under CI=true, where it fails (redistest.Unavailable). `make test` installs
// openipmi when it is missing.
package ipmitest

import (
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
	"testing"
	"time"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/types"

	"github.com/ironfleet/ironfleet/internal/redistest"
)

// Default credentials of the simulated BMC's administrator.
const (
	DefaultUsername = "admin"
	DefaultPassword = "sim-bmc-secret" //nolint:gosec // a test BMC's password
)

//go:embed chassis.sh
var chassisScript []byte

// ErrNotInstalled is reported (through redistest.Unavailable) when no
// ipmi_sim binary is found.
var ErrNotInstalled = errors.New("ipmitest: ipmi_sim not found on PATH (Debian: apt-get install openipmi)")

// BMC is a running ipmi_sim owned by one test.
type BMC struct {
	// Host and Port are where the BMC listens (UDP, lanplus).
	Host string
	Port int
	// Username and Password are the administrator's credentials.
	Username string
	Password string
	// Dir is the harness directory: config, state files, the ipmi_sim log.
	Dir string

	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Option changes how Start runs the BMC.
type Option func(*config)

type config struct {
	program  string
	user     string
	password string
	binary   string
	sol      string
}

// WithChassisProgram makes ipmi_sim run program for power and boot device
// control instead of the built-in state-recording script.
func WithChassisProgram(program string) Option {
	return func(c *config) { c.program = program }
}

// WithCredentials sets the administrator's user name and password.
// ipmi_sim silently refuses every session when the password is longer than
// 16 characters, so keep it to 16.
func WithCredentials(user, password string) Option {
	return func(c *config) { c.user, c.password = user, password }
}

// WithSOL gives the BMC a Serial-over-LAN interface (ipmi_lan(5)'s sol
// directive) on device: a serial device path, or "tcp:host:port", to which
// ipmi_sim connects (and keeps reconnecting) as a client — a QEMU
// machine's TCP serial chardev, or a test's own listener standing in for
// one. `ipmitool sol activate` then streams it both ways.
func WithSOL(device string) Option {
	return func(c *config) { c.sol = device }
}

// Start runs a private ipmi_sim for tb and kills it when tb ends.
func Start(tb testing.TB, opts ...Option) *BMC {
	tb.Helper()
	cfg := config{user: DefaultUsername, password: DefaultPassword, binary: "ipmi_sim"}
	for _, o := range opts {
		o(&cfg)
	}
	if len(cfg.user) > 16 || len(cfg.password) > 16 || strings.ContainsAny(cfg.user+cfg.password+cfg.sol, "\"\n") {
		tb.Fatalf("ipmitest: user name and password must be at most 16 characters, without quotes or line breaks")
	}
	bin, err := exec.LookPath(cfg.binary)
	if err != nil {
		redistest.Unavailable(tb, fmt.Errorf("%w: %w", ErrNotInstalled, err))
		return nil
	}
	dir := tb.TempDir()
	if cfg.program == "" {
		cfg.program = filepath.Join(dir, "chassis.sh")
		if err := os.WriteFile(cfg.program, chassisScript, 0o700); err != nil { //nolint:gosec // an executable script by design
			tb.Fatalf("ipmitest: %v", err)
		}
	}
	b := &BMC{Host: "127.0.0.1", Username: cfg.user, Password: cfg.password, Dir: dir}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	// The free port is found by binding and releasing it; another process
	// may take it in between, so try a few times.
	for attempt := 1; ; attempt++ {
		err = b.start(ctx, bin, cfg)
		if err == nil || attempt == 3 {
			break
		}
	}
	if err != nil {
		tb.Fatalf("ipmitest: %v", err)
	}
	tb.Cleanup(b.kill)
	return b
}

func freeUDPPort(ctx context.Context) (int, error) {
	var lc net.ListenConfig
	c, err := lc.ListenPacket(ctx, "udp4", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

func (b *BMC) start(ctx context.Context, bin string, cfg config) error {
	port, err := freeUDPPort(ctx)
	if err != nil {
		return fmt.Errorf("free port: %w", err)
	}
	b.Port = port
	conf := filepath.Join(b.Dir, "lan.conf")
	emu := filepath.Join(b.Dir, "emu.cmd")
	state := filepath.Join(b.Dir, "state")
	if err := os.MkdirAll(state, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(conf, []byte(lanConfig(port, b.Dir, cfg)), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(emu, []byte(emuCommands), 0o600); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(b.Dir, "ipmi_sim.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	//nolint:noctx // the BMC outlives the start context; kill ends it.
	cmd := exec.Command(bin, "-c", conf, "-f", emu, "-s", state, "-n")
	cmd.Dir = b.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	b.cmd, b.done = cmd, make(chan struct{})
	go func() {
		b.err = cmd.Wait()
		close(b.done)
	}()
	if err := b.waitReady(ctx); err != nil {
		b.kill()
		return err
	}
	return nil
}

func (b *BMC) waitReady(ctx context.Context) error {
	var last error
	for {
		last = b.ping(ctx)
		if last == nil {
			return nil
		}
		select {
		case <-b.done:
			log, _ := os.ReadFile(filepath.Join(b.Dir, "ipmi_sim.log"))
			return fmt.Errorf("ipmi_sim exited during start (%w): %s", b.err, strings.TrimSpace(string(log)))
		case <-ctx.Done():
			return fmt.Errorf("ipmi_sim not answering on %s:%d: %w (last error: %w)", b.Host, b.Port, ctx.Err(), last)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// ping opens and closes a lanplus session.
func (b *BMC) ping(ctx context.Context) error {
	c, err := client.NewClient(b.Host, b.Port, b.Username, b.Password)
	if err != nil {
		return err
	}
	c.WithCipherSuiteID(types.CipherSuiteID3).WithTimeout(100 * time.Millisecond).WithRetry(0)
	if err := c.Connect(ctx); err != nil {
		return err
	}
	return c.Close(ctx)
}

func (b *BMC) kill() {
	if b.cmd == nil {
		return
	}
	select {
	case <-b.done:
		return
	default:
	}
	// The whole process group: ipmi_sim and any chassis program it runs.
	_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
	<-b.done
}

// DriverInfo returns a node driver_info for this BMC, with cipher suite 3
// (ipmi_sim does not support 17 nor answer cipher suite discovery).
func (b *BMC) DriverInfo() map[string]any {
	return map[string]any{
		"ipmi_address":      b.Host,
		"ipmi_port":         b.Port,
		"ipmi_username":     b.Username,
		"ipmi_password":     b.Password,
		"ipmi_cipher_suite": 3,
	}
}

// PowerOn reports the power state the default chassis program holds.
func (b *BMC) PowerOn(tb testing.TB) bool {
	tb.Helper()
	return b.readState(tb, "power") == "1"
}

// SetPowerOn changes the recorded power state behind the BMC's back, as a
// machine that loses power or is switched on by hand would.
func (b *BMC) SetPowerOn(tb testing.TB, on bool) {
	tb.Helper()
	v := "0"
	if on {
		v = "1"
	}
	b.writeState(tb, "power", v)
}

// BootDevice reports the boot device ipmi_sim last passed to the chassis
// program, as it spells it: "pxe", "default" (IPMI "force hard drive"),
// "cdrom", "bios", "none", or "" when never set.
func (b *BMC) BootDevice(tb testing.TB) string {
	tb.Helper()
	return b.readState(tb, "boot")
}

// Calls returns the chassis program's invocations in order, without the
// directory argument: "get power", "set power 1", "set boot pxe", ….
func (b *BMC) Calls(tb testing.TB) []string {
	tb.Helper()
	s := b.readState(tb, "calls.log")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// FailNextSets makes the default chassis program fail its next n "set"
// invocations; ipmi_sim answers those requests with completion code 0xff.
func (b *BMC) FailNextSets(tb testing.TB, n int) {
	tb.Helper()
	b.writeState(tb, "fail", strconv.Itoa(n))
}

// Freeze stops the ipmi_sim process (SIGSTOP): the BMC stops answering, as
// one that hangs or is unreachable does. Thaw resumes it.
func (b *BMC) Freeze(tb testing.TB) {
	tb.Helper()
	if err := b.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		tb.Fatalf("ipmitest: freeze: %v", err)
	}
	tb.Cleanup(func() { _ = b.cmd.Process.Signal(syscall.SIGCONT) })
}

// Thaw resumes a BMC stopped by Freeze.
func (b *BMC) Thaw(tb testing.TB) {
	tb.Helper()
	if err := b.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		tb.Fatalf("ipmitest: thaw: %v", err)
	}
}

func (b *BMC) readState(tb testing.TB, name string) string {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join(b.Dir, name)) //nolint:gosec // the harness's own files
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	if err != nil {
		tb.Fatalf("ipmitest: %v", err)
	}
	return strings.TrimSpace(string(data))
}

func (b *BMC) writeState(tb testing.TB, name, value string) {
	tb.Helper()
	if err := os.WriteFile(filepath.Join(b.Dir, name), []byte(value+"\n"), 0o600); err != nil {
		tb.Fatalf("ipmitest: %v", err)
	}
}

func lanConfig(port int, dir string, cfg config) string {
	sol := ""
	if cfg.sol != "" {
		sol = fmt.Sprintf("sol \"%s\" 115200\n", cfg.sol)
	}
	return fmt.Sprintf(`# ipmi_lan(5) config written by ironfleet's ipmitest
name "ironfleet-sim"
set_working_mc 0x20
startlan 1
  addr 127.0.0.1 %d
  priv_limit admin
  allowed_auths_callback none md2 md5 straight
  allowed_auths_user none md2 md5 straight
  allowed_auths_operator none md2 md5 straight
  allowed_auths_admin none md2 md5 straight
  guid a123456789abcdefa123456789abcdef
endlan
chassis_control "%s %s"
user 2 true "%s" "%s" admin 10 none md2 md5 straight
`, port, cfg.program, dir, cfg.user, cfg.password) + sol
}

// emuCommands is the ipmi_sim_cmd(5) file: one BMC at 0x20.
const emuCommands = `mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr
sel_enable 0x20 1000 0x0a
mc_enable 0x20
`
