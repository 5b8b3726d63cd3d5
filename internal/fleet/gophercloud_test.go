package fleet_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/baremetal/noauth"
	"github.com/gophercloud/gophercloud/v2/openstack/baremetal/v1/nodes"
	"github.com/gophercloud/gophercloud/v2/openstack/baremetal/v1/ports"
	"github.com/gophercloud/gophercloud/v2/pagination"

	"github.com/ironfleet/ironfleet/internal/fleet"
	"github.com/ironfleet/ironfleet/internal/redisproc"
	"github.com/ironfleet/ironfleet/internal/redistest"
)

// TestGophercloudDeploysToActive drives a whole fleet — API, two
// conductors, simulated machines whose agents look up and heartbeat at the
// API — with gophercloud v2's baremetal client, unchanged: the client takes
// enrolled nodes through manage, provide (cleaning through the agent),
// deploy (the agent writes the image) and waits for active, powers a node
// off and on, and undeploys back to available.
func TestGophercloudDeploysToActive(t *testing.T) {
	dev := startDev(t, fleet.DevConfig{Nodes: 2})
	client, err := noauth.NewBareMetalNoAuth(noauth.EndpointOpts{IronicEndpoint: dev.APIURL() + "/v1"})
	if err != nil {
		t.Fatal(err)
	}
	client.Microversion = "1.82"
	ctx := t.Context()

	var uuids []string
	waitFor(t, "the fleet to enroll its nodes", func() bool {
		uuids = uuids[:0]
		_ = nodes.List(client, nodes.ListOpts{}).EachPage(ctx, func(_ context.Context, p pagination.Page) (bool, error) {
			ns, err := nodes.ExtractNodes(p)
			for _, n := range ns {
				uuids = append(uuids, n.UUID)
			}
			return true, err
		})
		return len(uuids) == 2
	})
	// The fleet enrolls a node, then its port: an operator provides a node
	// once both exist, and so does this test.
	waitFor(t, "the fleet to enroll its nodes' ports", func() bool {
		for _, id := range uuids {
			n := 0
			_ = ports.List(client, ports.ListOpts{NodeUUID: id}).EachPage(ctx, func(_ context.Context, p pagination.Page) (bool, error) {
				ps, err := ports.ExtractPorts(p)
				n += len(ps)
				return true, err
			})
			if n == 0 {
				return false
			}
		}
		return true
	})

	steps := []struct {
		target nodes.TargetProvisionState
		want   nodes.ProvisionState
	}{
		{nodes.TargetManage, nodes.Manageable},
		{nodes.TargetProvide, nodes.Available},
		{nodes.TargetActive, nodes.Active},
	}
	for _, s := range steps {
		for _, id := range uuids {
			changeProvision(t, client, id, s.target)
		}
		for _, id := range uuids {
			waitProvision(t, client, id, s.want)
		}
	}

	id := uuids[0]
	for _, p := range []nodes.TargetPowerState{nodes.PowerOff, nodes.PowerOn} {
		retryLocked(t, func() error {
			return nodes.ChangePowerState(ctx, client, id, nodes.PowerStateOpts{Target: p}).ExtractErr()
		})
		waitFor(t, "power "+string(p), func() bool {
			n, err := nodes.Get(ctx, client, id).Extract()
			return err == nil && n.PowerState == string(p)
		})
	}
	changeProvision(t, client, id, nodes.TargetDeleted)
	waitProvision(t, client, id, nodes.Available)
}

// startDev starts a dev fleet as cfg says, on a free API port, with two
// conductors, quick heartbeats and warnings logged to the test where cfg
// leaves them zero.
func startDev(t *testing.T, cfg fleet.DevConfig) *fleet.Dev {
	t.Helper()
	cfg.DataDir, cfg.APIAddr = t.TempDir(), "127.0.0.1:0"
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	if cfg.Conductors == 0 {
		cfg.Conductors = 2
	}
	if cfg.HeartbeatTimeout == 0 {
		cfg.HeartbeatTimeout = 2 * time.Second
	}
	dev, err := fleet.StartDev(t.Context(), cfg)
	if err != nil {
		if isNotInstalled(err) {
			redistest.Unavailable(t, err)
		}
		t.Fatal(err)
	}
	t.Cleanup(dev.Stop)
	return dev
}

func changeProvision(t *testing.T, client *gophercloud.ServiceClient, id string, target nodes.TargetProvisionState) {
	t.Helper()
	retryLocked(t, func() error {
		return nodes.ChangeProvisionState(t.Context(), client, id, nodes.ProvisionStateOpts{Target: target}).ExtractErr()
	})
}

// retryLocked retries a request refused with 409 NodeLocked, as operators
// and Ironic's CLI users do.
func retryLocked(t *testing.T, req func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := req()
		if err == nil {
			return
		}
		if !gophercloud.ResponseCodeIs(err, 409) || time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitProvision(t *testing.T, client *gophercloud.ServiceClient, id string, want nodes.ProvisionState) {
	t.Helper()
	var last *nodes.Node
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		n, err := nodes.Get(t.Context(), client, id).Extract()
		if err == nil {
			last = n
			if n.ProvisionState == string(want) {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("node %s not %q within 60s: %+v", id, want, last)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func isNotInstalled(err error) bool { return errors.Is(err, redisproc.ErrNotInstalled) }
