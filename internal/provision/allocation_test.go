package provision_test

import (
	"testing"

	"github.com/ironfleet/ironfleet/internal/provision"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// free is an available node of resource class gold, powered, with traits.
func free(uuid string, traits ...string) wire.Node {
	return wire.Node{UUID: uuid, Name: uuid, ProvisionState: wire.StateAvailable, PowerState: wire.PowerOff, ResourceClass: "gold", Traits: traits}
}

// TestAllocationCandidates: which nodes an allocation may take, and the
// error Ironic records when none (ironic/conductor/allocations.py).
func TestAllocationCandidates(t *testing.T) {
	maint := free("maint")
	maint.Maintenance = true
	busy := free("busy")
	busy.InstanceUUID = "0b5a9dd6-7a0f-4b43-9c2e-3e6d1b9c0a11"
	unpowered := free("unpowered")
	unpowered.PowerState = wire.PowerUnknown
	active := free("active")
	active.ProvisionState = wire.StateActive
	silver := free("silver")
	silver.ResourceClass = "silver"
	owned := free("owned")
	owned.Owner = "p1"
	leased := free("leased")
	leased.Lessee = "p1"
	tests := []struct {
		name    string
		a       wire.Allocation
		nodes   []wire.Node
		want    []string
		wantErr string
	}{
		{"resource class", wire.Allocation{ResourceClass: "gold"}, []wire.Node{free("a"), silver}, []string{"a"}, ""},
		{"none of the class", wire.Allocation{ResourceClass: "bronze"}, []wire.Node{free("a"), silver}, nil,
			"no available nodes match the resource class bronze"},
		{"not in maintenance, without instance, powered, available",
			wire.Allocation{ResourceClass: "gold"}, []wire.Node{maint, busy, unpowered, active, free("ok")}, []string{"ok"}, ""},
		{"none free", wire.Allocation{ResourceClass: "gold"}, []wire.Node{maint, busy}, nil,
			"no available nodes match the resource class gold"},
		{"every trait", wire.Allocation{ResourceClass: "gold", Traits: []string{"CUSTOM_A", "CUSTOM_B"}},
			[]wire.Node{free("a", "CUSTOM_A"), free("ab", "CUSTOM_B", "CUSTOM_A", "CUSTOM_C")}, []string{"ab"}, ""},
		{"no node has the traits", wire.Allocation{ResourceClass: "gold", Traits: []string{"CUSTOM_X"}},
			[]wire.Node{free("a", "CUSTOM_A")}, nil, "no suitable nodes have the requested traits CUSTOM_X"},
		{"among candidates", wire.Allocation{ResourceClass: "gold", CandidateNodes: []string{"b"}},
			[]wire.Node{free("a"), free("b")}, []string{"b"}, ""},
		{"no candidate free", wire.Allocation{ResourceClass: "gold", CandidateNodes: []string{"busy"}},
			[]wire.Node{free("a"), busy}, nil, "none of the requested nodes are available and match the resource class gold"},
		{"owner or lessee", wire.Allocation{ResourceClass: "gold", Owner: "p1"},
			[]wire.Node{free("a"), owned, leased}, []string{"owned", "leased"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := provision.Candidates(tt.a, tt.nodes)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, n := range got {
				names = append(names, n.UUID)
				if !provision.Suits(tt.a, n) {
					t.Errorf("candidate %s does not suit", n.UUID)
				}
			}
			if len(names) != len(tt.want) {
				t.Fatalf("candidates %v, want %v", names, tt.want)
			}
			for i := range names {
				if names[i] != tt.want[i] {
					t.Fatalf("candidates %v, want %v", names, tt.want)
				}
			}
		})
	}
}

// TestReserveRelease: a reserved node names its allocation in
// allocation_uuid and instance_uuid and carries its traits as instance
// traits; releasing clears both, and a node taken by another allocation
// no longer suits.
func TestReserveRelease(t *testing.T) {
	a := wire.Allocation{UUID: "a1", ResourceClass: "gold", Traits: []string{"CUSTOM_A"}}
	n := free("n", "CUSTOM_A")
	provision.Reserve(a, &n)
	if n.AllocationUUID != "a1" || n.InstanceUUID != "a1" || len(provision.InstanceTraits(n)) != 1 {
		t.Fatalf("reserved node %+v", n)
	}
	if provision.Suits(wire.Allocation{UUID: "a2", ResourceClass: "gold"}, n) {
		t.Fatal("a reserved node suits another allocation")
	}
	provision.Release(wire.Allocation{UUID: "other"}, &n)
	if n.AllocationUUID != "a1" {
		t.Fatal("releasing another allocation cleared the node")
	}
	provision.Release(a, &n)
	if n.AllocationUUID != "" || n.InstanceUUID != "" {
		t.Fatalf("released node %+v", n)
	}
}

func TestPreferNamed(t *testing.T) {
	nodes := []wire.Node{free("a"), free("b"), free("c")}
	provision.PreferNamed(wire.Allocation{Name: "c"}, nodes)
	if nodes[0].Name != "c" || nodes[1].Name != "a" || nodes[2].Name != "b" {
		t.Fatalf("order %s %s %s, want c a b", nodes[0].Name, nodes[1].Name, nodes[2].Name)
	}
}

func TestDeallocatable(t *testing.T) {
	a := wire.Allocation{UUID: "a1"}
	tests := []struct {
		name  string
		node  wire.Node
		allow bool
	}{
		{"available", wire.Node{ProvisionState: wire.StateAvailable}, true},
		{"active", wire.Node{ProvisionState: wire.StateActive}, false},
		{"active in maintenance", wire.Node{ProvisionState: wire.StateActive, Maintenance: true}, true},
		{"deploying", wire.Node{ProvisionState: wire.StateDeploying, TargetProvisionState: wire.StateActive}, false},
		{"deploy failed", wire.Node{ProvisionState: wire.StateDeployFailed, TargetProvisionState: wire.StateActive}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := provision.Deallocatable(a, tt.node); (err == nil) != tt.allow {
				t.Fatalf("Deallocatable = %v, want allowed %v", err, tt.allow)
			}
		})
	}
}

// TestTemplateSteps: a template's steps apply when its name is one of the
// instance traits.
func TestTemplateSteps(t *testing.T) {
	templates := []wire.DeployTemplate{
		{Name: "CUSTOM_RAID", Steps: []wire.Step{{Interface: "raid", Step: "apply_configuration", Priority: 150}}},
		{Name: "CUSTOM_BIOS", Steps: []wire.Step{{Interface: "bios", Step: "apply_configuration", Priority: 140},
			{Interface: "bios", Step: "factory_reset", Priority: 0}}},
	}
	n := wire.Node{InstanceInfo: map[string]any{"traits": []any{"CUSTOM_BIOS", "CUSTOM_OTHER"}}}
	got := provision.TemplateSteps(provision.InstanceTraits(n), templates)
	if len(got) != 2 || got[0].Interface != "bios" || got[1].Step != "factory_reset" {
		t.Fatalf("steps %+v, want CUSTOM_BIOS's two", got)
	}
	if none := provision.TemplateSteps(provision.InstanceTraits(wire.Node{}), templates); len(none) != 0 {
		t.Fatalf("a node without instance traits gets steps %+v", none)
	}
}
