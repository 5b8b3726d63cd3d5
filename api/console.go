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
//   - asking for the state the console is already in does nothing (202),
//     as Ironic's set_console_mode;
//   - the fake console interface (fake-hardware) starts and stops nothing,
//     as Ironic's FakeConsole: the API records console_enabled under the
//     node's lock, and the console's information is {};
//   - a console that runs (ipmitool-socat, sim) is flipped by a conductor:
//     the API validates the node's driver_info (Ironic's console.validate,
//     before its 202), takes the node's lock in standard mode and hands it
//     to an OpConsole task, exactly as for a power action. The conductor
//     starts or stops the console and records console_enabled and where
//     the console is served (wire.Node.Console), or last_error. The
//     console then runs outside any lock.
//
// GET …/console/ws (consoleWS) streams the console to a browser.

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
	info := map[string]any{}
	if n.Console != nil {
		info = map[string]any{"type": n.Console.Type, "url": n.Console.URL}
	}
	c.JSON(http.StatusOK, gin.H{"console_enabled": true, "console_info": info})
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
	location := s.base(c) + "/v1/nodes/" + n.UUID + "/states/console"
	if n.ConsoleEnabled == *enabled {
		c.Header("Location", location)
		c.Status(http.StatusAccepted)
		return
	}
	ctx := c.Request.Context()
	if hardware.Of(n, hardware.Console) == hardware.Fake {
		err = s.underLock(ctx, n.UUID, "console", func(ctx context.Context, fence uint64) error {
			_, err := s.deps.Nodes.UpdateNode(ctx, n.UUID, fence, func(cur *wire.Node) error {
				cur.ConsoleEnabled = *enabled
				return nil
			})
			return err
		})
		if err == nil {
			s.syncCache(ctx)
		}
	} else {
		err = s.deps.Drivers.ValidateDriverInfo(n)
		if err == nil {
			params, _ := json.Marshal(wire.ConsoleParams{Enabled: *enabled}) // plain struct
			err = s.act(c, n, "console", wire.OpConsole, params)
		}
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Location", location)
	c.Status(http.StatusAccepted)
}
