package conductor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bsm/redislock"

	"github.com/ironfleet/ironfleet/internal/provision"
	"github.com/ironfleet/ironfleet/lock"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// periodic runs the group's sweeps every Config.Periodic, on one conductor
// of the group at a time (a plain redislock lease: nothing to hand off, and
// a dead holder's lease simply expires).
func (c *Conductor) periodic(ctx context.Context, group string) {
	t := time.NewTicker(c.cfg.Periodic)
	defer t.Stop()
	var lastSync time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		lease, err := c.d.Leases.Obtain(ctx, "ifl:periodic:{"+group+"}", 2*c.cfg.Periodic, nil)
		if errors.Is(err, redislock.ErrNotObtained) {
			continue
		}
		if err != nil {
			c.log.Warn("periodic lease", "group", group, "err", err)
			continue
		}
		c.sweepWaits(ctx, group)
		c.sweepStuck(ctx, group, func(n wire.Node) bool {
			return n.ProvisionUpdatedAt.Before(time.Now().Add(-c.cfg.RecoverAfter))
		}, "its conductor stopped working on it")
		if time.Since(lastSync) >= c.cfg.PowerSync {
			c.syncPower(ctx, group)
			lastSync = time.Now()
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = lease.Release(rctx)
		cancel()
	}
}

// nodesIn lists the group's nodes in one of states.
func (c *Conductor) nodesIn(group string, states ...wire.ProvisionState) []wire.Node {
	var out []wire.Node
	for _, s := range states {
		for marker := ""; ; {
			page, err := c.d.Nodes.List(transport.NodeQuery{ProvisionState: s, ConductorGroup: &group, Marker: marker, Limit: transport.MaxLimit})
			if err != nil {
				c.log.Warn("listing nodes", "state", s, "err", err)
				break
			}
			out = append(out, page...)
			if len(page) < transport.MaxLimit {
				break
			}
			marker = page[len(page)-1].UUID
		}
	}
	return out
}

// tryNode runs fn on a node under its lock, if the lock is free now: the
// sweeps never wait, and never touch a node someone works on.
func (c *Conductor) tryNode(ctx context.Context, uuid, purpose string, fn func(w *job) error) {
	lk, err := c.d.Locks.Acquire(ctx, uuid, &lock.Options{Attempts: 1, Purpose: purpose, TTL: c.cfg.LockTTL})
	if err != nil {
		return
	}
	defer c.release(ctx, lk)
	node, err := c.d.Nodes.Get(lk.Context(), uuid) //nolint:contextcheck // work under a node lock runs on the lock's context: losing the lock cancels it
	if err != nil {
		return
	}
	w := &job{c: c, ctx: lk.Context(), outer: ctx, lk: lk, node: node,
		task: wire.Task{ID: "periodic-" + purpose, Node: uuid, Op: wire.Operation(purpose)}}
	if err := fn(w); err != nil {
		c.log.Warn("periodic work on node", "node", uuid, "purpose", purpose, "err", err)
	}
}

// sweepWaits fails nodes that waited for their agent longer than WaitTimeout.
func (c *Conductor) sweepWaits(ctx context.Context, group string) {
	for _, n := range c.nodesIn(group, wire.StateWaitCallback, wire.StateCleanWait, wire.StateInspectWait) {
		if !n.ProvisionUpdatedAt.Before(time.Now().Add(-c.cfg.WaitTimeout)) {
			continue
		}
		c.tryNode(ctx, n.UUID, "wait_timeout", func(w *job) error {
			if provision.KindOf(w.node.ProvisionState) != provision.Wait || w.node.ProvisionUpdatedAt != n.ProvisionUpdatedAt {
				return nil // it moved on meanwhile
			}
			_ = w.setPower(wire.PowerOff)
			//nolint:staticcheck // Ironic's words, shown to operators as last_error
			return w.fail(wire.Errorf(wire.CodeTimeout, "Timeout reached while waiting for callback for node %s after %s in %s",
				n.UUID, c.cfg.WaitTimeout, n.ProvisionState))
		})
	}
}

// sweepStuck fails nodes left in a transient state (by a conductor that
// died mid-work) that stale says are stuck, when nobody holds their lock.
func (c *Conductor) sweepStuck(ctx context.Context, group string, stale func(wire.Node) bool, why string) {
	for _, n := range c.nodesIn(group, wire.StateVerifying, wire.StateInspecting, wire.StateCleaning, wire.StateDeploying, wire.StateDeleting) {
		if !stale(n) {
			continue
		}
		c.tryNode(ctx, n.UUID, "recover", func(w *job) error {
			if w.node.ProvisionState != n.ProvisionState || w.node.ProvisionUpdatedAt != n.ProvisionUpdatedAt {
				return nil
			}
			return w.fail(wire.Errorf(wire.CodeUnavailable, "%s during %s (conductor %s)", why, n.ProvisionState, n.Conductor))
		})
	}
}

// clearLeftovers fails the nodes this conductor left in a transient state
// when it last stopped: it cannot be working on them, having just started.
func (c *Conductor) clearLeftovers(ctx context.Context) {
	for _, group := range c.cfg.Groups {
		c.sweepStuck(ctx, group, func(n wire.Node) bool {
			return n.Conductor == c.cfg.Host && n.ProvisionUpdatedAt.Before(c.started)
		}, "the conductor restarted")
	}
}

// syncPower reads every stable node's power state, records drift, and puts
// a node whose BMC keeps failing into maintenance.
func (c *Conductor) syncPower(ctx context.Context, group string) {
	for _, n := range c.nodesIn(group, wire.StateManageable, wire.StateAvailable, wire.StateActive,
		wire.StateDeployFailed, wire.StateCleanFailed, wire.StateInspectFailed, wire.StateError) {
		if n.Maintenance {
			continue
		}
		c.tryNode(ctx, n.UUID, "power_sync", func(w *job) error {
			pw, err := w.powerOf()
			var state wire.PowerState
			if err == nil {
				pctx, cancel := context.WithTimeout(w.ctx, 30*time.Second)
				state, err = pw.PowerState(pctx) //nolint:contextcheck // a job's work runs on its node lock's context: losing the lock cancels it
				cancel()
			}
			if err != nil {
				return w.update(func(n *wire.Node) {
					n.PowerFailures++
					if n.PowerFailures >= c.cfg.PowerSyncFailures {
						n.Maintenance, n.Fault = true, "power failure"
						n.MaintenanceReason = fmt.Sprintf("power state sync failed %d times: %v", n.PowerFailures, err)
					}
				})
			}
			before := w.node.PowerState
			if err := w.update(func(n *wire.Node) { n.PowerState, n.PowerFailures = state, 0 }); err != nil {
				return err
			}
			if before != state {
				ev := wire.NewEvent(wire.EventPowerState, n.UUID)
				ev.From, ev.To, ev.Message = string(before), string(state), "power state drift found by the power sync"
				c.dispatch.Event(ctx, ev)
			}
			return nil
		})
	}
}
