package sim_test

import (
	"context"
	"fmt"

	"github.com/ironfleet/ironfleet/conductor/sim"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// A conductor PXE-boots a simulated machine for a deploy; the agent on it
// writes the image and reboots; the machine comes back from its disk.
func Example() {
	fleet := sim.NewFleet(sim.Config{}) // zero Timings: instant
	defer fleet.Close()
	m, _ := fleet.Add("sim-0001", "52:54:00:00:00:01")

	booted := make(chan wire.BootDevice, 2)
	m.OnBoot(func(ctx context.Context, dev wire.BootDevice) {
		booted <- dev
		if dev == wire.BootPXE { // the simulated agent's work
			_ = m.Reboot(ctx)
		}
	})

	// What the conductor does, through the Power interface.
	power, _ := fleet.NodePower(wire.Node{UUID: "n1", Driver: "sim",
		DriverInfo: map[string]any{sim.KeyMachine: "sim-0001"}})
	ctx := context.Background()
	_ = power.SetBootDevice(ctx, wire.BootPXE, false)
	_ = power.SetPower(ctx, wire.PowerRebooting)

	fmt.Println(<-booted, <-booted)
	// Output: pxe disk
}
