package api

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/ironfleet/ironfleet/internal/steps"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// raidVersion is the microversion of target_raid_config and
// PUT /v1/nodes/{node}/states/raid.
const raidVersion = 12

// setTargetRAID is PUT /v1/nodes/{node}/states/raid: it stores the target
// RAID configuration a raid create_configuration clean step builds, under
// the node's lock (Ironic's NodeStatesController.raid and the conductor's
// set_target_raid_config): 406 below 1.12; an empty object clears it; a
// configuration is checked against Ironic's RAID schema (400), and a node
// whose raid interface configures no RAID answers 404, as Ironic turns
// UnsupportedDriverExtension into 404 here. 204 on success.
func (s *Server) setTargetRAID(c *gin.Context) {
	if !version(c).AtLeast(raidVersion) {
		s.fail(c, notAcceptable())
		return
	}
	body, err := decodeObject(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	n, err := s.findNode(c, c.Param("node"))
	if err != nil {
		s.fail(c, err)
		return
	}
	cfg := make(map[string]any, len(body))
	for k, raw := range body {
		var v any
		_ = json.Unmarshal(raw, &v) // decoded JSON decodes again
		cfg[k] = v
	}
	if len(cfg) > 0 {
		if !steps.SupportsRAID(n) {
			s.fail(c, wire.Errorf(wire.CodeNotFound, "Driver %s does not support raid (disabled or not implemented).", n.Driver))
			return
		}
		if err := steps.CheckRAIDConfig(cfg); err != nil {
			s.fail(c, err)
			return
		}
	} else {
		cfg = nil
	}
	ctx := c.Request.Context()
	err = s.underLock(ctx, n.UUID, "setting target RAID config", func(ctx context.Context, fence uint64) error {
		_, err := s.deps.Nodes.UpdateNode(ctx, n.UUID, fence, func(cur *wire.Node) error {
			cur.TargetRAIDConfig = cfg
			return nil
		})
		return err
	})
	if wire.CodeOf(err) == wire.CodeNotFound {
		err = nodeNotFound(n.UUID)
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	s.syncCache(ctx)
	c.Status(http.StatusNoContent)
}
