package conductor

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ironfleet/ironfleet/agent/protocol"
	"github.com/ironfleet/ironfleet/internal/dispatch"
	"github.com/ironfleet/ironfleet/internal/provision"
	"github.com/ironfleet/ironfleet/internal/rootdevice"
	"github.com/ironfleet/ironfleet/lock"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// first is a user operation's first move, re-validated under the lock.
type first struct {
	w  *job
	tr provision.Transition
	// made says the task's publisher made the move (wire.Task.FirstMove):
	// the node is already where the move leads.
	made bool
}

// firstMove re-validates the task's user operation under the lock and
// returns its first move. ok is false when the task no longer applies (a
// redelivery of work already done, two requests racing): that is reported
// with a task.failed event and the task is done.
func (w *job) firstMove() (f first, ok bool) {
	n := w.node
	if m := w.task.FirstMove; m != nil {
		// The node must show this task's own move: a move a retried
		// request took over (dispatch.Unfinished), or undid, belongs to
		// another task, or to none. A node recording no task was written
		// before nodes recorded them.
		own := n.Dispatched == nil || n.Dispatched.Task == w.task.ID
		if own && n.ProvisionState == m.To && n.TargetProvisionState == m.Target && n.Step == "" {
			return first{w: w, tr: provision.Transition{From: m.From, Op: w.task.Op, To: m.To, Target: m.Target}, made: true}, true
		}
		w.noLongerApplies(wire.Errorf(wire.CodeInvalidTransition, "node %s is %s (step %q), no longer %s where this %s task's first move left it",
			n.UUID, n.ProvisionState, n.Step, m.To, w.task.Op))
		return first{}, false
	}
	tr, err := provision.Apply(n.UUID, n.ProvisionState, w.task.Op)
	if err != nil {
		w.noLongerApplies(err)
		return first{}, false
	}
	tr.Target = tr.TargetAfter(n.TargetProvisionState)
	return first{w: w, tr: tr}, true
}

func (w *job) noLongerApplies(err error) {
	w.log("task no longer applies", "state", w.node.ProvisionState, "err", err)
	ev := w.event(wire.EventTaskFailed)
	ev.Code, ev.Message = wire.CodeOf(err), err.Error()
	w.c.dispatch.Event(w.outer, ev)
}

// make makes the first move, with whatever fn also sets; when the
// publisher made the move, it writes only what fn sets.
func (f first) make(fn func(*wire.Node)) error {
	if f.made {
		if fn == nil {
			return nil
		}
		return f.w.update(fn)
	}
	return f.w.move(f.tr.To, f.tr.Target, func(n *wire.Node) {
		n.LastError = ""
		if fn != nil {
			fn(n)
		}
	})
}

// bootResume is where a redelivered task finds its node when the task's
// first delivery died booting it (its boot step pending), and what to boot.
type bootResume struct {
	state   wire.ProvisionState
	purpose wire.BootPurpose
}

// userOp runs a user operation: a redelivery that finds its node where it
// died booting it resumes the boot (resume, when not nil, says where);
// otherwise the operation is re-validated under the lock (firstMove) and
// run from its first move.
func userOp(resume *bootResume, run func(w *job, f first) error) func(*job) error {
	return func(w *job) error {
		if resume != nil && (w.node.Step == stepBoot || w.node.Step == stepQueued) && w.node.ProvisionState == resume.state {
			return w.bootAgent(resume.purpose)
		}
		if resume != nil && w.node.Step == stepSteps && w.node.ProvisionState == resume.state {
			return w.resumeSteps()
		}
		f, ok := w.firstMove()
		if !ok {
			return nil
		}
		return run(w, f)
	}
}

// manage verifies an enrolled node's BMC (enroll → verifying →
// manageable), or takes a node back to manageable.
func (w *job) manage(f first) error {
	if w.node.ProvisionState == wire.StateEnroll || f.made {
		return w.verify(f.make)
	}
	return f.make(nil)
}

// provide cleans a node: automated cleaning towards available (provide)
// or a manual clean back to manageable (clean).
func (w *job) provide(f first) error {
	if err := f.make(nil); err != nil {
		return err
	}
	return w.startCleaning()
}

// deploy (and rebuild) runs the deploy's steps (beginDeploy): its core
// step boots the node into the agent, which will write the image once its
// heartbeat resumes the flow (continueDeploy).
func (w *job) deploy(f first) error {
	if err := w.deployable(); err != nil {
		if f.made {
			return w.fail(err)
		}
		return w.update(func(n *wire.Node) { n.LastError = err.Error() })
	}
	return w.beginDeploy(f)
}

// undeploy powers the node off and cleans it (deleting → cleaning →
// available).
func (w *job) undeploy(f first) error {
	if err := f.make(func(n *wire.Node) { n.Agent = nil; forgetRescuePassword(n); forgetConfigDrive(n) }); err != nil {
		return err
	}
	if !w.deploysAtOnce() { // a fake tear_down leaves the power alone
		w.cleanUpBoot()
		if err := w.setPower(wire.PowerOff); err != nil {
			return w.fail(err)
		}
	}
	// Tearing down ends the node's allocation (Ironic's _do_node_tear_down).
	if a := w.node.AllocationUUID; a != "" {
		if err := w.c.d.Records.DropAllocation(w.ctx, a); err != nil {
			return err
		}
	}
	if err := w.next(provision.EventDone, func(n *wire.Node) { n.InstanceUUID, n.AllocationUUID = "", "" }); err != nil {
		return err
	}
	return w.startCleaning()
}

// startInspection boots the node into the agent, whose heartbeat resumes
// the flow (inspect).
func (w *job) startInspection(f first) error {
	if w.inspectsAtOnce() {
		return w.inspectAtOnce(f)
	}
	if err := f.make(func(n *wire.Node) { n.Step = stepBoot }); err != nil {
		return err
	}
	return w.bootAgent(wire.BootForInspect)
}

// abort stops a node waiting for its agent: its failed state.
func (w *job) abort(f first) error {
	w.cleanUpBoot()
	_ = w.setPower(wire.PowerOff)
	was := w.node.ProvisionState
	return f.make(func(n *wire.Node) {
		n.LastError, n.Step, n.Agent = "Aborted by request while in "+string(was), "", nil
	})
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
	return w.next(provision.EventDone, func(n *wire.Node) {
		n.PowerState = state
		cacheReports(n, time.Now().UTC()) // Ironic's node_update_cache
	})
}

// startCleaning runs automated or manual cleaning from the cleaning state:
// skipped when the node opts out of automated cleaning, otherwise its
// clean steps run (beginCleaning, conductor/steps.go): a fake deploy
// interface has no automated steps, so its cleaning ends at once.
func (w *job) startCleaning() error {
	if w.node.TargetProvisionState == wire.StateAvailable && w.node.AutomatedClean != nil && !*w.node.AutomatedClean {
		return w.finishCleaning()
	}
	return w.beginCleaning()
}

// finishCleaning ends cleaning where it was aimed: available after
// automated cleaning, manageable after a manual clean.
func (w *job) finishCleaning() error {
	e := provision.EventDone
	if w.node.TargetProvisionState == wire.StateManageable {
		e = provision.EventManage
	}
	return w.next(e, func(n *wire.Node) { n.Step, n.Steps, n.StepIndex, n.Agent, n.LastError = "", nil, 0, nil, "" })
}

// bootAgent network-boots the node into the agent ramdisk and leaves it in
// the wait state where its first heartbeat will find it.
func (w *job) bootAgent(purpose wire.BootPurpose) error {
	if err := w.admit(purpose); err != nil {
		return err
	}
	macs, err := w.pxeMACs()
	if err != nil {
		return err
	}
	if len(macs) == 0 {
		return w.fail(wire.Errorf(wire.CodeInvalidInput, "the node has no port with PXE enabled to boot from"))
	}
	// A new boot gets a new agent: forget the old one's token and address.
	// A node with none (its first boot) needs no write: only a holder of
	// its lock sets one (the agent's lookup waits in line for it), and the
	// writes below raise the fence to this job's token all the same.
	if w.node.Agent != nil {
		if err := w.update(func(n *wire.Node) { n.Agent = nil }); err != nil {
			return err
		}
	}
	params := w.c.cfg.Boot
	params.Purpose = purpose
	if err := w.lk.Check(); err != nil {
		return err
	}
	if err := w.boot().Prepare(w.ctx, w.node, macs, params); err != nil {
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

// pxeMACs lists the node's PXE-enabled MACs from the inventory's cache.
// Finding none, it lets the cache catch up with the store first (Sync): a
// port created just before the action may not have reached this conductor's
// cache yet, and failing the node for that would be the cache's fault.
func (w *job) pxeMACs() ([]string, error) {
	for synced := false; ; synced = true {
		ports, err := w.c.d.Nodes.Ports(transport.PortQuery{NodeUUID: w.node.UUID})
		if err != nil {
			return nil, err
		}
		var macs []string
		for _, p := range ports {
			if p.PXEEnable {
				macs = append(macs, p.Address)
			}
		}
		if len(macs) > 0 || synced {
			return macs, nil
		}
		if err := w.c.d.Nodes.Sync(w.ctx); err != nil {
			return nil, err
		}
	}
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
		w.powerChanged(before, state)
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
	if err := w.boot().CleanUp(w.ctx, w.node, macs); err != nil {
		w.log("cleaning up network boot", "err", err)
	}
}

// continueWith hands the node to the next phase of its flow, op, through
// the dispatcher (internal/dispatch): the internal event e's move (with
// whatever set also writes), publish, hand the lock to op's ticket — so
// that nothing (a console, a heartbeat, the power sync) can take the lock
// in between. If the publish fails, the node is back in its wait state and
// the agent's next heartbeat tries again.
func (w *job) continueWith(op wire.Operation, e provision.Event, set func(*wire.Node)) error {
	tr, err := provision.Next(w.node.UUID, w.node.ProvisionState, e)
	if err != nil {
		return err
	}
	// The node keeps aiming where it was (Ironic keeps the target through
	// every transient state: clients decide stability by it).
	target := tr.TargetAfter(w.node.TargetProvisionState)
	t := wire.NewTask(op, w.node, "conductor:"+w.c.cfg.Host, nil)
	n, err := w.c.dispatch.Dispatch(w.ctx, w.lk, w.node, &t, &dispatch.First{
		Move: &wire.Move{From: tr.From, To: tr.To, Target: target},
		Set: func(n *wire.Node) {
			set(n)
			n.Conductor = w.c.cfg.Host
		},
	})
	if err != nil {
		return err
	}
	w.node = n
	w.c.metrics.handoffs.Inc()
	return nil
}

// agentClient dials the node's agent from what its heartbeats recorded.
func (w *job) agentClient() (AgentClient, error) {
	a := w.node.Agent
	if a == nil || a.URL == "" || a.Token == "" {
		return nil, wire.Errorf(wire.CodeAgent, "no agent has called back for this node")
	}
	return w.c.d.Agents(a.URL, a.Token)
}

// agentFailure codes what went wrong talking to a node's agent, at the
// boundary: past its deadline it is a timeout, otherwise the agent failed
// or could not be reached. An error already coded (an invalid
// instance_info) keeps its code.
func agentFailure(ctx context.Context, what string, err error) error {
	switch {
	case err == nil:
		return nil
	case wire.CodeOf(err) != wire.CodeInternal:
		return fmt.Errorf("%s: %w", what, err)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		return wire.Errorf(wire.CodeTimeout, "%s: %w", what, err)
	}
	return wire.Errorf(wire.CodeAgent, "%s: %w", what, err)
}

// agentStart starts one agent command on a disk (target: its path).
type agentStart func(ctx context.Context, cl AgentClient, target string) (protocol.Command, error)

// runAgent runs one agent command to its end on the node's root disk
// (rootDisk, by its root device hints); what names it in the error.
func (w *job) runAgent(what string, start agentStart) error {
	ctx, cancel := context.WithTimeout(w.ctx, w.c.cfg.AgentTimeout)
	defer cancel()
	return agentFailure(ctx, what, w.agentCommand(ctx, w.rootTarget, start))
}

// runAgentOnEveryDisk runs one agent command on each of the machine's
// non-removable disks in turn, as ironic-python-agent's erase_devices and
// erase_devices_metadata erase every disk whatever the root device hints:
// cleaning must reach whichever disk a deploy wrote.
func (w *job) runAgentOnEveryDisk(what string, start agentStart) error {
	ctx, cancel := context.WithTimeout(w.ctx, w.c.cfg.AgentTimeout)
	defer cancel()
	return agentFailure(ctx, what, w.agentCommand(ctx, everyDisk, start))
}

// rootTarget is the path of the disk the node's root device hints choose.
func (w *job) rootTarget(inv protocol.Inventory) ([]string, error) {
	hints, err := w.rootDeviceHints()
	if err != nil {
		return nil, err
	}
	disk, err := rootDisk(inv, hints)
	if err != nil {
		return nil, err
	}
	w.log("root device chosen", "disk", disk.Name, "path", disk.Path, "hints", hints.String())
	return []string{disk.Path}, nil
}

// everyDisk is the paths of every non-removable disk.
func everyDisk(inv protocol.Inventory) ([]string, error) {
	var out []string
	for _, d := range inv.Disks {
		if !d.Removable && d.Path != "" {
			out = append(out, d.Path)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("the agent reports no disk to write to")
	}
	return out, nil
}

// agentCommand reads the agent's inventory, picks the targets from it, and
// runs start on each, one after another, to its end.
func (w *job) agentCommand(ctx context.Context, pick func(protocol.Inventory) ([]string, error), start agentStart) error {
	cl, err := w.agentClient()
	if err != nil {
		return err
	}
	inv, err := cl.Inventory(ctx)
	if err != nil {
		return fmt.Errorf("reading the agent's inventory: %w", err)
	}
	targets, err := pick(inv)
	if err != nil {
		return err
	}
	for _, target := range targets {
		if err := w.lk.Check(); err != nil { // the agent's commands are effects no store fences
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
		if err := done.Err(); err != nil {
			return err
		}
	}
	return nil
}

// rootDeviceHints are the node's root device hints (instance_info's, else
// properties', as Ironic's get_root_device_for_deploy), refused with
// Ironic's words when invalid.
func (w *job) rootDeviceHints() (rootdevice.Hints, error) {
	h, err := rootdevice.ForDeploy(w.node.UUID, w.node.InstanceInfo, w.node.Properties)
	if err != nil {
		return h, wire.Errorf(wire.CodeInvalidInput, "%w", err)
	}
	return h, nil
}

// rootDisk picks the disk a deploy writes.
//
// With hints, it is the first disk in the agent's order (by kernel name)
// that satisfies every hint, as ironic-python-agent's
// get_os_install_device takes match_root_device_hints' first match (not
// the smallest: IPA sorts by size only when guessing without hints); a
// removable disk may be chosen when the hints name it. No match is an
// error listing the hints and every disk seen, before anything is written.
//
// Without hints, it is the first non-removable disk, as before hints were
// honoured. IPA's guess_root_disk would take the smallest disk of at least
// 4 GiB; ironfleet keeps its choice, which the lab's and the simulated
// machines' single small disks depend on.
func rootDisk(inv protocol.Inventory, hints rootdevice.Hints) (protocol.Disk, error) {
	if hints.Empty() {
		for _, d := range inv.Disks {
			if !d.Removable && d.Path != "" {
				return d, nil
			}
		}
		return protocol.Disk{}, errors.New("the agent reports no disk to write to")
	}
	devs := make([]rootdevice.Device, len(inv.Disks))
	for i, d := range inv.Disks {
		devs[i] = hintDevice(d)
	}
	for _, i := range hints.Find(devs) {
		if inv.Disks[i].Path != "" {
			return inv.Disks[i], nil
		}
	}
	seen := make([]string, 0, len(inv.Disks))
	for _, d := range devs {
		seen = append(seen, describeDisk(d))
	}
	return protocol.Disk{}, wire.Errorf(wire.CodeInvalidInput,
		"No suitable device was found for deployment using the root device hints (root_device) %s; the agent reports %d disk(s): %s",
		hints, len(seen), cmp.Or(strings.Join(seen, "; "), "none"))
}

// hintDevice is a disk as root device hints see it: named /dev/<name>, as
// IPA's BlockDevice is.
func hintDevice(d protocol.Disk) rootdevice.Device {
	return rootdevice.Device{
		Name: "/dev/" + d.Name, SizeBytes: d.SizeBytes, Rotational: d.Rotational, Model: d.Model, Vendor: d.Vendor,
		Serial: d.Serial, WWN: d.WWN, WWNWithExtension: d.WWNWithExtension, WWNVendorExtension: d.WWNVendorExtension,
		HCTL: d.HCTL, ByPath: d.ByPath,
	}
}

// describeDisk lists what hints can match on one disk, for the error that
// says none did.
func describeDisk(d rootdevice.Device) string {
	parts := []string{fmt.Sprintf("name=%s size=%.4gGiB rotational=%t", d.Name, float64(d.SizeBytes)/(1<<30), d.Rotational)}
	for _, a := range []struct{ k, v string }{
		{"serial", d.Serial}, {"wwn", d.WWN}, {"wwn_with_extension", d.WWNWithExtension},
		{"wwn_vendor_extension", d.WWNVendorExtension}, {"model", d.Model}, {"vendor", d.Vendor},
		{"hctl", d.HCTL}, {"by_path", d.ByPath},
	} {
		if a.v != "" {
			parts = append(parts, a.k+"="+strconv.Quote(a.v))
		}
	}
	return strings.Join(parts, " ")
}

// imageOf reads the image to deploy from instance_info: image_source,
// its checksum and its disk format, as ironic's AgentDeploy.write_image
// passes them to the agent (ironic/drivers/modules/agent.py) and
// checksum_utils.get_checksum_and_algo reads them:
//   - image_os_hash_algo with image_os_hash_value (what Glance and Metal3
//     send) is preferred; either one without the other is refused, as
//     AgentDeploy.validate does;
//   - else image_checksum: a bare md5/sha256/sha512 digest (the algorithm
//     from its length), "algo:digest", or the http(s) URL of a checksum
//     file, which the agent fetches;
//   - image_disk_format raw or qcow2, or absent for the agent to detect.
//
// Anything else is refused naming the field.
func imageOf(n wire.Node) (protocol.WriteImageParams, error) {
	ii := n.InstanceInfo
	str := func(field string) (string, error) {
		v, ok := ii[field]
		if !ok || v == nil {
			return "", nil
		}
		s, ok := v.(string)
		if !ok {
			return "", wire.Errorf(wire.CodeInvalidInput, "instance_info %s: want a string, got %T", field, v)
		}
		return strings.TrimSpace(s), nil
	}
	var p protocol.WriteImageParams
	url, err := str("image_source")
	if err != nil {
		return p, err
	}
	algo, err := str("image_os_hash_algo")
	if err != nil {
		return p, err
	}
	value, err := str("image_os_hash_value")
	if err != nil {
		return p, err
	}
	checksum, err := str("image_checksum")
	if err != nil {
		return p, err
	}
	switch {
	case algo != "" && value == "":
		return p, wire.Errorf(wire.CodeInvalidInput, "instance_info image_os_hash_algo is set without image_os_hash_value")
	case algo == "" && value != "":
		return p, wire.Errorf(wire.CodeInvalidInput, "instance_info image_os_hash_value is set without image_os_hash_algo")
	case algo != "":
		p.Checksum = protocol.Checksum{Algo: strings.ToLower(algo), Value: value}
		if err := protocol.CheckAlgo(p.Checksum.Algo); err != nil {
			return p, wire.Errorf(wire.CodeInvalidInput, "instance_info image_os_hash_algo: %v", err)
		}
		if err := p.Checksum.Check(); err != nil {
			return p, wire.Errorf(wire.CodeInvalidInput, "instance_info image_os_hash_value: %v", err)
		}
	case checksum != "":
		p.Checksum = protocol.Checksum{Value: checksum}
		// "algo:digest", as ironic's checksum_utils.validate_checksum
		// reads one (a URL's "http:" is no algorithm).
		if a, v, ok := strings.Cut(checksum, ":"); ok && !p.Checksum.IsURL() {
			p.Checksum = protocol.Checksum{Algo: strings.ToLower(a), Value: v}
		}
		if err := p.Checksum.Check(); err != nil {
			return p, wire.Errorf(wire.CodeInvalidInput, "instance_info image_checksum: %v", err)
		}
	}
	if url == "" || p.Checksum.Value == "" {
		return p, wire.Errorf(wire.CodeInvalidInput, "instance_info must give image_source (an http(s) URL) and image_checksum, or image_os_hash_algo with image_os_hash_value, to deploy")
	}
	if !p.Checksum.IsURL() {
		p.Checksum.Value = strings.ToLower(p.Checksum.Value)
	}
	format, err := str("image_disk_format")
	if err != nil {
		return p, err
	}
	switch format = strings.ToLower(format); format {
	case "", protocol.DiskFormatRaw, protocol.DiskFormatQcow2:
	default:
		return p, wire.Errorf(wire.CodeInvalidInput, "instance_info image_disk_format %q: ironfleet's agent writes raw and qcow2 images only", format)
	}
	p.URL, p.DiskFormat = url, format
	return p, nil
}

// continueDeploy is the deploy's second phase: the agent writes the image,
// the node boots from disk and is active.
func (w *job) continueDeploy() error {
	if w.node.ProvisionState != wire.StateDeploying || w.node.Step != stepWriteImage || w.superseded() {
		w.log("continue_deploy finds nothing to do", "state", w.node.ProvisionState, "step", w.node.Step)
		return nil
	}
	p, err := imageOf(w.node)
	if err == nil {
		err = w.runAgent("writing the image", func(ctx context.Context, cl AgentClient, target string) (protocol.Command, error) {
			p.Target, p.ConfigDrive = target, storedConfigDrive(w.node)
			return cl.WriteImage(ctx, p)
		})
	}
	if err != nil {
		if w.ctx.Err() != nil {
			return err // the lock was lost: let a redelivery redo the step
		}
		_ = w.setPower(wire.PowerOff)
		return w.fail(err)
	}
	// The core step is done; the deploy's later steps run with the agent up.
	if err := w.update(func(n *wire.Node) {
		if i := n.StepIndex; i < len(n.Steps) && w.isCore(n.Steps[i]) {
			n.StepIndex++
		}
	}); err != nil {
		return err
	}
	return w.runDeploySteps()
}

// bootFromDisk ends a deploy through the agent: the node boots from the
// disk the image was written to, active.
func (w *job) bootFromDisk() error {
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
		n.Step, n.Steps, n.StepIndex, n.Agent, n.LastError = "", nil, 0, nil, ""
		n.BootDevice, n.BootDevicePersistent = wire.BootDisk, true
	})
}

// continueClean is cleaning's second phase: with the agent up, the clean's
// steps run from where they stand (runCleanSteps) and the node powers off,
// available (or manageable after a manual clean).
func (w *job) continueClean() error {
	if w.node.ProvisionState != wire.StateCleaning || w.node.Step != stepErase || w.superseded() {
		w.log("continue_clean finds nothing to do", "state", w.node.ProvisionState, "step", w.node.Step)
		return nil
	}
	return w.runCleanSteps()
}

// superseded says the node records another task of this continuation's
// operation as its latest dispatch (wire.Node.Dispatched): the one
// rescueContinuation published for it when this one seemed lost. That one
// does the step; this one, come late, does it not a second time.
func (w *job) superseded() bool {
	d := w.node.Dispatched
	return d != nil && d.Op == w.task.Op && d.Task != w.task.ID
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
	defer c.release(ctx, lk, true)
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
	// The write applies to the record as stored, which may be newer than
	// the one read above: its agent is checked again there (a nil agent
	// there panicked a conductor of a three-server cluster).
	if err := w.updateIf(func(n *wire.Node) error {
		if n.Agent == nil || n.Agent.TokenHash != p.TokenHash {
			return errStaleAgent
		}
		n.Agent.URL, n.Agent.Version, n.Agent.LastHeartbeat = p.CallbackURL, p.AgentVersion, time.Now().UTC()
		return nil
	}); errors.Is(err, errStaleAgent) {
		return transport.Done(), "stale"
	} else if err != nil {
		return transport.Retry(0, err), "retry"
	}
	if err := w.resume(); err != nil { //nolint:contextcheck // work under a node lock runs on the lock's context: losing the lock cancels it
		c.log.Warn("heartbeat could not move its node on; it will be retried", "task", t.ID, "node", t.Node,
			"state", w.node.ProvisionState, "err", err)
		return transport.Retry(0, err), "retry"
	}
	return transport.Done(), "done"
}

// resume moves a node waiting for its agent on to the next phase.
func (w *job) resume() error {
	switch w.node.ProvisionState {
	case wire.StateWaitCallback:
		return w.continueWith(wire.OpContinueDeploy, provision.EventResume, func(n *wire.Node) { n.Step = stepWriteImage })
	case wire.StateCleanWait:
		return w.continueWith(wire.OpContinueClean, provision.EventResume, func(n *wire.Node) { n.Step = stepErase })
	case wire.StateInspectWait:
		return w.inspect()
	case wire.StateDeploying, wire.StateCleaning:
		return w.rescueContinuation()
	}
	return nil
}

// rescueContinuation publishes the continuation of a node found, at its
// agent's heartbeat, in a continuation's step (write_image, erase) for
// longer than Config.OrphanAfter with its lock free (this heartbeat holds
// it): the task that should continue it is gone — its publisher died
// between the move and the publish, or a publish reported failing and the
// move could not be undone. It does not while a continuation as old is
// still queued (OldestTask: a backlog, not a loss); one that shows up late
// finds itself superseded (superseded) and does nothing. Without this the
// node would wait for the recovery sweep (RecoverAfter) while its agent
// beats.
func (w *job) rescueContinuation() error {
	op := wire.OpContinueDeploy
	switch {
	case w.node.ProvisionState == wire.StateDeploying && w.node.Step == stepWriteImage:
	case w.node.ProvisionState == wire.StateCleaning && w.node.Step == stepErase:
		op = wire.OpContinueClean
	default:
		return nil
	}
	if time.Since(w.node.ProvisionUpdatedAt) < w.c.cfg.OrphanAfter {
		return nil
	}
	// The continuation, published within OrphanAfter of the move, is on
	// the work queue until its consumer acks it: while a continuation
	// stored no later than that is still queued, this node's may be one of
	// them, only slow (a backlog of thousands, as at 10,000 nodes, where
	// publishing again doubled the continuations).
	oldest, queued, err := w.c.d.Tasks.OldestTask(w.ctx, w.node.ConductorGroup, op)
	if err != nil {
		return err
	}
	if queued && !oldest.After(w.node.ProvisionUpdatedAt.Add(w.c.cfg.OrphanAfter)) {
		return nil
	}
	w.c.log.Warn("node sat in its continuation's step with no continuation; publishing it again",
		"node", w.node.UUID, "state", w.node.ProvisionState, "step", w.node.Step, "since", w.node.ProvisionUpdatedAt)
	t := wire.NewTask(op, w.node, "conductor:"+w.c.cfg.Host, nil)
	// Recorded in the node (an empty first move), so that the lost
	// continuation, should it show up after all, finds itself superseded.
	if _, err := w.c.dispatch.Dispatch(w.ctx, w.lk, w.node, &t, &dispatch.First{}); err != nil {
		return err
	}
	w.c.metrics.handoffs.Inc()
	return nil
}

// inspect reads the hardware through the agent and records it in the node's
// properties (as Ironic's inspection does), then powers the node off.
func (w *job) inspect() error {
	if err := w.next(provision.EventResume, func(n *wire.Node) { n.Step = "" }); err != nil {
		return err
	}
	cl, err := w.agentClient()
	var inv protocol.Inventory
	if err == nil {
		ictx, cancel := context.WithTimeout(w.ctx, time.Minute)
		inv, err = cl.Inventory(ictx)
		err = agentFailure(ictx, "reading the inventory", err)
		cancel()
	}
	if err != nil {
		return w.fail(err)
	}
	// Inspection picks the root disk by properties.root_device and fails
	// when none satisfies them, as Ironic's root_device inspection hook
	// (ironic/drivers/modules/inspector/hooks/root_device.py).
	hints, err := rootdevice.Parse(w.node.Properties["root_device"])
	if err == nil && !hints.Empty() {
		_, err = rootDisk(inv, hints)
	}
	if err != nil {
		return w.fail(wire.Errorf(wire.CodeInvalidInput, "No disks satisfied root device hints for node %s: %w", w.node.UUID, err))
	}
	if err := w.storeInventory(inv, hints); err != nil {
		return w.fail(err)
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
		if root, err := rootDisk(inv, hints); err == nil {
			n.Properties["local_gb"] = root.SizeBytes >> 30
		}
		n.Agent, n.LastError = nil, ""
	})
}

// admit holds a deploy or clean back while the node's group is at its
// limit (MaxDeploys, MaxCleans): the node stays where it is with step
// queued, and the retried task (errBusy) resumes it through userOp. On the
// task's last delivery the node fails instead, saying why: a limit never
// leaves a node in a transient state with nothing to move it on. (The API
// refuses actions over the limit with 503 up front; this is the backstop
// for requests that raced it.)
func (w *job) admit(purpose wire.BootPurpose) error {
	var err error
	switch purpose {
	case wire.BootForDeploy:
		err = w.c.limit(w.node, wire.StateDeploying, wire.StateWaitCallback, w.c.cfg.MaxDeploys)
	case wire.BootForClean:
		err = w.c.limit(w.node, wire.StateCleaning, wire.StateCleanWait, w.c.cfg.MaxCleans)
	}
	switch {
	case err == nil || !errors.Is(err, errBusy):
		return err
	case w.last:
		// No retry will come: fail the node rather than leave it queued.
		return w.fail(wire.Errorf(wire.CodeUnavailable, "%v; the task ran out of retries waiting for a free slot", err))
	case w.node.Step != stepQueued:
		if uerr := w.update(func(n *wire.Node) { n.Step = stepQueued }); uerr != nil {
			return errors.Join(err, uerr)
		}
	}
	return err
}

// limit refuses to start one more deploy (or clean) in node n's group when
// maximum other nodes of the group are already at work in transient or
// wait: booting, waiting for their agent, or with it. Nodes only accepted
// (the API moved them to deploying, no conductor has started them) or
// queued behind the limit are not at work, and n never counts itself —
// else a burst the size of the limit would admit none. Two conductors
// admitting at the same instant may overshoot by one each: the limit
// bounds load, it is not a lock.
func (c *Conductor) limit(n wire.Node, transient, wait wire.ProvisionState, maximum int) error {
	group := n.ConductorGroup
	busy := 0
	for _, s := range []wire.ProvisionState{transient, wait} {
		nodes, err := c.d.Nodes.List(transport.NodeQuery{ProvisionState: s, ConductorGroup: &group, Limit: transport.MaxLimit})
		if err != nil {
			return err
		}
		for _, o := range nodes {
			if o.UUID != n.UUID && o.Step != "" && o.Step != stepQueued {
				busy++
			}
		}
	}
	if busy >= maximum {
		return fmt.Errorf("%w: %d nodes of group %q in %s or %s (limit %d)", errBusy, busy, group, transient, wait, maximum)
	}
	return nil
}
