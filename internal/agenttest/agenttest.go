// Package agenttest is the harness of the agent's tests and the simulated
// fleet's: a stand-in for the API's side of Ironic's ramdisk protocol
// (API), a real HTTP server that serves a test image well and badly
// (ImageServer), and the conductor's part of a deploy played through the
// agent's command API (ConductDeploy). The API is ours, so a fake of it is
// allowed; everything else these tests touch is real.
package agenttest

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/agent/protocol"
)

// Listen opens a loopback TCP listener.
func Listen(t testing.TB) net.Listener {
	t.Helper()
	l, err := new(net.ListenConfig).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// ConductDeploy plays the conductor's part of a deploy of one node: once
// the agent has heartbeated at api, it reads the inventory, writes img
// (served at imageURL) to the first disk, waits for it, polling every
// millisecond, and reboots the machine. It returns the disk written.
func ConductDeploy(ctx context.Context, api *API, uuid string, img Image, imageURL string) (string, error) {
	hb, err := api.AwaitHeartbeat(ctx, uuid)
	if err != nil {
		return "", err
	}
	c, err := protocol.NewClient(hb.CallbackURL, hb.AgentToken, protocol.ClientConfig{})
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
	size := int64(len(img.Data))
	cmd, err := c.WriteImage(ctx, protocol.WriteImageParams{URL: imageURL, Checksum: protocol.Checksum{Value: img.SHA256}, Target: disk, Size: size})
	if err != nil {
		return "", fmt.Errorf("%s: write_image: %w", uuid, err)
	}
	if cmd, err = c.Wait(ctx, cmd.ID, time.Millisecond); err != nil {
		return "", fmt.Errorf("%s: write_image: %w", uuid, err)
	}
	if cmd.DoneBytes != size || cmd.TotalBytes != size {
		return "", fmt.Errorf("%s: write_image progress %d/%d, want %d", uuid, cmd.DoneBytes, cmd.TotalBytes, size)
	}
	if _, err := c.Reboot(ctx); err != nil {
		return "", fmt.Errorf("%s: reboot: %w", uuid, err)
	}
	return disk, nil
}
