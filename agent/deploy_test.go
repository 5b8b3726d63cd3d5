package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ironfleet/ironfleet/internal/wait"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// awaitHeartbeat waits until node has heartbeated and returns the last
// heartbeat, as the conductor learns it from the API.
func (a *fakeAPI) awaitHeartbeat(ctx context.Context, uuid string) (wire.HeartbeatRequest, error) {
	for {
		if n, hb := a.lastBeat(uuid); n > 0 {
			return hb, nil
		}
		if err := wait.Sleep(ctx, time.Millisecond); err != nil {
			return wire.HeartbeatRequest{}, fmt.Errorf("node %s never heartbeated: %w", uuid, err)
		}
	}
}

// conductDeploy plays the conductor's part of a deploy of one node: once
// the agent has heartbeated, it reads the inventory, writes the image to
// the first disk, waits for it, and reboots the machine. It returns the
// disk written.
func conductDeploy(ctx context.Context, api *fakeAPI, uuid string, img image, imageURL string) (string, error) {
	hb, err := api.awaitHeartbeat(ctx, uuid)
	if err != nil {
		return "", err
	}
	c, err := NewClient(hb.CallbackURL, hb.AgentToken, ClientConfig{})
	if err != nil {
		return "", err
	}
	inv, err := c.Inventory(ctx)
	if err != nil {
		return "", fmt.Errorf("%s: inventory: %w", uuid, err)
	}
	if len(inv.Disks) == 0 {
		return "", fmt.Errorf("%s: inventory has no disks", uuid)
	}
	disk := inv.Disks[0].Path
	cmd, err := c.WriteImage(ctx, WriteImageParams{URL: imageURL, SHA256: img.sum, Target: disk, Size: int64(len(img.data))})
	if err != nil {
		return "", fmt.Errorf("%s: write_image: %w", uuid, err)
	}
	if cmd, err = c.Wait(ctx, cmd.ID, poll); err != nil {
		return "", fmt.Errorf("%s: write_image: %w", uuid, err)
	}
	if cmd.DoneBytes != int64(len(img.data)) || cmd.TotalBytes != int64(len(img.data)) {
		return "", fmt.Errorf("%s: write_image progress %d/%d, want %d", uuid, cmd.DoneBytes, cmd.TotalBytes, len(img.data))
	}
	if _, err := c.Reboot(ctx); err != nil {
		return "", fmt.Errorf("%s: reboot: %w", uuid, err)
	}
	return disk, nil
}

// TestDeployRealAgent: the real agent, serving its command API on a real
// listener with the callback URL it derives, is driven by the conductor
// through a whole deploy.
func TestDeployRealAgent(t *testing.T) {
	api := newFakeAPI(t)
	macs, err := MACs("testdata/host1")
	if err != nil {
		t.Fatal(err)
	}
	api.addNode("node-real", macs[1])
	img := newImage(t, 2<<20)
	is := newImageServer(t, img)
	disk := filepath.Join(t.TempDir(), "sda")
	l := listen(t)
	callback, err := CallbackURL(t.Context(), api.URL, l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	m := &recordingMachine{}
	cfg := fastConfig(api.URL, macs...)
	cfg.CallbackURL = callback
	cfg.Commands = CommandConfig{
		PowerDelay: time.Millisecond,
		Inventory: func(context.Context) (Inventory, error) {
			inv, err := ReadInventory("testdata/host1")
			inv.Disks = []Disk{{Name: "sda", Path: disk, SizeBytes: 8 << 20}}
			return inv, err
		},
	}
	a, err := New(m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx, l) }()

	got, err := conductDeploy(t.Context(), api, "node-real", img, is.URL+"/image")
	if err != nil {
		t.Fatal(err)
	}
	if got != disk {
		t.Errorf("conductor wrote %s, want %s", got, disk)
	}
	waitFor(t, "the machine to reboot", func() bool { r, _ := m.counts(); return r == 1 })
	if b, _ := os.ReadFile(disk); !bytes.Equal(b, img.data) {
		t.Error("disk does not hold the image after the deploy")
	}
	cancel()
	if err := <-served; err != nil {
		t.Errorf("Serve = %v, want nil after cancel", err)
	}
}

// simMachine is a stand-in for conductor/sim's simulated machine: powering
// off or rebooting stops its agent.
type simMachine struct {
	mu      sync.Mutex
	agent   *SimAgent
	reboots int
}

func (m *simMachine) setAgent(a *SimAgent) { m.mu.Lock(); m.agent = a; m.mu.Unlock() }

func (m *simMachine) Reboot(context.Context) error {
	m.mu.Lock()
	m.reboots++
	a := m.agent
	m.mu.Unlock()
	a.Shutdown()
	return nil
}

func (m *simMachine) PowerOff(ctx context.Context) error { return m.Reboot(ctx) }

func newFleet(t testing.TB, api string) (*Fleet, func() error) {
	t.Helper()
	f, err := NewFleet(listen(t), FleetConfig{
		APIURL:     api,
		Dir:        t.TempDir(),
		DiskSize:   8 << 20,
		Lookup:     fastConfig(api).Lookup,
		Heartbeat:  fastConfig(api).Heartbeat,
		PowerDelay: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Serve(ctx) }()
	stop := sync.OnceValue(func() error { cancel(); return <-done })
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
	api := newFakeAPI(t)
	img := newImage(t, 64<<10)
	is := newImageServer(t, img)
	f, stop := newFleet(t, api.URL)

	machines := make([]*simMachine, n)
	agents := make([]*SimAgent, n)
	for i := range n {
		mac := fmt.Sprintf("52:54:00:00:%02x:%02x", i/256, i%256)
		api.addNode(fmt.Sprintf("node-%d", i), mac)
		machines[i] = &simMachine{}
		a, err := f.Boot(SimNode{Name: fmt.Sprintf("sim-%d", i), MACs: []string{mac}, Machine: machines[i]})
		if err != nil {
			t.Fatal(err)
		}
		machines[i].setAgent(a)
		agents[i] = a
	}
	g, ctx := errgroup.WithContext(t.Context())
	for i := range n {
		g.Go(func() error {
			disk, err := conductDeploy(ctx, api, fmt.Sprintf("node-%d", i), img, is.URL+"/image")
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
		if b, _ := os.ReadFile(a.Disk()); !bytes.Equal(b, img.data) {
			t.Errorf("sim-%d: disk does not hold the image", i)
		}
	}
	if f.Len() != 0 {
		t.Errorf("%d agents still running", f.Len())
	}
	// A rebooted machine's agent is gone from the shared listener.
	c, err := NewClient(agents[0].CallbackURL(), "whatever", ClientConfig{})
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
	api := newFakeAPI(t)
	api.addNode("node-1", "52:54:00:00:00:01")
	f, _ := newFleet(t, api.URL)
	m := &simMachine{}
	node := SimNode{Name: "sim-1", MACs: []string{"52:54:00:00:00:01"}, Machine: m}
	first, err := f.Boot(node)
	if err != nil {
		t.Fatal(err)
	}
	m.setAgent(first)
	hb1, err := api.awaitHeartbeat(t.Context(), "node-1")
	if err != nil {
		t.Fatal(err)
	}
	api.mu.Lock()
	delete(api.beats, "node-1")
	api.mu.Unlock()

	second, err := f.Boot(node)
	if err != nil {
		t.Fatal(err)
	}
	<-first.Done()
	hb2, err := api.awaitHeartbeat(t.Context(), "node-1")
	if err != nil {
		t.Fatal(err)
	}
	if hb2.AgentToken == hb1.AgentToken || hb2.CallbackURL != hb1.CallbackURL {
		t.Errorf("second boot: token reused or callback moved: %+v then %+v", hb1, hb2)
	}
	old, _ := NewClient(hb1.CallbackURL, hb1.AgentToken, ClientConfig{})
	if _, err := old.Inventory(t.Context()); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("old token after a new boot: %v, want %v", err, ErrUnauthorized)
	}
	cur, _ := NewClient(hb2.CallbackURL, hb2.AgentToken, ClientConfig{})
	inv, err := cur.Inventory(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Interfaces) != 1 || inv.Interfaces[0].MACAddress != "52:54:00:00:00:01" || inv.Disks[0].Path != second.Disk() {
		t.Errorf("simulated inventory = %+v", inv)
	}
}

func TestFleetBadInput(t *testing.T) {
	api := newFakeAPI(t)
	if _, err := NewFleet(listen(t), FleetConfig{APIURL: api.URL}); err == nil {
		t.Error("NewFleet without Dir succeeded")
	}
	if _, err := NewFleet(listen(t), FleetConfig{APIURL: "nope", Dir: t.TempDir()}); err == nil {
		t.Error("NewFleet with a bad API URL succeeded")
	}
	f, stop := newFleet(t, api.URL)
	for _, n := range []SimNode{
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
	if _, err := f.Boot(SimNode{Name: "late", MACs: []string{"52:54:00:00:00:01"}, Machine: &simMachine{}}); !errors.Is(err, ErrFleetClosed) {
		t.Errorf("Boot after Serve returned: %v, want %v", err, ErrFleetClosed)
	}
}
