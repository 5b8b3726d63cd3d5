package api

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/gin-gonic/gin"

	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

func portNotFound(id string) error {
	return wire.Errorf(wire.CodeNotFound, "Port %s could not be found.", id)
}

func macTaken(mac string) error {
	return wire.Errorf(wire.CodeConflict, "A port with MAC address %s already exists.", mac)
}

func badMAC(mac string) error {
	return badRequest("Expected a MAC address but received %s.", mac)
}

func portNameTaken(name string) error {
	return wire.Errorf(wire.CodeConflict, "A port with name %s already exists.", name)
}

// findPort resolves a path's port by UUID, MAC address or name, as
// Ironic's objects.Port.get does (ironic/objects/port.py).
func (s *Server) findPort(c *gin.Context) (wire.Port, error) {
	ident := c.Param("port")
	ctx := c.Request.Context()
	var (
		p   wire.Port
		err error
	)
	switch {
	case isUUID(ident):
		ident = strings.ToLower(ident)
		p, err = s.deps.Ports.GetPort(ctx, ident)
	case isMAC(ident):
		p, err = s.deps.Ports.PortByMAC(ctx, ident)
	case nameRe.MatchString(ident):
		p, err = s.deps.Ports.PortByName(ctx, ident)
	default:
		return wire.Port{}, portNotFound(ident)
	}
	if wire.CodeOf(err) == wire.CodeNotFound {
		return wire.Port{}, portNotFound(ident)
	}
	return p, err
}

func isMAC(s string) bool {
	_, err := transport.NormalizeMAC(s)
	return err == nil
}

// portFieldVersion is the microversion each port field appeared in (the
// gates of Ironic's PortsController._check_allowed_port_fields,
// ironic/api/controllers/v1/port.py); a field absent here is in every
// version. Those above MaxVersion are never rendered and 406 when asked
// for.
var portFieldVersion = map[string]int{
	"internal_info": 18, "local_link_connection": 19, "pxe_enabled": 19, "portgroup_uuid": 24,
	"physical_network": 34, "is_smartnic": 53, "name": 88,
	"description": 97, "vendor": 100, "category": 101, "available_for_dynamic_portgroup": 111,
}

// portFieldIn reports whether a port field exists at v.
func portFieldIn(field string, v Version) bool { return v.AtLeast(portFieldVersion[field]) }

// portQuery reads a port list's filters, sort and page, at Ironic's
// versions (PortsController.get_all): a filter ironfleet cannot apply is
// 400 naming it.
func (s *Server) portQuery(c *gin.Context, v Version, underNode bool) (transport.PortQuery, bool, error) {
	q := transport.PortQuery{Address: c.Query("address"), Marker: c.Query("marker"), Limit: transport.MaxLimit,
		SortKey: c.Query("sort_key"), SortDir: c.Query("sort_dir")}
	if l := c.Query("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			return q, false, badRequest("Limit must be a non-negative integer, got %q.", l)
		}
		if n > 0 && n < q.Limit {
			q.Limit = n
		}
	}
	if q.Marker != "" && !isUUID(q.Marker) {
		return q, false, badRequest("Marker %q is not a port UUID.", q.Marker)
	}
	if q.SortKey != "" && !portFieldIn(q.SortKey, v) {
		return q, false, notAcceptable()
	}
	if q.Address != "" {
		m, err := transport.NormalizeMAC(q.Address)
		if err != nil {
			return q, false, badMAC(q.Address)
		}
		q.Address = m
	}
	if ident, ok := c.GetQuery("portgroup"); ok {
		if !v.AtLeast(24) {
			return q, false, notAcceptable()
		}
		pg, err := s.findPortgroup(c.Request.Context(), ident)
		if err != nil {
			return q, false, err
		}
		q.PortgroupUUID = pg.UUID
	}
	if _, ok := c.GetQuery("conductor_groups"); ok {
		return q, false, notAcceptableBefore(99) // past MaxVersion
	}
	// Ports have no description below 1.97, nodes no shard: such a filter
	// matches no port.
	none := false
	if _, ok := c.GetQuery("shard"); ok {
		if !v.AtLeast(82) {
			return q, false, notAcceptableBefore(82)
		}
		none = true
	}
	if c.Query("description_contains") != "" {
		none = true
	}
	ident := c.Query("node")
	if ident == "" {
		ident = c.Query("node_uuid")
	}
	if underNode {
		ident = c.Param("node")
	}
	if ident != "" {
		n, err := s.findNode(c, ident)
		if err != nil {
			return q, false, err
		}
		q.NodeUUID = n.UUID
	}
	return q, none, nil
}

func (s *Server) listPorts(detail, underNode bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		v := version(c)
		if d := c.Query("detail"); d != "" {
			b, err := parseBool("detail", d)
			if err != nil {
				s.fail(c, err)
				return
			}
			if detail || !v.AtLeast(43) {
				s.fail(c, badRequest("Invalid query parameter ?detail=%s received.", d))
				return
			}
			detail = *b
		}
		fields := c.Query("fields")
		if detail && fields != "" {
			s.fail(c, badRequest("Can not specify ?detail=True and fields in the same request."))
			return
		}
		base := s.base(c)
		if fields != "" {
			if _, err := pickFields(renderPort(wire.Port{}, base, v), fields, v, portFieldVersion); err != nil {
				s.fail(c, err)
				return
			}
		}
		q, none, err := s.portQuery(c, v, underNode)
		if err != nil {
			s.fail(c, err)
			return
		}
		var ports []wire.Port
		if !none {
			if ports, err = s.deps.Ports.Ports(q); err != nil {
				s.fail(c, err)
				return
			}
		}
		out := make([]map[string]any, 0, len(ports))
		for _, p := range ports {
			doc := renderPort(p, base, v)
			switch {
			case fields != "":
				if doc, err = pickFields(doc, fields, v, portFieldVersion); err != nil {
					s.fail(c, err)
					return
				}
			case !detail:
				doc = map[string]any{"uuid": doc["uuid"], "address": doc["address"], "links": doc["links"]}
			}
			out = append(out, doc)
		}
		body := gin.H{"ports": out}
		if len(ports) == q.Limit {
			next := nextURL(base, c.Request.URL, q.Limit, ports[len(ports)-1].UUID)
			body["next"] = next
			body["ports_links"] = []link{{Href: next, Rel: "next"}}
		}
		c.JSON(http.StatusOK, body)
	}
}

func (s *Server) getPort(c *gin.Context) {
	p, err := s.findPort(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	v := version(c)
	doc := renderPort(p, s.base(c), v)
	if f := c.Query("fields"); f != "" {
		if doc, err = pickFields(doc, f, v, portFieldVersion); err != nil {
			s.fail(c, err)
			return
		}
	}
	c.JSON(http.StatusOK, doc)
}

// checkPortName refuses a port name that could not be looked up by:
// Ironic's schema takes any string, but GET /v1/ports/{port} resolves a
// UUID, then a MAC, then a logical name, so a name shaped like a UUID or
// a MAC, or not a logical name, would name no port.
func checkPortName(name string) error {
	if name == "" {
		return nil
	}
	if !nameRe.MatchString(name) || isUUID(name) || isMAC(name) {
		return badRequest("Expected a logical name but received %q: letters, digits and ._~- only, not a UUID or a MAC address.", name)
	}
	return nil
}

// portDoc is the writable part of a port.
type portDoc struct {
	Address    string         `json:"address"`
	NodeUUID   string         `json:"node_uuid"`
	NodeIdent  string         `json:"node_ident,omitempty"`
	Name       *string        `json:"name"`
	PXEEnabled *bool          `json:"pxe_enabled"`
	Extra      map[string]any `json:"extra"`
	// PortgroupUUID (1.24) puts the port in one of its node's portgroups.
	PortgroupUUID *string `json:"portgroup_uuid,omitempty"`
}

func decodePortDoc(raw []byte) (portDoc, error) {
	var d portDoc
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return d, badRequest("Invalid port: %v", err)
	}
	return d, nil
}

func (s *Server) createPort(c *gin.Context) {
	v := version(c)
	body, err := readBody(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	m, err := parseObject(body)
	if err != nil {
		s.fail(c, err)
		return
	}
	for k := range m {
		if !portFieldIn(k, v) || k == "node_ident" && !v.AtLeast(94) {
			s.fail(c, notAcceptable())
			return
		}
	}
	if _, ok := m["portgroup_uuid"]; ok && !v.AtLeast(24) {
		s.fail(c, notAcceptable())
		return
	}
	d, err := decodePortDoc(body)
	if err != nil {
		s.fail(c, err)
		return
	}
	// node_ident (1.94) names the node by UUID or name, in place of
	// node_uuid: exactly one of them (Ironic's PORT_SCHEMA oneOf).
	if d.NodeUUID != "" && d.NodeIdent != "" {
		s.fail(c, badRequest("Only one of node_uuid and node_ident may be given."))
		return
	}
	node := cmp.Or(d.NodeIdent, d.NodeUUID)
	if node == "" || d.Address == "" {
		s.fail(c, badRequest("Mandatory fields missing: node_uuid (or node_ident) and address are required."))
		return
	}
	mac, err := transport.NormalizeMAC(d.Address)
	if err != nil {
		s.fail(c, badMAC(d.Address))
		return
	}
	n, err := s.findNode(c, node)
	if wire.CodeOf(err) == wire.CodeNotFound {
		// A create naming no node is a bad request, not a missing
		// resource: Ironic's PortsController.post raises NodeNotFound
		// with code 400.
		err = badRequest("Node %s could not be found.", node)
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	if err := checkPortName(deref(d.Name)); err != nil {
		s.fail(c, err)
		return
	}
	ctx := c.Request.Context()
	pg, err := s.portPortgroup(ctx, n.UUID, deref(d.PortgroupUUID))
	if err != nil {
		s.fail(c, err)
		return
	}
	p := wire.Port{NodeUUID: n.UUID, Address: mac, Name: deref(d.Name), PXEEnable: d.PXEEnabled == nil || *d.PXEEnabled, Extra: d.Extra, PortgroupUUID: pg}
	var created wire.Port
	err = s.portWrite(ctx, n.UUID, "port create", func(ctx context.Context) error {
		var err error
		created, err = s.deps.Ports.CreatePort(ctx, p)
		return err
	})
	err = portConflict(err, mac, p.Name)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.syncCache(ctx)
	c.Header("Location", s.base(c)+"/v1/ports/"+created.UUID)
	c.JSON(http.StatusCreated, renderPort(created, s.base(c), v))
}

func (s *Server) patchPort(c *gin.Context) {
	body, err := readBody(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	p, err := s.findPort(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	v := version(c)
	patch, err := decodePatch(body, []string{"address", "pxe_enabled", "extra", "name", "portgroup_uuid"}, func(field string) bool { return portFieldIn(field, v) })
	if err != nil {
		s.fail(c, err)
		return
	}
	ctx := c.Request.Context()
	var (
		newMAC, newName string
		updated         wire.Port
	)
	err = s.portWrite(ctx, p.NodeUUID, "port update", func(ctx context.Context) error {
		var err error
		updated, err = s.deps.Ports.UpdatePort(ctx, p.UUID, func(cur *wire.Port) error {
			pxe := cur.PXEEnable
			var name *string
			if cur.Name != "" {
				name = strp(cur.Name)
			}
			doc, err := json.Marshal(portDoc{Address: cur.Address, NodeUUID: cur.NodeUUID, Name: name, PXEEnabled: &pxe, Extra: orEmpty(cur.Extra),
				PortgroupUUID: &cur.PortgroupUUID})
			if err != nil {
				return err
			}
			out, err := applyJSONPatch(patch, doc, s.deps.Nodes.MaxRecordBytes(), false, "port "+cur.UUID)
			if err != nil {
				return err
			}
			d, err := decodePortDoc(out)
			if err != nil {
				return err
			}
			mac, err := transport.NormalizeMAC(d.Address)
			if err != nil {
				return badMAC(d.Address)
			}
			if err := checkPortName(deref(d.Name)); err != nil {
				return err
			}
			pg, err := s.portPortgroup(ctx, cur.NodeUUID, deref(d.PortgroupUUID))
			if err != nil {
				return err
			}
			newMAC, newName = mac, deref(d.Name)
			cur.Address, cur.Name, cur.PXEEnable, cur.Extra, cur.PortgroupUUID = mac, newName, deref(d.PXEEnabled), d.Extra, pg
			return nil
		})
		return err
	})
	err = portConflict(err, newMAC, newName)
	if wire.CodeOf(err) == wire.CodeNotFound {
		err = portNotFound(p.UUID)
	}
	if bad := (*wire.Error)(nil); errors.As(err, &bad) && bad.Code() == wire.CodeInvalidInput {
		err = bad // the refusal itself, not the store's context around it
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	s.syncCache(ctx)
	c.JSON(http.StatusOK, renderPort(updated, s.base(c), version(c)))
}

func (s *Server) deletePort(c *gin.Context) {
	p, err := s.findPort(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	ctx := c.Request.Context()
	err = s.portWrite(ctx, p.NodeUUID, "port deletion", func(ctx context.Context) error {
		if err := s.checkUnbound(ctx, p.UUID); err != nil {
			return err
		}
		return s.deps.Ports.DeletePort(ctx, p.UUID)
	})
	if wire.CodeOf(err) == wire.CodeNotFound {
		err = portNotFound(p.UUID)
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	s.syncCache(ctx)
	c.Status(http.StatusNoContent)
}

// portConflict names what a port write collided on: its MAC or its name.
func portConflict(err error, mac, name string) error {
	if !errors.Is(err, transport.ErrExists) {
		return err
	}
	if name != "" && !errors.Is(err, transport.ErrMACTaken) {
		return portNameTaken(name)
	}
	return macTaken(mac)
}

// anyVersion is decodePatch's in for a resource whose fields are all in
// every version it is served at.
func anyVersion(string) bool { return true }

// decodePatch decodes a JSON Patch touching only the given top-level
// fields; one the request's version does not have (in says) is 406.
func decodePatch(body []byte, fields []string, in func(field string) bool) (jsonpatch.Patch, error) {
	patch, err := decodeJSONPatch(body)
	if err != nil {
		return nil, err
	}
	err = checkPatch(patch, func(path string) error {
		top, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
		if !in(top) {
			return notAcceptable()
		}
		if !slices.Contains(fields, top) {
			return badRequest("'/%s' is an internal or read-only attribute and can not be updated.", top)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return patch, nil
}
