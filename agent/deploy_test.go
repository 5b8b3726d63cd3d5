package agent

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/agent/protocol"
	"github.com/ironfleet/ironfleet/internal/agenttest"
)

// TestDeployRealAgent: the real agent, serving its command API on a real
// listener with the callback URL it derives, is driven by the conductor
// through a whole deploy.
func TestDeployRealAgent(t *testing.T) {
	api := agenttest.NewAPI(t)
	macs, err := MACs("testdata/host1")
	if err != nil {
		t.Fatal(err)
	}
	api.AddNode("node-real", macs[1])
	img := agenttest.NewImage(t, 2<<20)
	is := agenttest.NewImageServer(t, img)
	disk := filepath.Join(t.TempDir(), "sda")
	l := agenttest.Listen(t)
	callback, err := CallbackURL(t.Context(), api.URL, l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	m := &recordingMachine{}
	cfg := fastConfig(api.URL, macs...)
	cfg.CallbackURL = callback
	cfg.Commands = CommandConfig{
		PowerDelay: time.Millisecond,
		Inventory: func(context.Context) (protocol.Inventory, error) {
			inv, err := ReadInventory("testdata/host1")
			inv.Disks = []protocol.Disk{{Name: "sda", Path: disk, SizeBytes: 8 << 20}}
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

	got, err := agenttest.ConductDeploy(t.Context(), api, "node-real", img, is.URL+"/image")
	if err != nil {
		t.Fatal(err)
	}
	if got != disk {
		t.Errorf("conductor wrote %s, want %s", got, disk)
	}
	waitFor(t, "the machine to reboot", func() bool { r, _ := m.counts(); return r == 1 })
	if b, _ := os.ReadFile(disk); !bytes.Equal(b, img.Data) {
		t.Error("disk does not hold the image after the deploy")
	}
	cancel()
	if err := <-served; err != nil {
		t.Errorf("Serve = %v, want nil after cancel", err)
	}
}
