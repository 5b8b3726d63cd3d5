package conductor_test

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/conductor"
	"github.com/ironfleet/ironfleet/conductor/ipmi"
	"github.com/ironfleet/ironfleet/internal/hardware"
	"github.com/ironfleet/ironfleet/internal/ipmitest"
	"github.com/ironfleet/ironfleet/lock"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// serialPort stands in for a machine's serial port: ipmi_sim's SOL
// connects to it (ipmitest.WithSOL), the machine "prints" by writing to
// it, and what the operator types arrives in it.
type serialPort struct {
	ln    net.Listener
	mu    sync.Mutex
	conn  net.Conn
	typed bytes.Buffer
}

func newSerialPort(t *testing.T) *serialPort {
	t.Helper()
	ln, err := new(net.ListenConfig).Listen(t.Context(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sp := &serialPort{ln: ln}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			sp.mu.Lock()
			sp.conn = c
			sp.mu.Unlock()
			go func() {
				buf := make([]byte, 256)
				for {
					k, err := c.Read(buf)
					sp.mu.Lock()
					sp.typed.Write(buf[:k])
					sp.mu.Unlock()
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		sp.mu.Lock()
		if sp.conn != nil {
			_ = sp.conn.Close()
		}
		sp.mu.Unlock()
	})
	return sp
}

// device is the serial port as ipmi_sim's sol directive names it.
func (sp *serialPort) device() string { return "tcp:" + sp.ln.Addr().String() }

// print writes line to the serial port, if ipmi_sim is connected.
func (sp *serialPort) print(line string) {
	sp.mu.Lock()
	c := sp.conn
	sp.mu.Unlock()
	if c != nil {
		_, _ = c.Write([]byte(line + "\r\n"))
	}
}

func (sp *serialPort) received() string {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return sp.typed.String()
}

// consoleEnv is an env whose conductors drive ipmi nodes and serve their
// consoles with the real ipmitool-socat console, on ports of their own.
func consoleEnv(t *testing.T, socat ipmi.SocatConfig) (*env, func(*conductor.Config)) {
	t.Helper()
	e := newEnv(t)
	drv, err := ipmi.New(ipmi.Config{})
	if err != nil {
		t.Fatal(err)
	}
	sc := ipmi.NewSocatConsole(socat)
	e.deps = func(_ string, d *conductor.Deps) {
		d.Drivers["ipmi"] = conductor.NewPowerDriver(drv.ValidateDriverInfo, drv.NodePower)
		d.Consoles = map[string]conductor.ConsoleDriver{hardware.IPMISocat: conductor.NewConsoleDriver(sc.StartConsole, sc.TerminalPort)}
	}
	lo := freePort(t)
	return e, func(c *conductor.Config) { c.ConsolePortMin, c.ConsolePortMax = lo, lo+40 }
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := new(net.ListenConfig).Listen(t.Context(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (e *env) enrollIPMI(t *testing.T, name string, info map[string]any) wire.Node {
	t.Helper()
	n, err := e.inv.CreateNode(t.Context(), wire.Node{
		UUID: wire.NewUUID(), Name: name, Driver: "ipmi", DriverInfo: info,
		Interfaces:     map[string]string{"console": hardware.IPMISocat},
		ProvisionState: wire.StateManageable, CreatedAt: time.Now().UTC(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitNode waits until ok holds for the stored node.
func (e *env) waitNode(t *testing.T, uuid, what string, ok func(wire.Node) bool) wire.Node {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		n, err := e.inv.Get(t.Context(), uuid)
		if err != nil {
			t.Fatal(err)
		}
		if ok(n) {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s: not %s after 20s (console_enabled %v, console %+v, last_error %q)", n.Name, what, n.ConsoleEnabled, n.Console, n.LastError)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readConsole connects to a console URL and reads until it has seen want,
// printing want on the machine's serial port meanwhile (the SOL session
// needs a moment to come up); it returns the open connection.
func readConsole(t *testing.T, consoleURL string, sp *serialPort, want string) net.Conn {
	t.Helper()
	u, err := url.Parse(consoleURL)
	if err != nil {
		t.Fatal(err)
	}
	// The console may be coming up (a restarted conductor restores it).
	var c net.Conn
	for deadline := time.Now().Add(20 * time.Second); ; {
		if c, err = new(net.Dialer).DialContext(t.Context(), "tcp", u.Host); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("console %s: %v", consoleURL, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	got := make(chan error, 1)
	go func() {
		var seen strings.Builder
		r := bufio.NewReader(c)
		buf := make([]byte, 512)
		for {
			k, err := r.Read(buf)
			seen.Write(buf[:k])
			if strings.Contains(seen.String(), want) {
				got <- nil
				return
			}
			if err != nil {
				got <- errors.New("console closed before " + want + ": " + seen.String())
				return
			}
		}
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case err := <-got:
			if err != nil {
				t.Fatal(err)
			}
			return c
		case <-tick.C:
			sp.print(want)
		case <-deadline:
			_ = c.Close()
			t.Fatalf("console %s: %q not read in 20s", consoleURL, want)
		}
	}
}

// consoleClosed waits until nothing listens on a console URL any more.
func consoleClosed(t *testing.T, consoleURL string) {
	t.Helper()
	u, _ := url.Parse(consoleURL)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := new(net.Dialer).DialContext(t.Context(), "tcp", u.Host)
		if err != nil {
			return
		}
		_ = c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("console %s still listens", consoleURL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestConsoleIPMISocat: the ipmitool-socat console on a real ipmi_sim,
// socat and ipmitool. Enabling it (a task under the node's lock, as the
// API sends it) serves the SOL on a TCP port of the conductor: the
// machine's output reads there and what is typed reaches the machine. The
// lock is free while the console runs, and a power action under the lock
// completes while a console session is open. Reconnecting works (a stale
// SOL session is dropped first). A restarted conductor serves the console
// again on the same URL; disabling closes it; a second conductor of the
// group takes it over when the first one stops.
func TestConsoleIPMISocat(t *testing.T) {
	sp := newSerialPort(t)
	bmc := ipmitest.Start(t, ipmitest.WithSOL(sp.device()))
	e, ports := consoleEnv(t, ipmi.SocatConfig{})
	c1 := e.startConductor(t, "c1", nil, ports)
	n := e.enrollIPMI(t, "console-1", bmc.DriverInfo())

	e.request(t, n.UUID, wire.OpConsole, wire.ConsoleParams{Enabled: true})
	n = e.waitNode(t, n.UUID, "console enabled", func(n wire.Node) bool { return n.ConsoleEnabled && n.Console != nil })
	if n.Console.Type != "socat" || !strings.HasPrefix(n.Console.URL, "tcp://127.0.0.1:") || n.Console.Conductor != "c1" || n.LastError != "" {
		t.Fatalf("console %+v, last_error %q: want socat on tcp://127.0.0.1 served by c1", n.Console, n.LastError)
	}
	url1 := n.Console.URL

	session := readConsole(t, url1, sp, "machine-line-1")
	// The console never holds the node's lock while it runs (the power
	// sync may take it meanwhile: that is not the console).
	for range 20 {
		snap, err := e.locks.Snapshot(t.Context(), n.UUID)
		if err != nil {
			t.Fatal(err)
		}
		if snap.Held && strings.HasPrefix(snap.Purpose, "console") {
			t.Fatalf("lock held by %s for %s while the console runs", snap.Holder, snap.Purpose)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Typing reaches the machine.
	if _, err := session.Write([]byte("typed-by-operator\r")); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(sp.received(), "typed-by-operator"); {
		if time.Now().After(deadline) {
			t.Fatalf("the machine received %q, want typed-by-operator", sp.received())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A locked action proceeds while the session is open: the lock, taken
	// in standard mode once, and a power task through the conductor.
	lk, err := e.locks.WithHolder("deployer").Acquire(t.Context(), n.UUID, &lock.Options{Attempts: 1, Purpose: "deploy"})
	if err != nil {
		t.Fatalf("lock with a console session open: %v", err)
	}
	if err := lk.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	e.request(t, n.UUID, wire.OpPower, wire.PowerParams{Target: wire.PowerOn})
	e.waitNode(t, n.UUID, "powered on", func(n wire.Node) bool { return n.PowerState == wire.PowerOn })
	_ = session.Close()

	// Reconnect twice: each connection gets the SOL (the stale session
	// of the previous one is deactivated first).
	for i, want := range []string{"machine-line-2", "machine-line-3"} {
		c := readConsole(t, url1, sp, want)
		_ = c.Close()
		t.Logf("reconnect %d read %q", i+1, want)
	}

	// The conductor restarts: the console comes back on the same URL.
	c1.stop()
	consoleClosed(t, url1)
	e.startConductor(t, "c1", nil, ports)
	_ = readConsole(t, url1, sp, "machine-line-4").Close()
	if got, _ := e.inv.Get(t.Context(), n.UUID); got.Console == nil || got.Console.URL != url1 || !got.ConsoleEnabled {
		t.Fatalf("after restart: console_enabled %v, console %+v; want %s", got.ConsoleEnabled, got.Console, url1)
	}

	// Disabled: the port closes.
	e.request(t, n.UUID, wire.OpConsole, wire.ConsoleParams{Enabled: false})
	e.waitNode(t, n.UUID, "console disabled", func(n wire.Node) bool { return !n.ConsoleEnabled && n.Console == nil })
	consoleClosed(t, url1)
}

// TestConsoleTakeover: when the conductor serving a console stops, another
// conductor of the node's group serves it, and records where.
func TestConsoleTakeover(t *testing.T) {
	sp := newSerialPort(t)
	bmc := ipmitest.Start(t, ipmitest.WithSOL(sp.device()))
	e, ports := consoleEnv(t, ipmi.SocatConfig{})
	c1 := e.startConductor(t, "c1", nil, ports)
	n := e.enrollIPMI(t, "console-2", bmc.DriverInfo())
	e.request(t, n.UUID, wire.OpConsole, wire.ConsoleParams{Enabled: true})
	n = e.waitNode(t, n.UUID, "console enabled", func(n wire.Node) bool { return n.ConsoleEnabled && n.Console != nil })
	// c2's ports are its own: both run on this host.
	_, ports2 := consoleEnv(t, ipmi.SocatConfig{})
	e.startConductor(t, "c2", nil, ports2)
	c1.stop()
	n = e.waitNode(t, n.UUID, "taken over by c2", func(n wire.Node) bool {
		return n.ConsoleEnabled && n.Console != nil && n.Console.Conductor == "c2"
	})
	_ = readConsole(t, n.Console.URL, sp, "after-takeover").Close()
}

// TestConsoleErrors: a console that cannot start leaves console_enabled
// false and says why in last_error, as Ironic's _set_console_mode: socat
// missing, and the node's own terminal port busy.
func TestConsoleErrors(t *testing.T) {
	busy, err := new(net.ListenConfig).Listen(t.Context(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	bmc := ipmitest.Start(t)
	for _, tc := range []struct {
		name  string
		socat ipmi.SocatConfig
		info  map[string]any
		want  string
	}{
		{"socat missing", ipmi.SocatConfig{Socat: "/nonexistent/socat"}, nil, "/nonexistent/socat"},
		{"port busy", ipmi.SocatConfig{}, map[string]any{ipmi.KeyTerminalPort: busy.Addr().(*net.TCPAddr).Port}, "address already in use"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, ports := consoleEnv(t, tc.socat)
			e.startConductor(t, "c1", nil, ports)
			info := bmc.DriverInfo()
			for k, v := range tc.info {
				info[k] = v
			}
			n := e.enrollIPMI(t, "console-err", info)
			e.request(t, n.UUID, wire.OpConsole, wire.ConsoleParams{Enabled: true})
			n = e.waitNode(t, n.UUID, "failed", func(n wire.Node) bool { return n.LastError != "" })
			if n.ConsoleEnabled || n.Console != nil {
				t.Errorf("console_enabled %v, console %+v: want disabled", n.ConsoleEnabled, n.Console)
			}
			if !strings.HasPrefix(n.LastError, "Error enabling the console on node "+n.UUID+". Reason: ") || !strings.Contains(n.LastError, tc.want) {
				t.Errorf("last_error %q: want Ironic's words and %q", n.LastError, tc.want)
			}
		})
	}
}

// TestConsoleSim: a simulated machine's console (the sim console
// interface) is served the same way: it shows the machine's power and
// boot lines, echoes what is typed, and holds no lock.
func TestConsoleSim(t *testing.T) {
	e := newEnv(t)
	e.deps = func(_ string, d *conductor.Deps) {
		d.Consoles = map[string]conductor.ConsoleDriver{hardware.SimConsole: conductor.NewConsoleDriver(e.machines.StartConsole, nil)}
	}
	lo := freePort(t)
	e.startConductor(t, "c1", nil, func(c *conductor.Config) { c.ConsolePortMin, c.ConsolePortMax = lo, lo+20 })
	n := e.enroll(t, "sim-console", "")
	if _, err := e.inv.UpdateNode(t.Context(), n.UUID, 0, func(n *wire.Node) error {
		n.Interfaces = map[string]string{"console": hardware.SimConsole}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	e.request(t, n.UUID, wire.OpConsole, wire.ConsoleParams{Enabled: true})
	n = e.waitNode(t, n.UUID, "console enabled", func(n wire.Node) bool { return n.ConsoleEnabled && n.Console != nil })
	u, _ := url.Parse(n.Console.URL)
	c, err := new(net.Dialer).DialContext(t.Context(), "tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	e.request(t, n.UUID, wire.OpPower, wire.PowerParams{Target: wire.PowerOn})
	if _, err := c.Write([]byte("typed-into-sim\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	var seen strings.Builder
	buf := make([]byte, 512)
	for !strings.Contains(seen.String(), "sim-console: power on") || !strings.Contains(seen.String(), "typed-into-sim") {
		k, err := c.Read(buf)
		seen.Write(buf[:k])
		if err != nil {
			t.Fatalf("console read %q: %v", seen.String(), err)
		}
	}
	snap, err := e.locks.Snapshot(t.Context(), n.UUID)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Held && strings.HasPrefix(snap.Purpose, "console") {
		t.Errorf("lock held by %s for %s while the console runs", snap.Holder, snap.Purpose)
	}
}
