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
