package fleetbench_test

import (
	"os/exec"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/internal/fleetbench"
	"github.com/ironfleet/ironfleet/internal/redistest"
)

// TestDescriptorsBounded: the whole fleet in this process — API, NATS,
// conductors, simulated agents, the benchmark's client — holds no more file
// descriptors with 600 nodes deploying at once than the bound it holds with
// 60, because every client pools a bounded number of connections per host.
// Before the pools were bounded, 1,000 nodes held 2,098 (both ends of a
// connection per agent and per deploy request), well past the bound here.
func TestDescriptorsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two fleets, one of 600 nodes; skipped with -short")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		redistest.Unavailable(t, err)
	}
	// The pools' bounds, both ends in this process: the agents' 64 and the
	// benchmark's 64 to the API, two conductors' 32 to the agents, plus
	// NATS, Redis, listeners and files.
	const bound = 2*(64+64+2*32) + 150
	for _, nodes := range []int{60, 600} {
		results, err := fleetbench.Run(t.Context(), fleetbench.Config{
			Nodes: nodes, Pests: -1, Strategies: []fleetbench.Strategy{fleetbench.StrategyHandoff},
			Timeout: 5 * time.Minute, DataDir: t.TempDir(), HeartbeatTimeout: 30 * time.Second,
		}, nil)
		if err != nil {
			t.Fatalf("%d nodes: %v", nodes, err)
		}
		r := results[0]
		t.Logf("%d nodes: %d active, at most %d descriptors", nodes, r.Active, r.MaxFDs)
		if r.Active != nodes {
			t.Errorf("%d nodes: %d active, want all", nodes, r.Active)
		}
		if r.MaxFDs == 0 || r.MaxFDs > bound {
			t.Errorf("%d nodes: at most %d descriptors at once, want 1 to %d", nodes, r.MaxFDs, bound)
		}
	}
}
