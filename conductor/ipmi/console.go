package ipmi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ironfleet/ironfleet/transport/wire"
)

// KeyTerminalPort is the driver_info key naming the node's own console
// port (Ironic's ipmi_terminal_port); without it the conductor takes one
// from its console port range.
const KeyTerminalPort = "ipmi_terminal_port"

// DefaultTerminalTimeout is Ironic's [console]terminal_timeout: a console
// connection idle this long is closed by socat.
const DefaultTerminalTimeout = 600 * time.Second

// SocatConfig configures the ipmitool-socat console; every zero value
// means the documented default.
type SocatConfig struct {
	// Socat and IPMITool are the binaries run; empty means "socat" and
	// "ipmitool" found on PATH.
	Socat, IPMITool string
	// TerminalTimeout closes a connection idle this long (socat -T); zero
	// means DefaultTerminalTimeout, negative means never.
	TerminalTimeout time.Duration
	// Dir holds the per-console scripts socat runs; empty means
	// os.TempDir().
	Dir string
	// StartTimeout bounds how long socat may take to listen; zero means 10s.
	StartTimeout time.Duration
	// Logger receives socat's own messages at debug level; nil means
	// slog.Default().
	Logger *slog.Logger
}

// SocatConsole is Ironic's ipmitool-socat console interface
// (ironic/drivers/modules/ipmitool.py IPMISocatConsole,
// console_utils.py start_socat_console): socat listens on the node's
// console port, one connection at a time (fork,max-children=1), and runs
// `ipmitool … sol activate` on a pty for each. The password reaches
// ipmitool in its environment (-E, IPMI_PASSWORD), never on a command line
// or in a file. Ironic drops a stale SOL session with `sol deactivate`
// before it starts the console and whenever its URL is read; here each
// connection does it first, so a client that went away without ending its
// session never locks the next one out.
type SocatConsole struct {
	cfg SocatConfig
}

// NewSocatConsole returns the ipmitool-socat console. The binaries are
// looked up when a console starts, so that their absence is that
// console's error (the node's last_error), as in Ironic.
func NewSocatConsole(cfg SocatConfig) *SocatConsole {
	if cfg.Socat == "" {
		cfg.Socat = "socat"
	}
	if cfg.IPMITool == "" {
		cfg.IPMITool = "ipmitool"
	}
	if cfg.TerminalTimeout == 0 {
		cfg.TerminalTimeout = DefaultTerminalTimeout
	}
	if cfg.Dir == "" {
		cfg.Dir = os.TempDir()
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &SocatConsole{cfg: cfg}
}

// TerminalPort is the node's ipmi_terminal_port, or 0.
func (s *SocatConsole) TerminalPort(node wire.Node) int {
	info, err := ParseInfo(node.DriverInfo)
	if err != nil {
		return 0 // StartConsole reports it
	}
	return info.TerminalPort
}

// SocatSession is one running socat console.
type SocatSession struct {
	cmd    *exec.Cmd
	script string
	done   chan struct{}
	once   sync.Once
}

// Done is closed when socat has exited.
func (s *SocatSession) Done() <-chan struct{} { return s.done }

// Stop ends socat and every ipmitool it runs (its process group), and
// waits for it.
func (s *SocatSession) Stop() {
	s.once.Do(func() {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.done
		}
		_ = os.Remove(s.script)
	})
}

// StartConsole runs socat for node's console on addr (host:port) and
// returns once socat listens. socat failing to listen (the port is busy)
// is an error wrapping syscall.EADDRINUSE.
func (s *SocatConsole) StartConsole(ctx context.Context, node wire.Node, addr string) (*SocatSession, error) {
	info, err := ParseInfo(node.DriverInfo)
	if err != nil {
		return nil, err
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("ipmi: console address %q: %w", addr, err)
	}
	socat, err := exec.LookPath(s.cfg.Socat)
	if err != nil {
		return nil, fmt.Errorf("ipmi: socat console: %w", err)
	}
	ipmitool, err := exec.LookPath(s.cfg.IPMITool)
	if err != nil {
		return nil, fmt.Errorf("ipmi: socat console: %w", err)
	}
	script, err := s.writeScript(node.UUID, ipmitool, info)
	if err != nil {
		return nil, err
	}
	listen := "TCP4-LISTEN:" + port + ",bind=" + host
	if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
		listen = "TCP6-LISTEN:" + port + ",bind=[" + host + "]"
	}
	args := []string{"-d", "-d"}
	if s.cfg.TerminalTimeout > 0 {
		args = append(args, "-T"+strconv.Itoa(int(s.cfg.TerminalTimeout.Seconds())))
	}
	args = append(args, listen+",reuseaddr,fork,max-children=1", "EXEC:"+escapeSocat(script)+",pty,stderr")
	//nolint:gosec,noctx // socat and ipmitool by design; the console outlives ctx, Stop ends it
	cmd := exec.Command(socat, args...)
	cmd.Env = append(os.Environ(), "IPMI_PASSWORD="+string(info.Password))
	// Its own process group, so that Stop reaches the ipmitools it forks;
	// it dies with the conductor (which restores it when it comes back).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		_ = os.Remove(script)
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		_ = os.Remove(script)
		return nil, fmt.Errorf("ipmi: start socat: %w", err)
	}
	sess := &SocatSession{cmd: cmd, script: script, done: make(chan struct{})}
	listening := make(chan struct{})
	var lines []string // socat's messages until it listens, for the error
	var mu sync.Mutex
	log := s.cfg.Logger.With("node", node.UUID, "console", addr)
	go func() {
		sc := bufio.NewScanner(stderr)
		ready := false
		for sc.Scan() {
			line := sc.Text()
			if !ready {
				mu.Lock()
				lines = append(lines, line)
				mu.Unlock()
				if strings.Contains(line, "listening on") {
					ready = true
					close(listening)
				}
			}
			log.Debug("socat", "msg", line)
		}
		_, _ = io.Copy(io.Discard, stderr)
		_ = cmd.Wait()
		close(sess.done)
	}()
	timer := time.NewTimer(s.cfg.StartTimeout)
	defer timer.Stop()
	select {
	case <-listening:
		return sess, nil
	case <-sess.done:
	case <-ctx.Done():
	case <-timer.C:
	}
	sess.Stop()
	mu.Lock()
	out := strings.Join(lines, "; ")
	mu.Unlock()
	if strings.Contains(out, "Address already in use") {
		return nil, fmt.Errorf("ipmi: socat could not listen on %s: %w", addr, syscall.EADDRINUSE)
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("ipmi: socat console on %s: %w", addr, context.Cause(ctx))
	}
	return nil, fmt.Errorf("ipmi: socat did not listen on %s: %s", addr, out)
}

// writeScript writes the program socat runs for each connection: drop a
// stale SOL session, then activate one. It holds no secret.
func (s *SocatConsole) writeScript(node, ipmitool string, info Info) (string, error) {
	base := []string{ipmitool, "-I", "lanplus", "-H", info.Address, "-p", strconv.Itoa(info.Port),
		"-C", strconv.Itoa(info.CipherSuite), "-L", info.PrivLevel}
	if info.Username != "" {
		base = append(base, "-U", info.Username)
	}
	base = append(base, "-E")
	q := make([]string, len(base))
	for i, a := range base {
		q[i] = shellQuote(a)
	}
	cmd := strings.Join(q, " ")
	body := "#!/bin/sh\n# ironfleet: the serial console of node " + node + "\n" +
		cmd + " sol deactivate >/dev/null 2>&1\n" +
		"exec " + cmd + " sol activate\n"
	f, err := os.CreateTemp(s.cfg.Dir, "ironfleet-console-*.sh")
	if err != nil {
		return "", fmt.Errorf("ipmi: console script: %w", err)
	}
	_, werr := f.WriteString(body)
	cerr := f.Close()
	if err := errors.Join(werr, cerr, os.Chmod(f.Name(), 0o700)); err != nil { //nolint:gosec // an executable script by design
		_ = os.Remove(f.Name())
		return "", fmt.Errorf("ipmi: console script: %w", err)
	}
	return filepath.Clean(f.Name()), nil
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// escapeSocat escapes socat's address metacharacters in a path
// (console_utils._escape_socat_console_cmd's set).
func escapeSocat(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`,:!'"()[]{}\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
