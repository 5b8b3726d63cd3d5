package ipmi_test

import (
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/conductor/ipmi"
	"github.com/ironfleet/ironfleet/internal/ipmitest"
	"github.com/ironfleet/ironfleet/internal/syncbuf"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// vanishingSerial is a machine's serial port that exists only while the
// machine runs, as a QEMU TCP chardev does: powered off, nothing listens.
type vanishingSerial struct {
	t    *testing.T
	addr string
	mu   sync.Mutex
	ln   net.Listener
	conn []net.Conn
	wg   sync.WaitGroup
}

// up listens (on the same port as before) and prints a line every 20 ms
// to whoever connects.
func (v *vanishingSerial) up() {
	v.t.Helper()
	var ln net.Listener
	err := waitFor(v.t.Context(), func() (e error) { ln, e = net.Listen("tcp", v.addr); return e })
	if err != nil {
		v.t.Fatal(err)
	}
	v.mu.Lock()
	v.ln, v.addr = ln, ln.Addr().String()
	v.mu.Unlock()
	v.wg.Add(1)
	go func() {
		defer v.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			v.mu.Lock()
			v.conn = append(v.conn, c)
			v.mu.Unlock()
			v.wg.Add(1)
			go func() {
				defer v.wg.Done()
				for {
					if _, err := c.Write([]byte("machine-line\r\n")); err != nil {
						return
					}
					time.Sleep(20 * time.Millisecond)
				}
			}()
		}
	}()
}

// down is the machine powered off: the port closes with its connections.
func (v *vanishingSerial) down() {
	v.mu.Lock()
	_ = v.ln.Close()
	for _, c := range v.conn {
		_ = c.Close()
	}
	v.conn = nil
	v.mu.Unlock()
	v.wg.Wait()
}

func waitFor(ctx context.Context, f func() error) error {
	for {
		err := f()
		if err == nil || ctx.Err() != nil {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestPowerWithASOLSessionOpen: with an ipmitool SOL session open through
// the socat console, power commands go on working while the machine's
// serial port disappears and returns with each power cycle (the lab's
// QEMU machines do that). ipmi_sim does not reconnect its SOL to the
// port: the lab wires it through a lab.SerialLine that outlives the
// machine, as a real BMC's UART does.
func TestPowerWithASOLSessionOpen(t *testing.T) {
	v := &vanishingSerial{t: t, addr: "127.0.0.1:0"}
	v.up()
	h := start(t, fastConfig(), ipmitest.WithSOL("tcp:"+v.addr))
	b := h.bmc(t, nil)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	sess, err := ipmi.NewSocatConsole(ipmi.SocatConfig{}).StartConsole(t.Context(), wire.Node{UUID: "n1", DriverInfo: h.sim.DriverInfo()}, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Stop()
	cc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	out := &syncbuf.Buffer{}
	copied := make(chan struct{})
	go func() { _, _ = io.Copy(out, cc); close(copied) }()
	defer func() { _ = cc.Close(); <-copied }()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if err := waitFor(ctx, func() error {
		if !strings.Contains(out.String(), "machine-line") {
			return context.DeadlineExceeded
		}
		return nil
	}); err != nil {
		t.Fatalf("the SOL session showed nothing of the machine: %q", out.String())
	}

	for i := range 5 {
		v.down()
		if err := b.SetPower(ctx, wire.PowerOff); err != nil {
			t.Fatalf("cycle %d: power off with a SOL session open: %v", i, err)
		}
		v.up()
		if err := b.SetPower(ctx, wire.PowerOn); err != nil {
			t.Fatalf("cycle %d: power on with a SOL session open: %v", i, err)
		}
		if st, err := b.PowerState(ctx); err != nil || st != wire.PowerOn {
			t.Fatalf("cycle %d: power state %q, %v; want on", i, st, err)
		}
	}
	v.down()
}
