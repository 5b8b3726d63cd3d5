package api

import (
	"slices"
	"strings"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/gin-gonic/gin"

	"github.com/ironfleet/ironfleet/internal/hardware"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// resetInterfaces reads PATCH's ?reset_interfaces (1.45, 406 below), as
// Ironic's NodesController.patch: only with a patch that writes the driver
// (400 otherwise, Ironic's words).
func resetInterfaces(c *gin.Context, v Version, patch jsonpatch.Patch) (bool, error) {
	raw, ok := c.GetQuery("reset_interfaces")
	if !ok {
		return false, nil
	}
	if !v.AtLeast(45) {
		return false, notAcceptable()
	}
	reset, err := parseBool("reset_interfaces", raw)
	if err != nil || reset == nil || !*reset {
		return false, err
	}
	if !writes(patch, "/driver") {
		return false, badRequest("The reset_interfaces parameter can only be used when changing the node's driver.")
	}
	return true, nil
}

// writes reports whether patch adds or replaces path.
func writes(patch jsonpatch.Patch, path string) bool {
	for _, op := range patch {
		if p, err := op.Path(); err == nil && p == path && (op.Kind() == "add" || op.Kind() == "replace") {
			return true
		}
	}
	return false
}

// resetUnwritten sets every interface patch does not write back to the
// hardware type's default, as Ironic's update_node does with
// reset_interfaces.
func (d *nodeDoc) resetUnwritten(patch jsonpatch.Patch) {
	for k, field := range d.interfaces() {
		if !writes(patch, "/"+k.Field()) {
			*field = nil
		}
	}
}

// interfaceUpdateStates are where a node's interfaces may change (or in
// maintenance), as Ironic's update_node allows.
var interfaceUpdateStates = []wire.ProvisionState{wire.StateEnroll, wire.StateInspecting, wire.StateInspectWait,
	wire.StateManageable, wire.StateAvailable}

// interfacesUpdatable refuses, as Ironic's update_node does (InvalidState,
// 409), a patch that changes one of node before's interfaces while the node
// is elsewhere than interfaceUpdateStates and the patched node is not in
// maintenance: the conductor decides a flow's steps by them. A driver
// change alone is not an interface change.
func interfacesUpdatable(before wire.Node, d nodeDoc) error {
	if slices.Contains(interfaceUpdateStates, before.ProvisionState) || deref(d.Maintenance) {
		return nil
	}
	was := docOf(before)
	old, now := was.interfaces(), d.interfaces()
	for _, k := range hardware.Kinds {
		if deref(*now[k]) == deref(*old[k]) {
			continue
		}
		allowed := make([]string, 0, len(interfaceUpdateStates))
		for _, st := range interfaceUpdateStates {
			allowed = append(allowed, string(st))
		}
		return wire.Errorf(wire.CodeConflict, "Node %s can not have %s updated unless it is in one of allowed (%s) states or in maintenance mode. Current state is '%s'.",
			before.UUID, k.Field(), strings.Join(allowed, ", "), before.ProvisionState)
	}
	return nil
}
