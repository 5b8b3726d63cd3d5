package api

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/ironfleet/ironfleet/transport"
)

// listChildren answers GET /v1/nodes/{node}/children (1.83): the UUIDs of
// the nodes whose parent_node is this node, and one link to the node list
// filtered by it — the shape of Ironic's NodeChildrenController.get_all
// (ironic/api/controllers/v1/node.py), where "links" is a single object,
// not a list.
func (s *Server) listChildren(c *gin.Context) {
	n, err := s.findNode(c, c.Param("node"))
	if err != nil {
		s.fail(c, err)
		return
	}
	uuid := n.UUID
	children := []string{}
	q := transport.NodeQuery{ParentNode: &uuid, SortKey: "uuid", Limit: transport.MaxLimit}
	for {
		page, err := s.deps.Nodes.List(q)
		if err != nil {
			s.fail(c, err)
			return
		}
		for _, child := range page {
			children = append(children, child.UUID)
		}
		if len(page) < q.Limit {
			break
		}
		q.Marker = page[len(page)-1].UUID
	}
	c.JSON(http.StatusOK, gin.H{
		"children": children,
		"links":    link{Href: s.base(c) + "/v1/nodes?parent_node=" + uuid, Rel: "children"},
	})
}
