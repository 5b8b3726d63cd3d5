package api

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// VIFs (1.28): nova attaches each instance network port to the node
// (POST /v1/nodes/{n}/vifs {"id": …}) and detaches it on destroy. Ironic's
// noop network interface forgets them (drivers/modules/network/noop.py);
// ironfleet records them as Ironic's non-neutron VIFPortIDMixin does
// (drivers/modules/network/common.py): the VIF's ID in a free port's
// internal_info.tenant_vif_port_id (wire.Port.VIF), so that nova's
// vif_list and detach work and a bound port is not deleted by mistake.
// Each attach and detach takes the node's lock, as the conductor's
// vif_attach and vif_detach do.

// vifOf is the VIF attached to a port: its tenant VIF, or the legacy
// extra.vif_port_id Ironic still honours.
func vifOf(p wire.Port) string {
	if p.VIF != "" {
		return p.VIF
	}
	id, _ := p.Extra["vif_port_id"].(string)
	return id
}

// checkVIFID validates a VIF ID as Ironic's args.uuid_or_name does.
func checkVIFID(id string) error {
	if !isUUID(id) && !nameRe.MatchString(id) {
		return badRequest("Expected a logical name or UUID but received %s.", id)
	}
	return nil
}

func (s *Server) listVIFs(c *gin.Context) {
	n, err := s.findNode(c, c.Param("node"))
	if err != nil {
		s.fail(c, err)
		return
	}
	ports, err := s.deps.Ports.Ports(transport.PortQuery{NodeUUID: n.UUID})
	if err != nil {
		s.fail(c, err)
		return
	}
	vifs := []gin.H{}
	for _, p := range ports {
		if id := vifOf(p); id != "" {
			vifs = append(vifs, gin.H{"id": id})
		}
	}
	c.JSON(http.StatusOK, gin.H{"vifs": vifs})
}

// vifAttach is the body of POST /v1/nodes/{n}/vifs.
type vifAttach struct {
	ID string `json:"id"`
	// PortUUID (1.67) asks for this port.
	PortUUID string `json:"port_uuid"`
}

func (s *Server) attachVIF(c *gin.Context) {
	body, err := decodeObject(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	var req vifAttach
	for k, raw := range body {
		var dst *string
		switch k {
		case "id":
			dst = &req.ID
		case "port_uuid":
			if !version(c).AtLeast(67) {
				s.fail(c, notAcceptable())
				return
			}
			dst = &req.PortUUID
		case "portgroup_uuid":
			// Portgroups are not served: no VIF can be attached to one.
			s.fail(c, badRequest("Portgroups are not supported by ironfleet: portgroup_uuid cannot be honoured."))
			return
		default:
			s.fail(c, badRequest("Unknown attribute for VIF attachment: %s.", k))
			return
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			s.fail(c, badRequest("Invalid VIF attachment: %s must be a string.", k))
			return
		}
	}
	if req.ID == "" {
		s.fail(c, badRequest("Invalid VIF attachment: 'id' is a required property."))
		return
	}
	if err := checkVIFID(req.ID); err != nil {
		s.fail(c, err)
		return
	}
	n, err := s.findNode(c, c.Param("node"))
	if err != nil {
		s.fail(c, err)
		return
	}
	ctx := c.Request.Context()
	err = s.portWrite(ctx, n.UUID, "attach vif", func(ctx context.Context) error {
		ports, err := s.nodePorts(ctx, n.UUID)
		if err != nil {
			return err
		}
		port, err := freePort(ports, req.ID, strings.ToLower(req.PortUUID))
		if err != nil {
			return err
		}
		_, err = s.deps.Ports.UpdatePort(ctx, port.UUID, func(p *wire.Port) error {
			if vifOf(*p) != "" { // taken since the list was read: not under our lock, so never
				return wire.Errorf(wire.CodeConflict, "Port %s was bound to a VIF while VIF %s was being attached; retry.", p.UUID, req.ID)
			}
			p.VIF = req.ID
			return nil
		})
		return err
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	s.syncCache(ctx)
	c.Status(http.StatusNoContent)
}

// nodePorts reads a node's ports once the cache has every write stored
// before the call: under the node's lock, that is every port write.
func (s *Server) nodePorts(ctx context.Context, node string) ([]wire.Port, error) {
	if err := s.deps.Nodes.Sync(ctx); err != nil {
		return nil, err
	}
	return s.deps.Ports.Ports(transport.PortQuery{NodeUUID: node})
}

// freePort chooses the port a VIF is attached to, as Ironic's
// get_free_port_like_object does without neutron (no physical networks to
// match): a port with no VIF, PXE-enabled ones first, then in creation
// order; only portUUID when given. 409 when the VIF is already attached to
// one of the node's ports, 400 when no port is free.
func freePort(ports []wire.Port, vif, portUUID string) (wire.Port, error) {
	var free []wire.Port
	for _, p := range ports {
		switch attached := vifOf(p); {
		case attached == vif:
			return wire.Port{}, wire.Errorf(wire.CodeConflict, "Unable to attach VIF because VIF %s is already attached to Ironic Port %s", vif, p.UUID)
		case attached != "", portUUID != "" && p.UUID != portUUID:
		default:
			free = append(free, p)
		}
	}
	if len(free) == 0 {
		return wire.Port{}, badRequest("Unable to attach VIF %s, not enough free physical ports.", vif)
	}
	slices.SortStableFunc(free, func(a, b wire.Port) int {
		switch {
		case a.PXEEnable == b.PXEEnable:
			return 0
		case a.PXEEnable:
			return -1
		}
		return 1
	})
	return free[0], nil
}

func (s *Server) detachVIF(c *gin.Context) {
	vif := c.Param("vif")
	if err := checkVIFID(vif); err != nil {
		s.fail(c, err)
		return
	}
	n, err := s.findNode(c, c.Param("node"))
	if err != nil {
		s.fail(c, err)
		return
	}
	ctx := c.Request.Context()
	err = s.portWrite(ctx, n.UUID, "detach vif", func(ctx context.Context) error {
		ports, err := s.nodePorts(ctx, n.UUID)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(ports, func(p wire.Port) bool { return vifOf(p) == vif })
		if i < 0 {
			return badRequest("Unable to detach VIF %s from node %s because it is not attached to it.", vif, n.UUID)
		}
		_, err = s.deps.Ports.UpdatePort(ctx, ports[i].UUID, func(p *wire.Port) error {
			p.VIF = ""
			delete(p.Extra, "vif_port_id")
			return nil
		})
		return err
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	s.syncCache(ctx)
	c.Status(http.StatusNoContent)
}

// checkUnbound refuses to delete a port bound to a VIF unless its node is
// in maintenance, as Ironic's destroy_port (conductor/manager.py).
func (s *Server) checkUnbound(ctx context.Context, port string) error {
	p, err := s.deps.Ports.GetPort(ctx, port)
	if err != nil {
		return err
	}
	vif := vifOf(p)
	if vif == "" {
		return nil
	}
	n, err := s.deps.Nodes.Get(ctx, p.NodeUUID)
	if err != nil || n.Maintenance {
		return err
	}
	return wire.Errorf(wire.CodeConflict, "Cannot delete the port %s as it is bound to VIF %s for use.", p.UUID, vif)
}
