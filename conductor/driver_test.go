package conductor_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/conductor"
	"github.com/ironfleet/ironfleet/conductor/ipmi"
	"github.com/ironfleet/ironfleet/conductor/pxe"
	"github.com/ironfleet/ironfleet/conductor/sim"
	"github.com/ironfleet/ironfleet/internal/ipmitest"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// The drivers satisfy the conductor's interfaces without importing it.
var (
	_ conductor.Power = (*ipmi.BMC)(nil)
	_ conductor.Power = (*sim.Machine)(nil)
	_ conductor.Boot  = (*pxe.Configs)(nil)
)

func drivers(t *testing.T, fleet *sim.Fleet) conductor.Drivers {
	t.Helper()
	drv, err := ipmi.New(ipmi.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return conductor.Drivers{
		"ipmi": conductor.NewPowerDriver(drv.ValidateDriverInfo, drv.NodePower),
		"sim":  conductor.NewPowerDriver(fleet.ValidateDriverInfo, fleet.NodePower),
	}
}

func TestDriversPickThePowerOfANode(t *testing.T) {
	fleet := sim.NewFleet(sim.Config{})
	defer fleet.Close()
	m, err := fleet.Add("sim-0001", "52:54:00:00:00:01")
	if err != nil {
		t.Fatal(err)
	}
	bmc := ipmitest.Start(t)
	d := drivers(t, fleet)

	simNode := wire.Node{UUID: "n-sim", Driver: "sim", DriverInfo: map[string]any{sim.KeyMachine: "sim-0001"}}
	ipmiNode := wire.Node{UUID: "n-ipmi", Driver: "ipmi", DriverInfo: bmc.DriverInfo()}
	for _, n := range []wire.Node{simNode, ipmiNode} {
		if err := d.ValidateDriverInfo(n); err != nil {
			t.Errorf("%s: ValidateDriverInfo: %v", n.Driver, err)
		}
		p, err := d.Power(n)
		if err != nil {
			t.Fatalf("%s: Power: %v", n.Driver, err)
		}
		if err := p.SetPower(t.Context(), wire.PowerOn); err != nil {
			t.Fatalf("%s: SetPower: %v", n.Driver, err)
		}
		if st, err := p.PowerState(t.Context()); err != nil || st != wire.PowerOn {
			t.Errorf("%s: PowerState = %q, %v; want %q", n.Driver, st, err, wire.PowerOn)
		}
	}
	if m.State().Power != wire.PowerOn || !bmc.PowerOn(t) {
		t.Error("the drivers did not reach their machines")
	}
}

func TestDriversRefuseBadNodes(t *testing.T) {
	fleet := sim.NewFleet(sim.Config{})
	defer fleet.Close()
	d := drivers(t, fleet)
	tests := []struct {
		name string
		node wire.Node
		is   error
	}{
		{"unknown driver", wire.Node{Driver: "redfish"}, conductor.ErrUnknownDriver},
		{"no driver", wire.Node{}, conductor.ErrUnknownDriver},
		{"ipmi without address", wire.Node{Driver: "ipmi", DriverInfo: map[string]any{"ipmi_password": "x"}}, ipmi.ErrInvalidInfo},
		{"sim without machine", wire.Node{Driver: "sim"}, sim.ErrInvalidInfo},
		{"sim unknown machine", wire.Node{Driver: "sim", DriverInfo: map[string]any{sim.KeyMachine: "nope"}}, sim.ErrUnknownMachine},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := d.ValidateDriverInfo(tt.node)
			if !errors.Is(err, tt.is) || wire.CodeOf(err) != wire.CodeInvalidInput {
				t.Errorf("ValidateDriverInfo = %v, want %v with code %s", err, tt.is, wire.CodeInvalidInput)
			}
			if p, err := d.Power(tt.node); err == nil || p != nil {
				t.Errorf("Power = %v, %v; want an error", p, err)
			}
		})
	}
}

// The drivers as a deploy uses them: Boot prepares the node's PXE config,
// Power sets a one-time PXE boot and reboots, the machine boots the agent;
// after CleanUp, the same request lands on the disk.
func TestBootAndPowerTogether(t *testing.T) {
	configs, err := pxe.NewConfigs(pxe.Config{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer configs.Close()
	fleet := sim.NewFleet(sim.Config{PXEConfigured: configs.Configured})
	defer fleet.Close()
	m, err := fleet.Add("sim-0001", "52:54:00:00:00:01")
	if err != nil {
		t.Fatal(err)
	}
	booted := make(chan wire.BootDevice, 4)
	m.OnBoot(func(_ context.Context, dev wire.BootDevice) { booted <- dev })

	var boot conductor.Boot = configs
	node := wire.Node{UUID: "n1", Driver: "sim", DriverInfo: map[string]any{sim.KeyMachine: "sim-0001"}}
	power, err := drivers(t, fleet).Power(node)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	params := wire.BootParams{Purpose: wire.BootForDeploy, Kernel: "agent/vmlinuz", Ramdisk: "agent/initrd", APIURL: "http://127.0.0.1:6385"}
	deploy := func() wire.BootDevice {
		t.Helper()
		if err := power.SetBootDevice(ctx, wire.BootPXE, false); err != nil {
			t.Fatal(err)
		}
		if err := power.SetPower(ctx, wire.PowerRebooting); err != nil {
			t.Fatal(err)
		}
		select {
		case dev := <-booted:
			return dev
		case <-time.After(10 * time.Second):
			t.Fatal("no boot")
			return ""
		}
	}
	if err := boot.Prepare(ctx, node, m.MACs(), params); err != nil {
		t.Fatal(err)
	}
	if dev := deploy(); dev != wire.BootPXE {
		t.Errorf("with a config: booted from %s, want pxe", dev)
	}
	if err := boot.CleanUp(ctx, node, m.MACs()); err != nil {
		t.Fatal(err)
	}
	if dev := deploy(); dev != wire.BootDisk {
		t.Errorf("without a config: booted from %s, want disk", dev)
	}
}
