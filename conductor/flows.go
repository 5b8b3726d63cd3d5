package conductor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ironfleet/ironfleet/agent"
	"github.com/ironfleet/ironfleet/conductor/provision"
	"github.com/ironfleet/ironfleet/lock"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

var verbOf = map[wire.Operation]provision.Verb{
	wire.OpManage: provision.VerbManage, wire.OpProvide: provision.VerbProvide,
	wire.OpDeploy: provision.VerbDeploy, wire.OpRebuild: provision.VerbRebuild,
	wire.OpUndeploy: provision.VerbUndeploy, wire.OpClean: provision.VerbClean,
	wire.OpInspect: provision.VerbInspect, wire.OpAbort: provision.VerbAbort,
}

// userAction runs a provisioning verb. A task whose verb no longer applies
// (a redelivery of work already done, two requests racing) changes nothing.
func (w *job) userAction() error {
	n := &w.node
	// A redelivery of a task that died while booting the node resumes it.
	if n.Step == stepBoot {
		switch {
		case n.ProvisionState == wire.StateDeploying && (w.task.Op == wire.OpDeploy || w.task.Op == wire.OpRebuild):
			return w.bootAgent(wire.BootForDeploy)
		case n.ProvisionState == wire.StateCleaning && (w.task.Op == wire.OpProvide || w.task.Op == wire.OpClean || w.task.Op == wire.OpUndeploy):
			return w.bootAgent(wire.BootForClean)
		case n.ProvisionState == wire.StateInspecting && w.task.Op == wire.OpInspect:
			return w.bootAgent(wire.BootForInspect)
		}
	}
	// The API may already have made the verb's first step (enroll →
	// verifying, available → deploying …) under the lock it handed us.
	tr, started := provision.Started(n.ProvisionState, n.TargetProvisionState, verbOf[w.task.Op])
	started = started && n.Step == ""
	if !started {
		var err error
		if tr, err = provision.Apply(n.UUID, n.ProvisionState, verbOf[w.task.Op]); err != nil {
			w.log("task no longer applies", "state", n.ProvisionState, "err", err)
			w.c.event(w.outer, wire.Event{Type: wire.EventTaskFailed, Node: n.UUID, Task: w.task.ID, Op: w.task.Op,
				Code: wire.CodeInvalidTransition, Message: err.Error()})
			return nil
		}
	}
	// begin makes the verb's first move, unless the API made it.
	begin := func(fn func(*wire.Node)) error {
		if started {
			if fn == nil {
				return nil
			}
			return w.update(fn)
		}
		return w.move(tr.To, tr.Target, func(n *wire.Node) {
			n.LastError = ""
			if fn != nil {
				fn(n)
			}
		})
	}
	switch w.task.Op {
	case wire.OpManage:
		if n.ProvisionState == wire.StateEnroll || started {
			return w.verify(begin)
		}
		return begin(nil)
	case wire.OpProvide, wire.OpClean:
		if err := begin(nil); err != nil {
			return err
		}
		return w.startCleaning()
	case wire.OpDeploy, wire.OpRebuild:
		if err := w.c.limit(w.node, wire.StateDeploying, wire.StateWaitCallback, w.c.cfg.MaxDeploys); err != nil {
			return err
		}
		if _, _, err := imageOf(w.node); err != nil {
			if started {
				return w.fail(err)
			}
			return w.update(func(n *wire.Node) { n.LastError = err.Error() })
		}
		if err := begin(func(n *wire.Node) { n.Step = stepBoot }); err != nil {
			return err
		}
		return w.bootAgent(wire.BootForDeploy)
	case wire.OpUndeploy:
		if err := begin(func(n *wire.Node) { n.Agent = nil }); err != nil {
			return err
		}
		w.cleanUpBoot()
		if err := w.setPower(wire.PowerOff); err != nil {
			return w.fail(err)
		}
		if err := w.next(provision.EventDone, func(n *wire.Node) { n.InstanceUUID = "" }); err != nil {
			return err
		}
		return w.startCleaning()
	case wire.OpInspect:
		if err := begin(func(n *wire.Node) { n.Step = stepBoot }); err != nil {
			return err
		}
		return w.bootAgent(wire.BootForInspect)
	case wire.OpAbort:
		w.cleanUpBoot()
		_ = w.setPower(wire.PowerOff)
		return w.move(tr.To, tr.Target, func(n *wire.Node) {
			n.LastError, n.Step, n.Agent = "Aborted by request while in "+string(w.node.ProvisionState), "", nil
		})
	}
	return nil
}

// verify checks the BMC of an enrolled node (enroll → verifying → manageable);
// begin makes the move to verifying (or finds it made).
func (w *job) verify(begin func(func(*wire.Node)) error) error {
	if err := w.c.d.Drivers.ValidateDriverInfo(w.node); err != nil {
		if w.node.ProvisionState == wire.StateVerifying {
			return w.fail(err)
		}
		return w.update(func(n *wire.Node) { n.LastError = err.Error() })
	}
	if err := begin(nil); err != nil {
		return err
	}
	pw, err := w.powerOf()
	var state wire.PowerState
	if err == nil {
		state, err = pw.PowerState(w.ctx)
	}
	if err != nil {
		return w.fail(fmt.Errorf("failed to verify the BMC: %w", err))
	}
	return w.next(provision.EventDone, func(n *wire.Node) { n.PowerState = state })
}

// startCleaning runs automated or manual cleaning from the cleaning state:
// skipped when the node opts out of automated cleaning, otherwise the node
// boots the agent, which will erase its disk.
func (w *job) startCleaning() error {
	if w.node.TargetProvisionState == wire.StateAvailable && w.node.AutomatedClean != nil && !*w.node.AutomatedClean {
		return w.finishCleaning()
	}
	if err := w.c.limit(w.node, wire.StateCleaning, wire.StateCleanWait, w.c.cfg.MaxCleans); err != nil {
		// Over the group's limit: the node stays in cleaning with its boot
		// step pending; the retried task resumes it.
		_ = w.update(func(n *wire.Node) { n.Step = stepBoot })
		return err
	}
	if err := w.update(func(n *wire.Node) { n.Step = stepBoot }); err != nil {
		return err
	}
	return w.bootAgent(wire.BootForClean)
}

// finishCleaning ends cleaning where it was aimed: available after
// automated cleaning, manageable after a manual clean.
func (w *job) finishCleaning() error {
	to := w.node.TargetProvisionState
	if to != wire.StateManageable {
		to = wire.StateAvailable
	}
	return w.move(to, "", func(n *wire.Node) { n.Step, n.Agent, n.LastError = "", nil, "" })
}

// bootAgent network-boots the node into the agent ramdisk and leaves it in
// the wait state where its first heartbeat will find it.
func (w *job) bootAgent(purpose wire.BootPurpose) error {
	ports, err := w.c.d.Nodes.Ports(transport.PortQuery{NodeUUID: w.node.UUID})
	if err != nil {
		return err
	}
	var macs []string
	for _, p := range ports {
		if p.PXEEnable {
			macs = append(macs, p.Address)
		}
	}
	if len(macs) == 0 {
		return w.fail(errors.New("the node has no port with PXE enabled to boot from"))
	}
	// A new boot gets a new agent: forget the old one's token and address.
	if err := w.update(func(n *wire.Node) { n.Agent = nil }); err != nil {
		return err
	}
	params := w.c.cfg.Boot
	params.Purpose = purpose
	if err := w.c.d.Boot.Prepare(w.ctx, w.node, macs, params); err != nil {
		return w.fail(fmt.Errorf("preparing network boot: %w", err))
	}
	pw, err := w.powerOf()
	if err == nil {
		err = pw.SetBootDevice(w.ctx, wire.BootPXE, false)
	}
	if err != nil {
		return w.fail(fmt.Errorf("setting the boot device to PXE: %w", err))
	}
	if err := w.setPower(wire.PowerRebooting); err != nil {
		return w.fail(err)
	}
	return w.next(provision.EventWait, func(n *wire.Node) { n.Step = stepWaitAgent })
}

// setPower drives the node's power and records where it ended.
func (w *job) setPower(target wire.PowerState) error {
	pw, err := w.powerOf()
	if err != nil {
		return err
	}
	if err := pw.SetPower(w.ctx, target); err != nil {
		return fmt.Errorf("setting power to %q: %w", target, err)
	}
	state := target
	if target == wire.PowerRebooting {
		state = wire.PowerOn
	}
	if state != w.node.PowerState {
		before := w.node.PowerState
		if err := w.update(func(n *wire.Node) { n.PowerState = state }); err != nil {
			return err
		}
		w.c.event(w.outer, wire.Event{Type: wire.EventPowerState, Node: w.node.UUID, Task: w.task.ID, Op: w.task.Op,
			From: string(before), To: string(state)})
	}
	return nil
}

// cleanUpBoot removes the node's network boot config (best effort: a stale
// config only makes a machine boot the agent again, which finds no work).
func (w *job) cleanUpBoot() {
	ports, err := w.c.d.Nodes.Ports(transport.PortQuery{NodeUUID: w.node.UUID})
	if err != nil {
		w.log("listing ports to clean up network boot", "err", err)
		return
	}
	macs := make([]string, 0, len(ports))
	for _, p := range ports {
		macs = append(macs, p.Address)
	}
	if err := w.c.d.Boot.CleanUp(w.ctx, w.node, macs); err != nil {
		w.log("cleaning up network boot", "err", err)
	}
}

// continueWith hands the node to the next phase of its flow: it publishes
// the continuation task carrying a fresh ticket, then hands the lock to
// that ticket, so that nothing (a console, a heartbeat, the power sync) can
// take the lock in between.
//
// Publish first, hand off second. If this process dies between the two, the
// consumer of the task waits in line with the ticket and gets the lock when
// this holder's lease expires (at most the lock TTL). The other order would
// leave the lock owned by a ticket no task carries until its claim timeout,
// and the node with no next step at all.
func (w *job) continueWith(op wire.Operation, back func() error) error {
	t := wire.Task{
		Version: wire.TaskVersion, ID: transport.NewUUID(), Node: w.node.UUID, Op: op,
		Group: w.node.ConductorGroup, Ticket: lock.NewTicket(),
		RequestedBy: "conductor:" + w.c.cfg.Host, CreatedAt: time.Now().UTC(),
	}
	if w.c.cfg.Handoff != HandoffTicket {
		return w.releaseThenPublish(t)
	}
	if _, err := w.c.d.Tasks.Publish(w.ctx, t); err != nil {
		// Nothing will continue the flow: go back to waiting, so that the
		// agent's next heartbeat tries again.
		if berr := back(); berr != nil {
			return errors.Join(err, berr)
		}
		return fmt.Errorf("publishing %s: %w", op, err)
	}
	tok, err := w.lk.Handoff(w.outer, t.Ticket, w.c.cfg.ClaimTimeout)
	if err != nil {
		w.log("handoff failed; the next task gets the lock when this lease expires", "next", op, "err", err)
		return nil
	}
	w.c.metrics.handoffs.Inc()
	w.c.event(w.outer, wire.Event{Type: wire.EventLockHandoff, Node: w.node.UUID, Task: t.ID, Op: op,
		Message: fmt.Sprintf("lock handed to %s (fencing token %d)", op, tok)})
	return nil
}

// releaseThenPublish is how Ironic hands a node on (the strategies ironfleet
// is measured against): release the lock, then publish the continuation
// without a ticket. Whoever grabs the lock in between wins.
func (w *job) releaseThenPublish(t wire.Task) error {
	t.Ticket = ""
	w.c.release(w.outer, w.lk)
	if _, err := w.c.d.Tasks.Publish(w.outer, t); err != nil {
		return fmt.Errorf("publishing %s: %w", t.Op, err)
	}
	return nil
}

// agentClient dials the node's agent from what its heartbeats recorded.
func (w *job) agentClient() (AgentClient, error) {
	a := w.node.Agent
	if a == nil || a.URL == "" || a.Token == "" {
		return nil, errors.New("no agent has called back for this node")
	}
	return w.c.d.Agents(a.URL, a.Token)
}

// runAgent runs one agent command to its end.
func (w *job) runAgent(start func(ctx context.Context, cl AgentClient, target string) (agent.Command, error)) error {
	cl, err := w.agentClient()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(w.ctx, w.c.cfg.AgentTimeout)
	defer cancel()
	inv, err := cl.Inventory(ctx)
	if err != nil {
		return fmt.Errorf("reading the agent's inventory: %w", err)
	}
	target, err := rootDisk(inv)
	if err != nil {
		return err
	}
	cmd, err := start(ctx, cl, target)
	if err != nil {
		return err
	}
	done, err := cl.Wait(ctx, cmd.ID, w.c.cfg.AgentPoll)
	if err != nil {
		return fmt.Errorf("waiting for agent command %s: %w", cmd.Name, err)
	}
	return done.Err()
}

// rootDisk picks the disk to write: the first non-removable disk the agent reports.
func rootDisk(inv agent.Inventory) (string, error) {
	for _, d := range inv.Disks {
		if !d.Removable && d.Path != "" {
			return d.Path, nil
		}
	}
	return "", errors.New("the agent reports no disk to write to")
}

// imageOf reads the image to deploy from instance_info.
func imageOf(n wire.Node) (url, sha string, err error) {
	url, _ = n.InstanceInfo["image_source"].(string)
	sha, _ = n.InstanceInfo["image_checksum"].(string)
	sha = strings.TrimPrefix(strings.ToLower(sha), "sha256:")
	if url == "" || sha == "" {
		return "", "", errors.New("instance_info must give image_source (an http(s) URL) and image_checksum (its sha256) to deploy")
	}
	return url, sha, nil
}

// continueDeploy is the deploy's second phase: the agent writes the image,
// the node boots from disk and is active.
func (w *job) continueDeploy() error {
	if w.node.ProvisionState != wire.StateDeploying || w.node.Step != stepWriteImage {
		w.log("continue_deploy finds nothing to do", "state", w.node.ProvisionState, "step", w.node.Step)
		return nil
	}
	url, sha, err := imageOf(w.node)
	if err == nil {
		err = w.runAgent(func(ctx context.Context, cl AgentClient, target string) (agent.Command, error) {
			return cl.WriteImage(ctx, agent.WriteImageParams{URL: url, SHA256: sha, Target: target})
		})
	}
	if err != nil {
		if w.ctx.Err() != nil {
			return err // the lock was lost: let a redelivery redo the step
		}
		_ = w.setPower(wire.PowerOff)
		return w.fail(fmt.Errorf("writing the image: %w", err))
	}
	w.cleanUpBoot()
	pw, err := w.powerOf()
	if err == nil {
		err = pw.SetBootDevice(w.ctx, wire.BootDisk, true)
	}
	if err == nil {
		err = w.setPower(wire.PowerRebooting)
	}
	if err != nil {
		return w.fail(fmt.Errorf("booting the node from its disk: %w", err))
	}
	return w.next(provision.EventDone, func(n *wire.Node) {
		n.Step, n.Agent, n.LastError = "", nil, ""
		n.BootDevice, n.BootDevicePersistent = wire.BootDisk, true
	})
}

// continueClean is cleaning's second phase: the agent erases the disk and
// the node powers off, available (or manageable after a manual clean).
func (w *job) continueClean() error {
	if w.node.ProvisionState != wire.StateCleaning || w.node.Step != stepErase {
		w.log("continue_clean finds nothing to do", "state", w.node.ProvisionState, "step", w.node.Step)
		return nil
	}
	err := w.runAgent(func(ctx context.Context, cl AgentClient, target string) (agent.Command, error) {
		return cl.EraseDisk(ctx, target)
	})
	if err != nil {
		if w.ctx.Err() != nil {
			return err
		}
		_ = w.setPower(wire.PowerOff)
		return w.fail(fmt.Errorf("erasing the disk: %w", err))
	}
	w.cleanUpBoot()
	if err := w.setPower(wire.PowerOff); err != nil {
		return w.fail(err)
	}
	return w.finishCleaning()
}

// heartbeat records an agent's call-back and, when its node was waiting for
// it, resumes the flow. Heartbeats never wait for the lock (the agent beats
// again) and never take the workers reserved for user actions.
func (c *Conductor) heartbeat(ctx context.Context, t wire.Task, d transport.Delivery) (transport.Outcome, string) {
	select {
	case c.heartbeats <- struct{}{}:
		defer func() { <-c.heartbeats }()
	default:
		return transport.Retry(time.Second, errBusy), "busy"
	}
	var p wire.HeartbeatParams
	if err := json.Unmarshal(t.Params, &p); err != nil || p.CallbackURL == "" || p.TokenHash == "" {
		return transport.Fail(wire.Errorf(wire.CodeInvalidInput, "heartbeat without a callback_url or token hash")), "failed"
	}
	lk, err := c.d.Locks.Acquire(ctx, t.Node, &lock.Options{Attempts: 1, Purpose: "heartbeat", TTL: c.cfg.LockTTL})
	if errors.Is(err, lock.ErrLocked) {
		// The conductor that booted the node may still hold it, finishing
		// the boot step: this first beat is the one that resumes the flow,
		// so try it again shortly rather than wait for the next beat.
		if n, gerr := c.d.Nodes.Get(ctx, t.Node); gerr == nil && !d.Last && (n.Step == stepBoot || n.Step == stepWaitAgent) {
			return transport.Retry(200*time.Millisecond, err), "retry"
		}
		return transport.Done(), "skipped"
	}
	if err != nil {
		return transport.Retry(0, err), "retry"
	}
	defer c.release(ctx, lk)
	node, err := c.d.Nodes.Get(lk.Context(), t.Node) //nolint:contextcheck // work under a node lock runs on the lock's context: losing the lock cancels it
	if err != nil {
		if wire.CodeOf(err) == wire.CodeNotFound {
			return transport.Done(), "done"
		}
		return transport.Retry(0, err), "retry"
	}
	if node.Agent == nil || node.Agent.TokenHash != p.TokenHash {
		// The agent of an earlier boot: its token was forgotten when the
		// node rebooted, or replaced by the current agent's.
		return transport.Done(), "stale"
	}
	w := &job{c: c, ctx: lk.Context(), outer: ctx, lk: lk, node: node, task: t}
	if err := w.update(func(n *wire.Node) {
		n.Agent.URL, n.Agent.Version, n.Agent.LastHeartbeat = p.CallbackURL, p.AgentVersion, time.Now().UTC()
	}); err != nil {
		return transport.Retry(0, err), "retry"
	}
	if err := w.resume(); err != nil { //nolint:contextcheck // work under a node lock runs on the lock's context: losing the lock cancels it
		return transport.Retry(0, err), "retry"
	}
	return transport.Done(), "done"
}

// resume moves a node waiting for its agent on to the next phase.
func (w *job) resume() error {
	switch w.node.ProvisionState {
	case wire.StateWaitCallback:
		if err := w.next(provision.EventResume, func(n *wire.Node) { n.Step = stepWriteImage }); err != nil {
			return err
		}
		return w.continueWith(wire.OpContinueDeploy, func() error {
			return w.move(wire.StateWaitCallback, wire.StateActive, func(n *wire.Node) { n.Step = stepWaitAgent })
		})
	case wire.StateCleanWait:
		target := w.node.TargetProvisionState
		if err := w.next(provision.EventResume, func(n *wire.Node) { n.Step, n.TargetProvisionState = stepErase, target }); err != nil {
			return err
		}
		return w.continueWith(wire.OpContinueClean, func() error {
			return w.move(wire.StateCleanWait, target, func(n *wire.Node) { n.Step = stepWaitAgent })
		})
	case wire.StateInspectWait:
		return w.inspect()
	}
	return nil
}

// inspect reads the hardware through the agent and records it in the node's
// properties (as Ironic's inspection does), then powers the node off.
func (w *job) inspect() error {
	if err := w.next(provision.EventResume, func(n *wire.Node) { n.Step = "" }); err != nil {
		return err
	}
	cl, err := w.agentClient()
	var inv agent.Inventory
	if err == nil {
		ictx, cancel := context.WithTimeout(w.ctx, time.Minute)
		inv, err = cl.Inventory(ictx)
		cancel()
	}
	if err != nil {
		return w.fail(fmt.Errorf("reading the inventory: %w", err))
	}
	w.cleanUpBoot()
	if err := w.setPower(wire.PowerOff); err != nil {
		return w.fail(err)
	}
	return w.next(provision.EventDone, func(n *wire.Node) {
		if n.Properties == nil {
			n.Properties = map[string]any{}
		}
		n.Properties["cpus"] = inv.CPU.Count
		n.Properties["memory_mb"] = inv.Memory.TotalBytes >> 20
		if root, err := rootDisk(inv); err == nil {
			for _, d := range inv.Disks {
				if d.Path == root {
					n.Properties["local_gb"] = d.SizeBytes >> 30
				}
			}
		}
		n.Agent, n.LastError = nil, ""
	})
}

// limit refuses to start one more deploy (or clean) in the node's group
// when the group already has max nodes in those states.
func (c *Conductor) limit(n wire.Node, transient, wait wire.ProvisionState, maximum int) error {
	group := n.ConductorGroup
	busy := 0
	for _, s := range []wire.ProvisionState{transient, wait} {
		nodes, err := c.d.Nodes.List(transport.NodeQuery{ProvisionState: s, ConductorGroup: &group, Limit: transport.MaxLimit})
		if err != nil {
			return err
		}
		busy += len(nodes)
	}
	if busy >= maximum {
		return fmt.Errorf("%w: %d nodes of group %q in %s or %s (limit %d)", errBusy, busy, group, transient, wait, maximum)
	}
	return nil
}
