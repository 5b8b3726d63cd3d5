package conductor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/ironfleet/ironfleet/agent/protocol"
	"github.com/ironfleet/ironfleet/internal/provision"
	"github.com/ironfleet/ironfleet/internal/steps"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// The step runner: a clean or a deploy is the list of steps recorded on
// the node when it starts (wire.Node.Steps, Ironic's driver_internal_info
// clean_steps/deploy_steps), run in order from wire.Node.StepIndex, which
// moves past each step as it completes, so that a redelivered or resumed
// task goes on at the step it stopped at. Which steps exist, their order
// and which need the agent is internal/steps'; what each does is here
// (runStep). A step that needs the agent boots it first (the flow waits
// in clean wait or wait call-back, and continues with the agent up); a
// flow with no such step never boots it (Ironic's cleaning.py skips the
// ramdisk when every step can run without it).

// stepSteps is the node's Step while the runner runs steps without the
// agent: a redelivered task finding it goes on from StepIndex (userOp).
const stepSteps = "steps"

// errHold is what runStep returns for a hold step: the flow stops and the
// node waits in clean hold or deploy hold until unhold (hold).
var errHold = errors.New("conductor: hold step")

// stepsParams reads the steps a clean or deploy task carries.
func (w *job) stepsParams() (wire.StepsParams, error) {
	var p wire.StepsParams
	if len(w.task.Params) == 0 {
		return p, nil
	}
	if err := json.Unmarshal(w.task.Params, &p); err != nil {
		return p, wire.Errorf(wire.CodeInvalidInput, "bad steps in the %s request: %w", w.task.Op, err)
	}
	return p, nil
}

// cleanPlan is the steps of the clean starting now: a manual clean's steps
// as the user gave them (checked again against the node as it is under
// the lock, before anything is touched), or the node's automated steps by
// priority.
func (w *job) cleanPlan() ([]wire.Step, error) {
	if w.node.TargetProvisionState != wire.StateManageable {
		return steps.Automated(w.node), nil
	}
	p, err := w.stepsParams()
	if err != nil {
		return nil, err
	}
	if len(p.CleanSteps) == 0 {
		return nil, wire.Errorf(wire.CodeInvalidInput, "\"clean_steps\" is required when setting target provision state to clean")
	}
	plan, err := steps.Validate(w.node, steps.Clean, p.CleanSteps, p.DisableRamdisk)
	if err != nil {
		return nil, wire.Errorf(wire.CodeInvalidInput, "Cannot clean node %s: %w", w.node.UUID, err)
	}
	return plan, nil
}

// deployPlan is the steps of the deploy starting now, highest priority
// first: the node's deploy steps with the user's (checked again under the
// lock) and those of the deploy templates its instance traits name
// (provision.TemplateSteps), checked against the node as a user's are: a
// template step the node does not have fails the deploy, naming it, before
// anything runs.
func (w *job) deployPlan() ([]wire.Step, error) {
	p, err := w.stepsParams()
	if err != nil {
		return nil, err
	}
	user, err := steps.Validate(w.node, steps.Deploy, p.DeploySteps, false)
	if err != nil {
		return nil, err
	}
	var templated []wire.Step
	if traits := provision.InstanceTraits(w.node); len(traits) > 0 {
		all, err := w.c.d.Records.Templates(w.ctx)
		if err != nil {
			return nil, err
		}
		if ts := provision.TemplateSteps(traits, all); len(ts) > 0 {
			if templated, err = steps.Validate(w.node, steps.Deploy, ts, false); err != nil {
				return nil, fmt.Errorf("deploy templates %s: %w", strings.Join(traits, ", "), err)
			}
		}
	}
	return steps.DeployPlan(w.node, user, templated), nil
}

// beginCleaning records the clean's steps on the node and runs them.
func (w *job) beginCleaning() error {
	plan, err := w.cleanPlan()
	if err != nil {
		return w.fail(err)
	}
	if err := w.update(func(n *wire.Node) { n.Steps, n.StepIndex, n.Step = plan, 0, stepSteps }); err != nil {
		return err
	}
	return w.runCleanSteps()
}

// runCleanSteps runs the clean's steps from StepIndex. Without the agent
// up (Step is not stepErase, continue_clean's), a step ahead that needs
// it boots it, and continue_clean runs them all; with it up, the node is
// powered off at the end.
func (w *job) runCleanSteps() error {
	withAgent := w.node.Step == stepErase
	if !withAgent && steps.AnyNeedsAgent(w.node, steps.Clean, w.node.Steps[min(w.node.StepIndex, len(w.node.Steps)):]) {
		if err := w.update(func(n *wire.Node) { n.Step = stepBoot }); err != nil {
			return err
		}
		return w.bootAgent(wire.BootForClean)
	}
	for w.node.StepIndex < len(w.node.Steps) {
		s := w.node.Steps[w.node.StepIndex]
		if err := w.runStep(steps.Clean, s); err != nil {
			if errors.Is(err, errHold) {
				return w.hold()
			}
			if w.ctx.Err() != nil {
				return err // the lock was lost: a redelivery redoes the step
			}
			if withAgent {
				_ = w.setPower(wire.PowerOff)
			}
			return w.fail(wire.Errorf(wire.CodeOf(err), "Node %s failed step %s: %w", w.node.UUID, s.ID(), err))
		}
		if err := w.update(func(n *wire.Node) { n.StepIndex++ }); err != nil {
			return err
		}
	}
	if withAgent {
		w.cleanUpBoot()
		if err := w.setPower(wire.PowerOff); err != nil {
			return w.fail(err)
		}
	}
	return w.finishCleaning()
}

// beginDeploy records the deploy's steps on the node with the operation's
// first move (f) and runs them.
func (w *job) beginDeploy(f first) error {
	plan, err := w.deployPlan()
	var cd string
	if err == nil {
		cd, err = w.configDrive()
	}
	if err != nil {
		if f.made {
			return w.fail(err)
		}
		return w.update(func(n *wire.Node) { n.LastError = err.Error() })
	}
	if err := f.make(func(n *wire.Node) {
		n.Steps, n.StepIndex, n.Step = plan, 0, stepSteps
		storeConfigDrive(n, cd)
	}); err != nil {
		return err
	}
	return w.runDeploySteps()
}

// runDeploySteps runs the deploy's steps from StepIndex. The core step
// (deploy.deploy) of a deploy interface that needs the agent boots it:
// the agent writes the image (continueDeploy) and the steps after it run
// with the agent up, before the node boots from its disk. A core step that
// needs no agent (fake) has nothing to do.
func (w *job) runDeploySteps() error {
	for w.node.StepIndex < len(w.node.Steps) {
		s := w.node.Steps[w.node.StepIndex]
		if d, ok := steps.Find(w.node, steps.Deploy, s); ok && d.Core {
			if d.Agent && w.node.Step != stepWriteImage {
				if err := w.update(func(n *wire.Node) { n.Step = stepBoot }); err != nil {
					return err
				}
				return w.bootAgent(wire.BootForDeploy)
			}
		} else if err := w.runStep(steps.Deploy, s); err != nil {
			if errors.Is(err, errHold) {
				return w.hold()
			}
			if w.ctx.Err() != nil {
				return err
			}
			return w.fail(wire.Errorf(wire.CodeOf(err), "Node %s failed deploy step %s: %w", w.node.UUID, s.ID(), err))
		}
		if err := w.update(func(n *wire.Node) { n.StepIndex++ }); err != nil {
			return err
		}
	}
	if w.node.Step == stepWriteImage {
		return w.bootFromDisk()
	}
	return w.next(provision.EventDone, func(n *wire.Node) {
		n.Step, n.Steps, n.StepIndex, n.Agent, n.LastError = "", nil, 0, nil, ""
	})
}

// resumeSteps goes on with the steps of a node whose task died running
// them without the agent (Step stepSteps).
func (w *job) resumeSteps() error {
	if w.node.ProvisionState == wire.StateCleaning {
		return w.runCleanSteps()
	}
	return w.runDeploySteps()
}

// hold is where a hold step leaves the node: the hold state of its flow
// (clean hold, deploy hold), past the hold step, until a user's unhold
// (unhold, conductor/rescue.go) goes on with the steps after it. Step is
// kept: it says whether the agent is up, which the steps after the hold
// need to know.
func (w *job) hold() error {
	return w.next(provision.EventHold, func(n *wire.Node) { n.StepIndex++ })
}

// runStep runs one step (not a core deploy step, which is the flow's).
// The agent's steps run through the agent's command API; the raid and
// bios steps of the fake interfaces record what they configure on the
// node, as Ironic's fake interfaces do, and touch no disk.
func (w *job) runStep(flow steps.Flow, s wire.Step) error {
	switch s.Step {
	case steps.PowerOn:
		return w.setPower(wire.PowerOn)
	case steps.PowerOff:
		return w.setPower(wire.PowerOff)
	case steps.Reboot:
		return w.setPower(wire.PowerRebooting)
	case steps.Hold:
		return errHold
	}
	if _, ok := steps.Find(w.node, flow, s); !ok {
		return wire.Errorf(wire.CodeInvalidInput, "node does not support this %s step: %s", flow, s.ID())
	}
	switch s.ID() {
	case "deploy.erase_devices":
		return w.runAgentOnEveryDisk("erasing the disk", func(ctx context.Context, cl AgentClient, target string) (protocol.Command, error) {
			return cl.EraseDisk(ctx, target)
		})
	case "deploy.erase_devices_metadata":
		return w.runAgentOnEveryDisk("erasing the disk's metadata", func(ctx context.Context, cl AgentClient, target string) (protocol.Command, error) {
			return cl.EraseMetadata(ctx, target)
		})
	case "raid.create_configuration":
		return w.createRAID(w.node.TargetRAIDConfig, s.Args)
	case "raid.apply_configuration":
		target, _ := s.Args["raid_config"].(map[string]any)
		if target == nil {
			return wire.Errorf(wire.CodeInvalidInput, "raid_config must be an object")
		}
		if err := w.update(func(n *wire.Node) { n.TargetRAIDConfig = maps.Clone(target) }); err != nil {
			return err
		}
		return w.createRAID(target, s.Args)
	case "raid.delete_configuration":
		return w.update(func(n *wire.Node) { n.RAIDConfig = nil })
	case "bios.apply_configuration":
		settings, err := biosSettings(s.Args["settings"])
		if err != nil {
			return err
		}
		next, err := ApplyBios(w.node, settings, time.Now().UTC())
		if err != nil {
			return err
		}
		return w.update(func(n *wire.Node) { n.Bios = next })
	case "bios.factory_reset":
		next, err := FactoryResetBios(w.node, time.Now().UTC())
		if err != nil {
			return err
		}
		return w.update(func(n *wire.Node) { n.Bios = next })
	}
	return wire.Errorf(wire.CodeInvalidInput, "ironfleet has no implementation of %s step %s", flow, s.ID())
}

// createRAID records target (the node's target_raid_config) as the
// node's raid_config, without the root or the other logical disks when
// the step's args say so (Ironic's raid.filter_target_raid_config).
func (w *job) createRAID(target map[string]any, args map[string]any) error {
	disks, _ := target["logical_disks"].([]any)
	if len(disks) == 0 {
		return wire.Errorf(wire.CodeInvalidInput, "Node %s has no target RAID configuration (target_raid_config.logical_disks is empty).", w.node.UUID)
	}
	root, nonRoot := true, true
	if v, ok := args["create_root_volume"].(bool); ok {
		root = v
	}
	if v, ok := args["create_nonroot_volumes"].(bool); ok {
		nonRoot = v
	}
	kept := slices.DeleteFunc(slices.Clone(disks), func(d any) bool {
		isRoot, _ := d.(map[string]any)["is_root_volume"].(bool)
		return (isRoot && !root) || (!isRoot && !nonRoot)
	})
	if len(kept) == 0 {
		return wire.Errorf(wire.CodeInvalidInput, "Node %s has no logical disks left to create in its target RAID configuration.", w.node.UUID)
	}
	return w.update(func(n *wire.Node) { n.RAIDConfig = map[string]any{"logical_disks": kept} })
}

// biosSettings reads bios.apply_configuration's settings: a list of
// {"name", "value"} objects (a value that is not a string is taken as its
// JSON spelling: Metal3 sends numbers for some).
func biosSettings(v any) ([]BiosValue, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, wire.Errorf(wire.CodeInvalidInput, "settings must be a list of name/value objects")
	}
	out := make([]BiosValue, 0, len(list))
	for _, item := range list {
		m, _ := item.(map[string]any)
		name, ok := m["name"].(string)
		if !ok || name == "" {
			return nil, wire.Errorf(wire.CodeInvalidInput, "each BIOS setting needs a name: %v", item)
		}
		value, ok := m["value"].(string)
		if !ok {
			b, _ := json.Marshal(m["value"]) // decoded JSON encodes again
			value = string(b)
		}
		out = append(out, BiosValue{Name: name, Value: value})
	}
	return out, nil
}

// isCore reports whether s is the node's core deploy step (deploy.deploy).
func (w *job) isCore(s wire.Step) bool {
	d, ok := steps.Find(w.node, steps.Deploy, s)
	return ok && d.Core
}
