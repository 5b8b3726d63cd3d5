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
	// Stable states last until a user asks for something.
	Stable Kind = iota
	// Transient states last while a conductor works on the node; a node
	// found in one whose conductor died is recovered.
	Transient
	// Wait states last until something outside (the agent) calls back; they
	// time out into their failed state.
	Wait
	// Failed states say the last action failed; last_error says why.
	Failed
)

func (k Kind) String() string {
	return [...]string{"stable", "transient", "wait", "failed"}[k]
}

// targets are the "target" values of PUT /v1/nodes/{node}/states/provision,
// spelled as Ironic spells them, and the task operation each becomes. The
// operation is the one name the rest of ironfleet uses; the target is only
// how a user asks for it ("deploy" and "undeploy" are Ironic's aliases of
// "active" and "deleted").
var targets = []struct {
	name string
	op   wire.Operation
}{
	{"manage", wire.OpManage},
	{"provide", wire.OpProvide},
	{"active", wire.OpDeploy},
	{"deleted", wire.OpUndeploy},
	{"rebuild", wire.OpRebuild},
	{"inspect", wire.OpInspect},
	{"clean", wire.OpClean},
	{"abort", wire.OpAbort},
	{"deploy", wire.OpDeploy},
	{"undeploy", wire.OpUndeploy},
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
	for _, t := range targets[:8] {
		names = append(names, t.name)
	}
	return "", fmt.Errorf("provision: unknown target %q: want one of %s", s, strings.Join(names, ", "))
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

// Internal events.
const (
	EventDone   Event = "done"   // the state's work finished
	EventWait   Event = "wait"   // now waiting for the agent
	EventResume Event = "resume" // the agent called back
	EventFail   Event = "fail"   // the work failed (or timed out)
)

// StateInfo describes one state.
type StateInfo struct {
	Kind Kind
	// Failed is the state a transient or wait state fails into.
	Failed wire.ProvisionState
}

// States is every state ironfleet supports and its kind.
var States = map[wire.ProvisionState]StateInfo{
	wire.StateEnroll:        {Kind: Stable},
	wire.StateVerifying:     {Kind: Transient, Failed: wire.StateEnroll},
	wire.StateManageable:    {Kind: Stable},
	wire.StateInspecting:    {Kind: Transient, Failed: wire.StateInspectFailed},
	wire.StateInspectWait:   {Kind: Wait, Failed: wire.StateInspectFailed},
	wire.StateInspectFailed: {Kind: Failed},
	wire.StateCleaning:      {Kind: Transient, Failed: wire.StateCleanFailed},
	wire.StateCleanWait:     {Kind: Wait, Failed: wire.StateCleanFailed},
	wire.StateCleanFailed:   {Kind: Failed},
	wire.StateAvailable:     {Kind: Stable},
	wire.StateDeploying:     {Kind: Transient, Failed: wire.StateDeployFailed},
	wire.StateWaitCallback:  {Kind: Wait, Failed: wire.StateDeployFailed},
	wire.StateDeployFailed:  {Kind: Failed},
	wire.StateActive:        {Kind: Stable},
	wire.StateDeleting:      {Kind: Transient, Failed: wire.StateError},
	wire.StateError:         {Kind: Failed},
}

// Transition is one edge of the machine.
type Transition struct {
	From wire.ProvisionState
	// Op (a user's request, as a task operation) or Event (the
	// conductor's progress) triggers it; exactly one is set.
	Op    wire.Operation
	Event Event
	To    wire.ProvisionState
	// Target is the node's target_provision_state while the action runs
	// (the stable state it aims for), empty when it lands on a stable state.
	Target wire.ProvisionState
}

// Transitions is the machine. A user's operation is allowed from a state exactly
// when a transition lists it.
var Transitions = []Transition{
	// Enrolment and verification of the BMC.
	{From: wire.StateEnroll, To: wire.StateVerifying, Target: wire.StateManageable, Op: wire.OpManage},
	{From: wire.StateVerifying, Event: EventDone, To: wire.StateManageable},
	{From: wire.StateVerifying, Event: EventFail, To: wire.StateEnroll},

	// Inspection.
	{From: wire.StateManageable, To: wire.StateInspecting, Target: wire.StateManageable, Op: wire.OpInspect},
	{From: wire.StateInspectFailed, To: wire.StateInspecting, Target: wire.StateManageable, Op: wire.OpInspect},
	{From: wire.StateInspecting, Event: EventWait, To: wire.StateInspectWait, Target: wire.StateManageable},
	{From: wire.StateInspectWait, Event: EventResume, To: wire.StateInspecting, Target: wire.StateManageable},
	{From: wire.StateInspecting, Event: EventDone, To: wire.StateManageable},
	{From: wire.StateInspecting, Event: EventFail, To: wire.StateInspectFailed},
	{From: wire.StateInspectWait, Event: EventFail, To: wire.StateInspectFailed},
	{From: wire.StateInspectWait, To: wire.StateInspectFailed, Op: wire.OpAbort},
	{From: wire.StateInspectFailed, To: wire.StateManageable, Op: wire.OpManage},

	// Cleaning: automated (provide, undeploy) ends available; manual
	// (clean) ends manageable — the conductor picks by the node's target.
	{From: wire.StateManageable, To: wire.StateCleaning, Target: wire.StateAvailable, Op: wire.OpProvide},
	{From: wire.StateManageable, To: wire.StateCleaning, Target: wire.StateManageable, Op: wire.OpClean},
	{From: wire.StateCleaning, Event: EventWait, To: wire.StateCleanWait},
	{From: wire.StateCleanWait, Event: EventResume, To: wire.StateCleaning},
	{From: wire.StateCleaning, Event: EventDone, To: wire.StateAvailable},
	{From: wire.StateCleaning, Event: EventFail, To: wire.StateCleanFailed},
	{From: wire.StateCleanWait, Event: EventFail, To: wire.StateCleanFailed},
	{From: wire.StateCleanWait, To: wire.StateCleanFailed, Op: wire.OpAbort},
	{From: wire.StateCleanFailed, To: wire.StateManageable, Op: wire.OpManage},
	{From: wire.StateAvailable, To: wire.StateManageable, Op: wire.OpManage},

	// Deployment.
	{From: wire.StateAvailable, To: wire.StateDeploying, Target: wire.StateActive, Op: wire.OpDeploy},
	{From: wire.StateDeployFailed, To: wire.StateDeploying, Target: wire.StateActive, Op: wire.OpDeploy},
	{From: wire.StateActive, To: wire.StateDeploying, Target: wire.StateActive, Op: wire.OpRebuild},
	{From: wire.StateDeployFailed, To: wire.StateDeploying, Target: wire.StateActive, Op: wire.OpRebuild},
	{From: wire.StateError, To: wire.StateDeploying, Target: wire.StateActive, Op: wire.OpRebuild},
	{From: wire.StateDeploying, Event: EventWait, To: wire.StateWaitCallback, Target: wire.StateActive},
	{From: wire.StateWaitCallback, Event: EventResume, To: wire.StateDeploying, Target: wire.StateActive},
	{From: wire.StateDeploying, Event: EventDone, To: wire.StateActive},
	{From: wire.StateDeploying, Event: EventFail, To: wire.StateDeployFailed},
	{From: wire.StateWaitCallback, Event: EventFail, To: wire.StateDeployFailed},
	{From: wire.StateWaitCallback, To: wire.StateDeployFailed, Op: wire.OpAbort},

	// Tear-down: deleting powers off, then automated cleaning to available.
	{From: wire.StateActive, To: wire.StateDeleting, Target: wire.StateAvailable, Op: wire.OpUndeploy},
	{From: wire.StateDeployFailed, To: wire.StateDeleting, Target: wire.StateAvailable, Op: wire.OpUndeploy},
	{From: wire.StateError, To: wire.StateDeleting, Target: wire.StateAvailable, Op: wire.OpUndeploy},
	{From: wire.StateDeleting, Event: EventDone, To: wire.StateCleaning, Target: wire.StateAvailable},
	{From: wire.StateDeleting, Event: EventFail, To: wire.StateError},
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

// FailedState is where a transient or wait state goes on failure or timeout.
func FailedState(state wire.ProvisionState) (wire.ProvisionState, bool) {
	i, ok := States[state]
	if !ok || (i.Kind != Transient && i.Kind != Wait) {
		return "", false
	}
	return i.Failed, true
}

// Deletable reports whether a node may be deleted in state (Ironic allows
// it in enroll, manageable, available, inspect failed, clean failed and
// error — not while active or while work is under way).
func Deletable(state wire.ProvisionState) bool {
	switch state {
	case wire.StateEnroll, wire.StateManageable, wire.StateAvailable,
		wire.StateInspectFailed, wire.StateCleanFailed, wire.StateError:
		return true
	}
	return false
}

// ExpectsAgent reports whether a node in state is waiting for, or working
// with, an agent: only then does the API answer its lookup.
func ExpectsAgent(state wire.ProvisionState) bool {
	switch state {
	case wire.StateInspecting, wire.StateInspectWait, wire.StateCleaning, wire.StateCleanWait,
		wire.StateDeploying, wire.StateWaitCallback:
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
	if n.Maintenance && (op == wire.OpDeploy || op == wire.OpRebuild) {
		return nil, wire.Errorf(wire.CodeInvalidInput, "Node %s is in maintenance mode; %s is refused.", n.UUID, TargetOf(op))
	}
	if n.Protected && (op == wire.OpRebuild || op == wire.OpUndeploy) {
		return nil, wire.Errorf(wire.CodeInvalidInput, "Node %s is protected and cannot be undeployed, rebuilt or deleted.", n.UUID)
	}
	if KindOf(t.To) != Transient {
		return nil, nil
	}
	return &wire.Move{From: t.From, To: t.To, Target: t.Target}, nil
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
