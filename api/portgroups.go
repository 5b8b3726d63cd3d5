package api

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// Portgroups (1.23), as ironic/api/controllers/v1/portgroup.py serves them:
// a node's bonds, by UUID or name, with a unique name and MAC; mode and
// properties from 1.26; a port joins one with portgroup_uuid (1.24). Like
// ports, every write takes the node's lock (portWrite). Ironic's noop
// network interface checks nothing more (its portgroup_changed is a
// no-op), so neither does ironfleet.

// defaultPortgroupMode is Ironic's [DEFAULT]default_portgroup_mode.
const defaultPortgroupMode = "active-backup"

const (
	uniqPortgroupName = "name"
	uniqPortgroupMAC  = "address"
)

func portgroupNotFound(id string) error {
	return wire.Errorf(wire.CodeNotFound, "Portgroup %s could not be found.", id)
}

var portgroupListing = listing{item: "portgroups", short: []string{"uuid", "address", "name"}, noSort: []string{"extra", "properties", "internal_info"}, detailFrom: 43}

func renderPortgroup(pg wire.Portgroup, base string, v Version) map[string]any {
	info := map[string]any{}
	if pg.VIF != "" {
		info["tenant_vif_port_id"] = pg.VIF
	}
	out := map[string]any{
		"uuid": pg.UUID, "name": nullable(pg.Name), "address": nullable(pg.Address), "node_uuid": pg.NodeUUID,
		"extra": orEmpty(maps.Clone(pg.Extra)), "internal_info": info, "standalone_ports_supported": pg.StandalonePortsSupported,
		"created_at": ironicTime(pg.CreatedAt), "updated_at": ironicTime(pg.UpdatedAt),
		"links": links(base, "portgroups/"+pg.UUID), "ports": links(base, "portgroups/"+pg.UUID+"/ports"),
	}
	if !v.AtLeast(24) {
		delete(out, "ports") // the subresource came with 1.24
	}
	if v.AtLeast(26) {
		out["mode"] = pg.Mode
		out["properties"] = orEmpty(maps.Clone(pg.Properties))
	}
	return out
}

// findPortgroup resolves a portgroup by UUID or name.
func (s *Server) findPortgroup(ctx context.Context, ident string) (wire.Portgroup, error) {
	id := strings.ToLower(ident)
	if !isUUID(ident) {
		owner, err := s.deps.Records.Portgroups.Owner(ctx, uniqPortgroupName, ident)
		if wire.CodeOf(err) == wire.CodeNotFound {
			return wire.Portgroup{}, portgroupNotFound(ident)
		}
		if err != nil {
			return wire.Portgroup{}, err
		}
		id = owner
	}
	pg, err := s.deps.Records.Portgroups.Get(ctx, id)
	if wire.CodeOf(err) == wire.CodeNotFound {
		return pg, portgroupNotFound(ident)
	}
	return pg, err
}

func (s *Server) listPortgroups(detail bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		node, err := s.listNode(c)
		if err != nil {
			s.fail(c, err)
			return
		}
		addr := c.Query("address")
		if addr != "" {
			if addr, err = transport.NormalizeMAC(addr); err != nil {
				s.fail(c, badMAC(c.Query("address")))
				return
			}
		}
		recs, err := s.deps.Records.Portgroups.List(c.Request.Context(), func(pg wire.Portgroup) bool {
			return (node == "" || pg.NodeUUID == node) && (addr == "" || pg.Address == addr)
		})
		if err != nil {
			s.fail(c, err)
			return
		}
		docs := make([]map[string]any, 0, len(recs))
		for _, pg := range recs {
			docs = append(docs, renderPortgroup(pg, s.base(c), version(c)))
		}
		s.page(c, portgroupListing, docs, portgroupNotFound, detail)
	}
}

func (s *Server) getPortgroup(c *gin.Context) {
	pg, err := s.findPortgroup(c.Request.Context(), c.Param("portgroup"))
	if err != nil {
		s.fail(c, err)
		return
	}
	s.show(c, renderPortgroup(pg, s.base(c), version(c)))
}

// listPortgroupPorts is GET /v1/portgroups/{pg}/ports[/detail] (1.24) and
// /v1/ports?portgroup=.
func (s *Server) listPortgroupPorts(detail bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		if !version(c).AtLeast(24) {
			s.fail(c, notAcceptable())
			return
		}
		ident := c.Param("portgroup")
		if ident == "" {
			ident = c.Query("portgroup")
		}
		pg, err := s.findPortgroup(c.Request.Context(), ident)
		if err != nil {
			s.fail(c, err)
			return
		}
		ports, err := s.deps.Ports.Ports(transport.PortQuery{NodeUUID: pg.NodeUUID})
		if err != nil {
			s.fail(c, err)
			return
		}
		addr := c.Query("address")
		if addr != "" {
			if addr, err = transport.NormalizeMAC(addr); err != nil {
				s.fail(c, badMAC(c.Query("address")))
				return
			}
		}
		if node, err := s.listNode(c); err != nil || (node != "" && node != pg.NodeUUID) {
			if err == nil {
				ports = nil // the portgroup is another node's
			} else {
				s.fail(c, err)
				return
			}
		}
		var docs []map[string]any
		for _, p := range ports {
			if p.PortgroupUUID == pg.UUID && (addr == "" || p.Address == addr) {
				docs = append(docs, renderPort(p, s.base(c), version(c)))
			}
		}
		s.page(c, listing{item: "ports", short: []string{"uuid", "address"}, noSort: []string{"extra", "internal_info", "local_link_connection"}, detailFrom: 43},
			docs, portNotFound, detail)
	}
}

// portgroupDoc is the writable part of a portgroup.
type portgroupDoc struct {
	UUID                     *string        `json:"uuid,omitempty"`
	NodeUUID                 *string        `json:"node_uuid"`
	Name                     *string        `json:"name"`
	Address                  *string        `json:"address"`
	Mode                     *string        `json:"mode"`
	Properties               map[string]any `json:"properties"`
	StandalonePortsSupported any            `json:"standalone_ports_supported"`
	Extra                    map[string]any `json:"extra"`
}

// apply validates d and writes it onto pg; ident names the portgroup a
// PATCH changes ("" for a create), in Ironic's message for a bad name.
func (d portgroupDoc) apply(pg *wire.Portgroup, ident string) error {
	name := deref(d.Name)
	if name != "" && (!nameRe.MatchString(name) || isUUID(name)) {
		if ident != "" {
			return badRequest("Portgroup %s: Cannot change name to invalid name '%s'", ident, name)
		}
		return badRequest("Cannot create portgroup with invalid name '%s'", name)
	}
	addr := deref(d.Address)
	if addr != "" {
		mac, err := transport.NormalizeMAC(addr)
		if err != nil {
			return badMAC(addr)
		}
		addr = mac
	}
	standalone := true
	switch v := d.StandalonePortsSupported.(type) {
	case nil:
	case bool:
		standalone = v
	case string:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return badRequest("Invalid value for standalone_ports_supported: %q is not a boolean.", v)
		}
		standalone = b
	default:
		return badRequest("Invalid value for standalone_ports_supported: a boolean is expected.")
	}
	mode := deref(d.Mode)
	if mode == "" {
		mode = defaultPortgroupMode
	}
	pg.Name, pg.Address, pg.Mode, pg.Properties, pg.StandalonePortsSupported, pg.Extra = name, addr, mode, d.Properties, standalone, d.Extra
	return nil
}

func (s *Server) createPortgroup(c *gin.Context) {
	v := version(c)
	raw, err := readBody(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	var d portgroupDoc
	if err := decodeStrict(raw, &d, "portgroup"); err != nil {
		s.fail(c, err)
		return
	}
	if (d.Mode != nil || d.Properties != nil) && !v.AtLeast(26) {
		s.fail(c, notAcceptable())
		return
	}
	if d.NodeUUID == nil {
		s.fail(c, badRequest("'node_uuid' is a required property"))
		return
	}
	id, err := newID(d.UUID)
	if err != nil {
		s.fail(c, err)
		return
	}
	n, err := s.linkedNode(c, *d.NodeUUID)
	if err != nil {
		s.fail(c, err)
		return
	}
	pg := wire.Portgroup{UUID: id, NodeUUID: n.UUID, CreatedAt: time.Now().UTC()}
	if err := d.apply(&pg, ""); err != nil {
		s.fail(c, err)
		return
	}
	ctx := c.Request.Context()
	err = s.portWrite(ctx, n.UUID, "portgroup create", func(ctx context.Context) error {
		if _, err := s.deps.Records.Portgroups.Get(ctx, id); err == nil {
			return wire.Errorf(wire.CodeConflict, "A portgroup with UUID %s already exists.", id)
		}
		if err := s.claimPortgroup(ctx, wire.Portgroup{}, pg); err != nil {
			return err
		}
		if err := s.deps.Records.Portgroups.Create(ctx, id, pg); err != nil {
			s.releasePortgroup(ctx, pg, wire.Portgroup{})
			if errors.Is(err, transport.ErrExists) {
				return wire.Errorf(wire.CodeConflict, "A portgroup with UUID %s already exists.", id)
			}
			return err
		}
		return nil
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Location", s.base(c)+"/v1/portgroups/"+id)
	c.JSON(http.StatusCreated, renderPortgroup(pg, s.base(c), v))
}

// claimPortgroup claims next's name and address that old does not hold.
func (s *Server) claimPortgroup(ctx context.Context, old, next wire.Portgroup) error {
	if next.Name != "" && next.Name != old.Name {
		if err := s.deps.Records.Portgroups.Claim(ctx, uniqPortgroupName, next.Name, next.UUID); err != nil {
			if errors.Is(err, transport.ErrExists) {
				return wire.Errorf(wire.CodeConflict, "A portgroup with name %s already exists.", next.Name)
			}
			return err
		}
	}
	if next.Address != "" && next.Address != old.Address {
		if err := s.deps.Records.Portgroups.Claim(ctx, uniqPortgroupMAC, next.Address, next.UUID); err != nil {
			if next.Name != old.Name {
				s.deps.Records.Portgroups.Release(ctx, uniqPortgroupName, next.Name, next.UUID)
			}
			if errors.Is(err, transport.ErrExists) {
				return wire.Errorf(wire.CodeConflict, "A portgroup with MAC address %s already exists.", next.Address)
			}
			return err
		}
	}
	return nil
}

// releasePortgroup releases gone's name and address that kept does not hold.
func (s *Server) releasePortgroup(ctx context.Context, gone, kept wire.Portgroup) {
	if gone.Name != "" && gone.Name != kept.Name {
		s.deps.Records.Portgroups.Release(ctx, uniqPortgroupName, gone.Name, gone.UUID)
	}
	if gone.Address != "" && gone.Address != kept.Address {
		s.deps.Records.Portgroups.Release(ctx, uniqPortgroupMAC, gone.Address, gone.UUID)
	}
}

func (s *Server) patchPortgroup(c *gin.Context) {
	v := version(c)
	body, err := readBody(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	allowed := []string{"address", "extra", "name", "node_uuid", "standalone_ports_supported"}
	if v.AtLeast(26) {
		allowed = append(allowed, "mode", "properties")
	}
	patch, err := decodePatch(body, allowed, anyVersion)
	if err != nil {
		if !v.AtLeast(26) && (strings.Contains(string(body), `"/mode`) || strings.Contains(string(body), `"/properties`)) {
			err = notAcceptable()
		}
		s.fail(c, err)
		return
	}
	cur, err := s.findPortgroup(c.Request.Context(), c.Param("portgroup"))
	if err != nil {
		s.fail(c, err)
		return
	}
	doc, _ := json.Marshal(portgroupDoc{NodeUUID: &cur.NodeUUID, Name: &cur.Name, Address: &cur.Address, Mode: &cur.Mode,
		Properties: orEmpty(cur.Properties), StandalonePortsSupported: cur.StandalonePortsSupported, Extra: orEmpty(cur.Extra)})
	out, err := applyJSONPatch(patch, doc, s.deps.Nodes.MaxRecordBytes(), false, "portgroup "+cur.UUID)
	if err != nil {
		s.fail(c, err)
		return
	}
	var d portgroupDoc
	if err := decodeStrict(out, &d, "portgroup"); err != nil {
		s.fail(c, err)
		return
	}
	if d.Mode == nil {
		s.fail(c, badRequest("'mode' is a mandatory attribute and can not be removed"))
		return
	}
	if d.NodeUUID == nil {
		s.fail(c, badRequest("'node_uuid' is a required property"))
		return
	}
	n, err := s.linkedNode(c, *d.NodeUUID)
	if err != nil {
		s.fail(c, err)
		return
	}
	next := cur
	next.NodeUUID = n.UUID
	if err := d.apply(&next, c.Param("portgroup")); err != nil {
		s.fail(c, err)
		return
	}
	next.UpdatedAt = time.Now().UTC()
	ctx := c.Request.Context()
	// The lock is the portgroup's node's after the change, as Ironic's
	// update_portgroup takes it.
	err = s.portWrite(ctx, next.NodeUUID, "update portgroup", func(ctx context.Context) error {
		if next.NodeUUID != cur.NodeUUID {
			if err := s.checkPortgroupMove(ctx, cur, next.NodeUUID); err != nil {
				return err
			}
		}
		if err := s.claimPortgroup(ctx, cur, next); err != nil {
			return err
		}
		_, err := s.deps.Records.Portgroups.Update(ctx, cur.UUID, func(pg *wire.Portgroup) error {
			vif := pg.VIF // bound by VIF attach, not by the client
			*pg = next
			pg.VIF = vif
			return nil
		})
		if err != nil {
			s.releasePortgroup(ctx, next, cur)
			return recordNotFound(err, portgroupNotFound(cur.UUID))
		}
		s.releasePortgroup(ctx, cur, next)
		return nil
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, renderPortgroup(next, s.base(c), v))
}

// checkPortgroupMove refuses to move a portgroup to node unless the node
// is in enroll, manageable or inspection, or in maintenance, and the
// portgroup has no ports: Ironic's update_portgroup (conductor/manager.py).
func (s *Server) checkPortgroupMove(ctx context.Context, pg wire.Portgroup, node string) error {
	n, err := s.deps.Nodes.Get(ctx, node)
	if err != nil {
		return err
	}
	switch n.ProvisionState {
	case wire.StateEnroll, wire.StateInspecting, wire.StateInspectWait, wire.StateManageable:
	default:
		if !n.Maintenance {
			return wire.Errorf(wire.CodeConflict, "Portgroup %s can not be associated to node %s unless the node is in a %s state or in maintenance mode. Current state is '%s'.",
				pg.UUID, node, "enroll, inspecting, inspect wait, manageable", n.ProvisionState)
		}
	}
	ports, err := s.nodePorts(ctx, pg.NodeUUID)
	if err != nil {
		return err
	}
	for _, p := range ports {
		if p.PortgroupUUID == pg.UUID {
			return badRequest("Portgroup %s can not be associated with node %s because there are ports associated with this portgroup.", pg.UUID, node)
		}
	}
	return nil
}

func (s *Server) deletePortgroup(c *gin.Context) {
	pg, err := s.findPortgroup(c.Request.Context(), c.Param("portgroup"))
	if err != nil {
		s.fail(c, err)
		return
	}
	ctx := c.Request.Context()
	err = s.portWrite(ctx, pg.NodeUUID, "portgroup deletion", func(ctx context.Context) error {
		ports, err := s.nodePorts(ctx, pg.NodeUUID)
		if err != nil {
			return err
		}
		for _, p := range ports {
			if p.PortgroupUUID == pg.UUID {
				return badRequest("Cannot complete the requested action because portgroup %s contains ports.", pg.UUID)
			}
		}
		return s.dropPortgroup(ctx, pg)
	})
	if wire.CodeOf(err) == wire.CodeNotFound {
		// A portgroup whose node is gone (its delete failed half way) may go.
		if _, gerr := s.deps.Nodes.Get(ctx, pg.NodeUUID); wire.CodeOf(gerr) == wire.CodeNotFound {
			err = s.dropPortgroup(ctx, pg)
		}
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// dropPortgroup deletes pg's record and releases its name and address.
func (s *Server) dropPortgroup(ctx context.Context, pg wire.Portgroup) error {
	if err := s.deps.Records.Portgroups.Delete(ctx, pg.UUID); err != nil {
		return recordNotFound(err, portgroupNotFound(pg.UUID))
	}
	s.releasePortgroup(ctx, pg, wire.Portgroup{})
	return nil
}

// deletePortgroupsOf deletes a deleted node's portgroups, as Ironic's
// destroy_node does.
func (s *Server) deletePortgroupsOf(ctx context.Context, node string) error {
	pgs, err := s.deps.Records.Portgroups.List(ctx, func(pg wire.Portgroup) bool { return pg.NodeUUID == node })
	if err != nil {
		return err
	}
	for _, pg := range pgs {
		if err := s.dropPortgroup(ctx, pg); err != nil && wire.CodeOf(err) != wire.CodeNotFound {
			return err
		}
	}
	return nil
}

// portPortgroup checks a port's portgroup_uuid: a portgroup of the port's
// node (400 otherwise, as Ironic's port create).
func (s *Server) portPortgroup(ctx context.Context, node, pgUUID string) (string, error) {
	if pgUUID == "" {
		return "", nil
	}
	if !isUUID(pgUUID) {
		return "", badRequest("Expected a UUID for portgroup_uuid but received %s.", pgUUID)
	}
	pg, err := s.deps.Records.Portgroups.Get(ctx, strings.ToLower(pgUUID))
	if wire.CodeOf(err) == wire.CodeNotFound {
		return "", badRequest("Portgroup %s could not be found.", pgUUID)
	}
	if err != nil {
		return "", err
	}
	if pg.NodeUUID != node {
		return "", badRequest("Port can not be added to a portgroup belonging to a different node.")
	}
	return pg.UUID, nil
}
