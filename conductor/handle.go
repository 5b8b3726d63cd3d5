package conductor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ironfleet/ironfleet/internal/provision"
	"github.com/ironfleet/ironfleet/lock"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// Steps record where a multi-phase flow stands (wire.Node.Step), so that a
// redelivered or recovered task resumes instead of starting over.
const (
	stepQueued     = "queued"      // admitted, waiting for the group's deploy or clean limit
	stepBoot       = "boot"        // booting the node into the agent
	stepWaitAgent  = "wait_agent"  // waiting for the agent's heartbeat
	stepWriteImage = "write_image" // the agent writes the image (continue_deploy)
	stepErase      = "erase"       // the agent is up and runs the clean steps (continue_clean)
)

// operations is how the conductor runs each operation a task may carry,
// under the node's lock: the one place an operation is looked up.
// Heartbeats are not here: they never wait for the lock (heartbeat).
var operations = map[wire.Operation]func(*job) error{
	wire.OpManage:         userOp(nil, (*job).manage),
	wire.OpProvide:        userOp(cleaningBoot, (*job).provide),
	wire.OpClean:          userOp(cleaningBoot, (*job).provide),
	wire.OpDeploy:         userOp(deployingBoot, (*job).deploy),
	wire.OpRebuild:        userOp(deployingBoot, (*job).deploy),
	wire.OpUndeploy:       userOp(cleaningBoot, (*job).undeploy),
	wire.OpInspect:        userOp(&bootResume{wire.StateInspecting, wire.BootForInspect}, (*job).startInspection),
	wire.OpAbort:          userOp(nil, (*job).abortAny),
	wire.OpAdopt:          userOp(nil, (*job).adopt),
	wire.OpRescue:         userOp(nil, (*job).rescue),
	wire.OpUnrescue:       userOp(nil, (*job).unrescue),
	wire.OpService:        userOp(nil, (*job).service),
	wire.OpUnhold:         userOp(nil, (*job).unhold),
	wire.OpPower:          (*job).power,
	wire.OpBootDevice:     (*job).bootDevice,
	wire.OpInjectNMI:      (*job).injectNMI,
	wire.OpConsole:        (*job).console,
	wire.OpContinueDeploy: (*job).continueDeploy,
	wire.OpContinueClean:  (*job).continueClean,
}

var (
	deployingBoot = &bootResume{wire.StateDeploying, wire.BootForDeploy}
	cleaningBoot  = &bootResume{wire.StateCleaning, wire.BootForClean}
)

// handle is the task handler of every group: it maps a task onto its
// operation and the operation's error onto an outcome. Operations record
// failures of the node itself (a BMC error, a bad image) on the node and
// return nil; what they return is a failure to do the work at all (NATS or
// Redis unreachable, the lock lost), which a redelivery retries.
func (c *Conductor) handle(ctx context.Context, t wire.Task, d transport.Delivery) transport.Outcome {
	start := time.Now()
	// Hops of a task's timeline (ironfleet bench fleet --lifecycle traces
	// them): how long it waited on the bus, then for its node's lock.
	c.log.Debug("task started", "node", t.Node, "task", t.ID, "op", t.Op, "published", d.Published, "delivery", d.NumDelivered)
	var out transport.Outcome
	var outcome string
	if op, ok := operations[t.Op]; ok {
		out, outcome = c.withLock(ctx, t, d, op)
	} else if t.Op == wire.OpHeartbeat {
		out, outcome = c.heartbeat(ctx, t, d)
	} else {
		out, outcome = transport.Fail(wire.Errorf(wire.CodeInvalidInput, "conductor: unknown operation %q", t.Op)), "failed"
	}
	c.metrics.tasks.WithLabelValues(string(t.Op), outcome).Inc()
	c.metrics.taskSeconds.WithLabelValues(string(t.Op)).Observe(time.Since(start).Seconds())
	return out
}

// errBusy marks work that cannot start now but will later (a limit reached).
var errBusy = errors.New("conductor: busy")

// errStaleAgent: a heartbeat's agent is no longer the node's (its token
// was forgotten when the node rebooted, or replaced by a later agent's).
var errStaleAgent = errors.New("conductor: heartbeat of an agent the node no longer has")

// errUnanswered marks a node write the inventory did not answer (a
// timeout: it may or may not be stored). It is not the node's failure:
// fail leaves the node alone and the task is retried, its redelivery
// resuming the flow, but on the task's last delivery. At 10,000 nodes on
// one overloaded process such timeouts failed deploys that a retry
// finishes.
var errUnanswered = errors.New("the inventory did not answer")

// withLock takes the task's node lock, runs op under it and releases it
// (unless op handed it off).
func (c *Conductor) withLock(ctx context.Context, t wire.Task, d transport.Delivery, op func(*job) error) (transport.Outcome, string) {
	lk, err := c.acquire(ctx, t)
	if errors.Is(err, ErrGaveUp) {
		// Ironic's way: the continuation is dropped and the node stays in
		// its transient state (stuck) until recovery.
		c.log.Warn("continuation gave up on the node's lock; the node is stuck", "task", t.ID, "op", t.Op, "node", t.Node, "err", err)
		ev := wire.TaskEvent(wire.EventTaskFailed, t)
		ev.Code, ev.Message = wire.CodeNodeLocked, "gave up on the node's lock; the node is left in its transient state: "+err.Error()
		c.dispatch.Event(ctx, ev)
		return transport.Done(), "gave_up"
	}
	if errors.Is(err, lock.ErrTicketUsed) {
		// A copy of this task finished and let its lock go, and then its
		// ack was lost: the work is done, and doing it again could undo a
		// newer request (turn a machine back off, reboot it twice).
		c.log.Info("task already done by an earlier delivery", "task", t.ID, "op", t.Op, "node", t.Node, "delivery", d.NumDelivered)
		return transport.Done(), "done_before"
	}
	if err != nil {
		if ctx.Err() != nil {
			return transport.Retry(0, err), "interrupted"
		}
		c.log.Info("task waits for its node's lock", "task", t.ID, "op", t.Op, "node", t.Node, "delivery", d.NumDelivered, "err", err)
		return transport.Retry(0, err), "locked"
	}
	c.log.Debug("lock claimed", "node", t.Node, "task", t.ID, "op", t.Op)
	// Releasing spends the task's ticket (a later copy of the task is taken
	// as done); work that will be retried yields it instead, unspent.
	done := false
	defer func() { c.release(ctx, lk, done) }()
	if err := c.run(lk.Context(), ctx, lk, t, d.Last, op); err != nil { //nolint:contextcheck // work under a node lock runs on the lock's context: losing the lock cancels it
		if errors.Is(err, errBusy) {
			return transport.Retry(0, err), "busy"
		}
		if cause := context.Cause(lk.Context()); errors.Is(cause, lock.ErrLost) { //nolint:contextcheck // a job's work runs on its node lock's context: losing the lock cancels it
			err = fmt.Errorf("%w (%w)", err, cause)
		}
		c.log.Warn("task failed; it will be retried", "task", t.ID, "op", t.Op, "node", t.Node, "err", err)
		return transport.Retry(0, err), "retry"
	}
	done = true
	return transport.Done(), "done"
}

// acquire takes the lock a task needs: a continuation or a user action
// published by the api claims the ticket the lock was handed to (waiting in
// line with it if the handoff has not happened yet, or if the ticket expired
// while the task was queued); a task without a ticket tries Ironic's way
// (or, for a continuation, the way Deps.Handoff.Take says).
func (c *Conductor) acquire(ctx context.Context, t wire.Task) (*lock.Lock, error) {
	opts := &lock.Options{Purpose: string(t.Op), TTL: c.cfg.LockTTL}
	if t.Ticket == "" {
		if take := c.d.Handoff.Take; take != nil && isContinuation(t.Op) {
			return take(ctx, c.d.Locks, t, opts)
		}
		return c.d.Locks.Acquire(ctx, t.Node, opts)
	}
	opts.Mode, opts.Ticket = lock.Patient, t.Ticket
	wctx, cancel := context.WithTimeout(ctx, c.cfg.ClaimWait)
	defer cancel()
	lk, err := c.d.Locks.Acquire(wctx, t.Node, opts)
	if errors.Is(err, lock.ErrTicketClaimed) {
		// The same task delivered twice: the other copy holds the lock.
		return nil, err
	}
	return lk, err
}

func isContinuation(op wire.Operation) bool {
	return op == wire.OpContinueDeploy || op == wire.OpContinueClean
}

// release gives lk up: a task whose work is done spends its ticket
// (Release), one that will be retried leaves it for its next delivery
// (Yield). A lock already handed off is not held: nothing to do.
func (c *Conductor) release(ctx context.Context, lk *lock.Lock, done bool) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	give := lk.Yield
	if done {
		give = lk.Release
	}
	if err := give(rctx); err != nil && !errors.Is(err, lock.ErrNotHeld) {
		c.log.Warn("releasing node lock", "node", lk.Resource(), "err", err)
	}
}

// run re-reads the node under the lock and runs op on it. work is the
// lock's context (cancelled if the lock is lost); outer outlives the lock,
// for the handoff that ends it.
func (c *Conductor) run(work, outer context.Context, lk *lock.Lock, t wire.Task, last bool, op func(*job) error) error {
	node, err := c.d.Nodes.Get(work, t.Node)
	if err != nil {
		if wire.CodeOf(err) == wire.CodeNotFound {
			c.log.Info("task for a node that no longer exists", "task", t.ID, "node", t.Node)
			return nil
		}
		return err
	}
	w := &job{c: c, ctx: work, outer: outer, lk: lk, node: node, task: t, last: last}
	return op(w)
}

// job is one task's work on one node, under its lock.
type job struct {
	c     *Conductor
	ctx   context.Context // the lock's context
	outer context.Context
	lk    *lock.Lock
	node  wire.Node
	task  wire.Task
	// last says this is the task's last delivery: work that would wait
	// for a retry (errBusy) ends instead.
	last bool
}

func (w *job) log(msg string, args ...any) {
	w.c.log.Info(msg, append([]any{"node", w.node.UUID, "task", w.task.ID, "op", w.task.Op}, args...)...)
}

// update writes the node with this lock's fencing token.
func (w *job) update(fn func(*wire.Node)) error {
	return w.updateIf(func(n *wire.Node) error { fn(n); return nil })
}

// updateIf is update with fn able to refuse the write: fn runs on the
// record as stored, which may be newer than w.node, and its error is
// returned (wrapped) without writing.
func (w *job) updateIf(fn func(*wire.Node) error) error {
	n, err := w.c.d.Nodes.UpdateNode(w.ctx, w.node.UUID, w.lk.Token(), func(n *wire.Node) error {
		if err := fn(n); err != nil {
			return err
		}
		n.Conductor = w.c.cfg.Host
		return nil
	})
	if wire.CodeOf(err) == wire.CodeUnavailable {
		return fmt.Errorf("conductor: write node %s: %w: %w", w.node.UUID, errUnanswered, err)
	}
	if err != nil {
		return fmt.Errorf("conductor: write node %s: %w", w.node.UUID, err)
	}
	w.node = n
	return nil
}

// move changes the node's provision state (and anything else fn sets) and
// publishes the change.
func (w *job) move(to, target wire.ProvisionState, fn func(*wire.Node)) error {
	from := w.node.ProvisionState
	if err := w.update(func(n *wire.Node) {
		n.ProvisionState, n.TargetProvisionState = to, target
		n.ProvisionUpdatedAt = time.Now().UTC()
		if fn != nil {
			fn(n)
		}
	}); err != nil {
		return err
	}
	if from != to {
		ev := w.event(wire.EventProvisionState)
		ev.From, ev.To, ev.Message = string(from), string(to), w.node.LastError
		w.c.dispatch.Event(w.outer, ev)
	}
	return nil
}

// next applies an internal event of the state machine; the node's target
// follows provision's rule (Transition.TargetAfter).
func (w *job) next(e provision.Event, fn func(*wire.Node)) error {
	tr, err := provision.Next(w.node.UUID, w.node.ProvisionState, e)
	if err != nil {
		return err
	}
	return w.move(tr.To, tr.TargetAfter(w.node.TargetProvisionState), fn)
}

// fail moves the node to the failed state of where it stands, recording why,
// and cleans up its network boot. The node's failure is recorded, so fail
// returns only errors in recording it — or cause itself, recording
// nothing, when cause is a node write the inventory did not answer
// (errUnanswered) and the task has deliveries left.
func (w *job) fail(cause error) error {
	if errors.Is(cause, errUnanswered) && !w.last {
		return cause
	}
	msg := cause.Error()
	w.c.log.Warn("node failed", "node", w.node.UUID, "state", w.node.ProvisionState, "err", msg)
	w.cleanUpBoot()
	w.history(msg, eventType(w.node.ProvisionState))
	to, ok := provision.FailedState(w.node.ProvisionState)
	if !ok {
		return w.update(func(n *wire.Node) { n.LastError = msg })
	}
	// A failed state keeps aiming where the flow did, as Ironic's
	// (deploy failed → active); a stable one (enroll, error) aims nowhere.
	tr := provision.Transition{From: w.node.ProvisionState, Event: provision.EventFail, To: to}
	err := w.move(to, tr.TargetAfter(w.node.TargetProvisionState), func(n *wire.Node) {
		n.LastError, n.Step, n.Steps, n.StepIndex, n.Agent = msg, "", nil, 0, nil
	})
	ev := w.event(wire.EventTaskFailed)
	ev.Code, ev.Message = wire.CodeOf(cause), msg
	w.c.dispatch.Event(w.outer, ev)
	return err
}

// event mints an event of type typ about this job's task.
func (w *job) event(typ wire.EventType) wire.Event {
	ev := wire.TaskEvent(typ, w.task)
	ev.Node = w.node.UUID
	return ev
}

// powerChanged publishes a node.power_state event when the node's power
// moved from before.
func (w *job) powerChanged(before, now wire.PowerState) {
	if now == before {
		return
	}
	ev := w.event(wire.EventPowerState)
	ev.From, ev.To = string(before), string(now)
	w.c.dispatch.Event(w.outer, ev)
}

// powerOf is the node's Power, which checks the node's lock before every
// command it sends (leased).
func (w *job) powerOf() (Power, error) {
	pw, err := w.c.d.Drivers.Power(w.node)
	if err != nil {
		return nil, err
	}
	return leased{Power: pw, check: w.lk.Check}, nil
}

// leased is a node's Power that checks the node's lock right before each
// command to the BMC (lock.Check): a conductor stopped past its lease
// (SIGSTOP, a long pause) and woken again sends nothing, even before its
// lock's refresher has run and cancelled the work. Fencing guards the node
// record; nothing fences a BMC. Reads are not checked.
type leased struct {
	Power
	check func() error
}

func (p leased) SetPower(ctx context.Context, target wire.PowerState) error {
	if err := p.check(); err != nil {
		return err
	}
	return p.Power.SetPower(ctx, target)
}

func (p leased) SetBootDevice(ctx context.Context, dev wire.BootDevice, persistent bool) error {
	if err := p.check(); err != nil {
		return err
	}
	return p.Power.SetBootDevice(ctx, dev, persistent)
}

func (w *job) power() error {
	var p wire.PowerParams
	if err := json.Unmarshal(w.task.Params, &p); err != nil {
		return w.update(func(n *wire.Node) { n.LastError = "bad power request: " + err.Error() })
	}
	pw, err := w.powerOf()
	if err != nil {
		return w.update(func(n *wire.Node) { n.LastError = err.Error() })
	}
	if err := w.update(func(n *wire.Node) { n.TargetPowerState = provision.PowerTarget(p.Target) }); err != nil {
		return err
	}
	before := w.node.PowerState
	setErr := w.changePower(pw, p)
	state, readErr := pw.PowerState(w.ctx)
	err = w.update(func(n *wire.Node) {
		n.TargetPowerState = ""
		if readErr == nil {
			n.PowerState = state
		}
		switch {
		case setErr != nil:
			n.LastError = fmt.Sprintf("Failed to change power state to '%s' by '%s': %v", provision.PowerTarget(p.Target), p.Target, setErr)
		case readErr != nil:
			n.LastError = fmt.Sprintf("Failed to read the power state: %v", readErr)
		default:
			n.LastError = ""
		}
	})
	if readErr == nil {
		w.powerChanged(before, state)
	}
	if err == nil && (setErr != nil || readErr != nil) {
		// Ironic's node_power_action records its failure with no event type.
		w.history(w.node.LastError, "UNKNOWN")
	}
	return err
}

func (w *job) bootDevice() error {
	var p wire.BootDeviceParams
	if err := json.Unmarshal(w.task.Params, &p); err != nil {
		return w.update(func(n *wire.Node) { n.LastError = "bad boot device request: " + err.Error() })
	}
	pw, err := w.powerOf()
	if err == nil {
		err = pw.SetBootDevice(w.ctx, p.Device, p.Persistent)
	}
	return w.update(func(n *wire.Node) {
		if err != nil {
			n.LastError = fmt.Sprintf("Failed to set boot device to %q: %v", p.Device, err)
			return
		}
		n.BootDevice, n.BootDevicePersistent, n.LastError = p.Device, p.Persistent, ""
	})
}
