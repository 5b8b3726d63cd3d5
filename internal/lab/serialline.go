package lab

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"
)

// SerialLine stands in for the wire between a machine's serial port and
// its BMC's Serial-over-LAN, which on real hardware outlives every power
// cycle of the host. In the lab the machine is a QEMU process that a power
// cycle replaces, so its serial port cannot be what the BMC connects to:
// ipmi_sim's SOL would lose its connection on every reboot and pick up the
// new machine only when its reconnect happens to run (the console then
// missed the instance's boot). The line owns both ends instead: the BMC
// (ipmitest.WithSOL("tcp:"+BMCAddr())) connects once and stays connected;
// every QEMU the chassis program starts connects its serial chardev to
// MachineAddr as a client.
//
// Bytes from the machine go to the BMC's connection when there is one and
// are dropped otherwise, as a UART's are with nothing on the line; bytes
// from the BMC go to the machine that runs. A new connection on either end
// replaces the one before it. A peer that stops reading is cut off after
// WriteTimeout, so the machine never waits on its console.
type SerialLine struct {
	bmcL, machL net.Listener

	mu   sync.Mutex
	bmc  net.Conn
	mach net.Conn
	done bool

	wg sync.WaitGroup
}

// WriteTimeout bounds one write to either end of a SerialLine.
const WriteTimeout = 2 * time.Second

// NewSerialLine listens on two free ports of 127.0.0.1 (ctx bounds only
// that; Close ends the line).
func NewSerialLine(ctx context.Context) (*SerialLine, error) {
	var lc net.ListenConfig
	bmcL, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	machL, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		_ = bmcL.Close()
		return nil, err
	}
	s := &SerialLine{bmcL: bmcL, machL: machL}
	s.wg.Add(2)
	go s.accept(bmcL, &s.bmc, &s.mach)
	go s.accept(machL, &s.mach, &s.bmc)
	return s, nil
}

// BMCAddr is where the BMC's SOL connects (host:port).
func (s *SerialLine) BMCAddr() string { return s.bmcL.Addr().String() }

// MachineAddr is where the machine's serial port connects (host:port).
func (s *SerialLine) MachineAddr() string { return s.machL.Addr().String() }

// Close stops listening, closes both ends and waits for its goroutines.
func (s *SerialLine) Close() error {
	s.mu.Lock()
	s.done = true
	for _, c := range []net.Conn{s.bmc, s.mach} {
		if c != nil {
			_ = c.Close()
		}
	}
	s.mu.Unlock()
	err := errors.Join(s.bmcL.Close(), s.machL.Close())
	s.wg.Wait()
	return err
}

// accept takes the connections of one end: each replaces *mine and is
// copied to whatever *other is when its bytes arrive.
func (s *SerialLine) accept(l net.Listener, mine, other *net.Conn) {
	defer s.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			return // closed
		}
		s.mu.Lock()
		if s.done {
			s.mu.Unlock()
			_ = c.Close()
			return
		}
		if old := *mine; old != nil {
			_ = old.Close()
		}
		*mine = c
		s.mu.Unlock()
		s.wg.Add(1)
		go s.copy(c, mine, other)
	}
}

// copy forwards what c reads to the other end until c ends.
func (s *SerialLine) copy(c net.Conn, mine, other *net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		if *mine == c {
			*mine = nil
		}
		s.mu.Unlock()
		_ = c.Close()
	}()
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			s.mu.Lock()
			to := *other
			s.mu.Unlock()
			if to != nil {
				_ = to.SetWriteDeadline(time.Now().Add(WriteTimeout))
				if _, werr := to.Write(buf[:n]); werr != nil {
					_ = to.Close() // its own copy goroutine clears it
				}
			}
		}
		if err != nil {
			return // EOF, closed or replaced
		}
	}
}
