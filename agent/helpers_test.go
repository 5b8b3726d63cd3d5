package agent

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/agent/protocol"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// recordingMachine is a Machine that records what it was asked to do.
type recordingMachine struct {
	mu       sync.Mutex
	reboots  int
	poweroff int
	err      error
	// onReboot, if set, runs inside Reboot (the simulated machine shuts its
	// agent down there).
	onReboot func()
}

func (m *recordingMachine) Reboot(context.Context) error {
	m.mu.Lock()
	m.reboots++
	f, err := m.onReboot, m.err
	m.mu.Unlock()
	if f != nil {
		f()
	}
	return err
}

func (m *recordingMachine) PowerOff(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.poweroff++
	return m.err
}

func (m *recordingMachine) counts() (reboots, poweroffs int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reboots, m.poweroff
}

const testToken = "s3cret-agent-token"

// commandServer runs a CommandServer with testToken on a real HTTP server
// and returns it, a client of it and its URL.
func commandServer(t testing.TB, m Machine, cfg CommandConfig) (*CommandServer, *protocol.Client, string) {
	t.Helper()
	cs := NewCommandServer(m, cfg)
	cs.SetToken(testToken)
	srv := httptest.NewServer(cs)
	t.Cleanup(func() { srv.Close(); cs.Close() })
	c, err := protocol.NewClient(srv.URL, testToken, protocol.ClientConfig{HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return cs, c, srv.URL
}

// newHTTPServer serves h on a real loopback HTTP server and returns its URL.
func newHTTPServer(t testing.TB, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
