package fleet

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/ironfleet/ironfleet/internal/apiclient"
)

// enrollment is what enroll registers.
type enrollment struct {
	n                  int
	imageURL, imageSum string
	// provide takes each node to available; manualClean enrolls them with
	// automated_clean false (providing skips cleaning).
	provide, manualClean bool
	// workers nodes at a time; zero means 8.
	workers int
}

// enroll registers e.n simulated nodes (sim-0001…) and their ports through
// the API, as an operator would, and with e.provide takes each to available.
func enroll(ctx context.Context, apiURL string, e enrollment, log *slog.Logger) error {
	automatedClean := !e.manualClean
	nodes := make([]apiclient.Node, e.n)
	for i := range nodes {
		name, mac := SimMachine(i)
		nodes[i] = apiclient.Node{
			Name: name, Driver: "sim", DriverInfo: map[string]any{"sim_machine": name},
			InstanceInfo: map[string]any{"image_source": e.imageURL, "image_checksum": e.imageSum},
			MACs:         []string{mac},
		}
		if e.manualClean {
			nodes[i].AutomatedClean = &automatedClean
		}
	}
	c := &apiclient.Client{Base: apiURL}
	if _, err := c.Enroll(ctx, nodes, apiclient.EnrollConfig{Workers: e.workers, Provide: e.provide}); err != nil {
		return err
	}
	log.Info("simulated nodes enrolled", "nodes", e.n, "provided", e.provide)
	return nil
}

// SimMachine is the name and MAC of the dev fleet's i-th simulated machine.
func SimMachine(i int) (name, mac string) {
	return fmt.Sprintf("sim-%04d", i+1), fmt.Sprintf("52:54:00:%02x:%02x:%02x", (i>>16)&0xff, (i>>8)&0xff, i&0xff)
}
