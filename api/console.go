package api

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/ironfleet/ironfleet/internal/hardware"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// The node's console state (GET/PUT /v1/nodes/{n}/states/console), as
// Ironic's NodeStatesController.console_state and get_console_information
// (ironic/api/controllers/v1/node.py, conductor/manager.py):
//
//   - a console not enabled reads as such, whatever the interface; a
//     no-console interface refuses to enable or disable one,
//     UnsupportedDriverExtension (400);
//   - the fake console interface (fake-hardware) starts and stops nothing,
//     as Ironic's FakeConsole: enabling records console_enabled, and the
//     console's information is {};
//   - ironfleet has no serial console implementation yet, so no hardware
//     type offers one (internal/hardware): nothing is accepted that would
//     then not be there.
//
// Ironic enables the console in its conductor and answers 202; ironfleet
// records the fake console's state under the node's lock in the API, where
// there is nothing for a conductor to do, and answers 202 as Ironic.

// getConsole is GET /v1/nodes/{n}/states/console.
func (s *Server) getConsole(c *gin.Context) {
	n, err := s.findNode(c, c.Param("node"))
	if err != nil {
		s.fail(c, err)
		return
	}
	// Ironic's get_console_information answers NodeConsoleNotEnabled (the
	// API shows it as disabled) before it validates the interface.
	if !n.ConsoleEnabled {
		c.JSON(http.StatusOK, gin.H{"console_enabled": false, "console_info": nil})
		return
	}
	if err := hardware.Unsupported(n, hardware.Console); err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"console_enabled": true, "console_info": map[string]any{}})
}

// setConsole is PUT /v1/nodes/{n}/states/console {"enabled": bool}.
func (s *Server) setConsole(c *gin.Context) {
	body, err := decodeObject(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	n, err := s.findNode(c, c.Param("node"))
	if err == nil {
		err = checkKeys(body, "enabled")
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	var enabled *bool
	if err := json.Unmarshal(body["enabled"], &enabled); err != nil || enabled == nil {
		s.fail(c, badRequest("Invalid enabled %s: want true or false.", body["enabled"]))
		return
	}
	if err := hardware.Unsupported(n, hardware.Console); err != nil {
		s.fail(c, err)
		return
	}
	ctx := c.Request.Context()
	err = s.underLock(ctx, n.UUID, "console", func(ctx context.Context, fence uint64) error {
		_, err := s.deps.Nodes.UpdateNode(ctx, n.UUID, fence, func(cur *wire.Node) error {
			cur.ConsoleEnabled = *enabled
			return nil
		})
		return err
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	s.syncCache(ctx)
	c.Status(http.StatusAccepted)
}
