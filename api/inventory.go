package api

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/ironfleet/ironfleet/transport/wire"
)

// getInventory answers GET /v1/nodes/{node}/inventory (1.81): what the
// node's last inspection found, {"inventory": …, "plugin_data": …}, as
// Ironic's NodeInventoryController serves it from its database
// (ironic/drivers/modules/inspect_utils.py, get_inspection_data); 404
// with Ironic's message when the node was never inspected.
func (s *Server) getInventory(c *gin.Context) {
	n, err := s.findNode(c, c.Param("node"))
	if err != nil {
		s.fail(c, err)
		return
	}
	in, err := s.deps.Records.Inspections.Get(c.Request.Context(), n.UUID)
	if wire.CodeOf(err) == wire.CodeNotFound {
		err = wire.Errorf(wire.CodeNotFound, "Node inventory record for node %s could not be found.", n.UUID)
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"inventory": orEmpty(in.Inventory), "plugin_data": orEmpty(in.PluginData)})
}
