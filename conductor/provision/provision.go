// Package provision is ironfleet's provisioning state machine, as data: the
// states a node moves through, what kind each is, and every transition,
// whether asked for by a user (a verb on the API) or made by the conductor
// as work progresses (an internal event). Both the api (to refuse an
// impossible request at once) and the conductor (to re-validate under the
// node's lock and to move the node) read it; nothing else decides.
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

// Verb is a provisioning action a user asks for: the "target" of
// PUT /v1/nodes/{node}/states/provision, spelled as Ironic spells it.
type Verb string

// Verbs.
const (
	VerbManage   Verb = "manage"
	VerbProvide  Verb = "provide"
	VerbDeploy   Verb = "active" // Ironic's target for deploy; "deploy" is accepted as an alias
	VerbUndeploy Verb = "deleted"
	VerbRebuild  Verb = "rebuild"
	VerbInspect  Verb = "inspect"
	VerbClean    Verb = "clean"
	VerbAbort    Verb = "abort"
)

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
	// Verb or Event triggers it (exactly one is set).
	Verb  Verb
	Event Event
	To    wire.ProvisionState
	// Target is the node's target_provision_state while the action runs
	// (the stable state it aims for), empty when it lands on a stable state.
	Target wire.ProvisionState
	// Op is the task a user verb becomes on the bus.
	Op wire.Operation
}

// Transitions is the machine. A user verb is allowed from a state exactly
// when a transition lists it.
var Transitions = []Transition{
	// Enrolment and verification of the BMC.
	{From: wire.StateEnroll, Verb: VerbManage, To: wire.StateVerifying, Target: wire.StateManageable, Op: wire.OpManage},
	{From: wire.StateVerifying, Event: EventDone, To: wire.StateManageable},
	{From: wire.StateVerifying, Event: EventFail, To: wire.StateEnroll},

	// Inspection.
	{From: wire.StateManageable, Verb: VerbInspect, To: wire.StateInspecting, Target: wire.StateManageable, Op: wire.OpInspect},
	{From: wire.StateInspectFailed, Verb: VerbInspect, To: wire.StateInspecting, Target: wire.StateManageable, Op: wire.OpInspect},
	{From: wire.StateInspecting, Event: EventWait, To: wire.StateInspectWait, Target: wire.StateManageable},
	{From: wire.StateInspectWait, Event: EventResume, To: wire.StateInspecting, Target: wire.StateManageable},
	{From: wire.StateInspecting, Event: EventDone, To: wire.StateManageable},
	{From: wire.StateInspecting, Event: EventFail, To: wire.StateInspectFailed},
	{From: wire.StateInspectWait, Event: EventFail, To: wire.StateInspectFailed},
	{From: wire.StateInspectWait, Verb: VerbAbort, To: wire.StateInspectFailed, Op: wire.OpAbort},
	{From: wire.StateInspectFailed, Verb: VerbManage, To: wire.StateManageable, Op: wire.OpManage},

	// Cleaning: automated (provide, undeploy) ends available; manual
	// (clean) ends manageable — the conductor picks by the node's target.
	{From: wire.StateManageable, Verb: VerbProvide, To: wire.StateCleaning, Target: wire.StateAvailable, Op: wire.OpProvide},
	{From: wire.StateManageable, Verb: VerbClean, To: wire.StateCleaning, Target: wire.StateManageable, Op: wire.OpClean},
	{From: wire.StateCleaning, Event: EventWait, To: wire.StateCleanWait},
	{From: wire.StateCleanWait, Event: EventResume, To: wire.StateCleaning},
	{From: wire.StateCleaning, Event: EventDone, To: wire.StateAvailable},
	{From: wire.StateCleaning, Event: EventFail, To: wire.StateCleanFailed},
	{From: wire.StateCleanWait, Event: EventFail, To: wire.StateCleanFailed},
	{From: wire.StateCleanWait, Verb: VerbAbort, To: wire.StateCleanFailed, Op: wire.OpAbort},
	{From: wire.StateCleanFailed, Verb: VerbManage, To: wire.StateManageable, Op: wire.OpManage},
	{From: wire.StateAvailable, Verb: VerbManage, To: wire.StateManageable, Op: wire.OpManage},

	// Deployment.
	{From: wire.StateAvailable, Verb: VerbDeploy, To: wire.StateDeploying, Target: wire.StateActive, Op: wire.OpDeploy},
	{From: wire.StateDeployFailed, Verb: VerbDeploy, To: wire.StateDeploying, Target: wire.StateActive, Op: wire.OpDeploy},
	{From: wire.StateActive, Verb: VerbRebuild, To: wire.StateDeploying, Target: wire.StateActive, Op: wire.OpRebuild},
	{From: wire.StateDeployFailed, Verb: VerbRebuild, To: wire.StateDeploying, Target: wire.StateActive, Op: wire.OpRebuild},
	{From: wire.StateError, Verb: VerbRebuild, To: wire.StateDeploying, Target: wire.StateActive, Op: wire.OpRebuild},
	{From: wire.StateDeploying, Event: EventWait, To: wire.StateWaitCallback, Target: wire.StateActive},
	{From: wire.StateWaitCallback, Event: EventResume, To: wire.StateDeploying, Target: wire.StateActive},
	{From: wire.StateDeploying, Event: EventDone, To: wire.StateActive},
	{From: wire.StateDeploying, Event: EventFail, To: wire.StateDeployFailed},
	{From: wire.StateWaitCallback, Event: EventFail, To: wire.StateDeployFailed},
	{From: wire.StateWaitCallback, Verb: VerbAbort, To: wire.StateDeployFailed, Op: wire.OpAbort},

	// Tear-down: deleting powers off, then automated cleaning to available.
	{From: wire.StateActive, Verb: VerbUndeploy, To: wire.StateDeleting, Target: wire.StateAvailable, Op: wire.OpUndeploy},
	{From: wire.StateDeployFailed, Verb: VerbUndeploy, To: wire.StateDeleting, Target: wire.StateAvailable, Op: wire.OpUndeploy},
	{From: wire.StateError, Verb: VerbUndeploy, To: wire.StateDeleting, Target: wire.StateAvailable, Op: wire.OpUndeploy},
	{From: wire.StateDeleting, Event: EventDone, To: wire.StateCleaning, Target: wire.StateAvailable},
	{From: wire.StateDeleting, Event: EventFail, To: wire.StateError},
}

// InvalidTransitionError says an action is not allowed from a node's state.
// Its message follows Ironic's, and names the targets that are allowed.
type InvalidTransitionError struct {
	Node    string
	State   wire.ProvisionState
	Action  string
	Allowed []Verb
}

func (e *InvalidTransitionError) Error() string {
	allowed := "none"
	if len(e.Allowed) > 0 {
		s := make([]string, len(e.Allowed))
		for i, v := range e.Allowed {
			s[i] = string(v)
		}
		allowed = strings.Join(s, ", ")
	}
	return fmt.Sprintf("The requested action %q can not be performed on node %q while it is in state %q. Allowed actions: %s.",
		e.Action, e.Node, e.State, allowed)
}

// Code makes the error carry wire.CodeInvalidTransition across the wire.
func (e *InvalidTransitionError) Code() wire.Code { return wire.CodeInvalidTransition }

// ParseVerb reads a provision target as the API receives it ("deploy" is an
// alias of "active", "undeploy" of "deleted").
func ParseVerb(s string) (Verb, error) {
	switch v := Verb(s); v {
	case VerbManage, VerbProvide, VerbDeploy, VerbUndeploy, VerbRebuild, VerbInspect, VerbClean, VerbAbort:
		return v, nil
	case "deploy":
		return VerbDeploy, nil
	case "undeploy":
		return VerbUndeploy, nil
	}
	return "", fmt.Errorf("provision: unknown target %q: want one of %s", s, strings.Join(verbNames(), ", "))
}

func verbNames() []string {
	return []string{"manage", "provide", "active", "deleted", "rebuild", "inspect", "clean", "abort"}
}

// Apply returns the transition a user verb makes from a node's state, or an
// *InvalidTransitionError naming the allowed verbs.
func Apply(node string, state wire.ProvisionState, v Verb) (Transition, error) {
	for _, t := range Transitions {
		if t.From == state && t.Verb == v {
			return t, nil
		}
	}
	return Transition{}, &InvalidTransitionError{Node: node, State: state, Action: string(v), Allowed: Allowed(state)}
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

// Allowed lists the verbs a user may ask for in state.
func Allowed(state wire.ProvisionState) []Verb {
	var out []Verb
	for _, t := range Transitions {
		if t.From == state && t.Verb != "" && !slices.Contains(out, t.Verb) {
			out = append(out, t.Verb)
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

// Started reports whether a node in state with target is where user verb v
// leaves it the moment it is accepted: the API makes that first step under
// the node's lock (as Ironic's conductor does before its RPC returns), and
// the conductor that takes the task on goes on from there. Only transient
// states count: a stable or failed target is the conductor's to reach.
func Started(state, target wire.ProvisionState, v Verb) (Transition, bool) {
	if KindOf(state) != Transient {
		return Transition{}, false
	}
	for _, t := range Transitions {
		if t.Verb == v && t.To == state && t.Target == target {
			return t, true
		}
	}
	return Transition{}, false
}
