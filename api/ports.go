package api

import (
	"bytes"
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

func (s *Server) findPort(c *gin.Context) (wire.Port, error) {
	id := strings.ToLower(c.Param("port"))
	if !isUUID(id) {
		return wire.Port{}, portNotFound(id)
	}
	p, err := s.deps.Ports.GetPort(c.Request.Context(), id)
	if wire.CodeOf(err) == wire.CodeNotFound {
		return wire.Port{}, portNotFound(id)
	}
	return p, err
}

func (s *Server) listPorts(detail, underNode bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		v := version(c)
		if c.Query("portgroup") != "" {
			s.listPortgroupPorts(detail)(c)
			return
		}
		q := transport.PortQuery{Address: c.Query("address"), Marker: c.Query("marker"), Limit: transport.MaxLimit}
		if l := c.Query("limit"); l != "" {
			n, err := strconv.Atoi(l)
			if err != nil || n < 0 {
				s.fail(c, badRequest("Limit must be a non-negative integer, got %q.", l))
				return
			}
			if n > 0 && n < q.Limit {
				q.Limit = n
			}
		}
		if q.Marker != "" && !isUUID(q.Marker) {
			s.fail(c, badRequest("Marker %q is not a port UUID.", q.Marker))
			return
		}
		if q.Address != "" {
			m, err := transport.NormalizeMAC(q.Address)
			if err != nil {
				s.fail(c, badMAC(q.Address))
				return
			}
			q.Address = m
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
				s.fail(c, err)
				return
			}
			q.NodeUUID = n.UUID
		}
		ports, err := s.deps.Ports.Ports(q)
		if err != nil {
			s.fail(c, err)
			return
		}
		base := s.base(c)
		out := make([]map[string]any, 0, len(ports))
		for _, p := range ports {
			doc := renderPort(p, base, v)
			if !detail {
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
	c.JSON(http.StatusOK, renderPort(p, s.base(c), version(c)))
}

// portDoc is the writable part of a port.
type portDoc struct {
	Address    string         `json:"address"`
	NodeUUID   string         `json:"node_uuid"`
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
	if _, ok := m["pxe_enabled"]; ok && !v.AtLeast(19) {
		s.fail(c, notAcceptable())
		return
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
	if d.NodeUUID == "" || d.Address == "" {
		s.fail(c, badRequest("Mandatory fields missing: node_uuid and address are required."))
		return
	}
	mac, err := transport.NormalizeMAC(d.Address)
	if err != nil {
		s.fail(c, badMAC(d.Address))
		return
	}
	n, err := s.findNode(c, d.NodeUUID)
	if err != nil {
		s.fail(c, err)
		return
	}
	ctx := c.Request.Context()
	pg, err := s.portPortgroup(ctx, n.UUID, deref(d.PortgroupUUID))
	if err != nil {
		s.fail(c, err)
		return
	}
	p := wire.Port{NodeUUID: n.UUID, Address: mac, PXEEnable: d.PXEEnabled == nil || *d.PXEEnabled, Extra: d.Extra, PortgroupUUID: pg}
	var created wire.Port
	err = s.portWrite(ctx, n.UUID, "port create", func(ctx context.Context) error {
		var err error
		created, err = s.deps.Ports.CreatePort(ctx, p)
		return err
	})
	if errors.Is(err, transport.ErrExists) {
		err = macTaken(mac)
	}
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
	patchable := []string{"address", "pxe_enabled", "extra"}
	if version(c).AtLeast(24) {
		patchable = append(patchable, "portgroup_uuid")
	}
	patch, err := decodePatch(body, patchable)
	if err != nil {
		s.fail(c, err)
		return
	}
	ctx := c.Request.Context()
	var (
		newMAC  string
		updated wire.Port
	)
	err = s.portWrite(ctx, p.NodeUUID, "port update", func(ctx context.Context) error {
		var err error
		updated, err = s.deps.Ports.UpdatePort(ctx, p.UUID, func(cur *wire.Port) error {
			pxe := cur.PXEEnable
			doc, err := json.Marshal(portDoc{Address: cur.Address, NodeUUID: cur.NodeUUID, PXEEnabled: &pxe, Extra: orEmpty(cur.Extra),
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
			pg, err := s.portPortgroup(ctx, cur.NodeUUID, deref(d.PortgroupUUID))
			if err != nil {
				return err
			}
			newMAC = mac
			cur.Address, cur.PXEEnable, cur.Extra, cur.PortgroupUUID = mac, deref(d.PXEEnabled), d.Extra, pg
			return nil
		})
		return err
	})
	if errors.Is(err, transport.ErrExists) {
		err = macTaken(newMAC)
	}
	if wire.CodeOf(err) == wire.CodeNotFound {
		err = portNotFound(p.UUID)
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

// decodePatch decodes a JSON Patch touching only the given top-level fields.
func decodePatch(body []byte, fields []string) (jsonpatch.Patch, error) {
	patch, err := decodeJSONPatch(body)
	if err != nil {
		return nil, err
	}
	err = checkPatch(patch, func(path string) error {
		top, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
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
