// Package provision holds a node's rules: the provisioning state machine,
// as data — the states a node moves through, what kind each is, and every
// transition, whether asked for by a user (an operation the API accepts) or
// made by the conductor as work progresses (an internal event) — and which
// of a node's fields only the holder of its lock may write. Both the api
// (to refuse an impossible request at once) and the conductor (to
// re-validate under the node's lock and to move the node) read it, and the
// inventory enforces its field rule; nothing else decides.
//
// It imports nothing of ours but transport/wire, so that api, conductor and
// transport may all import it; it lives under internal/ because it is not a
// component of its own (the top-level folders are the product's components).
//
// It follows Ironic's machine (ironic/common/states.py) for the states
// ironfleet supports, with Ironic's spelling on the wire.
package provision

import (
	"fmt"
	"slices"
	"strings"

	"github.com/ironfleet/ironfleet/transport/wire"
)

// Kind classifies a state.
type Kind int

const (
	// Stable states last until a user asks for something (Ironic's
	// STABLE_STATES).
	Stable Kind = iota
	// Transient states last while a conductor works on the node; a node
	// found in one whose conductor died is recovered (Ironic's
	// STUCK_STATES_TREATED_AS_FAIL).
	Transient
	// Wait states last until something outside (the agent) calls back; they
	// time out into their failed state.
	Wait
	// Failed states say the last action failed; last_error says why.
	Failed
	// Hold states last until a user unholds the node (back to its wait
	// state) or aborts; they never time out.
	Hold
)

func (k Kind) String() string {
	return [...]string{"stable", "transient", "wait", "failed", "hold"}[k]
}

// targets are the "target" values of PUT /v1/nodes/{node}/states/provision,
// spelled as Ironic spells them, the task operation each becomes, and the
// microversion the name appeared in (Ironic's MIN_VERB_VERSIONS in
// ironic/api/controllers/v1/utils.py, checked before the node's state).
// The operation is the one name the rest of ironfleet uses; the target is
// only how a user asks for it ("deploy" and "undeploy" are Ironic's aliases
// of "active" and "deleted"). unhold (1.85) and service (1.87) are gated
// after the state, per transition (Transition.MinVersion), as Ironic does.
var targets = []struct {
	name  string
	op    wire.Operation
	minor int
}{
	{"manage", wire.OpManage, 4},
	{"provide", wire.OpProvide, 4},
	{"active", wire.OpDeploy, 1},
	{"deleted", wire.OpUndeploy, 1},
	{"rebuild", wire.OpRebuild, 1},
	{"inspect", wire.OpInspect, 6},
	{"clean", wire.OpClean, 15},
	{"abort", wire.OpAbort, 13},
	{"adopt", wire.OpAdopt, 17},
	{"rescue", wire.OpRescue, 38},
	{"unrescue", wire.OpUnrescue, 38},
	{"unhold", wire.OpUnhold, 1},
	{"service", wire.OpService, 1},
	{"deploy", wire.OpDeploy, 73},
	{"undeploy", wire.OpUndeploy, 73},
}

// ParseTarget reads a provision target as the API receives it and returns
// the operation it asks for.
func ParseTarget(s string) (wire.Operation, error) {
	for _, t := range targets {
		if t.name == s {
			return t.op, nil
		}
	}
	names := make([]string, 0, len(targets))
	for _, t := range targets {
		names = append(names, t.name)
	}
	return "", fmt.Errorf("provision: unknown target %q: want one of %s", s, strings.Join(names, ", "))
}

// TargetVersion is the minor microversion a target name needs (0 for an
// unknown name): a request below it is not acceptable (406) whatever the
// node's state.
func TargetVersion(s string) int {
	for _, t := range targets {
		if t.name == s {
			return t.minor
		}
	}
	return 0
}

// TargetOf is Ironic's spelling of the target that asks for op ("active"
// for deploy), as its error messages name it.
func TargetOf(op wire.Operation) string {
	for _, t := range targets {
		if t.op == op {
			return t.name
		}
	}
	return string(op)
}

// Event is something the conductor reports as work progresses.
type Event string

// Internal events (Ironic's event names in ironic/common/state_machine.py).
const (
	EventDone   Event = "done"   // the state's work finished
	EventWait   Event = "wait"   // now waiting for the agent
	EventResume Event = "resume" // the agent called back
	EventFail   Event = "fail"   // the work failed (or timed out)
	// EventManage ends a manual clean: cleaning → manageable.
	EventManage Event = "manage"
	// EventHold parks the node in the hold state of its flow (deploying
	// or wait call-back → deploy hold, cleaning or clean wait → clean
	// hold, servicing, service wait or service failed → service hold):
	// a step named "hold" triggers it. The node leaves a hold state only
	// by a user's unhold (OpUnhold, back to the flow's wait state, where
	// the agent's next heartbeat resumes the steps; from service hold the
	// conductor continues servicing at once) or abort.
	EventHold Event = "hold"
)

// StateInfo describes one state.
type StateInfo struct {
	Kind Kind
	// Target is the target_provision_state a node entering the state gets
	// when it was aiming nowhere (Ironic's add_state target=): the stable
	// state the flow ends in. Empty for stable states.
	Target wire.ProvisionState
}

// States is every state ironfleet supports, its kind and its default
// target, as ironic/common/state_machine.py declares them.
var States = map[wire.ProvisionState]StateInfo{
	wire.StateEnroll:     {Kind: Stable},
	wire.StateVerifying:  {Kind: Transient, Target: wire.StateManageable},
	wire.StateManageable: {Kind: Stable},
	wire.StateAvailable:  {Kind: Stable},
	wire.StateActive:     {Kind: Stable},
	wire.StateError:      {Kind: Stable},
	wire.StateRescue:     {Kind: Stable},

	wire.StateInspecting:    {Kind: Transient, Target: wire.StateManageable},
	wire.StateInspectWait:   {Kind: Wait, Target: wire.StateManageable},
	wire.StateInspectFailed: {Kind: Failed, Target: wire.StateManageable},

	wire.StateCleaning:    {Kind: Transient, Target: wire.StateAvailable},
	wire.StateCleanWait:   {Kind: Wait, Target: wire.StateAvailable},
	wire.StateCleanHold:   {Kind: Hold, Target: wire.StateAvailable},
	wire.StateCleanFailed: {Kind: Failed, Target: wire.StateAvailable},

	wire.StateDeploying:    {Kind: Transient, Target: wire.StateActive},
	wire.StateWaitCallback: {Kind: Wait, Target: wire.StateActive},
	wire.StateDeployHold:   {Kind: Hold, Target: wire.StateActive},
	wire.StateDeployFailed: {Kind: Failed, Target: wire.StateActive},
	wire.StateDeleting:     {Kind: Transient, Target: wire.StateAvailable},

	wire.StateAdopting:    {Kind: Transient, Target: wire.StateActive},
	wire.StateAdoptFailed: {Kind: Failed, Target: wire.StateActive},

	wire.StateRescuing:       {Kind: Transient, Target: wire.StateRescue},
	wire.StateRescueWait:     {Kind: Wait, Target: wire.StateRescue},
	wire.StateRescueFailed:   {Kind: Failed, Target: wire.StateRescue},
	wire.StateUnrescuing:     {Kind: Transient, Target: wire.StateActive},
	wire.StateUnrescueFailed: {Kind: Failed, Target: wire.StateActive},

	wire.StateServicing:     {Kind: Transient, Target: wire.StateActive},
	wire.StateServiceWait:   {Kind: Wait, Target: wire.StateActive},
	wire.StateServiceHold:   {Kind: Hold, Target: wire.StateActive},
	wire.StateServiceFailed: {Kind: Failed, Target: wire.StateActive},
}

// Transition is one edge of the machine.
type Transition struct {
	From wire.ProvisionState
	// Op (a user's request, as a task operation) or Event (the
	// conductor's progress) triggers it; exactly one is set.
	Op    wire.Operation
	Event Event
	To    wire.ProvisionState
	// Target, when set, is the node's target_provision_state after the
	// move, whatever it aimed for before (a manual clean aims for
	// manageable, not cleaning's default available). Otherwise the node
	// keeps aiming where it did, or, aiming nowhere, gets To's default
	// (StateInfo.Target); see TargetAfter.
	Target wire.ProvisionState
	// MinVersion is the minor microversion a user's request for this
	// transition needs, beyond its target name's (TargetVersion): Ironic
	// answers 406 below it, after checking the state.
	MinVersion int
}

// TargetAfter is the node's target_provision_state once t is made from a
// node aiming for current, as Ironic's FSM computes it
// (ironic/common/fsm.py _post_process_event, and task_manager.process_event
// clearing it on a stable state): none on a stable state; else t's own
// Target; else the target the node already aims for (Ironic's cleaning
// passes MANAGEABLE on through a manual clean's waits and failure);
// else the new state's default.
func (t Transition) TargetAfter(current wire.ProvisionState) wire.ProvisionState {
	switch {
	case KindOf(t.To) == Stable:
		return wire.StateNone
	case t.Target != "":
		return t.Target
	case current != "" && current != t.To:
		return current
	}
	return States[t.To].Target
}

// Transitions is the machine: ironic/common/state_machine.py's
// add_transition calls, with a user's verbs as operations. A user's
// operation is allowed from a state exactly when a transition lists it.
var Transitions = []Transition{
	// Enrolment and verification of the BMC.
	{From: wire.StateEnroll, Op: wire.OpManage, To: wire.StateVerifying, Target: wire.StateManageable},
	{From: wire.StateVerifying, Event: EventDone, To: wire.StateManageable},
	{From: wire.StateVerifying, Event: EventFail, To: wire.StateEnroll},

	// Inspection. Aborting it needs 1.41 (allow_inspect_abort).
	{From: wire.StateManageable, Op: wire.OpInspect, To: wire.StateInspecting, Target: wire.StateManageable},
	{From: wire.StateInspectFailed, Op: wire.OpInspect, To: wire.StateInspecting, Target: wire.StateManageable},
	{From: wire.StateInspecting, Event: EventWait, To: wire.StateInspectWait},
	{From: wire.StateInspecting, Event: EventDone, To: wire.StateManageable},
	{From: wire.StateInspecting, Event: EventFail, To: wire.StateInspectFailed},
	{From: wire.StateInspectWait, Event: EventResume, To: wire.StateInspecting},
	{From: wire.StateInspectWait, Event: EventDone, To: wire.StateManageable},
	{From: wire.StateInspectWait, Event: EventFail, To: wire.StateInspectFailed},
	{From: wire.StateInspectWait, Op: wire.OpAbort, To: wire.StateInspectFailed, MinVersion: 41},
	{From: wire.StateInspectFailed, Op: wire.OpManage, To: wire.StateManageable},

	// Cleaning: automated (provide, undeploy) ends available; manual
	// (clean) ends manageable, and aims for it throughout.
	{From: wire.StateManageable, Op: wire.OpProvide, To: wire.StateCleaning, Target: wire.StateAvailable},
	{From: wire.StateManageable, Op: wire.OpClean, To: wire.StateCleaning, Target: wire.StateManageable},
	{From: wire.StateCleaning, Event: EventWait, To: wire.StateCleanWait},
	{From: wire.StateCleaning, Event: EventHold, To: wire.StateCleanHold},
	{From: wire.StateCleaning, Event: EventDone, To: wire.StateAvailable},
	{From: wire.StateCleaning, Event: EventManage, To: wire.StateManageable},
	{From: wire.StateCleaning, Event: EventFail, To: wire.StateCleanFailed},
	{From: wire.StateCleanWait, Event: EventResume, To: wire.StateCleaning},
	{From: wire.StateCleanWait, Event: EventHold, To: wire.StateCleanHold},
	{From: wire.StateCleanWait, Event: EventFail, To: wire.StateCleanFailed},
	{From: wire.StateCleanWait, Op: wire.OpAbort, To: wire.StateCleanFailed},
	{From: wire.StateCleanHold, Op: wire.OpUnhold, To: wire.StateCleanWait, MinVersion: 85},
	{From: wire.StateCleanHold, Op: wire.OpAbort, To: wire.StateCleanFailed},
	{From: wire.StateCleanFailed, Op: wire.OpManage, To: wire.StateManageable},
	{From: wire.StateAvailable, Op: wire.OpManage, To: wire.StateManageable},

	// Deployment. Aborting in wait call-back needs 1.110
	// (allow_deploy_abort); deploy hold may be aborted from 1.13.
	{From: wire.StateAvailable, Op: wire.OpDeploy, To: wire.StateDeploying, Target: wire.StateActive},
	{From: wire.StateDeployFailed, Op: wire.OpDeploy, To: wire.StateDeploying, Target: wire.StateActive},
	{From: wire.StateActive, Op: wire.OpRebuild, To: wire.StateDeploying, Target: wire.StateActive},
	{From: wire.StateDeployFailed, Op: wire.OpRebuild, To: wire.StateDeploying, Target: wire.StateActive},
	{From: wire.StateError, Op: wire.OpRebuild, To: wire.StateDeploying, Target: wire.StateActive},
	{From: wire.StateDeploying, Event: EventWait, To: wire.StateWaitCallback},
	{From: wire.StateDeploying, Event: EventHold, To: wire.StateDeployHold},
	{From: wire.StateDeploying, Event: EventDone, To: wire.StateActive},
	{From: wire.StateDeploying, Event: EventFail, To: wire.StateDeployFailed},
	{From: wire.StateWaitCallback, Event: EventResume, To: wire.StateDeploying},
	{From: wire.StateWaitCallback, Event: EventHold, To: wire.StateDeployHold},
	{From: wire.StateWaitCallback, Event: EventFail, To: wire.StateDeployFailed},
	{From: wire.StateWaitCallback, Op: wire.OpAbort, To: wire.StateDeployFailed, MinVersion: 110},
	{From: wire.StateDeployHold, Op: wire.OpUnhold, To: wire.StateWaitCallback, MinVersion: 85},
	{From: wire.StateDeployHold, Op: wire.OpAbort, To: wire.StateDeployFailed},

	// Tear-down: deleting powers off, then automated cleaning to available.
	{From: wire.StateActive, Op: wire.OpUndeploy, To: wire.StateDeleting, Target: wire.StateAvailable},
	{From: wire.StateWaitCallback, Op: wire.OpUndeploy, To: wire.StateDeleting, Target: wire.StateAvailable},
	{From: wire.StateDeployFailed, Op: wire.OpUndeploy, To: wire.StateDeleting, Target: wire.StateAvailable},
	{From: wire.StateError, Op: wire.OpUndeploy, To: wire.StateDeleting, Target: wire.StateAvailable},
	{From: wire.StateDeleting, Event: EventDone, To: wire.StateCleaning, Target: wire.StateAvailable},
	{From: wire.StateDeleting, Event: EventFail, To: wire.StateError},

	// Adoption: an active machine taken over without deploying it.
	{From: wire.StateManageable, Op: wire.OpAdopt, To: wire.StateAdopting, Target: wire.StateActive},
	{From: wire.StateAdoptFailed, Op: wire.OpAdopt, To: wire.StateAdopting, Target: wire.StateActive},
	{From: wire.StateAdopting, Event: EventDone, To: wire.StateActive},
	{From: wire.StateAdopting, Event: EventFail, To: wire.StateAdoptFailed},
	{From: wire.StateAdoptFailed, Op: wire.OpManage, To: wire.StateManageable},

	// Rescue and unrescue.
	{From: wire.StateActive, Op: wire.OpRescue, To: wire.StateRescuing, Target: wire.StateRescue},
	{From: wire.StateRescue, Op: wire.OpRescue, To: wire.StateRescuing, Target: wire.StateRescue},
	{From: wire.StateRescueFailed, Op: wire.OpRescue, To: wire.StateRescuing, Target: wire.StateRescue},
	{From: wire.StateUnrescueFailed, Op: wire.OpRescue, To: wire.StateRescuing, Target: wire.StateRescue},
	{From: wire.StateServiceFailed, Op: wire.OpRescue, To: wire.StateRescuing, Target: wire.StateRescue},
	{From: wire.StateRescuing, Event: EventDone, To: wire.StateRescue},
	{From: wire.StateRescuing, Event: EventWait, To: wire.StateRescueWait},
	{From: wire.StateRescuing, Event: EventFail, To: wire.StateRescueFailed},
	{From: wire.StateRescueWait, Event: EventResume, To: wire.StateRescuing},
	{From: wire.StateRescueWait, Event: EventFail, To: wire.StateRescueFailed},
	{From: wire.StateRescueWait, Op: wire.OpAbort, To: wire.StateRescueFailed},
	{From: wire.StateRescue, Op: wire.OpUnrescue, To: wire.StateUnrescuing, Target: wire.StateActive},
	{From: wire.StateRescueFailed, Op: wire.OpUnrescue, To: wire.StateUnrescuing, Target: wire.StateActive},
	{From: wire.StateUnrescueFailed, Op: wire.OpUnrescue, To: wire.StateUnrescuing, Target: wire.StateActive},
	{From: wire.StateUnrescuing, Event: EventDone, To: wire.StateActive},
	{From: wire.StateUnrescuing, Event: EventFail, To: wire.StateUnrescueFailed},
	{From: wire.StateRescue, Op: wire.OpUndeploy, To: wire.StateDeleting, Target: wire.StateAvailable},
	{From: wire.StateRescueWait, Op: wire.OpUndeploy, To: wire.StateDeleting, Target: wire.StateAvailable},
	{From: wire.StateRescueFailed, Op: wire.OpUndeploy, To: wire.StateDeleting, Target: wire.StateAvailable},
	{From: wire.StateUnrescueFailed, Op: wire.OpUndeploy, To: wire.StateDeleting, Target: wire.StateAvailable},

	// Servicing (1.87): service steps on an active node. Aborting in
	// service wait or hold fails the node, and the conductor then aborts
	// from service failed back to active (Ironic's _do_abort does both).
	{From: wire.StateActive, Op: wire.OpService, To: wire.StateServicing, Target: wire.StateActive, MinVersion: 87},
	{From: wire.StateServiceHold, Op: wire.OpService, To: wire.StateServicing, Target: wire.StateActive, MinVersion: 87},
	{From: wire.StateServiceFailed, Op: wire.OpService, To: wire.StateServicing, Target: wire.StateActive, MinVersion: 87},
	{From: wire.StateServicing, Event: EventDone, To: wire.StateActive},
	{From: wire.StateServicing, Event: EventWait, To: wire.StateServiceWait},
	{From: wire.StateServicing, Event: EventHold, To: wire.StateServiceHold},
	{From: wire.StateServicing, Event: EventFail, To: wire.StateServiceFailed},
	{From: wire.StateServiceWait, Event: EventResume, To: wire.StateServicing},
	{From: wire.StateServiceWait, Event: EventHold, To: wire.StateServiceHold},
	{From: wire.StateServiceWait, Event: EventFail, To: wire.StateServiceFailed},
	{From: wire.StateServiceWait, Op: wire.OpAbort, To: wire.StateServiceFailed},
	{From: wire.StateServiceWait, Op: wire.OpUndeploy, To: wire.StateDeleting, Target: wire.StateAvailable},
	{From: wire.StateServiceHold, Op: wire.OpUnhold, To: wire.StateServiceWait, MinVersion: 85},
	{From: wire.StateServiceHold, Event: EventFail, To: wire.StateServiceFailed},
	{From: wire.StateServiceHold, Op: wire.OpAbort, To: wire.StateServiceFailed},
	{From: wire.StateServiceFailed, Event: EventWait, To: wire.StateServiceWait},
	{From: wire.StateServiceFailed, Event: EventHold, To: wire.StateServiceHold},
	{From: wire.StateServiceFailed, Op: wire.OpUndeploy, To: wire.StateDeleting, Target: wire.StateAvailable},
	{From: wire.StateServiceFailed, Op: wire.OpAbort, To: wire.StateActive},
}

// InvalidTransitionError says an action is not allowed from a node's state.
// Its message follows Ironic's, and names the targets that are allowed.
type InvalidTransitionError struct {
	Node    string
	State   wire.ProvisionState
	Action  string
	Allowed []wire.Operation
}

func (e *InvalidTransitionError) Error() string {
	allowed := "none"
	if len(e.Allowed) > 0 {
		s := make([]string, len(e.Allowed))
		for i, op := range e.Allowed {
			s[i] = TargetOf(op)
		}
		allowed = strings.Join(s, ", ")
	}
	return fmt.Sprintf("The requested action %q can not be performed on node %q while it is in state %q. Allowed actions: %s.",
		e.Action, e.Node, e.State, allowed)
}

// Code makes the error carry wire.CodeInvalidTransition across the wire.
func (e *InvalidTransitionError) Code() wire.Code { return wire.CodeInvalidTransition }

// Apply returns the transition a user's operation makes from a node's
// state, or an *InvalidTransitionError naming the allowed targets.
func Apply(node string, state wire.ProvisionState, op wire.Operation) (Transition, error) {
	for _, t := range Transitions {
		if t.From == state && t.Op == op {
			return t, nil
		}
	}
	return Transition{}, &InvalidTransitionError{Node: node, State: state, Action: TargetOf(op), Allowed: Allowed(state)}
}

// Next returns the transition an internal event makes from state.
func Next(node string, state wire.ProvisionState, e Event) (Transition, error) {
	for _, t := range Transitions {
		if t.From == state && t.Event == e {
			return t, nil
		}
	}
	return Transition{}, &InvalidTransitionError{Node: node, State: state, Action: string(e), Allowed: Allowed(state)}
}

// Allowed lists the operations a user may ask for in state.
func Allowed(state wire.ProvisionState) []wire.Operation {
	var out []wire.Operation
	for _, t := range Transitions {
		if t.From == state && t.Op != "" && !slices.Contains(out, t.Op) {
			out = append(out, t.Op)
		}
	}
	return out
}

// KindOf returns the kind of state; unknown states are reported as Failed
// so that nothing treats them as safe.
func KindOf(state wire.ProvisionState) Kind {
	if i, ok := States[state]; ok {
		return i.Kind
	}
	return Failed
}

// FailedState is where state goes on failure or timeout: its fail
// transition's destination.
func FailedState(state wire.ProvisionState) (wire.ProvisionState, bool) {
	for _, t := range Transitions {
		if t.From == state && t.Event == EventFail {
			return t.To, true
		}
	}
	return "", false
}

// InKind lists the states of kind k, sorted.
func InKind(k Kind) []wire.ProvisionState {
	var out []wire.ProvisionState
	for s, i := range States {
		if i.Kind == k {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// DeleteAllowed are the states a node not in maintenance may be deleted
// in, in the order Ironic's message lists them: DELETE_ALLOWED_STATES of
// ironic/common/states.py plus available, which Ironic's conductor adds
// while [conductor]allow_deleting_available_nodes is true (its default;
// ironic/conductor/manager.py destroy_node). Failed states are not in it:
// a failed node may hold a tenant's data, and must be torn down or
// managed first.
var DeleteAllowed = []wire.ProvisionState{wire.StateManageable, wire.StateEnroll, wire.StateAdoptFailed, wire.StateAvailable}

// Deletable reports whether a node may be deleted in state. A node in
// maintenance may be deleted in any state (the API's rule, as Ironic's:
// for recovering hopelessly broken nodes).
func Deletable(state wire.ProvisionState) bool {
	return slices.Contains(DeleteAllowed, state)
}

// ExpectsAgent reports whether a node in state is waiting for, or working
// with, an agent: only then does the API answer its lookup (Ironic's
// LOOKUP_ALLOWED_STATES).
func ExpectsAgent(state wire.ProvisionState) bool {
	switch state {
	case wire.StateInspecting, wire.StateInspectWait, wire.StateCleaning, wire.StateCleanWait,
		wire.StateDeploying, wire.StateWaitCallback, wire.StateRescuing, wire.StateRescueWait,
		wire.StateServiceWait:
		return true
	}
	return false
}

// Accept checks that a user may ask for op on node n as it stands and
// returns the first move the operation makes the moment it is accepted:
// the move into a transient state (available → deploying), which its
// dispatcher makes under the node's lock before publishing the task, as
// Ironic's conductor does before its RPC returns. The move is nil for an
// operation of no state (power, boot device) and for one that lands on a
// stable state (the conductor makes that move). An impossible request
// fails with an *InvalidTransitionError or an invalid_input *wire.Error.
func Accept(n wire.Node, op wire.Operation) (*wire.Move, error) {
	if !slices.ContainsFunc(Transitions, func(t Transition) bool { return t.Op == op }) {
		return nil, nil
	}
	t, err := Apply(n.UUID, n.ProvisionState, op)
	if err != nil {
		return nil, err
	}
	if n.Maintenance {
		if what, ok := maintenanceRefuses[op]; ok {
			return nil, wire.Errorf(wire.CodeInvalidInput, "The %s operation can't be performed on node %s because it's in maintenance mode.", what, n.UUID)
		}
		if op == wire.OpAbort && n.ProvisionState == wire.StateServiceFailed {
			return nil, wire.Errorf(wire.CodeConflict, "Can not abort service on node %q while it is in maintenance mode. "+
				"Please remove the node from maintenance prior to issuing the request to abort the service operation.", n.UUID)
		}
	}
	if n.Protected && (op == wire.OpRebuild || op == wire.OpUndeploy) {
		return nil, wire.Errorf(wire.CodeInvalidInput, "Node %s is protected and cannot be undeployed, rebuilt or deleted.", n.UUID)
	}
	if KindOf(t.To) != Transient {
		return nil, nil
	}
	return &wire.Move{From: t.From, To: t.To, Target: t.TargetAfter(n.TargetProvisionState)}, nil
}

// maintenanceRefuses names, in Ironic's NodeInMaintenance words, the
// operations refused on a node in maintenance: deploy and rebuild by
// Ironic's API, the others by its conductor (do_node_clean,
// do_node_rescue, do_node_unrescue, do_node_service). provide is allowed
// ([conductor]allow_provisioning_in_maintenance defaults to true).
var maintenanceRefuses = map[wire.Operation]string{
	wire.OpDeploy:   "provisioning",
	wire.OpRebuild:  "provisioning",
	wire.OpClean:    "cleaning",
	wire.OpRescue:   "rescuing",
	wire.OpUnrescue: "unrescuing",
	wire.OpService:  "service",
}

// Group limits: how many nodes of one conductor group may deploy, and clean,
// at once (Ironic's max_concurrent_deploy and max_concurrent_clean). The
// API refuses actions over them up front (503); conductors hold back what
// raced past the API.
const (
	DefaultMaxDeploys = 250
	DefaultMaxCleans  = 50
)

// Limit names the group limit an operation counts against: the states
// whose nodes count as at work, and Ironic's name for the kind of action
// (its ConcurrentActionLimit message). ok is false for an operation no
// limit bounds.
func Limit(op wire.Operation) (states []wire.ProvisionState, kind string, deploy, ok bool) {
	switch op {
	case wire.OpDeploy, wire.OpRebuild:
		return []wire.ProvisionState{wire.StateDeploying, wire.StateWaitCallback}, "provisioning", true, true
	case wire.OpProvide, wire.OpClean:
		return []wire.ProvisionState{wire.StateCleaning, wire.StateCleanWait}, "cleaning", false, true
	case wire.OpUndeploy:
		return []wire.ProvisionState{wire.StateCleaning, wire.StateCleanWait}, "unprovisioning", false, true
	}
	return nil, "", false, false
}

// PowerTarget is the target_power_state a power action shows while it
// runs: where it ends (power on for a (soft) reboot, power off for a soft
// power off), as Ironic's _calculate_target_state in
// ironic/conductor/utils.py.
func PowerTarget(action wire.PowerState) wire.PowerState {
	switch action {
	case wire.PowerRebooting, wire.PowerSoftRebooting:
		return wire.PowerOn
	case wire.PowerSoftOff:
		return wire.PowerOff
	}
	return action
}
