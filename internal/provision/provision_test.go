package provision

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/ironfleet/ironfleet/transport/wire"
)

func TestUserVerbs(t *testing.T) {
	tests := []struct {
		from   wire.ProvisionState
		op     wire.Operation
		to     wire.ProvisionState
		target wire.ProvisionState
	}{
		{wire.StateEnroll, wire.OpManage, wire.StateVerifying, wire.StateManageable},
		{wire.StateManageable, wire.OpProvide, wire.StateCleaning, wire.StateAvailable},
		{wire.StateManageable, wire.OpClean, wire.StateCleaning, wire.StateManageable},
		{wire.StateManageable, wire.OpInspect, wire.StateInspecting, wire.StateManageable},
		{wire.StateAvailable, wire.OpDeploy, wire.StateDeploying, wire.StateActive},
		{wire.StateAvailable, wire.OpManage, wire.StateManageable, ""},
		{wire.StateActive, wire.OpUndeploy, wire.StateDeleting, wire.StateAvailable},
		{wire.StateActive, wire.OpRebuild, wire.StateDeploying, wire.StateActive},
		{wire.StateDeployFailed, wire.OpDeploy, wire.StateDeploying, wire.StateActive},
		{wire.StateDeployFailed, wire.OpUndeploy, wire.StateDeleting, wire.StateAvailable},
		{wire.StateWaitCallback, wire.OpAbort, wire.StateDeployFailed, ""},
		{wire.StateCleanWait, wire.OpAbort, wire.StateCleanFailed, ""},
		{wire.StateInspectWait, wire.OpAbort, wire.StateInspectFailed, ""},
		{wire.StateCleanFailed, wire.OpManage, wire.StateManageable, ""},
		{wire.StateError, wire.OpUndeploy, wire.StateDeleting, wire.StateAvailable},
	}
	for _, tt := range tests {
		t.Run(string(tt.from)+"/"+string(tt.op), func(t *testing.T) {
			got, err := Apply("n1", tt.from, tt.op)
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if got.To != tt.to || got.Target != tt.target {
				t.Fatalf("got to %q target %q, want %q %q", got.To, got.Target, tt.to, tt.target)
			}
		})
	}
}

func TestInternalEvents(t *testing.T) {
	tests := []struct {
		from wire.ProvisionState
		ev   Event
		to   wire.ProvisionState
	}{
		{wire.StateVerifying, EventDone, wire.StateManageable},
		{wire.StateVerifying, EventFail, wire.StateEnroll},
		{wire.StateDeploying, EventWait, wire.StateWaitCallback},
		{wire.StateWaitCallback, EventResume, wire.StateDeploying},
		{wire.StateDeploying, EventDone, wire.StateActive},
		{wire.StateWaitCallback, EventFail, wire.StateDeployFailed},
		{wire.StateDeleting, EventDone, wire.StateCleaning},
		{wire.StateCleaning, EventWait, wire.StateCleanWait},
		{wire.StateCleanWait, EventResume, wire.StateCleaning},
		{wire.StateCleaning, EventDone, wire.StateAvailable},
		{wire.StateCleanWait, EventFail, wire.StateCleanFailed},
		{wire.StateInspecting, EventWait, wire.StateInspectWait},
		{wire.StateInspecting, EventDone, wire.StateManageable},
	}
	for _, tt := range tests {
		t.Run(string(tt.from)+"/"+string(tt.ev), func(t *testing.T) {
			got, err := Next("n1", tt.from, tt.ev)
			if err != nil || got.To != tt.to {
				t.Fatalf("Next = %q, %v; want %q", got.To, err, tt.to)
			}
		})
	}
}

func TestInvalidTransitionNamesStateAndAllowed(t *testing.T) {
	_, err := Apply("node-7", wire.StateEnroll, wire.OpDeploy)
	var ite *InvalidTransitionError
	if !errors.As(err, &ite) {
		t.Fatalf("Apply(enroll, active) = %v, want *InvalidTransitionError", err)
	}
	msg := err.Error()
	for _, want := range []string{`"active"`, `"node-7"`, `"enroll"`, "Allowed actions: manage"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %s", msg, want)
		}
	}
	if ite.Code() != wire.CodeInvalidTransition {
		t.Fatalf("code = %q", ite.Code())
	}
	if _, err := Apply("n", wire.StateDeploying, wire.OpDeploy); err == nil || !strings.Contains(err.Error(), "Allowed actions: none") {
		t.Fatalf("deploy while deploying = %v, want refused with no allowed actions", err)
	}
}

// TestMachineIsConsistent: every state named is known, every transient and
// wait state can fail and time out somewhere, every stable state but active
// and error is reachable, and nothing is left without a way out.
func TestMachineIsConsistent(t *testing.T) {
	reach := map[wire.ProvisionState]bool{wire.StateEnroll: true}
	for _, tr := range Transitions {
		if _, ok := States[tr.From]; !ok {
			t.Errorf("transition from unknown state %q", tr.From)
		}
		if _, ok := States[tr.To]; !ok {
			t.Errorf("transition to unknown state %q", tr.To)
		}
		if (tr.Op == "") == (tr.Event == "") {
			t.Errorf("transition %+v must have exactly one of op and event", tr)
		}
		reach[tr.To] = true
	}
	for s, info := range States {
		if !reach[s] {
			t.Errorf("state %q is unreachable", s)
		}
		if info.Kind == Transient || info.Kind == Wait {
			if _, err := Next("n", s, EventFail); err != nil {
				t.Errorf("%s state %q has no fail transition", info.Kind, s)
			}
			if f, ok := FailedState(s); !ok || f == "" {
				t.Errorf("%s state %q has no failed state", info.Kind, s)
			}
		}
		if info.Kind == Failed && len(Allowed(s)) == 0 {
			t.Errorf("failed state %q has no way out", s)
		}
	}
}

func TestParseTarget(t *testing.T) {
	for in, want := range map[string]wire.Operation{"active": wire.OpDeploy, "deploy": wire.OpDeploy, "deleted": wire.OpUndeploy, "undeploy": wire.OpUndeploy, "manage": wire.OpManage} {
		if got, err := ParseTarget(in); err != nil || got != want {
			t.Errorf("ParseTarget(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "ACTIVE", "bogus", "power on"} {
		if _, err := ParseTarget(bad); err == nil {
			t.Errorf("ParseTarget(%q) accepted", bad)
		}
	}
	if !slices.Contains(Allowed(wire.StateManageable), wire.OpProvide) {
		t.Error("provide not allowed from manageable")
	}
}

func TestTargetOfSpellsIronicsTarget(t *testing.T) {
	for op, want := range map[wire.Operation]string{wire.OpDeploy: "active", wire.OpUndeploy: "deleted", wire.OpManage: "manage", wire.OpContinueDeploy: "continue_deploy"} {
		if got := TargetOf(op); got != want {
			t.Errorf("TargetOf(%q) = %q, want %q", op, got, want)
		}
	}
}

func TestHolderOnlyChange(t *testing.T) {
	base := wire.Node{UUID: "n", ProvisionState: wire.StateAvailable, PowerState: wire.PowerOff, Fence: 3}
	tests := []struct {
		name string
		edit func(*wire.Node)
		want string
	}{
		{"description", func(n *wire.Node) { n.Description = "rack 4" }, ""},
		{"maintenance", func(n *wire.Node) { n.Maintenance = true }, ""},
		{"provision state", func(n *wire.Node) { n.ProvisionState = wire.StateDeploying }, "provision_state"},
		{"target", func(n *wire.Node) { n.TargetProvisionState = wire.StateActive }, "target_provision_state"},
		{"power", func(n *wire.Node) { n.PowerState = wire.PowerOn }, "power_state"},
		{"step", func(n *wire.Node) { n.Step = "boot" }, "step"},
		{"conductor", func(n *wire.Node) { n.Conductor = "c1" }, "conductor"},
		{"fence", func(n *wire.Node) { n.Fence = 4 }, "fence"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := base
			tt.edit(&n)
			if got := HolderOnlyChange(base, n); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// userOps is every operation a user may ask for, from the targets table.
func userOps() []wire.Operation {
	var ops []wire.Operation
	for _, t := range targets {
		if !slices.Contains(ops, t.op) {
			ops = append(ops, t.op)
		}
	}
	return ops
}

// events is every internal event the table uses.
func events() []Event {
	var out []Event
	for _, t := range Transitions {
		if t.Event != "" && !slices.Contains(out, t.Event) {
			out = append(out, t.Event)
		}
	}
	return out
}

// TestApplyAndAcceptAgreeWithTheTable is generated from Transitions: for
// every state and every user operation, Apply, Allowed and Accept say
// exactly what the table says, and for every state and internal event,
// Next does. No pair of a state and an operation or event has two rows.
func TestApplyAndAcceptAgreeWithTheTable(t *testing.T) {
	for state := range States {
		for _, op := range userOps() {
			var rows []Transition
			for _, tr := range Transitions {
				if tr.From == state && tr.Op == op {
					rows = append(rows, tr)
				}
			}
			name := string(state) + "/" + string(op)
			if len(rows) > 1 {
				t.Errorf("%s: %d rows, want at most one", name, len(rows))
				continue
			}
			got, err := Apply("n", state, op)
			allowed := slices.Contains(Allowed(state), op)
			n := wire.Node{UUID: "n", ProvisionState: state, TargetProvisionState: States[state].Target}
			move, aerr := Accept(n, op)
			if len(rows) == 0 {
				var ite *InvalidTransitionError
				if !errors.As(err, &ite) || allowed || !errors.As(aerr, &ite) {
					t.Errorf("%s: Apply = %+v, %v; Accept = %v; Allowed %v; want refused", name, got, err, aerr, allowed)
				}
				continue
			}
			want := rows[0]
			if err != nil || got != want || !allowed || aerr != nil {
				t.Errorf("%s: Apply = %+v, %v; Accept err %v; Allowed %v; want %+v", name, got, err, aerr, allowed, want)
				continue
			}
			if KindOf(want.To) != Transient {
				if move != nil {
					t.Errorf("%s: Accept made a first move %+v into a %s state", name, move, KindOf(want.To))
				}
				continue
			}
			if move == nil || *move != (wire.Move{From: state, To: want.To, Target: want.TargetAfter(n.TargetProvisionState)}) {
				t.Errorf("%s: Accept's first move %+v, want %s → %s", name, move, state, want.To)
			}
		}
		for _, e := range events() {
			var rows []Transition
			for _, tr := range Transitions {
				if tr.From == state && tr.Event == e {
					rows = append(rows, tr)
				}
			}
			got, err := Next("n", state, e)
			switch {
			case len(rows) > 1:
				t.Errorf("%s/%s: %d rows, want at most one", state, e, len(rows))
			case len(rows) == 0 && err == nil:
				t.Errorf("%s/%s: Next = %+v, want refused", state, e, got)
			case len(rows) == 1 && (err != nil || got != rows[0]):
				t.Errorf("%s/%s: Next = %+v, %v; want %+v", state, e, got, err, rows[0])
			}
		}
	}
}

// ironicEdges are the add_transition calls of Ironic's
// ironic/common/state_machine.py (openstack/ironic master, 2026-08),
// as from → event → to, in Ironic's event names.
var ironicEdges = `
deploying fail deploy failed; deploy failed rebuild deploying; deploy failed deploy deploying;
deploying wait wait call-back; deploying hold deploy hold; wait call-back hold deploy hold;
wait call-back resume deploying; wait call-back fail deploy failed; deploy hold unhold wait call-back;
deploy hold abort deploy failed; wait call-back abort deploy failed; deploying done active;
active rebuild deploying; active delete deleting; wait call-back delete deleting; deploy failed delete deleting;
deleting fail error; deleting clean cleaning; cleaning done available; cleaning fail clean failed;
clean wait fail clean failed; clean wait abort clean failed; cleaning wait clean wait; cleaning hold clean hold;
clean wait hold clean hold; clean wait resume cleaning; clean hold abort clean failed; clean hold unhold clean wait;
clean failed manage manageable; manageable provide cleaning; manageable clean cleaning; cleaning manage manageable;
available manage manageable; available deploy deploying; error rebuild deploying; error delete deleting;
manageable inspect inspecting; inspecting done manageable; inspecting fail inspect failed; inspecting wait inspect wait;
inspect wait done manageable; inspect wait fail inspect failed; inspect wait abort inspect failed;
inspect wait resume inspecting; inspect failed manage manageable; inspect failed inspect inspecting;
active rescue rescuing; rescuing done rescue; rescuing wait rescue wait; rescue wait resume rescuing;
rescue rescue rescuing; rescue delete deleting; rescue wait fail rescue failed; rescuing fail rescue failed;
rescue wait abort rescue failed; rescue failed rescue rescuing; rescue failed unrescue unrescuing;
rescue failed delete deleting; rescue wait delete deleting; rescue unrescue unrescuing; unrescuing done active;
unrescuing fail unrescue failed; unrescue failed rescue rescuing; unrescue failed unrescue unrescuing;
unrescue failed delete deleting; enroll manage verifying; verifying done manageable; verifying fail enroll;
manageable adopt adopting; adopting done active; adopting fail adopt failed; adopt failed adopt adopting;
adopt failed manage manageable; servicing done active; active service servicing; servicing fail service failed;
servicing wait service wait; servicing hold service hold; service wait hold service hold;
service hold service servicing; service hold unhold service wait; service wait resume servicing;
service wait fail service failed; service hold fail service failed; service wait abort service failed;
service hold abort service failed; service failed service servicing; service failed rescue rescuing;
service failed wait service wait; service failed hold service hold; service failed delete deleting;
service failed abort active; service wait delete deleting`

// ironicEvent is the Ironic event name of a transition (its verb, from
// ironic/common/states.py VERBS, or its internal event).
func ironicEvent(tr Transition) string {
	switch {
	case tr.Op == wire.OpDeploy:
		return "deploy"
	case tr.Op == wire.OpUndeploy:
		return "delete"
	case tr.Op != "":
		return string(tr.Op)
	case tr.From == wire.StateDeleting && tr.Event == EventDone:
		return "clean"
	}
	return string(tr.Event)
}

// TestTransitionsAreIronics: the table is Ironic's machine, edge for edge.
func TestTransitionsAreIronics(t *testing.T) {
	states := make([]string, 0, len(States))
	for s := range States {
		states = append(states, string(s))
	}
	// Longest first, so that "wait call-back" is not read as "wait".
	slices.SortFunc(states, func(a, b string) int { return len(b) - len(a) })
	want := map[string]bool{}
	for e := range strings.SplitSeq(ironicEdges, ";") {
		e = strings.Join(strings.Fields(e), " ")
		var from, to string
		for _, s := range states {
			if from == "" && strings.HasPrefix(e, s+" ") {
				from = s
			}
			if to == "" && strings.HasSuffix(e, " "+s) && len(e) > len(s)+1 {
				to = s
			}
		}
		if from == "" || to == "" {
			t.Fatalf("cannot read edge %q", e)
		}
		ev := strings.TrimSpace(e[len(from) : len(e)-len(to)])
		want[from+" --"+ev+"--> "+to] = true
	}
	got := map[string]bool{}
	for _, tr := range Transitions {
		got[string(tr.From)+" --"+ironicEvent(tr)+"--> "+string(tr.To)] = true
	}
	for e := range want {
		if !got[e] {
			t.Errorf("Ironic's edge %s is missing", e)
		}
	}
	for e := range got {
		if !want[e] {
			t.Errorf("edge %s is not Ironic's", e)
		}
	}
}

// TestTargetFollowsIronic walks flows through the table and checks
// target_provision_state after each move as Ironic sets it: kept through
// every transient, wait and failed state of the flow (a manual clean aims
// for manageable throughout), cleared on a stable state.
func TestTargetFollowsIronic(t *testing.T) {
	type step struct {
		op     wire.Operation
		ev     Event
		state  wire.ProvisionState
		target wire.ProvisionState
	}
	tests := []struct {
		name  string
		from  wire.ProvisionState
		steps []step
	}{
		{"provide", wire.StateManageable, []step{
			{op: wire.OpProvide, state: wire.StateCleaning, target: wire.StateAvailable},
			{ev: EventWait, state: wire.StateCleanWait, target: wire.StateAvailable},
			{ev: EventResume, state: wire.StateCleaning, target: wire.StateAvailable},
			{ev: EventDone, state: wire.StateAvailable},
		}},
		{"manual clean held and failed", wire.StateManageable, []step{
			{op: wire.OpClean, state: wire.StateCleaning, target: wire.StateManageable},
			{ev: EventWait, state: wire.StateCleanWait, target: wire.StateManageable},
			{ev: EventHold, state: wire.StateCleanHold, target: wire.StateManageable},
			{op: wire.OpUnhold, state: wire.StateCleanWait, target: wire.StateManageable},
			{ev: EventFail, state: wire.StateCleanFailed, target: wire.StateManageable},
			{op: wire.OpManage, state: wire.StateManageable},
		}},
		{"manual clean", wire.StateManageable, []step{
			{op: wire.OpClean, state: wire.StateCleaning, target: wire.StateManageable},
			{ev: EventManage, state: wire.StateManageable},
		}},
		{"deploy, abort, undeploy", wire.StateAvailable, []step{
			{op: wire.OpDeploy, state: wire.StateDeploying, target: wire.StateActive},
			{ev: EventWait, state: wire.StateWaitCallback, target: wire.StateActive},
			{op: wire.OpAbort, state: wire.StateDeployFailed, target: wire.StateActive},
			{op: wire.OpUndeploy, state: wire.StateDeleting, target: wire.StateAvailable},
			{ev: EventDone, state: wire.StateCleaning, target: wire.StateAvailable},
			{ev: EventFail, state: wire.StateCleanFailed, target: wire.StateAvailable},
		}},
		{"deleted from wait call-back", wire.StateWaitCallback, []step{
			{op: wire.OpUndeploy, state: wire.StateDeleting, target: wire.StateAvailable},
			{ev: EventFail, state: wire.StateError},
		}},
		{"rescue and unrescue", wire.StateActive, []step{
			{op: wire.OpRescue, state: wire.StateRescuing, target: wire.StateRescue},
			{ev: EventWait, state: wire.StateRescueWait, target: wire.StateRescue},
			{op: wire.OpAbort, state: wire.StateRescueFailed, target: wire.StateRescue},
			{op: wire.OpUnrescue, state: wire.StateUnrescuing, target: wire.StateActive},
			{ev: EventDone, state: wire.StateActive},
		}},
		{"adopt", wire.StateManageable, []step{
			{op: wire.OpAdopt, state: wire.StateAdopting, target: wire.StateActive},
			{ev: EventFail, state: wire.StateAdoptFailed, target: wire.StateActive},
			{op: wire.OpAdopt, state: wire.StateAdopting, target: wire.StateActive},
			{ev: EventDone, state: wire.StateActive},
		}},
		{"service held and aborted", wire.StateActive, []step{
			{op: wire.OpService, state: wire.StateServicing, target: wire.StateActive},
			{ev: EventHold, state: wire.StateServiceHold, target: wire.StateActive},
			{op: wire.OpAbort, state: wire.StateServiceFailed, target: wire.StateActive},
			{op: wire.OpAbort, state: wire.StateActive},
		}},
		{"inspect", wire.StateManageable, []step{
			{op: wire.OpInspect, state: wire.StateInspecting, target: wire.StateManageable},
			{ev: EventWait, state: wire.StateInspectWait, target: wire.StateManageable},
			{ev: EventFail, state: wire.StateInspectFailed, target: wire.StateManageable},
		}},
		{"verify fails", wire.StateEnroll, []step{
			{op: wire.OpManage, state: wire.StateVerifying, target: wire.StateManageable},
			{ev: EventFail, state: wire.StateEnroll},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state, target := tt.from, wire.StateNone
			if KindOf(state) != Stable {
				target = States[state].Target
			}
			for i, s := range tt.steps {
				var tr Transition
				var err error
				if s.op != "" {
					tr, err = Apply("n", state, s.op)
				} else {
					tr, err = Next("n", state, s.ev)
				}
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				state, target = tr.To, tr.TargetAfter(target)
				if state != s.state || target != s.target {
					t.Fatalf("step %d (%s%s): %q aiming %q, want %q aiming %q", i, s.op, s.ev, state, target, s.state, s.target)
				}
			}
		})
	}
}

// TestDeletableIsIronics: DELETE_ALLOWED_STATES and available (Ironic's
// allow_deleting_available_nodes default), in Ironic's order; no failed,
// active or busy state.
func TestDeletableIsIronics(t *testing.T) {
	want := []wire.ProvisionState{wire.StateManageable, wire.StateEnroll, wire.StateAdoptFailed, wire.StateAvailable}
	if !slices.Equal(DeleteAllowed, want) {
		t.Fatalf("DeleteAllowed = %q, want %q", DeleteAllowed, want)
	}
	for s := range States {
		if got := Deletable(s); got != slices.Contains(want, s) {
			t.Errorf("Deletable(%q) = %v", s, got)
		}
	}
}

// TestVersionsAreIronics: the microversions Ironic's API checks, by target
// name (MIN_VERB_VERSIONS) and by transition (allow_inspect_abort,
// allow_deploy_abort, allow_unhold_verb, allow_service_verb).
func TestVersionsAreIronics(t *testing.T) {
	for name, want := range map[string]int{"manage": 4, "provide": 4, "inspect": 6, "abort": 13, "clean": 15, "adopt": 17,
		"rescue": 38, "unrescue": 38, "deploy": 73, "undeploy": 73, "active": 1, "deleted": 1, "rebuild": 1, "unhold": 1, "service": 1} {
		if got := TargetVersion(name); got != want {
			t.Errorf("TargetVersion(%q) = %d, want %d", name, got, want)
		}
	}
	edges := map[string]int{
		"inspect wait/abort": 41, "wait call-back/abort": 110,
		"clean hold/unhold": 85, "deploy hold/unhold": 85, "service hold/unhold": 85,
		"active/service": 87, "service hold/service": 87, "service failed/service": 87,
	}
	for _, tr := range Transitions {
		if tr.Op == "" {
			continue
		}
		if got, want := tr.MinVersion, edges[string(tr.From)+"/"+string(tr.Op)]; got != want {
			t.Errorf("%s --%s--> %s needs 1.%d, want 1.%d", tr.From, tr.Op, tr.To, got, want)
		}
	}
}
