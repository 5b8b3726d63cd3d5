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
// (drivers/modules/network/common.py): the VIF's ID in a free portgroup's
// or port's internal_info.tenant_vif_port_id (wire.Portgroup.VIF,
// wire.Port.VIF), so that nova's vif_list and detach work and a bound port
// is not deleted by mistake. Each attach and detach takes the node's lock,
// as the conductor's vif_attach and vif_detach do.

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

// vifOfGroup is the VIF attached to a portgroup, as vifOf.
func vifOfGroup(pg wire.Portgroup) string {
	if pg.VIF != "" {
		return pg.VIF
	}
	id, _ := pg.Extra["vif_port_id"].(string)
	return id
}

// nodePortgroups are a node's portgroups in creation order (Ironic's).
func (s *Server) nodePortgroups(ctx context.Context, node string) ([]wire.Portgroup, error) {
	pgs, err := s.deps.Records.Portgroups.List(ctx, func(pg wire.Portgroup) bool { return pg.NodeUUID == node })
	slices.SortStableFunc(pgs, func(a, b wire.Portgroup) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return pgs, err
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
	pgs, err := s.nodePortgroups(c.Request.Context(), n.UUID)
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
	for _, pg := range pgs {
		if id := vifOfGroup(pg); id != "" {
			vifs = append(vifs, gin.H{"id": id})
		}
	}
	c.JSON(http.StatusOK, gin.H{"vifs": vifs})
}

// vifAttach is the body of POST /v1/nodes/{n}/vifs.
type vifAttach struct {
	ID string `json:"id"`
	// PortUUID or PortgroupUUID (1.67) ask for this port or portgroup.
	PortUUID      string `json:"port_uuid"`
	PortgroupUUID string `json:"portgroup_uuid"`
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
		case "port_uuid", "portgroup_uuid":
			if !version(c).AtLeast(67) {
				s.fail(c, notAcceptable())
				return
			}
			dst = &req.PortUUID
			if k == "portgroup_uuid" {
				dst = &req.PortgroupUUID
			}
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
	if req.PortUUID != "" && req.PortgroupUUID != "" {
		s.fail(c, badRequest("Cannot specify both port_uuid and portgroup_uuid"))
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
		pgs, err := s.nodePortgroups(ctx, n.UUID)
		if err != nil {
			return err
		}
		choice, err := freePortLike(ports, pgs, req)
		if err != nil {
			return err
		}
		taken := func(what, id string) error { // not under our lock, so never
			return wire.Errorf(wire.CodeConflict, "%s %s was bound to a VIF while VIF %s was being attached; retry.", what, id, req.ID)
		}
		if choice.group {
			_, err = s.deps.Records.Portgroups.Update(ctx, choice.uuid, func(pg *wire.Portgroup) error {
				if vifOfGroup(*pg) != "" {
					return taken("Portgroup", pg.UUID)
				}
				pg.VIF = req.ID
				return nil
			})
			return err
		}
		_, err = s.deps.Ports.UpdatePort(ctx, choice.uuid, func(p *wire.Port) error {
			if vifOf(*p) != "" {
				return taken("Port", p.UUID)
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

// portLike is a port or a portgroup a VIF may be attached to.
type portLike struct {
	uuid  string
	group bool
	pxe   bool
}

// freePortLike chooses where a VIF is attached, as Ironic's
// get_free_port_like_object does without neutron (no physical networks
// to match): a port outside portgroups or a portgroup with free ports
// (its ports instead when one of them holds a VIF), neither holding a
// VIF; portgroups first, then PXE-enabled ports, then in creation order;
// only the port or portgroup asked for when one is. 409 when the VIF is
// already attached to the node, 400 when nothing is free.
func freePortLike(ports []wire.Port, pgs []wire.Portgroup, req vifAttach) (portLike, error) {
	already := func(kind, uuid string) error {
		return wire.Errorf(wire.CodeConflict, "Unable to attach VIF because VIF %s is already attached to Ironic %s %s", req.ID, kind, uuid)
	}
	wantPort, wantGroup := strings.ToLower(req.PortUUID), strings.ToLower(req.PortgroupUUID)
	var free []portLike
	freeOf := map[string][]portLike{} // a portgroup's free ports
	unusable := map[string]bool{}     // portgroups one of whose ports holds a VIF
	for _, p := range ports {
		if wantPort != "" && p.UUID != wantPort {
			continue
		}
		switch attached := vifOf(p); {
		case attached == req.ID:
			return portLike{}, already("Port", p.UUID)
		case attached != "":
			unusable[p.PortgroupUUID] = true
		case p.PortgroupUUID == "" && wantGroup == "":
			free = append(free, portLike{uuid: p.UUID, pxe: p.PXEEnable})
		default:
			freeOf[p.PortgroupUUID] = append(freeOf[p.PortgroupUUID], portLike{uuid: p.UUID, pxe: p.PXEEnable})
		}
	}
	if wantPort == "" {
		for _, pg := range pgs {
			if wantGroup != "" && pg.UUID != wantGroup {
				continue
			}
			switch attached := vifOfGroup(pg); {
			case attached == req.ID:
				return portLike{}, already("Portgroup", pg.UUID)
			case attached != "":
			case unusable[pg.UUID]:
				if wantGroup == "" {
					free = append(free, freeOf[pg.UUID]...)
				}
			case len(freeOf[pg.UUID]) > 0:
				free = append(free, portLike{uuid: pg.UUID, group: true, pxe: true})
			}
		}
	}
	if len(free) == 0 {
		return portLike{}, badRequest("Unable to attach VIF %s, not enough free physical ports.", req.ID)
	}
	rank := func(p portLike) int {
		r := 0
		if p.group {
			r += 2
		}
		if p.pxe {
			r++
		}
		return r
	}
	slices.SortStableFunc(free, func(a, b portLike) int { return rank(b) - rank(a) })
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
		// Portgroups first, then ports, as Ironic's _get_port_like_obj_by_vif_id.
		pgs, err := s.nodePortgroups(ctx, n.UUID)
		if err != nil {
			return err
		}
		if i := slices.IndexFunc(pgs, func(pg wire.Portgroup) bool { return vifOfGroup(pg) == vif }); i >= 0 {
			_, err = s.deps.Records.Portgroups.Update(ctx, pgs[i].UUID, func(pg *wire.Portgroup) error {
				pg.VIF = ""
				delete(pg.Extra, "vif_port_id")
				return nil
			})
			return err
		}
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
