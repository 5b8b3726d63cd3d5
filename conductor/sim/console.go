package sim

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/ironfleet/ironfleet/transport/wire"
)

// serialHistory is how much of a machine's serial output a console
// connection is shown first, as ipmi_sim's SOL history does.
const serialHistory = 64 << 10

// serial is a simulated machine's serial port: what the machine prints
// (its power and boot events, and anything Print writes), kept as a short
// history and copied to every listener; what is typed into it is echoed,
// as a terminal's getty would.
type serial struct {
	mu        sync.Mutex
	history   []byte
	listeners map[chan []byte]struct{}
}

func (s *serial) write(p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.history = append(s.history, p...)
	if over := len(s.history) - serialHistory; over > 0 {
		s.history = append([]byte(nil), s.history[over:]...)
	}
	for ch := range s.listeners {
		select {
		case ch <- append([]byte(nil), p...):
		default: // a reader that does not keep up loses output, as on a real line
		}
	}
}

// listen returns the history so far and a channel of what follows.
func (s *serial) listen() ([]byte, chan []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listeners == nil {
		s.listeners = map[chan []byte]struct{}{}
	}
	ch := make(chan []byte, 256)
	s.listeners[ch] = struct{}{}
	return append([]byte(nil), s.history...), ch
}

func (s *serial) unlisten(ch chan []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.listeners, ch)
}

// Print writes a line on the machine's serial console, as its firmware or
// operating system would (the simulated agent, say).
func (m *Machine) Print(line string) {
	m.serial.write([]byte(time.Now().UTC().Format("15:04:05.000") + " " + line + "\r\n"))
}

// SerialOutput is everything the machine's serial console still holds in
// its history.
func (m *Machine) SerialOutput() string {
	h, ch := m.serial.listen()
	m.serial.unlisten(ch)
	return string(h)
}

// Console is a simulated machine's serial console served on TCP: each
// connection reads the machine's recent output, then what it prints next;
// what it types is echoed back. It implements the conductor's
// RunningConsole.
type Console struct {
	ln     net.Listener
	done   chan struct{}
	stop   sync.Once
	wg     sync.WaitGroup
	mu     sync.Mutex
	cons   map[net.Conn]struct{}
	closed bool
}

// StartConsole serves the console of node's machine on addr (host:port),
// the sim console interface. A busy port is an error wrapping
// syscall.EADDRINUSE.
func (f *Fleet) StartConsole(ctx context.Context, node wire.Node, addr string) (*Console, error) {
	m, err := f.lookup(node.DriverInfo)
	if err != nil {
		return nil, err
	}
	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("sim: console of %s: %w", m.name, err)
	}
	c := &Console{ln: ln, done: make(chan struct{}), cons: map[net.Conn]struct{}{}}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.mu.Lock()
			if c.closed {
				c.mu.Unlock()
				_ = conn.Close()
				return
			}
			c.cons[conn] = struct{}{}
			c.mu.Unlock()
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				c.serve(m, conn)
				c.mu.Lock()
				delete(c.cons, conn)
				c.mu.Unlock()
			}()
		}
	}()
	go func() { c.wg.Wait(); close(c.done) }()
	return c, nil
}

func (c *Console) serve(m *Machine, conn net.Conn) {
	defer conn.Close()
	history, ch := m.serial.listen()
	defer m.serial.unlisten(ch)
	if _, err := conn.Write(history); err != nil {
		return
	}
	typed := make(chan struct{})
	go func() {
		defer close(typed)
		buf := make([]byte, 1024)
		for {
			k, err := conn.Read(buf)
			if k > 0 {
				m.serial.write(buf[:k]) // the echo
			}
			if err != nil {
				return
			}
		}
	}()
	for {
		select {
		case p := <-ch:
			if _, err := conn.Write(p); err != nil {
				return
			}
		case <-typed:
			return
		}
	}
}

// Done is closed when the console has stopped.
func (c *Console) Done() <-chan struct{} { return c.done }

// Stop closes the console and its connections, and waits for them.
func (c *Console) Stop() {
	c.stop.Do(func() {
		_ = c.ln.Close()
		c.mu.Lock()
		c.closed = true
		for conn := range c.cons {
			_ = conn.Close()
		}
		c.mu.Unlock()
	})
	<-c.done
}
