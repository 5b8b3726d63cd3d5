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
		verb   Verb
		to     wire.ProvisionState
		target wire.ProvisionState
		op     wire.Operation
	}{
		{wire.StateEnroll, VerbManage, wire.StateVerifying, wire.StateManageable, wire.OpManage},
		{wire.StateManageable, VerbProvide, wire.StateCleaning, wire.StateAvailable, wire.OpProvide},
		{wire.StateManageable, VerbClean, wire.StateCleaning, wire.StateManageable, wire.OpClean},
		{wire.StateManageable, VerbInspect, wire.StateInspecting, wire.StateManageable, wire.OpInspect},
		{wire.StateAvailable, VerbDeploy, wire.StateDeploying, wire.StateActive, wire.OpDeploy},
		{wire.StateAvailable, VerbManage, wire.StateManageable, "", wire.OpManage},
		{wire.StateActive, VerbUndeploy, wire.StateDeleting, wire.StateAvailable, wire.OpUndeploy},
		{wire.StateActive, VerbRebuild, wire.StateDeploying, wire.StateActive, wire.OpRebuild},
		{wire.StateDeployFailed, VerbDeploy, wire.StateDeploying, wire.StateActive, wire.OpDeploy},
		{wire.StateDeployFailed, VerbUndeploy, wire.StateDeleting, wire.StateAvailable, wire.OpUndeploy},
		{wire.StateWaitCallback, VerbAbort, wire.StateDeployFailed, "", wire.OpAbort},
		{wire.StateCleanWait, VerbAbort, wire.StateCleanFailed, "", wire.OpAbort},
		{wire.StateInspectWait, VerbAbort, wire.StateInspectFailed, "", wire.OpAbort},
		{wire.StateCleanFailed, VerbManage, wire.StateManageable, "", wire.OpManage},
		{wire.StateError, VerbUndeploy, wire.StateDeleting, wire.StateAvailable, wire.OpUndeploy},
	}
	for _, tt := range tests {
		t.Run(string(tt.from)+"/"+string(tt.verb), func(t *testing.T) {
			got, err := Apply("n1", tt.from, tt.verb)
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if got.To != tt.to || got.Target != tt.target || got.Op != tt.op {
				t.Fatalf("got to %q target %q op %q, want %q %q %q", got.To, got.Target, got.Op, tt.to, tt.target, tt.op)
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
	_, err := Apply("node-7", wire.StateEnroll, VerbDeploy)
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
	if _, err := Apply("n", wire.StateDeploying, VerbDeploy); err == nil || !strings.Contains(err.Error(), "Allowed actions: none") {
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
		if (tr.Verb == "") == (tr.Event == "") {
			t.Errorf("transition %+v must have exactly one of verb and event", tr)
		}
		if tr.Verb != "" && tr.Op == "" {
			t.Errorf("user transition %+v has no task operation", tr)
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

func TestParseVerb(t *testing.T) {
	for in, want := range map[string]Verb{"active": VerbDeploy, "deploy": VerbDeploy, "deleted": VerbUndeploy, "undeploy": VerbUndeploy, "manage": VerbManage} {
		if got, err := ParseVerb(in); err != nil || got != want {
			t.Errorf("ParseVerb(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "ACTIVE", "bogus", "power on"} {
		if _, err := ParseVerb(bad); err == nil {
			t.Errorf("ParseVerb(%q) accepted", bad)
		}
	}
	if !slices.Contains(Allowed(wire.StateManageable), VerbProvide) {
		t.Error("provide not allowed from manageable")
	}
}

func TestStarted(t *testing.T) {
	tests := []struct {
		state, target wire.ProvisionState
		verb          Verb
		want          bool
	}{
		{wire.StateVerifying, wire.StateManageable, VerbManage, true},
		{wire.StateCleaning, wire.StateAvailable, VerbProvide, true},
		{wire.StateCleaning, wire.StateManageable, VerbClean, true},
		{wire.StateCleaning, wire.StateManageable, VerbProvide, false},
		{wire.StateDeploying, wire.StateActive, VerbDeploy, true},
		{wire.StateDeleting, wire.StateAvailable, VerbUndeploy, true},
		{wire.StateManageable, "", VerbManage, false},
		{wire.StateWaitCallback, wire.StateActive, VerbDeploy, false},
	}
	for _, tt := range tests {
		if _, got := Started(tt.state, tt.target, tt.verb); got != tt.want {
			t.Errorf("Started(%q, %q, %q) = %v, want %v", tt.state, tt.target, tt.verb, got, tt.want)
		}
	}
}
