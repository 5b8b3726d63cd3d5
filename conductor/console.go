package conductor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/ironfleet/ironfleet/internal/hardware"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// Serial consoles, Ironic's way (ironic/conductor/manager.py
// set_console_mode, base_manager.py _start_consoles): a task (OpConsole)
// flips the console under the node's lock, and what it starts — a socat
// serving `ipmitool sol activate`, or a simulated machine's console — runs
// on this conductor, outside any lock, until it is disabled. The lock is
// held for the flip only: a console session never makes a deploy wait.
//
// Where the console runs is recorded on the node (wire.Node.Console). Every
// conductor reconciles its consoles every Config.Periodic, and once at
// start: it restores the ones it serves (the same port, so the recorded
// URL stays true and no write is needed: no lock), stops the ones disabled
// or taken over elsewhere, and takes over the consoles of its groups'
// nodes whose conductor is no longer alive in the registry (under the
// node's lock, tried once, as the sweeps do).

// ConsoleDriver serves the consoles of one console interface (keyed by its
// name in Deps.Consoles: "ipmitool-socat", "sim").
type ConsoleDriver interface {
	// StartConsole serves node's console on TCP at addr (host:port) and
	// returns once it listens. ctx bounds the start only: the console
	// runs until Stop. An address in use is reported as an error wrapping
	// syscall.EADDRINUSE.
	StartConsole(ctx context.Context, node wire.Node, addr string) (RunningConsole, error)
}

// RunningConsole is one console a ConsoleDriver serves.
type RunningConsole interface {
	// Done is closed when the console has stopped, by Stop or by itself.
	Done() <-chan struct{}
	// Stop stops serving and waits until the console is gone.
	Stop()
}

// TerminalPorter is implemented by a ConsoleDriver whose nodes may name
// their console's port themselves (Ironic's ipmi_terminal_port).
type TerminalPorter interface {
	// TerminalPort is node's own console port, or 0 to take one from
	// Config.ConsolePorts.
	TerminalPort(node wire.Node) int
}

// Defaults of the console settings of Config.
const (
	// DefaultConsoleAddress: socat consoles have no authentication, so by
	// default they listen on loopback only (Ironic's default is my_ip).
	DefaultConsoleAddress = "127.0.0.1"
	// DefaultConsolePortMin and DefaultConsolePortMax are Ironic's sample
	// [console]port_range, 10000:20000.
	DefaultConsolePortMin = 10000
	DefaultConsolePortMax = 20000
)

// ErrNoFreePort is returned when every console port is taken
// (Ironic's NoFreeIPMITerminalPorts).
var ErrNoFreePort = errors.New("conductor: no free console port")

// consoles are the consoles this conductor serves.
type consoles struct {
	c *Conductor
	// mu guards running, ports and changed.
	mu      sync.Mutex
	running map[string]*served
	ports   map[int]string // port → node
	// changed is when a console of a node last changed here: a reconcile
	// that began earlier must not undo it from a cache that may not show
	// the node write yet.
	changed map[string]time.Time
	// busy serialises start and stop per node.
	busy sync.Map // node → *sync.Mutex
	wg   sync.WaitGroup
}

type served struct {
	rc   RunningConsole
	info wire.Console
	port int
}

func newConsoles(c *Conductor) *consoles {
	return &consoles{c: c, running: map[string]*served{}, ports: map[int]string{}, changed: map[string]time.Time{}}
}

func (s *consoles) nodeMu(uuid string) *sync.Mutex {
	m, _ := s.busy.LoadOrStore(uuid, &sync.Mutex{})
	return m.(*sync.Mutex)
}

// driver is the ConsoleDriver of node's console interface.
func (s *consoles) driver(n wire.Node) (ConsoleDriver, error) {
	iface := hardware.Of(n, hardware.Console)
	d, ok := s.c.d.Consoles[iface]
	if !ok || d == nil {
		return nil, wire.Errorf(wire.CodeInvalidInput, "the console interface %s is not available on conductor %s", iface, s.c.cfg.Host)
	}
	return d, nil
}

// start serves node's console here, on port if it is not 0 (or the node's
// own terminal port), else on a free port of Config.ConsolePorts; a
// console of the node already running here is stopped first, as Ironic's
// start_socat_console does.
func (s *consoles) start(ctx context.Context, n wire.Node, port int) (wire.Console, error) {
	d, err := s.driver(n)
	if err != nil {
		return wire.Console{}, err
	}
	s.stop(n.UUID)
	if tp, ok := d.(TerminalPorter); ok && port == 0 {
		port = tp.TerminalPort(n)
	}
	candidates := []int{port}
	if port == 0 {
		candidates = s.free()
	}
	for _, p := range candidates {
		if !s.claim(p, n.UUID) {
			continue
		}
		addr := net.JoinHostPort(s.c.cfg.ConsoleAddress, strconv.Itoa(p))
		rc, err := d.StartConsole(ctx, n, addr)
		if err != nil {
			s.unclaim(p)
			if errors.Is(err, syscall.EADDRINUSE) && port == 0 {
				continue // taken by another process: try the next port
			}
			return wire.Console{}, err
		}
		info := wire.Console{Type: "socat", URL: "tcp://" + addr, Conductor: s.c.cfg.Host}
		sv := &served{rc: rc, info: info, port: p}
		s.mu.Lock()
		s.running[n.UUID] = sv
		s.changed[n.UUID] = time.Now()
		s.mu.Unlock()
		s.wg.Add(1)
		go s.watch(n.UUID, sv)
		s.c.log.Info("console started", "node", n.UUID, "url", info.URL)
		return info, nil
	}
	if port != 0 {
		return wire.Console{}, fmt.Errorf("console port %d is in use", port)
	}
	return wire.Console{}, fmt.Errorf("%w in %d-%d on %s", ErrNoFreePort, s.c.cfg.ConsolePortMin, s.c.cfg.ConsolePortMax, s.c.cfg.ConsoleAddress)
}

// free lists the ports of the range this conductor has not given out, in
// order, checking that each can be bound now (Ironic's acquire_port).
func (s *consoles) free() []int {
	var out []int
	for p := s.c.cfg.ConsolePortMin; p <= s.c.cfg.ConsolePortMax && len(out) < 8; p++ {
		s.mu.Lock()
		_, taken := s.ports[p]
		s.mu.Unlock()
		if taken {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort(s.c.cfg.ConsoleAddress, strconv.Itoa(p))) //nolint:noctx // a probe, closed at once
		if err != nil {
			continue
		}
		_ = l.Close()
		out = append(out, p)
	}
	return out
}

func (s *consoles) claim(port int, node string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, taken := s.ports[port]; taken {
		return false
	}
	s.ports[port] = node
	return true
}

func (s *consoles) unclaim(port int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.ports, port)
}

// watch forgets a console that stopped by itself (socat killed, say); the
// next reconcile restores it.
func (s *consoles) watch(uuid string, sv *served) {
	defer s.wg.Done()
	<-sv.rc.Done()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running[uuid] == sv {
		delete(s.running, uuid)
		s.c.log.Warn("console stopped by itself; it will be restored", "node", uuid, "url", sv.info.URL)
	}
	delete(s.ports, sv.port)
}

// stop stops node's console if it runs here.
func (s *consoles) stop(uuid string) {
	s.mu.Lock()
	sv := s.running[uuid]
	delete(s.running, uuid)
	s.changed[uuid] = time.Now()
	s.mu.Unlock()
	if sv != nil {
		sv.rc.Stop()
		s.c.log.Info("console stopped", "node", uuid, "url", sv.info.URL)
	}
}

// local is the console of node running here, if any.
func (s *consoles) local(uuid string) (wire.Console, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sv, ok := s.running[uuid]
	if !ok {
		return wire.Console{}, false
	}
	return sv.info, true
}

// closeAll stops every console (the conductor stops: its successor, or
// itself restarted, restores them) and waits for them.
func (s *consoles) closeAll() {
	s.mu.Lock()
	nodes := make([]string, 0, len(s.running))
	for uuid := range s.running {
		nodes = append(nodes, uuid)
	}
	s.mu.Unlock()
	for _, uuid := range nodes {
		s.stop(uuid)
	}
	s.wg.Wait()
}

// run reconciles the consoles now and every Config.Periodic until ctx
// ends, then stops them all.
func (s *consoles) run(ctx context.Context) {
	defer s.closeAll()
	t := time.NewTicker(s.c.cfg.Periodic)
	defer t.Stop()
	for {
		s.reconcile(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// reconcile makes the consoles running here match the nodes of this
// conductor's groups: see the comment at the top of this file.
func (s *consoles) reconcile(ctx context.Context) {
	begin := time.Now()
	if err := s.c.d.Nodes.Sync(ctx); err != nil {
		if ctx.Err() == nil {
			s.c.log.Warn("consoles: syncing the node cache", "err", err)
		}
		return
	}
	alive := map[string]bool{}
	cs, err := s.c.d.Registry.Conductors(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.c.log.Warn("consoles: listing conductors", "err", err)
		}
		return
	}
	for _, ci := range cs {
		alive[ci.Host] = ci.Alive
	}
	alive[s.c.cfg.Host] = true
	mine := map[string]bool{}
	for _, group := range s.c.cfg.Groups {
		for _, n := range s.groupNodes(group) {
			if ctx.Err() != nil {
				return
			}
			if !n.ConsoleEnabled || n.Console == nil {
				continue
			}
			switch {
			case n.Console.Conductor == s.c.cfg.Host:
				mine[n.UUID] = true
				s.restore(ctx, n, begin)
			case !alive[n.Console.Conductor]:
				mine[n.UUID] = true
				s.takeOver(ctx, n)
			}
		}
	}
	s.mu.Lock()
	var stale []string
	for uuid := range s.running {
		if !mine[uuid] && s.changed[uuid].Before(begin) {
			stale = append(stale, uuid)
		}
	}
	s.mu.Unlock()
	for _, uuid := range stale {
		m := s.nodeMu(uuid)
		if !m.TryLock() {
			continue
		}
		s.mu.Lock()
		again := s.changed[uuid].Before(begin)
		s.mu.Unlock()
		if again {
			s.c.log.Info("console disabled or served elsewhere: stopping it here", "node", uuid)
			s.stop(uuid)
		}
		m.Unlock()
	}
}

// groupNodes lists every node of group from the cache.
func (s *consoles) groupNodes(group string) []wire.Node {
	var out []wire.Node
	for marker := ""; ; {
		page, err := s.c.d.Nodes.List(transport.NodeQuery{ConductorGroup: &group, Marker: marker, Limit: transport.MaxLimit})
		if err != nil {
			s.c.log.Warn("consoles: listing nodes", "group", group, "err", err)
			return out
		}
		out = append(out, page...)
		if len(page) < transport.MaxLimit {
			return out
		}
		marker = page[len(page)-1].UUID
	}
}

// restore starts node's console here again if it is not running (the
// conductor restarted, or socat died), on the port its recorded URL names:
// the record stays true, so no write and no lock. When that port cannot be
// had, the console moves to another port, recorded under the node's lock
// (tried once; the next reconcile tries again); failing that too, Ironic's
// _start_consoles turns console_enabled off with last_error.
func (s *consoles) restore(ctx context.Context, n wire.Node, begin time.Time) {
	m := s.nodeMu(n.UUID)
	if !m.TryLock() {
		return // a task is flipping it now
	}
	defer m.Unlock()
	s.mu.Lock()
	recent := !s.changed[n.UUID].Before(begin)
	s.mu.Unlock()
	if cur, ok := s.local(n.UUID); recent || (ok && cur.URL == n.Console.URL) {
		return
	}
	port := 0
	if u, err := url.Parse(n.Console.URL); err == nil {
		port, _ = strconv.Atoi(u.Port())
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if port != 0 {
		if _, err := s.start(sctx, n, port); err == nil {
			s.c.log.Info("console restored", "node", n.UUID, "url", n.Console.URL)
			return
		} else if ctx.Err() == nil {
			s.c.log.Warn("console could not be restored on its port; moving it", "node", n.UUID, "url", n.Console.URL, "err", err)
		}
	}
	s.relocate(ctx, n, "console_restore", func(cur wire.Node) bool {
		return cur.ConsoleEnabled && cur.Console != nil && cur.Console.Conductor == s.c.cfg.Host
	})
}

// takeOver serves here the console of a node whose conductor is gone.
func (s *consoles) takeOver(ctx context.Context, n wire.Node) {
	m := s.nodeMu(n.UUID)
	if !m.TryLock() {
		return
	}
	defer m.Unlock()
	dead := n.Console.Conductor
	s.relocate(ctx, n, "console_takeover", func(cur wire.Node) bool {
		return cur.ConsoleEnabled && cur.Console != nil && cur.Console.Conductor == dead
	})
}

// relocate starts node's console here on any port and records it, under
// the node's lock tried once, if still(node re-read under the lock) holds.
// A console that cannot be started is turned off, with last_error, as
// Ironic's _start_consoles does.
func (s *consoles) relocate(ctx context.Context, n wire.Node, purpose string, still func(wire.Node) bool) {
	why := "restoring it on conductor " + s.c.cfg.Host
	if purpose == "console_takeover" {
		why = "taking it over from conductor " + n.Console.Conductor
	}
	s.c.tryNode(ctx, n.UUID, purpose, func(w *job) error { //nolint:contextcheck // the job's methods run on its own context (w.ctx), bound to the lock
		if !still(w.node) {
			return nil
		}
		info, err := s.start(w.ctx, w.node, 0)
		if err != nil {
			msg := fmt.Sprintf("Failed to start console of node %s while %s, so changing the console_enabled status to False, error: %v", n.UUID, why, err)
			if uerr := w.update(func(n *wire.Node) { n.ConsoleEnabled, n.Console, n.LastError = false, nil, msg }); uerr != nil {
				return uerr
			}
			w.history(msg, "STARTFAIL")
			return nil
		}
		if err := w.update(func(n *wire.Node) { n.Console = &info }); err != nil {
			s.stop(n.UUID)
			return err
		}
		s.c.log.Info("console moved here", "node", n.UUID, "url", info.URL, "purpose", purpose)
		return nil
	})
}

// console is the OpConsole task: enable or disable the node's console
// under its lock (Ironic's _set_console_mode). The console itself runs on
// after the lock is released. A failure is the node's last_error and
// leaves console_enabled as it was, as Ironic.
func (w *job) console() error {
	var p wire.ConsoleParams
	if err := json.Unmarshal(w.task.Params, &p); err != nil {
		return w.update(func(n *wire.Node) { n.LastError = "bad console request: " + err.Error() })
	}
	op := "enabling"
	if !p.Enabled {
		op = "disabling"
	}
	failed := func(err error) error {
		msg := fmt.Sprintf("Error %s the console on node %s. Reason: %v", op, w.node.UUID, err)
		if uerr := w.update(func(n *wire.Node) { n.LastError = msg }); uerr != nil {
			return uerr
		}
		w.history(msg, "CONSOLE")
		return nil
	}
	if err := hardware.Unsupported(w.node, hardware.Console); err != nil {
		return failed(err)
	}
	s := w.c.consoles
	m := s.nodeMu(w.node.UUID)
	m.Lock()
	defer m.Unlock()
	if !p.Enabled {
		s.stop(w.node.UUID)
		// A console served by another conductor stops there at its next
		// reconcile, which finds it disabled.
		return w.update(func(n *wire.Node) { n.ConsoleEnabled, n.Console, n.LastError = false, nil, "" })
	}
	sctx, cancel := context.WithTimeout(w.ctx, 30*time.Second)
	info, err := s.start(sctx, w.node, 0)
	cancel()
	if err != nil {
		return failed(err)
	}
	if err := w.update(func(n *wire.Node) { n.ConsoleEnabled, n.Console, n.LastError = true, &info, "" }); err != nil {
		s.stop(w.node.UUID)
		return err
	}
	return nil
}

// NewConsoleDriver adapts a start function returning any concrete
// RunningConsole to a ConsoleDriver, so that driver packages need not
// import this one: conductor.NewConsoleDriver(socat.StartConsole,
// socat.TerminalPort). port may be nil (the port range applies).
func NewConsoleDriver[R RunningConsole](start func(context.Context, wire.Node, string) (R, error), port func(wire.Node) int) ConsoleDriver {
	if port == nil {
		return consoleDriver[R]{start: start}
	}
	return portedConsoleDriver[R]{consoleDriver[R]{start: start}, port}
}

type consoleDriver[R RunningConsole] struct {
	start func(context.Context, wire.Node, string) (R, error)
}

func (d consoleDriver[R]) StartConsole(ctx context.Context, n wire.Node, addr string) (RunningConsole, error) {
	rc, err := d.start(ctx, n, addr)
	if err != nil {
		return nil, err
	}
	return rc, nil
}

type portedConsoleDriver[R RunningConsole] struct {
	consoleDriver[R]
	port func(wire.Node) int
}

func (d portedConsoleDriver[R]) TerminalPort(n wire.Node) int { return d.port(n) }
