package provision

import (
	"fmt"
	"slices"
	"strings"

	"github.com/ironfleet/ironfleet/transport/wire"
)

// The matching of allocations to nodes, as Ironic's conductor does it
// (ironic/conductor/allocations.py: _candidate_nodes, _verify_node,
// _traits_match): a node suits an allocation when it is available, out of
// maintenance, has a known power state, has no instance, has exactly the
// allocation's resource class and every one of its traits, is one of its
// candidate nodes (when it names some) and belongs to its owner (owner or
// lessee, when it has one).

// Suits reports whether node n may be reserved for allocation a now: the
// check made again under the node's lock before reserving it.
func Suits(a wire.Allocation, n wire.Node) bool {
	return n.ProvisionState == wire.StateAvailable && !n.Maintenance && n.PowerState != wire.PowerUnknown &&
		n.InstanceUUID == "" && n.AllocationUUID == "" && n.ResourceClass == a.ResourceClass &&
		hasTraits(n, a.Traits) && (len(a.CandidateNodes) == 0 || slices.Contains(a.CandidateNodes, n.UUID)) &&
		(a.Owner == "" || n.Owner == a.Owner || n.Lessee == a.Owner)
}

func hasTraits(n wire.Node, traits []string) bool {
	for _, t := range traits {
		if !slices.Contains(n.Traits, t) {
			return false
		}
	}
	return true
}

// Candidates returns the nodes of nodes that suit allocation a, or the
// error Ironic records on an allocation nothing suits (its last_error):
// none available of the resource class, or none with the traits. The
// order is nodes' order; the caller shuffles it (Ironic tries candidates
// in random order so that parallel allocations do not collide), then
// puts a node named as the allocation first (PreferNamed).
func Candidates(a wire.Allocation, nodes []wire.Node) ([]wire.Node, error) {
	untraited := a
	untraited.Traits = nil
	var classed []wire.Node
	for _, n := range nodes {
		if Suits(untraited, n) {
			classed = append(classed, n)
		}
	}
	if len(classed) == 0 {
		if len(a.CandidateNodes) > 0 {
			return nil, fmt.Errorf("none of the requested nodes are available and match the resource class %s", a.ResourceClass)
		}
		return nil, fmt.Errorf("no available nodes match the resource class %s", a.ResourceClass)
	}
	var out []wire.Node
	for _, n := range classed {
		if hasTraits(n, a.Traits) {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no suitable nodes have the requested traits %s", strings.Join(a.Traits, ", "))
	}
	return out, nil
}

// PreferNamed moves the node named as allocation a, if any, to the front
// of nodes: Ironic tries it first, so that allocations named after nodes
// get those nodes.
func PreferNamed(a wire.Allocation, nodes []wire.Node) {
	if a.Name == "" {
		return
	}
	for i, n := range nodes {
		if n.Name == a.Name {
			copy(nodes[1:i+1], nodes[:i])
			nodes[0] = n
			return
		}
	}
}

// Backfill checks that node n, already deployed, may be recorded as
// reserved for allocation a (API 1.58), and returns Ironic's message
// (ironic/conductor/allocations.py, _do_backfill_allocation) when not.
func Backfill(a wire.Allocation, n wire.Node) error {
	var errs []string
	if n.ProvisionState != wire.StateActive {
		errs = append(errs, fmt.Sprintf("Node must be in the \"active\" state, but the current state is %q", n.ProvisionState))
	}
	if a.ResourceClass != "" && n.ResourceClass != a.ResourceClass {
		errs = append(errs, fmt.Sprintf("Resource class %s does not match the requested resource class %s", n.ResourceClass, a.ResourceClass))
	}
	if !hasTraits(n, a.Traits) {
		errs = append(errs, fmt.Sprintf("List of traits %v does not match the requested traits %v", n.Traits, a.Traits))
	}
	if len(a.CandidateNodes) > 0 && !slices.Contains(a.CandidateNodes, n.UUID) {
		errs = append(errs, fmt.Sprintf("Candidate nodes must be empty or contain the target node, but got %v", a.CandidateNodes))
	}
	if len(errs) > 0 {
		return fmt.Errorf("Cannot backfill an allocation for node %s: %s", n.UUID, strings.Join(errs, "; ")) //nolint:staticcheck,revive // Ironic's message, capitalised
	}
	return nil
}

// Reserve writes allocation a onto node n: the node's allocation_uuid and
// instance_uuid name it and its instance_info carries the allocation's
// traits (the instance traits deploy templates match), as Ironic's
// update_allocation does (ironic/db/sqlalchemy/api.py).
func Reserve(a wire.Allocation, n *wire.Node) {
	n.AllocationUUID, n.InstanceUUID = a.UUID, a.UUID
	if n.InstanceInfo == nil {
		n.InstanceInfo = map[string]any{}
	}
	traits := make([]any, 0, len(a.Traits))
	for _, t := range a.Traits {
		traits = append(traits, t)
	}
	n.InstanceInfo["traits"] = traits
}

// Release clears allocation a from node n (when n is still reserved for
// it): Ironic's destroy_allocation clears the node's allocation and
// instance_uuid.
func Release(a wire.Allocation, n *wire.Node) {
	if n.AllocationUUID != a.UUID {
		return
	}
	n.AllocationUUID = ""
	if n.InstanceUUID == a.UUID {
		n.InstanceUUID = ""
	}
}

// Deallocatable returns why allocation a may not be removed from node n
// now, in Ironic's words (verify_node_for_deallocation), or nil: in
// maintenance always; otherwise not while the node is active or in a
// transition where updates are not allowed.
func Deallocatable(a wire.Allocation, n wire.Node) error {
	if n.Maintenance {
		return nil
	}
	if n.TargetProvisionState != wire.StateNone && !updateAllowed(n.ProvisionState) {
		return wire.Errorf(wire.CodeConflict, "Cannot remove allocation %s for node %s, because the node is in state %s where updates are not allowed (and maintenance mode is off)",
			a.UUID, n.UUID, n.ProvisionState)
	}
	if n.ProvisionState == wire.StateActive {
		return wire.Errorf(wire.CodeConflict, "Cannot remove allocation %s for node %s, because the node is active (and maintenance mode is off)", a.UUID, n.UUID)
	}
	return nil
}

// updateAllowed are Ironic's UPDATE_ALLOWED_STATES that ironfleet has.
func updateAllowed(s wire.ProvisionState) bool {
	switch s {
	case wire.StateDeployFailed, wire.StateInspecting, wire.StateInspectFailed, wire.StateInspectWait,
		wire.StateCleanFailed, wire.StateError, wire.StateVerifying:
		return true
	}
	return false
}
