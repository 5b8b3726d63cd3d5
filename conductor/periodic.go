package conductor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/bsm/redislock"

	"github.com/ironfleet/ironfleet/internal/dispatch"
	"github.com/ironfleet/ironfleet/internal/provision"
	"github.com/ironfleet/ironfleet/lock"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// periodic runs the group's sweeps on one conductor of the group at a time.
// Every Config.Periodic it tries to take the group's lease (a plain
// redislock lease: nothing to hand off); whoever gets it leads until it
// stops or loses the lease.
func (c *Conductor) periodic(ctx context.Context, group string) {
	t := time.NewTicker(c.cfg.Periodic)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sent := time.Now()
		lk, err := c.d.Leases.Obtain(ctx, "ifl:periodic:{"+group+"}", c.cfg.PeriodicLease, &redislock.Options{Metadata: c.cfg.Host})
		if errors.Is(err, redislock.ErrNotObtained) {
			continue // another conductor leads
		}
		if err != nil {
			if ctx.Err() == nil {
				c.log.Warn("periodic lease", "group", group, "err", err)
			}
			continue
		}
		c.lead(ctx, group, keepLease(ctx, lk, c.cfg.PeriodicLease, sent, c.log.With("group", group)), t.C)
	}
}

// lead sweeps the group now and at every tick for as long as it holds the
// lease, which is renewed meanwhile: a sweep longer than the lease keeps it.
// The sweeps run on the lease's context, so losing the lease stops them (and
// the node work in flight) with cause ErrLeaseLost; lead then returns to
// trying for the lease. Leadership sticks between sweeps, so a group is
// swept once per period however many conductors serve it, and the lease is
// given back only when the conductor stops: a successor starts at its next
// tick instead of when the lease would have run out.
func (c *Conductor) lead(ctx context.Context, group string, l *lease, tick <-chan time.Time) {
	defer l.end(ctx)
	c.log.Info("leading periodic work", "group", group)
	var lastSync time.Time
	for {
		c.sweep(l.ctx, group, &lastSync) //nolint:contextcheck // the lease's context derives from ctx and also ends when the lease is lost
		select {
		case <-l.ctx.Done():
			return
		case <-tick:
		}
	}
}

// sweep runs the group's periodic work once; power states are synced when
// PowerSync has passed since lastSync.
func (c *Conductor) sweep(ctx context.Context, group string, lastSync *time.Time) {
	c.sweepWaits(ctx, group)
	c.sweepStuck(ctx, group, func(n wire.Node) bool {
		return n.ProvisionUpdatedAt.Before(time.Now().Add(-c.cfg.RecoverAfter))
	}, "its conductor stopped working on it")
	if ctx.Err() == nil && time.Since(*lastSync) >= c.cfg.PowerSync {
		c.syncPower(ctx, group)
		*lastSync = time.Now()
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
// sweeps never wait, and never touch a node someone works on. The work is
// cancelled when the lock is lost or when ctx ends (the periodic lease lost).
func (c *Conductor) tryNode(ctx context.Context, uuid, purpose string, fn func(w *job) error) {
	lk, err := c.d.Locks.Acquire(ctx, uuid, &lock.Options{Attempts: 1, Purpose: purpose, TTL: c.cfg.LockTTL})
	if err != nil {
		return
	}
	defer c.release(ctx, lk, true)
	work, cancel := context.WithCancelCause(lk.Context())
	defer cancel(nil)
	defer context.AfterFunc(ctx, func() { cancel(context.Cause(ctx)) })()
	node, err := c.d.Nodes.Get(work, uuid) //nolint:contextcheck // work under a node lock runs on the lock's context: losing the lock cancels it
	if err != nil {
		return
	}
	w := &job{c: c, ctx: work, outer: ctx, lk: lk, node: node,
		task: wire.Task{ID: "periodic-" + purpose, Node: uuid, Op: wire.Operation(purpose)}}
	if err := fn(w); err != nil && work.Err() == nil {
		c.log.Warn("periodic work on node", "node", uuid, "purpose", purpose, "err", err)
	}
}

// sweepWaits fails nodes that waited for their agent longer than WaitTimeout.
func (c *Conductor) sweepWaits(ctx context.Context, group string) {
	for _, n := range c.nodesIn(group, provision.InKind(provision.Wait)...) {
		if ctx.Err() != nil {
			return
		}
		if !n.ProvisionUpdatedAt.Before(time.Now().Add(-c.cfg.WaitTimeout)) {
			continue
		}
		c.tryNode(ctx, n.UUID, "wait_timeout", func(w *job) error { //nolint:contextcheck // the work runs on the node lock's context (w.ctx), derived from ctx
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
// died mid-work) that stale says are stuck, when nobody holds their lock —
// but not while the group's work queue still holds a task stored no later
// than OrphanAfter past the node's last move: the node's next task may be
// among them, only slow (at 10,000 nodes the backlog outlasted
// RecoverAfter, and this sweep failed 70 deploys whose tasks were queued).
func (c *Conductor) sweepStuck(ctx context.Context, group string, stale func(wire.Node) bool, why string) {
	nodes := c.nodesIn(group, provision.InKind(provision.Transient)...)
	if len(nodes) == 0 {
		return
	}
	oldest, queued, err := c.d.Tasks.OldestTask(ctx, group, "")
	if err != nil {
		c.log.Warn("reading the task queue; nodes are not swept this time", "group", group, "err", err)
		return
	}
	for _, n := range nodes {
		if ctx.Err() != nil {
			return
		}
		if !stale(n) || (queued && !oldest.After(n.ProvisionUpdatedAt.Add(c.cfg.OrphanAfter))) {
			continue
		}
		c.tryNode(ctx, n.UUID, "recover", func(w *job) error { //nolint:contextcheck // the work runs on the node lock's context (w.ctx), derived from ctx
			if w.node.ProvisionState != n.ProvisionState || w.node.ProvisionUpdatedAt != n.ProvisionUpdatedAt {
				return nil
			}
			if d := w.node.Dispatched; d != nil && dispatch.Unfinished(w.node, d.Op) != nil {
				// A request's first move whose task never began: the
				// request's answer was lost (503) and nobody asked again,
				// or its process died before publishing. A task stored
				// after all finds the node failed and changes nothing.
				return w.fail(wire.Errorf(wire.CodeUnavailable, "the %s task %s never started after its first move to %s; ask again",
					d.Op, d.Task, n.ProvisionState))
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

// powerSynced are the states whose nodes the power sync reads: stable and
// failed ones but those Ironic excludes (SYNC_EXCLUDED_STATES: enroll,
// whose BMC is not verified yet, and adopt failed).
func powerSynced() []wire.ProvisionState {
	return slices.DeleteFunc(append(provision.InKind(provision.Stable), provision.InKind(provision.Failed)...),
		func(s wire.ProvisionState) bool { return s == wire.StateEnroll || s == wire.StateAdoptFailed })
}

// syncPower reads the power state of the group's stable nodes not in
// maintenance and without a power action under way, PowerSyncWorkers at a
// time, as Ironic's _sync_power_states does (ironic/conductor/manager.py: a
// pool of [conductor]sync_power_state_workers, 8 by default, taking nodes
// from a queue), so that a period covers thousands of nodes however slow
// each BMC is. Ironic reads under a shared lock, which no user action waits
// for, and upgrades it only to write; here a read takes no lock at all, and
// the node's lock is tried (never waited for: a node someone works on is
// skipped, as Ironic skips NodeLocked) only when there is something to
// write — drift, or a failure count to change.
func (c *Conductor) syncPower(ctx context.Context, group string) {
	start := time.Now()
	nodes := c.nodesIn(group, powerSynced()...)
	queue := make(chan wire.Node)
	var wg sync.WaitGroup
	var read int
	for range min(c.cfg.PowerSyncWorkers, len(nodes)) {
		wg.Go(func() {
			for n := range queue {
				c.syncPowerOf(ctx, n)
			}
		})
	}
	defer func() {
		close(queue)
		wg.Wait()
		if ctx.Err() == nil {
			c.metrics.powerSyncSeconds.Set(time.Since(start).Seconds())
			c.metrics.powerSyncNodes.Set(float64(read))
		}
	}()
	for _, n := range nodes {
		if n.Maintenance || n.TargetPowerState != "" {
			continue
		}
		select {
		case queue <- n:
			read++
		case <-ctx.Done():
			return
		}
	}
}

// syncPowerOf syncs one node listed (from the cache) as n.
func (c *Conductor) syncPowerOf(ctx context.Context, n wire.Node) {
	var state wire.PowerState
	pw, err := c.d.Drivers.Power(n)
	if err == nil {
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		state, err = pw.PowerState(pctx)
		cancel()
	}
	if ctx.Err() != nil || (err == nil && state == n.PowerState && n.PowerFailures == 0) {
		return // the lease is lost, or nothing to write
	}
	c.tryNode(ctx, n.UUID, "power_sync", func(w *job) error {
		// Re-checked under the lock: since the listing a deploy may have
		// started, an operator may have put the node in maintenance (then
		// its BMC is not ours to poll), or a power action may have run.
		cur := w.node
		if cur.Maintenance || cur.ProvisionState != n.ProvisionState || cur.TargetPowerState != "" ||
			cur.PowerState != n.PowerState || cur.PowerFailures != n.PowerFailures {
			return nil
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
		before := cur.PowerState
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
