package simagent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ironfleet/ironfleet/agent"
	"github.com/ironfleet/ironfleet/agent/protocol"
	"github.com/ironfleet/ironfleet/internal/agenttest"
)

// simMachine is a stand-in for conductor/sim's simulated machine: powering
// off or rebooting stops its agent.
type simMachine struct {
	mu      sync.Mutex
	agent   *Agent
	reboots int
}

func (m *simMachine) setAgent(a *Agent) { m.mu.Lock(); m.agent = a; m.mu.Unlock() }

func (m *simMachine) Reboot(context.Context) error {
	m.mu.Lock()
	m.reboots++
	a := m.agent
	m.mu.Unlock()
	a.Shutdown()
	return nil
}

func (m *simMachine) PowerOff(ctx context.Context) error { return m.Reboot(ctx) }

// newFleet serves a fleet of agents at api whose every pause is a
// millisecond, until the test ends or stop is called; stop returns what
// Serve returned.
func newFleet(t testing.TB, api string) (f *Fleet, stop func() error) {
	t.Helper()
	f, err := NewFleet(agenttest.Listen(t), Config{
		APIURL:   api,
		Dir:      t.TempDir(),
		DiskSize: 8 << 20,
		Lookup: agent.LookupConfig{
			Timeout: 10 * time.Second, InitialBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond,
		},
		Heartbeat:  agent.HeartbeatConfig{ErrorMin: time.Millisecond, ErrorMax: 2 * time.Millisecond},
		PowerDelay: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Serve(ctx) }()
	stop = sync.OnceValue(func() error { cancel(); return <-done })
	t.Cleanup(func() { _ = stop() })
	return f, stop
}

// TestDeploySimulatedFleet: a fleet of simulated agents behind one
// listener, each looked up, heartbeating and driven through a deploy
// concurrently; each reboot stops its agent as a real reboot would.
func TestDeploySimulatedFleet(t *testing.T) {
	n := 100
	if testing.Short() {
		n = 10
	}
	api := agenttest.NewAPI(t)
	img := agenttest.NewImage(t, 64<<10)
	is := agenttest.NewImageServer(t, img)
	f, stop := newFleet(t, api.URL)

	machines := make([]*simMachine, n)
	agents := make([]*Agent, n)
	for i := range n {
		mac := fmt.Sprintf("52:54:00:00:%02x:%02x", i/256, i%256)
		api.AddNode(fmt.Sprintf("node-%d", i), mac)
		machines[i] = &simMachine{}
		a, err := f.Boot(Node{Name: fmt.Sprintf("sim-%d", i), MACs: []string{mac}, Machine: machines[i]})
		if err != nil {
			t.Fatal(err)
		}
		machines[i].setAgent(a)
		agents[i] = a
	}
	g, ctx := errgroup.WithContext(t.Context())
	for i := range n {
		g.Go(func() error {
			disk, err := agenttest.ConductDeploy(ctx, api, fmt.Sprintf("node-%d", i), img, is.URL+"/image")
			if err != nil {
				return err
			}
			if disk != agents[i].Disk() {
				return fmt.Errorf("node-%d: conductor wrote %s, want the agent's disk %s", i, disk, agents[i].Disk())
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	for i, a := range agents {
		select {
		case <-a.Done():
		case <-time.After(10 * time.Second):
			t.Fatalf("agent of sim-%d still running after its machine rebooted", i)
		}
		if err := a.Err(); err != nil {
			t.Errorf("sim-%d: agent stopped with %v, want nil", i, err)
		}
		if a.NodeUUID() != fmt.Sprintf("node-%d", i) {
			t.Errorf("sim-%d looked itself up as %q", i, a.NodeUUID())
		}
		if b, _ := os.ReadFile(a.Disk()); !bytes.Equal(b, img.Data) {
			t.Errorf("sim-%d: disk does not hold the image", i)
		}
	}
	if f.Len() != 0 {
		t.Errorf("%d agents still running", f.Len())
	}
	// A rebooted machine's agent is gone from the shared listener.
	c, err := protocol.NewClient(agents[0].CallbackURL(), "whatever", protocol.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Inventory(t.Context()); err == nil {
		t.Error("the agent of a rebooted machine still answers")
	}
	if err := stop(); err != nil {
		t.Errorf("Serve = %v, want nil", err)
	}
}

// TestFleetBootAgain: booting a node's ramdisk again (a clean after a
// deploy) starts a new agent with a new token; the old token is refused.
func TestFleetBootAgain(t *testing.T) {
	api := agenttest.NewAPI(t)
	api.AddNode("node-1", "52:54:00:00:00:01")
	f, _ := newFleet(t, api.URL)
	m := &simMachine{}
	node := Node{Name: "sim-1", MACs: []string{"52:54:00:00:00:01"}, Machine: m}
	first, err := f.Boot(node)
	if err != nil {
		t.Fatal(err)
	}
	m.setAgent(first)
	hb1, err := api.AwaitHeartbeat(t.Context(), "node-1")
	if err != nil {
		t.Fatal(err)
	}
	api.ForgetBeats()

	second, err := f.Boot(node)
	if err != nil {
		t.Fatal(err)
	}
	<-first.Done()
	hb2, err := api.AwaitHeartbeat(t.Context(), "node-1")
	if err != nil {
		t.Fatal(err)
	}
	if hb2.AgentToken == hb1.AgentToken || hb2.CallbackURL != hb1.CallbackURL {
		t.Errorf("second boot: token reused or callback moved: %+v then %+v", hb1, hb2)
	}
	old, _ := protocol.NewClient(hb1.CallbackURL, hb1.AgentToken, protocol.ClientConfig{})
	if _, err := old.Inventory(t.Context()); !errors.Is(err, protocol.ErrUnauthorized) {
		t.Errorf("old token after a new boot: %v, want %v", err, protocol.ErrUnauthorized)
	}
	cur, _ := protocol.NewClient(hb2.CallbackURL, hb2.AgentToken, protocol.ClientConfig{})
	inv, err := cur.Inventory(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Interfaces) != 1 || inv.Interfaces[0].MACAddress != "52:54:00:00:00:01" || inv.Disks[0].Path != second.Disk() {
		t.Errorf("simulated inventory = %+v", inv)
	}
}

func TestFleetBadInput(t *testing.T) {
	api := agenttest.NewAPI(t)
	if _, err := NewFleet(agenttest.Listen(t), Config{APIURL: api.URL}); err == nil {
		t.Error("NewFleet without Dir succeeded")
	}
	if _, err := NewFleet(agenttest.Listen(t), Config{APIURL: "nope", Dir: t.TempDir()}); err == nil {
		t.Error("NewFleet with a bad API URL succeeded")
	}
	f, stop := newFleet(t, api.URL)
	for _, n := range []Node{
		{Name: "../etc", MACs: []string{"52:54:00:00:00:01"}, Machine: &simMachine{}},
		{Name: "", MACs: []string{"52:54:00:00:00:01"}, Machine: &simMachine{}},
		{Name: "ok", MACs: []string{"52:54:00:00:00:01"}},
		{Name: "ok", MACs: []string{"not-a-mac"}, Machine: &simMachine{}},
		{Name: "ok", Machine: &simMachine{}},
	} {
		if _, err := f.Boot(n); err == nil {
			t.Errorf("Boot(%+v) succeeded, want an error", n)
		}
	}
	// Paths outside /agents/<running agent>/ are not answered.
	for _, p := range []string{"/", "/agents/", "/agents/nobody/v1/inventory"} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+f.l.Addr().String()+p, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode/100 != 4 && resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("GET %s = %d, want 404 or 503", p, resp.StatusCode)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Boot(Node{Name: "late", MACs: []string{"52:54:00:00:00:01"}, Machine: &simMachine{}}); !errors.Is(err, ErrClosed) {
		t.Errorf("Boot after Serve returned: %v, want %v", err, ErrClosed)
	}
}
