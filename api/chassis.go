package api

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// Chassis, as ironic/api/controllers/v1/chassis.py serves them: a
// description and extra, nodes joining one with chassis_uuid (which must
// name one: 400 otherwise, as node.py's _replace_chassis_uuid_with_id;
// removing it needs 1.25), and no delete while nodes are in it
// (ChassisNotEmpty, db/sqlalchemy/api.py destroy_chassis).

func chassisNotFound(id string) error {
	return wire.Errorf(wire.CodeNotFound, "Chassis %s could not be found.", id)
}

var chassisListing = listing{item: "chassis", short: []string{"uuid", "description"}, noSort: []string{"extra"}, detailFrom: 43}

func renderChassis(ch wire.Chassis, base string) map[string]any {
	return map[string]any{
		"uuid": ch.UUID, "description": nullable(ch.Description), "extra": orEmpty(maps.Clone(ch.Extra)),
		"created_at": ironicTime(ch.CreatedAt), "updated_at": ironicTime(ch.UpdatedAt),
		"links": links(base, "chassis/"+ch.UUID), "nodes": links(base, "chassis/"+ch.UUID+"/nodes"),
	}
}

// checkChassis refuses a node's new chassis_uuid that names no chassis
// (400, as Ironic), and its removal below 1.25 (406).
func (s *Server) checkChassis(ctx context.Context, before, after string, v Version) error {
	if after == before {
		return nil
	}
	if after == "" {
		if !v.AtLeast(25) {
			return notAcceptable()
		}
		return nil
	}
	if !isUUID(after) {
		return badRequest("Expected a UUID for chassis_uuid but received %s.", after)
	}
	if _, err := s.deps.Records.Chassis.Get(ctx, after); err != nil {
		if wire.CodeOf(err) == wire.CodeNotFound {
			return badRequest("Chassis %s could not be found.", after)
		}
		return err
	}
	return nil
}

func (s *Server) listChassis(detail bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		recs, err := s.deps.Records.Chassis.List(c.Request.Context(), nil)
		if err != nil {
			s.fail(c, err)
			return
		}
		docs := make([]map[string]any, 0, len(recs))
		for _, ch := range recs {
			docs = append(docs, renderChassis(ch, s.base(c)))
		}
		s.page(c, chassisListing, docs, chassisNotFound, detail)
	}
}

func (s *Server) getChassis(c *gin.Context) {
	ch, err := getRecord(c, s.deps.Records.Chassis, "chassis", chassisNotFound)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.show(c, renderChassis(ch, s.base(c)))
}

// listChassisNodes is GET /v1/chassis/{c}/nodes[/detail]: the nodes list
// limited to the chassis.
func (s *Server) listChassisNodes(detail bool) gin.HandlerFunc {
	list := s.listNodes(detail)
	return func(c *gin.Context) {
		if _, err := getRecord(c, s.deps.Records.Chassis, "chassis", chassisNotFound); err != nil {
			s.fail(c, err)
			return
		}
		list(c)
	}
}

// chassisDoc is the writable part of a chassis.
type chassisDoc struct {
	UUID        *string        `json:"uuid,omitempty"`
	Description *string        `json:"description"`
	Extra       map[string]any `json:"extra"`
}

func (d chassisDoc) check() error {
	if len(deref(d.Description)) > 255 {
		return badRequest("Invalid chassis: description is longer than 255 characters.")
	}
	return nil
}

func (s *Server) createChassis(c *gin.Context) {
	raw, err := readBody(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	var d chassisDoc
	if err := decodeStrict(raw, &d, "chassis"); err != nil {
		s.fail(c, err)
		return
	}
	if err := d.check(); err != nil {
		s.fail(c, err)
		return
	}
	id, err := newID(d.UUID)
	if err != nil {
		s.fail(c, err)
		return
	}
	ch := wire.Chassis{UUID: id, Description: deref(d.Description), Extra: d.Extra, CreatedAt: time.Now().UTC()}
	if err := s.deps.Records.Chassis.Create(c.Request.Context(), id, ch); err != nil {
		if errors.Is(err, transport.ErrExists) {
			err = wire.Errorf(wire.CodeConflict, "A chassis with UUID %s already exists.", id)
		}
		s.fail(c, err)
		return
	}
	c.Header("Location", s.base(c)+"/v1/chassis/"+id)
	c.JSON(http.StatusCreated, renderChassis(ch, s.base(c)))
}

func (s *Server) patchChassis(c *gin.Context) {
	body, err := readBody(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	patch, err := decodePatch(body, []string{"description", "extra"}, anyVersion)
	if err != nil {
		s.fail(c, err)
		return
	}
	cur, err := getRecord(c, s.deps.Records.Chassis, "chassis", chassisNotFound)
	if err != nil {
		s.fail(c, err)
		return
	}
	doc, _ := json.Marshal(chassisDoc{Description: &cur.Description, Extra: orEmpty(cur.Extra)})
	out, err := applyJSONPatch(patch, doc, s.deps.Nodes.MaxRecordBytes(), false, "chassis "+cur.UUID)
	if err != nil {
		s.fail(c, err)
		return
	}
	var d chassisDoc
	if err := decodeStrict(out, &d, "chassis"); err != nil {
		s.fail(c, err)
		return
	}
	if err := d.check(); err != nil {
		s.fail(c, err)
		return
	}
	updated, err := s.deps.Records.Chassis.Update(c.Request.Context(), cur.UUID, func(ch *wire.Chassis) error {
		ch.Description, ch.Extra, ch.UpdatedAt = deref(d.Description), d.Extra, time.Now().UTC()
		return nil
	})
	if err != nil {
		s.fail(c, recordNotFound(err, chassisNotFound(cur.UUID)))
		return
	}
	c.JSON(http.StatusOK, renderChassis(updated, s.base(c)))
}

func (s *Server) deleteChassis(c *gin.Context) {
	ch, err := getRecord(c, s.deps.Records.Chassis, "chassis", chassisNotFound)
	if err != nil {
		s.fail(c, err)
		return
	}
	ctx := c.Request.Context()
	s.syncCache(ctx)
	in, err := s.deps.Nodes.List(transport.NodeQuery{ChassisUUID: ch.UUID, Limit: 1})
	if err != nil {
		s.fail(c, err)
		return
	}
	if len(in) > 0 {
		s.fail(c, badRequest("Cannot complete the requested action because chassis %s contains nodes.", ch.UUID))
		return
	}
	if err := s.deps.Records.Chassis.Delete(ctx, ch.UUID); err != nil {
		s.fail(c, recordNotFound(err, chassisNotFound(ch.UUID)))
		return
	}
	c.Status(http.StatusNoContent)
}
