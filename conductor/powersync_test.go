package conductor_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ironfleet/ironfleet/conductor"
	"github.com/ironfleet/ironfleet/lock"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// bmcs are the BMCs of driver "counted": every read reports "power off",
// counts the reads in flight and, while held, blocks until let go.
type bmcs struct {
	release chan struct{}
	once    sync.Once
	mu      sync.Mutex
	now     int
	peak    int
}

func (b *bmcs) letGo() { b.once.Do(func() { close(b.release) }) }

func (b *bmcs) inFlight() (now, peak int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.now, b.peak
}

type countedBMC struct{ b *bmcs }

func (p countedBMC) PowerState(ctx context.Context) (wire.PowerState, error) {
	p.b.mu.Lock()
	p.b.now++
	p.b.peak = max(p.b.peak, p.b.now)
	p.b.mu.Unlock()
	defer func() { p.b.mu.Lock(); p.b.now--; p.b.mu.Unlock() }()
	select {
	case <-p.b.release:
		return wire.PowerOff, nil
	case <-ctx.Done():
		return "", context.Cause(ctx)
	}
}

func (countedBMC) SetPower(context.Context, wire.PowerState) error            { return nil }
func (countedBMC) SetBootDevice(context.Context, wire.BootDevice, bool) error { return nil }

// TestPowerSyncBoundedAndLockFree: the power sync covers every node of the
// group with at most PowerSyncWorkers reads at once (Ironic's
// sync_power_state_workers), and while it reads no node's lock is held, so
// a user action on any node is granted at once; the drift it found is then
// written on every node.
func TestPowerSyncBoundedAndLockFree(t *testing.T) {
	const nodes, workers = 24, 4
	e := newEnv(t)
	b := &bmcs{release: make(chan struct{})}
	t.Cleanup(b.letGo)
	e.deps = func(_ string, d *conductor.Deps) {
		d.Drivers["counted"] = conductor.NewPowerDriver(func(map[string]any) error { return nil },
			func(wire.Node) (countedBMC, error) { return countedBMC{b: b}, nil })
	}
	var uuids []string
	for i := range nodes {
		n, err := e.inv.CreateNode(t.Context(), wire.Node{UUID: wire.NewUUID(), Name: fmt.Sprint("counted-", i), Driver: "counted",
			ProvisionState: wire.StateManageable, PowerState: wire.PowerOn, CreatedAt: time.Now().UTC()})
		if err != nil {
			t.Fatal(err)
		}
		uuids = append(uuids, n.UUID)
	}
	e.startConductor(t, "c1", nil, func(c *conductor.Config) {
		fastSweeps(c)
		c.PowerSyncWorkers = workers
	})
	waitFor(t, "the sync to read as many BMCs at once as it has workers", func() bool { now, _ := b.inFlight(); return now == workers })

	user := newLocker(t, e.rc, "user")
	for _, id := range uuids {
		lk, err := user.Acquire(t.Context(), id, &lock.Options{Attempts: 1, Purpose: "user action"})
		if err != nil {
			t.Fatalf("a user action on node %s during the sync: %v; want the lock at once", id, err)
		}
		if err := lk.Release(t.Context()); err != nil {
			t.Fatal(err)
		}
	}

	b.letGo()
	waitFor(t, "the sync to write the drift of every node", func() bool {
		if err := e.inv.Sync(t.Context()); err != nil {
			return false
		}
		off, _ := e.inv.List(transport.NodeQuery{})
		n := 0
		for _, nd := range off {
			if nd.Driver == "counted" && nd.PowerState == wire.PowerOff {
				n++
			}
		}
		return n == nodes
	})
	if _, peak := b.inFlight(); peak > workers {
		t.Fatalf("%d power reads at once, want at most %d", peak, workers)
	}
}

// TestPowerSync10kNodes: one power sync reads every one of 10,000 nodes
// whose BMCs answer at once and agree with the records (the steady state:
// reads only, no lock, no write) with the default 8 workers. It logs how
// long that took, the conductor's own cost per period (DefaultPowerSync,
// 2 minutes), as a measurement, not asserted.
func TestPowerSync10kNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("enrolls 10,000 nodes; skipped with -short")
	}
	const nodes = 10000
	e := newEnv(t)
	var reads atomic.Int64
	e.deps = func(_ string, d *conductor.Deps) {
		d.Drivers["counted"] = conductor.NewPowerDriver(func(map[string]any) error { return nil },
			func(wire.Node) (countingBMC, error) { return countingBMC{reads: &reads}, nil })
	}
	var g errgroup.Group
	g.SetLimit(32)
	for i := range nodes {
		g.Go(func() error {
			_, err := e.inv.CreateNode(t.Context(), wire.Node{UUID: wire.NewUUID(), Name: fmt.Sprint("many-", i), Driver: "counted",
				ProvisionState: wire.StateManageable, PowerState: wire.PowerOff, CreatedAt: time.Now().UTC()})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	e.startConductor(t, "c1", nil, func(c *conductor.Config) {
		c.Periodic, c.PeriodicLease, c.PowerSync = 20*time.Millisecond, time.Second, time.Hour
	})
	// Waited for up to one period (DefaultPowerSync): a liveness deadline.
	for deadline := time.Now().Add(conductor.DefaultPowerSync); reads.Load() < nodes; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("one sync read %d of %d nodes in %s", reads.Load(), nodes, conductor.DefaultPowerSync)
		}
	}
	t.Logf("a conductor started and synced the power of %d nodes in %s (8 workers)", nodes, time.Since(start).Round(time.Millisecond))
}

// countingBMC answers "power off" at once and counts its reads.
type countingBMC struct{ reads *atomic.Int64 }

func (p countingBMC) PowerState(context.Context) (wire.PowerState, error) {
	p.reads.Add(1)
	return wire.PowerOff, nil
}

func (countingBMC) SetPower(context.Context, wire.PowerState) error            { return nil }
func (countingBMC) SetBootDevice(context.Context, wire.BootDevice, bool) error { return nil }
