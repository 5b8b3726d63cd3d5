package api

import (
	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/gin-gonic/gin"
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
