package fleet_test

import (
	"context"
	"slices"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/baremetal/noauth"
	"github.com/gophercloud/gophercloud/v2/openstack/baremetal/v1/drivers"
	"github.com/gophercloud/gophercloud/v2/openstack/baremetal/v1/nodes"
	"github.com/gophercloud/gophercloud/v2/pagination"

	"github.com/ironfleet/ironfleet/internal/fleet"
)

// TestFakeHardwareThroughTheAPI drives a dev fleet's API and conductors
// with gophercloud as an Ironic client's test suite does: a fake-hardware
// node with no driver_info and no port is enrolled, managed, provided,
// deployed to active, powered off and on, undeployed back to available
// and deleted — no agent, no image. The drivers the API lists are the ones
// every conductor offers (ipmi, fake-hardware and sim in a dev fleet), with
// their interfaces.
func TestFakeHardwareThroughTheAPI(t *testing.T) {
	dev := startDev(t, fleet.DevConfig{})
	client, err := noauth.NewBareMetalNoAuth(noauth.EndpointOpts{IronicEndpoint: dev.APIURL() + "/v1"})
	if err != nil {
		t.Fatal(err)
	}
	client.Microversion = "1.82"
	ctx := t.Context()

	// The API's hardware types and the conductors' agree: each is offered
	// by both conductors once they have registered.
	waitFor(t, "both conductors to offer every hardware type", func() bool {
		var ds []drivers.Driver
		err := drivers.ListDrivers(client, drivers.ListDriversOpts{Detail: true}).EachPage(ctx, func(_ context.Context, p pagination.Page) (bool, error) {
			got, err := drivers.ExtractDrivers(p)
			ds = append(ds, got...)
			return true, err
		})
		if err != nil || len(ds) != 3 {
			return false
		}
		for _, d := range ds {
			if !slices.Contains([]string{"fake-hardware", "ipmi", "sim"}, d.Name) || len(d.Hosts) != 2 {
				return false
			}
		}
		return true
	})
	fake, err := drivers.GetDriverDetails(ctx, client, "fake-hardware").Extract()
	if err != nil {
		t.Fatal(err)
	}
	if fake.DefaultDeployInterface != "fake" || !slices.Equal(fake.EnabledInspectInterfaces, []string{"fake", "agent", "no-inspect"}) {
		t.Errorf("fake-hardware: deploy %q, inspect %v", fake.DefaultDeployInterface, fake.EnabledInspectInterfaces)
	}
	if _, err := drivers.GetDriverProperties(ctx, client, "fake-hardware").Extract(); err != nil {
		t.Errorf("fake-hardware properties: %v", err)
	}

	n, err := nodes.Create(ctx, client, nodes.CreateOpts{Name: "fake-0", Driver: "fake-hardware"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if n.ProvisionState != string(nodes.Enroll) || n.DeployInterface != "fake" || n.PowerInterface != "fake" {
		t.Fatalf("created %s: state %q, deploy %q, power %q", n.UUID, n.ProvisionState, n.DeployInterface, n.PowerInterface)
	}
	steps := []struct {
		target nodes.TargetProvisionState
		want   nodes.ProvisionState
	}{
		{nodes.TargetManage, nodes.Manageable},
		{nodes.TargetProvide, nodes.Available},
		{nodes.TargetActive, nodes.Active},
	}
	for _, s := range steps {
		changeProvision(t, client, n.UUID, s.target)
		waitProvision(t, client, n.UUID, s.want)
	}
	for _, p := range []nodes.TargetPowerState{nodes.PowerOff, nodes.PowerOn} {
		retryLocked(t, func() error {
			return nodes.ChangePowerState(ctx, client, n.UUID, nodes.PowerStateOpts{Target: p}).ExtractErr()
		})
		waitFor(t, "power "+string(p), func() bool {
			got, err := nodes.Get(ctx, client, n.UUID).Extract()
			return err == nil && got.PowerState == string(p)
		})
	}
	changeProvision(t, client, n.UUID, nodes.TargetDeleted)
	waitProvision(t, client, n.UUID, nodes.Available)
	got, err := nodes.Get(ctx, client, n.UUID).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if got.LastError != "" || got.TargetProvisionState != "" {
		t.Fatalf("after undeploy: last_error %q, target %q", got.LastError, got.TargetProvisionState)
	}
	retryLocked(t, func() error { return nodes.Delete(ctx, client, n.UUID).ExtractErr() })
	if _, err := nodes.Get(ctx, client, n.UUID).Extract(); !gophercloud.ResponseCodeIs(err, 404) {
		t.Fatalf("get after delete: %v, want 404", err)
	}
}
