package lab

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"
)

// TestSerialLineOutlivesTheMachine: the BMC's connection stays up while
// the machine behind it is replaced (a power cycle), and both directions
// reach whichever machine runs.
func TestSerialLineOutlivesTheMachine(t *testing.T) {
	s, err := NewSerialLine(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	dial := func(addr string) net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	// A machine with no BMC on the line prints without waiting.
	early := dial(s.MachineAddr())
	deadline := time.Now().Add(10 * time.Second)
	_ = early.SetWriteDeadline(deadline)
	for range 64 {
		if _, err := early.Write([]byte(strings.Repeat("x", 4096))); err != nil {
			t.Fatalf("a machine with no BMC on the line blocked: %v", err)
		}
	}
	_ = early.Close()

	bmc := dial(s.BMCAddr())
	r := bufio.NewReader(bmc)
	readLine := func(want string) {
		t.Helper()
		_ = bmc.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("BMC side: waiting for %q: %v", want, err)
			}
			if strings.TrimSpace(line) == want {
				return
			}
		}
	}
	for i, boot := range []string{"first boot", "second boot"} {
		m := dial(s.MachineAddr())
		// The line takes the machine when it accepts it; write until the
		// BMC sees it (the first write may race the accept).
		got := make(chan struct{})
		go func() {
			for {
				select {
				case <-got:
					return
				case <-time.After(50 * time.Millisecond):
				}
				if _, err := m.Write([]byte(boot + "\n")); err != nil {
					return
				}
			}
		}()
		readLine(boot)
		close(got)

		// Typed on the console, read by the machine that runs.
		typed := []string{"root", "reboot"}[i]
		_ = m.SetReadDeadline(time.Now().Add(10 * time.Second))
		mr := bufio.NewReader(m)
		for {
			if _, err := bmc.Write([]byte(typed + "\n")); err != nil {
				t.Fatal(err)
			}
			line, err := mr.ReadString('\n')
			if err != nil {
				t.Fatalf("machine %d: waiting for %q: %v", i, typed, err)
			}
			if strings.TrimSpace(line) == typed {
				break
			}
		}
		_ = m.Close() // power off: the BMC's connection stays
	}
}
