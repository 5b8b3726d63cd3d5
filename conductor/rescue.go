package conductor

import (
	"encoding/json"
	"fmt"

	"github.com/ironfleet/ironfleet/internal/hardware"
	"github.com/ironfleet/ironfleet/internal/provision"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// The flows of Ironic's verbs beyond deploy, clean and inspect: rescue and
// unrescue, adopt, service, unhold, and abort from the service states. Each
// follows ironic/conductor/manager.py (do_node_rescue, do_node_unrescue,
// _do_adoption, do_provisioning_action, _do_abort) and moves the node only
// through internal/provision's machine.

// rescuePasswordKeys are the instance_info keys Ironic keeps a rescue's
// password in while the node is rescued (masked by the API, as every key
// holding "password" is).
var rescuePasswordKeys = []string{"rescue_password", "hashed_rescue_password"}

// forgetRescuePassword removes a rescue's password from n, as Ironic's
// rescue clean_up does on unrescue and tear-down.
func forgetRescuePassword(n *wire.Node) {
	for _, k := range rescuePasswordKeys {
		delete(n.InstanceInfo, k)
	}
}

// rescueUnsupported is Ironic's refusal of a rescue on a node whose rescue
// interface does nothing (no-rescue): UnsupportedDriverExtension, wrapped
// by do_node_rescue in InstanceRescueFailure.
func rescueUnsupported(n wire.Node) error {
	return wire.Errorf(wire.CodeInvalidInput, "Failed to rescue instance %s for node %s: Validation failed: Driver %s does not support rescue (disabled or not implemented).",
		instanceOrNone(n), n.UUID, n.Driver)
}

func instanceOrNone(n wire.Node) string {
	if n.InstanceUUID == "" {
		return "None"
	}
	return n.InstanceUUID
}

// rescue boots an active node into its rescue environment (active →
// rescuing → rescue). The rescue interface fake completes at once, as
// Ironic's; the agent's rescue is not offered by any hardware type.
func (w *job) rescue(f first) error {
	var p wire.RescueParams
	if len(w.task.Params) > 0 {
		if err := json.Unmarshal(w.task.Params, &p); err != nil {
			return w.refuse(f, wire.Errorf(wire.CodeInvalidInput, "bad rescue request: %w", err))
		}
	}
	if hardware.Of(w.node, hardware.Rescue) != hardware.Fake {
		return w.refuse(f, rescueUnsupported(w.node))
	}
	if err := f.make(func(n *wire.Node) {
		if n.InstanceInfo == nil {
			n.InstanceInfo = map[string]any{}
		}
		n.InstanceInfo["rescue_password"] = p.RescuePassword
		n.Agent = nil
	}); err != nil {
		return err
	}
	return w.next(provision.EventDone, func(n *wire.Node) { n.LastError = "" })
}

// unrescue takes a rescued node back to its instance (rescue →
// unrescuing → active), forgetting the rescue's password.
func (w *job) unrescue(f first) error {
	if hardware.Of(w.node, hardware.Rescue) != hardware.Fake {
		return w.refuse(f, wire.Errorf(wire.CodeInvalidInput, "Failed to unrescue instance %s for node %s: Validation failed: Driver %s does not support rescue (disabled or not implemented).",
			instanceOrNone(w.node), w.node.UUID, w.node.Driver))
	}
	if err := f.make(func(n *wire.Node) { n.Agent = nil }); err != nil {
		return err
	}
	return w.next(provision.EventDone, func(n *wire.Node) {
		forgetRescuePassword(n)
		n.LastError = ""
	})
}

// adopt takes over a machine already running its instance, without
// deploying it (manageable or adopt failed → adopting → active): the BMC
// must answer, as verify checks it. A failure is adopt failed, with
// Ironic's words and the power state forgotten (_do_adoption).
func (w *job) adopt(f first) error {
	if err := f.make(nil); err != nil {
		return err
	}
	failed := func(err error) error {
		if err := w.update(func(n *wire.Node) { n.PowerState = wire.PowerUnknown }); err != nil {
			return err
		}
		return w.fail(fmt.Errorf("Error while attempting to adopt node %s: %w.", w.node.UUID, err)) //nolint:staticcheck // Ironic's words, shown as last_error
	}
	if err := w.c.d.Drivers.ValidateDriverInfo(w.node); err != nil {
		return failed(err)
	}
	pw, err := w.powerOf()
	var state wire.PowerState
	if err == nil {
		state, err = pw.PowerState(w.ctx)
	}
	if err != nil {
		return failed(err)
	}
	return w.next(provision.EventDone, func(n *wire.Node) { n.PowerState, n.LastError = state, "" })
}

// serviceStep is one of a service request's steps, as Ironic's API
// validates them (_check_service_steps).
type serviceStep struct {
	Interface string         `json:"interface"`
	Step      string         `json:"step"`
	Args      map[string]any `json:"args,omitempty"`
	Priority  *int           `json:"priority,omitempty"`
}

// servicePowerSteps are the reserved step names Ironic runs as power
// actions, whatever the interface (RESERVED_STEP_HANDLER_MAPPING in
// ironic/conductor/steps.py).
var servicePowerSteps = map[string]wire.PowerState{
	"power_on": wire.PowerOn, "power_off": wire.PowerOff, "reboot": wire.PowerRebooting,
}

// service runs service steps on an active node (active → servicing →
// active). Only the reserved power steps run here; any other step fails
// the node into service failed naming it, before anything else is done,
// as Ironic fails a step its driver does not have (the driver-specific
// service steps are the step runner's).
func (w *job) service(f first) error {
	var p wire.ServiceParams
	if len(w.task.Params) > 0 {
		if err := json.Unmarshal(w.task.Params, &p); err != nil {
			return w.refuse(f, wire.Errorf(wire.CodeInvalidInput, "bad service request: %w", err))
		}
	}
	if err := f.make(func(n *wire.Node) { n.LastError = "" }); err != nil {
		return err
	}
	steps := make([]serviceStep, 0, len(p.ServiceSteps))
	for _, raw := range p.ServiceSteps {
		var st serviceStep
		if err := json.Unmarshal(raw, &st); err != nil {
			return w.fail(wire.Errorf(wire.CodeInvalidInput, "Cannot service node %s: invalid service step %s: %w", w.node.UUID, raw, err))
		}
		if _, ok := servicePowerSteps[st.Step]; !ok {
			return w.fail(wire.Errorf(wire.CodeInvalidInput, "Cannot service node %s: service step %s.%s is not supported by driver %s.",
				w.node.UUID, st.Interface, st.Step, w.node.Driver))
		}
		steps = append(steps, st)
	}
	for _, st := range steps {
		if err := w.update(func(n *wire.Node) { n.Step = st.Interface + "." + st.Step }); err != nil {
			return err
		}
		if err := w.setPower(servicePowerSteps[st.Step]); err != nil {
			return w.fail(fmt.Errorf("Cannot service node %s: step %s.%s failed: %w", w.node.UUID, st.Interface, st.Step, err)) //nolint:staticcheck // shown as last_error
		}
	}
	return w.next(provision.EventDone, func(n *wire.Node) { n.Step = "" })
}

// unhold releases a node from a hold state into its flow's wait state, as
// Ironic's do_provisioning_action, and goes on with the flow: from clean or
// deploy hold the steps after the hold step run at once (the agent, if it
// is up, is still running; if a step ahead needs it and it is not, it is
// booted), where Ironic waits for the agent's next heartbeat; from service
// hold servicing continues (continue_node_service), here to its end.
func (w *job) unhold(f first) error {
	if err := f.make(nil); err != nil {
		return err
	}
	if err := w.next(provision.EventResume, nil); err != nil {
		return err
	}
	switch w.node.ProvisionState {
	case wire.StateCleaning:
		return w.runCleanSteps()
	case wire.StateDeploying:
		return w.runDeploySteps()
	}
	return w.next(provision.EventDone, func(n *wire.Node) { n.Step = "" })
}

// abortAny aborts what the node is doing. Servicing is aborted back to
// active: from service wait or hold the node fails first, then aborts from
// service failed, as Ironic's _do_abort does, with its last_error
// (servicing.get_last_error); everything else is abort.
func (w *job) abortAny(f first) error {
	was := w.node.ProvisionState
	switch was {
	case wire.StateServiceWait, wire.StateServiceHold, wire.StateServiceFailed:
	default:
		return w.abort(f)
	}
	w.cleanUpBoot()
	msg := "By request, the service operation was aborted"
	if w.node.Step != "" {
		msg += fmt.Sprintf(" during or after the completion of step %q", w.node.Step)
	}
	if was != wire.StateServiceFailed {
		if err := f.make(func(n *wire.Node) { n.LastError, n.Agent = msg, nil }); err != nil {
			return err
		}
	}
	tr, err := provision.Apply(w.node.UUID, w.node.ProvisionState, wire.OpAbort)
	if err != nil {
		return err
	}
	return w.move(tr.To, tr.TargetAfter(w.node.TargetProvisionState), func(n *wire.Node) {
		n.LastError, n.Step, n.Agent = msg, "", nil
	})
}

// refuse ends a user operation that cannot run on its node: a node the
// publisher already moved fails (its failed state says why), one still
// where it was keeps its state and records why in last_error.
func (w *job) refuse(f first, err error) error {
	if f.made {
		return w.fail(err)
	}
	return w.update(func(n *wire.Node) { n.LastError = err.Error() })
}
