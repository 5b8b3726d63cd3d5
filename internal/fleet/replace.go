package fleet

import (
	"context"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/ironfleet/ironfleet/internal/wait"
	"github.com/ironfleet/ironfleet/lock"
	"github.com/ironfleet/ironfleet/transport"
)

// devConductor is one conductor of a dev fleet and what stops it.
type devConductor struct {
	host  string
	stop  context.CancelFunc
	done  chan struct{}
	infra *Infra // a replacement's own; nil for the fleet's shared one
}

// serveConductor runs c in the fleet's group on a context of its own,
// derived from ctx (the fleet's group context), so that ReplaceConductor
// can stop it alone.
func (d *Dev) serveConductor(ctx context.Context, c *Conductor, pc net.PacketConn) *devConductor {
	ctx, stop := context.WithCancel(ctx)
	dc := &devConductor{host: c.cfg.Conductor.Host, stop: stop, done: make(chan struct{})}
	d.g.Go(func() error {
		defer close(dc.done)
		defer stop()
		return c.Serve(ctx, pc)
	})
	return dc
}

// ReplaceConductor stops the fleet's i-th conductor (0-based; its context
// is cancelled, as SIGTERM does: its tasks in flight are left to their
// redelivery and their locks to their leases) and starts a replacement the
// way a new conductor process starts: its own NATS connection, Redis
// client, inventory (whose cache loads every node) and registration.
// startup is from the stop until the registry lists the replacement.
func (d *Dev) ReplaceConductor(ctx context.Context, i int) (startup time.Duration, err error) {
	if i < 0 || i >= len(d.running) {
		return 0, fmt.Errorf("fleet: no conductor %d", i)
	}
	old := d.running[i]
	old.stop()
	select {
	case <-old.done:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	start := time.Now()
	dc, err := d.startReplacement(ctx, old.host+"-r")
	if err != nil {
		return 0, err
	}
	d.running[i] = dc
	for {
		infos, err := dc.infra.Registry.Conductors(ctx)
		if err == nil && slices.ContainsFunc(infos, func(c transport.ConductorInfo) bool { return c.Host == dc.host }) {
			return time.Since(start), nil
		}
		if err := wait.Sleep(ctx, 10*time.Millisecond); err != nil {
			return 0, err
		}
	}
}

func (d *Dev) startReplacement(ctx context.Context, host string) (*devConductor, error) {
	nc, err := transport.Connect(ctx, transport.ConnectConfig{URLs: []string{d.nats.URL()}, Name: host, Logger: d.log})
	if err != nil {
		return nil, err
	}
	closes := []func(){nc.Close}
	undo := func() {
		for i := len(closes) - 1; i >= 0; i-- {
			closes[i]()
		}
	}
	rc, err := NewRedis(ctx, d.RedisURL())
	if err != nil {
		undo()
		return nil, err
	}
	closes = append(closes, func() { _ = rc.Close() })
	// No Registerer: the lock's metrics are the fleet's first infra's; the
	// conductor's own carry its host.
	infra, err := NewInfra(ctx, nc, rc, InfraConfig{
		Lock:   lock.Config{TTL: d.cfg.LockTTL, Attempts: d.cfg.LockAttempts, Interval: d.cfg.LockInterval, Holder: host},
		Logger: d.log,
	})
	if err != nil {
		undo()
		return nil, err
	}
	closes = append(closes, infra.Close)
	c, err := d.newConductor(infra, host)
	if err != nil {
		undo()
		return nil, err
	}
	dc := d.serveConductor(d.gctx, c, nil) //nolint:contextcheck // it runs as long as the fleet, not as long as this call
	dc.infra = infra
	d.stops = append(d.stops, undo)
	return dc, nil
}
