package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// Volume connectors and targets (1.32), as ironic/api/controllers/v1/
// volume_connector.py and volume_target.py serve them. The noop storage
// interface only stores them, as Ironic's does; nova lists a node's targets
// when it destroys an instance. Creating one takes no lock (Ironic's API
// writes it directly); updating and deleting one take its node's lock and
// need the node powered off, or for a delete in enroll or manageable, as
// the conductor's update_volume_* and destroy_volume_* check
// (conductor/manager.py, states.DELETE_ALLOWED_STATES).

func connectorNotFound(id string) error {
	return wire.Errorf(wire.CodeNotFound, "Volume connector %s could not be found.", id)
}

func targetNotFound(id string) error {
	return wire.Errorf(wire.CodeNotFound, "Volume target %s could not be found.", id)
}

var (
	connectorListing = listing{item: "connectors", short: []string{"uuid", "node_uuid", "type", "connector_id"}, noSort: []string{"extra"}}
	targetListing    = listing{item: "targets", short: []string{"uuid", "node_uuid", "volume_type", "boot_index", "volume_id"},
		noSort: []string{"extra", "properties"}}
)

// volumeLinks is GET /v1/volume and GET /v1/nodes/{n}/volume.
func (s *Server) volumeLinks(c *gin.Context) {
	path := "volume"
	if c.Param("node") != "" {
		if _, err := s.findNode(c, c.Param("node")); err != nil {
			s.fail(c, err)
			return
		}
		path = "nodes/" + c.Param("node") + "/volume"
	}
	b := s.base(c)
	c.JSON(http.StatusOK, gin.H{
		"links":      links(b, path),
		"connectors": links(b, path+"/connectors"),
		"targets":    links(b, path+"/targets"),
	})
}

func renderConnector(r wire.VolumeConnector, base string) map[string]any {
	return map[string]any{
		"uuid": r.UUID, "node_uuid": r.NodeUUID, "type": r.Type, "connector_id": r.ConnectorID,
		"extra": orEmpty(maps.Clone(r.Extra)), "created_at": ironicTime(r.CreatedAt), "updated_at": ironicTime(r.UpdatedAt),
		"links": links(base, "volume/connectors/"+r.UUID),
	}
}

func renderTarget(r wire.VolumeTarget, base string) map[string]any {
	return map[string]any{
		"uuid": r.UUID, "node_uuid": r.NodeUUID, "volume_type": r.VolumeType, "volume_id": r.VolumeID,
		"boot_index": r.BootIndex, "properties": masked(r.Properties), "extra": orEmpty(maps.Clone(r.Extra)),
		"created_at": ironicTime(r.CreatedAt), "updated_at": ironicTime(r.UpdatedAt),
		"links": links(base, "volume/targets/"+r.UUID),
	}
}

// listNode is the node a volume list is limited to: the path's node, or
// the node query parameter; "" for every node.
func (s *Server) listNode(c *gin.Context) (string, error) {
	ident := c.Param("node")
	if ident == "" {
		ident = c.Query("node")
	}
	if ident == "" {
		return "", nil
	}
	n, err := s.findNode(c, ident)
	return n.UUID, err
}

func (s *Server) listConnectors(c *gin.Context) {
	node, err := s.listNode(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	recs, err := s.deps.Records.VolumeConnectors.List(c.Request.Context(), func(r wire.VolumeConnector) bool { return node == "" || r.NodeUUID == node })
	if err != nil {
		s.fail(c, err)
		return
	}
	docs := make([]map[string]any, 0, len(recs))
	for _, r := range recs {
		docs = append(docs, renderConnector(r, s.base(c)))
	}
	s.page(c, connectorListing, docs, connectorNotFound, false)
}

func (s *Server) listTargets(c *gin.Context) {
	node, err := s.listNode(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	recs, err := s.deps.Records.VolumeTargets.List(c.Request.Context(), func(r wire.VolumeTarget) bool { return node == "" || r.NodeUUID == node })
	if err != nil {
		s.fail(c, err)
		return
	}
	docs := make([]map[string]any, 0, len(recs))
	for _, r := range recs {
		docs = append(docs, renderTarget(r, s.base(c)))
	}
	s.page(c, targetListing, docs, targetNotFound, false)
}

// getRecord reads the path's record of coll (param names it), 404 notFound.
func getRecord[T any](c *gin.Context, coll *transport.Collection[T], param string, notFound func(string) error) (T, error) {
	id := strings.ToLower(c.Param(param))
	if !isUUID(id) {
		var zero T
		return zero, notFound(c.Param(param))
	}
	r, err := coll.Get(c.Request.Context(), id)
	if wire.CodeOf(err) == wire.CodeNotFound {
		return r, notFound(id)
	}
	return r, err
}

// show answers GET of one record, fields applied.
func (s *Server) show(c *gin.Context, doc map[string]any) {
	if f := c.Query("fields"); f != "" {
		var err error
		if doc, err = pickFields(doc, f, version(c), nil); err != nil {
			s.fail(c, err)
			return
		}
	}
	c.JSON(http.StatusOK, doc)
}

func (s *Server) getConnector(c *gin.Context) {
	r, err := getRecord(c, s.deps.Records.VolumeConnectors, "connector", connectorNotFound)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.show(c, renderConnector(r, s.base(c)))
}

func (s *Server) getTarget(c *gin.Context) {
	r, err := getRecord(c, s.deps.Records.VolumeTargets, "target", targetNotFound)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.show(c, renderTarget(r, s.base(c)))
}

// connectorDoc is the writable part of a volume connector.
type connectorDoc struct {
	UUID        *string        `json:"uuid,omitempty"`
	NodeUUID    *string        `json:"node_uuid"`
	Type        *string        `json:"type"`
	ConnectorID *string        `json:"connector_id"`
	Extra       map[string]any `json:"extra"`
}

// targetDoc is the writable part of a volume target.
type targetDoc struct {
	UUID       *string        `json:"uuid,omitempty"`
	NodeUUID   *string        `json:"node_uuid"`
	VolumeType *string        `json:"volume_type"`
	VolumeID   *string        `json:"volume_id"`
	BootIndex  *int           `json:"boot_index"`
	Properties map[string]any `json:"properties"`
	Extra      map[string]any `json:"extra"`
}

// decodeStrict decodes a JSON object into dst, refusing unknown keys.
func decodeStrict(raw []byte, dst any, what string) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return badRequest("Invalid %s: %v", what, err)
	}
	return nil
}

// required refuses a missing mandatory field, as Ironic's schema does.
func required(fields map[string]bool) error {
	for _, name := range []string{"boot_index", "connector_id", "node_uuid", "type", "volume_id", "volume_type"} {
		if present, ok := fields[name]; ok && !present {
			return badRequest("'%s' is a required property", name)
		}
	}
	return nil
}

// linkedNode resolves a record's node_uuid: a UUID (400 otherwise) of an
// existing node (400 InvalidInput otherwise, as Ironic's create).
func (s *Server) linkedNode(c *gin.Context, id string) (wire.Node, error) {
	if !isUUID(id) {
		return wire.Node{}, badRequest("Expected a UUID for node_uuid, but received %s.", id)
	}
	n, err := s.findNode(c, id)
	if wire.CodeOf(err) == wire.CodeNotFound {
		return n, badRequest("Invalid input for field/attribute node_uuid. Value: '%s'.", id)
	}
	return n, err
}

// newID is the body's uuid, or a fresh one.
func newID(u *string) (string, error) {
	if u == nil || *u == "" {
		return wire.NewUUID(), nil
	}
	if !isUUID(*u) {
		return "", badRequest("Expected a UUID for uuid, but received %s.", *u)
	}
	return strings.ToLower(*u), nil
}

// connectorKey and targetKey are the unique values of each kind: a
// connector's (type, connector_id) among all, a target's boot_index on its
// node (Ironic's unique constraints).
func connectorKey(r wire.VolumeConnector) string { return r.Type + "\n" + r.ConnectorID }
func targetKey(r wire.VolumeTarget) string       { return r.NodeUUID + "\n" + fmt.Sprint(r.BootIndex) }

func connectorTaken(r wire.VolumeConnector) error {
	return wire.Errorf(wire.CodeConflict, "A volume connector with type %s and connector ID %s already exists.", r.Type, r.ConnectorID)
}

func targetTaken(r wire.VolumeTarget) error {
	return wire.Errorf(wire.CodeConflict, "A volume target with boot index '%d' for the same node already exists.", r.BootIndex)
}

const (
	uniqConnector = "type_connector_id"
	uniqTarget    = "node_boot_index"
)

func (s *Server) createConnector(c *gin.Context) {
	raw, err := readBody(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	var d connectorDoc
	if err := decodeStrict(raw, &d, "volume connector"); err != nil {
		s.fail(c, err)
		return
	}
	if err := required(map[string]bool{"connector_id": d.ConnectorID != nil, "node_uuid": d.NodeUUID != nil, "type": d.Type != nil}); err != nil {
		s.fail(c, err)
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
	r := wire.VolumeConnector{UUID: id, NodeUUID: n.UUID, Type: *d.Type, ConnectorID: *d.ConnectorID, Extra: d.Extra, CreatedAt: time.Now().UTC()}
	ctx := c.Request.Context()
	err = createRecord(ctx, s, s.deps.Records.VolumeConnectors, id, r, n.UUID, uniqConnector, connectorKey(r), func() error { return connectorTaken(r) },
		func() error {
			return wire.Errorf(wire.CodeConflict, "A volume connector with UUID %s already exists.", id)
		})
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Location", s.base(c)+"/v1/volume/connectors/"+id)
	c.JSON(http.StatusCreated, renderConnector(r, s.base(c)))
}

func (s *Server) createTarget(c *gin.Context) {
	raw, err := readBody(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	var d targetDoc
	if err := decodeStrict(raw, &d, "volume target"); err != nil {
		s.fail(c, err)
		return
	}
	if err := required(map[string]bool{"boot_index": d.BootIndex != nil, "node_uuid": d.NodeUUID != nil,
		"volume_id": d.VolumeID != nil, "volume_type": d.VolumeType != nil}); err != nil {
		s.fail(c, err)
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
	r := wire.VolumeTarget{UUID: id, NodeUUID: n.UUID, VolumeType: *d.VolumeType, VolumeID: *d.VolumeID, BootIndex: *d.BootIndex,
		Properties: d.Properties, Extra: d.Extra, CreatedAt: time.Now().UTC()}
	ctx := c.Request.Context()
	err = createRecord(ctx, s, s.deps.Records.VolumeTargets, id, r, n.UUID, uniqTarget, targetKey(r), func() error { return targetTaken(r) },
		func() error {
			return wire.Errorf(wire.CodeConflict, "A volume target with UUID %s already exists.", id)
		})
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Location", s.base(c)+"/v1/volume/targets/"+id)
	c.JSON(http.StatusCreated, renderTarget(r, s.base(c)))
}

// createRecord stores a new record of a node with its unique value
// claimed; taken and exists are the conflicts of the value and of the ID.
// The node is read again after the write: a node deleted meanwhile (its
// delete did not see this record) takes the record with it.
func createRecord[T any](ctx context.Context, s *Server, coll *transport.Collection[T], id string, r T, node, field, unique string,
	taken, exists func() error) error {
	// A record with this ID may hold the value itself: Claim would say yes,
	// and releasing it after Create fails would take it from that record.
	if _, err := coll.Get(ctx, id); err == nil {
		return exists()
	} else if wire.CodeOf(err) != wire.CodeNotFound {
		return err
	}
	if err := coll.Claim(ctx, field, unique, id); err != nil {
		if errors.Is(err, transport.ErrExists) {
			return taken()
		}
		return err
	}
	if err := coll.Create(ctx, id, r); err != nil {
		if errors.Is(err, transport.ErrExists) {
			return exists() // created a moment ago with this ID: its value, if this one, stays its
		}
		coll.Release(ctx, field, unique, id)
		return err
	}
	if _, err := s.deps.Nodes.Get(ctx, node); wire.CodeOf(err) == wire.CodeNotFound {
		_ = coll.Delete(ctx, id)
		coll.Release(ctx, field, unique, id)
		return badRequest("Invalid input for field/attribute node_uuid. Value: '%s'.", node)
	}
	return nil
}

// volumeWrite runs write under node's lock if the node's state allows
// action: powered off, or (deletions) in enroll or manageable. A record
// whose node is gone (its delete failed half way) may be deleted.
func (s *Server) volumeWrite(ctx context.Context, node, action string, deletion bool, write func(ctx context.Context) error) error {
	return s.underLock(ctx, node, action, func(ctx context.Context, _ uint64) error {
		n, err := s.deps.Nodes.Get(ctx, node)
		if wire.CodeOf(err) == wire.CodeNotFound {
			if deletion {
				return write(ctx)
			}
			return nodeNotFound(node)
		}
		if err != nil {
			return err
		}
		deletable := deletion && (n.ProvisionState == wire.StateEnroll || n.ProvisionState == wire.StateManageable)
		if n.PowerState != wire.PowerOff && !deletable {
			state := string(n.PowerState)
			if state == "" {
				state = "None"
			}
			return badRequest("The requested action \"%s\" can not be performed on node \"%s\" while it is in state \"%s\".", action, node, state)
		}
		return write(ctx)
	})
}

func (s *Server) patchConnector(c *gin.Context) {
	body, err := readBody(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	patch, err := decodePatch(body, []string{"connector_id", "extra", "node_uuid", "type"}, anyVersion)
	if err != nil {
		s.fail(c, err)
		return
	}
	cur, err := getRecord(c, s.deps.Records.VolumeConnectors, "connector", connectorNotFound)
	if err != nil {
		s.fail(c, err)
		return
	}
	doc, _ := json.Marshal(connectorDoc{NodeUUID: &cur.NodeUUID, Type: &cur.Type, ConnectorID: &cur.ConnectorID, Extra: orEmpty(cur.Extra)})
	out, err := applyJSONPatch(patch, doc, s.deps.Nodes.MaxRecordBytes(), false, "volume connector "+cur.UUID)
	if err != nil {
		s.fail(c, err)
		return
	}
	var d connectorDoc
	if err := decodeStrict(out, &d, "volume connector"); err != nil {
		s.fail(c, err)
		return
	}
	if err := required(map[string]bool{"connector_id": d.ConnectorID != nil, "node_uuid": d.NodeUUID != nil, "type": d.Type != nil}); err != nil {
		s.fail(c, err)
		return
	}
	n, err := s.linkedNode(c, *d.NodeUUID)
	if err != nil {
		s.fail(c, err)
		return
	}
	next := cur
	next.NodeUUID, next.Type, next.ConnectorID, next.Extra, next.UpdatedAt = n.UUID, *d.Type, *d.ConnectorID, d.Extra, time.Now().UTC()
	err = s.volumeWrite(c.Request.Context(), n.UUID, "volume connector update", false, func(ctx context.Context) error {
		return recordNotFound(updateRecord(ctx, s.deps.Records.VolumeConnectors, cur.UUID, next, uniqConnector, connectorKey(cur), connectorKey(next),
			func() error { return connectorTaken(next) }), connectorNotFound(cur.UUID))
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, renderConnector(next, s.base(c)))
}

func (s *Server) patchTarget(c *gin.Context) {
	body, err := readBody(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	patch, err := decodePatch(body, []string{"boot_index", "extra", "node_uuid", "properties", "volume_id", "volume_type"}, anyVersion)
	if err != nil {
		s.fail(c, err)
		return
	}
	cur, err := getRecord(c, s.deps.Records.VolumeTargets, "target", targetNotFound)
	if err != nil {
		s.fail(c, err)
		return
	}
	// The properties' secrets are sealed as a node's driver_info is, so
	// that no operation can read one (secrets.go).
	sl := newSealer()
	doc, _ := json.Marshal(targetDoc{NodeUUID: &cur.NodeUUID, VolumeType: &cur.VolumeType, VolumeID: &cur.VolumeID,
		BootIndex: &cur.BootIndex, Properties: sl.seal(orEmpty(cur.Properties), "/properties"), Extra: orEmpty(cur.Extra)})
	out, err := applyJSONPatch(patch, doc, s.deps.Nodes.MaxRecordBytes(), false, "volume target "+cur.UUID)
	if err != nil {
		s.fail(c, err)
		return
	}
	var d targetDoc
	if err := decodeStrict(out, &d, "volume target"); err != nil {
		s.fail(c, err)
		return
	}
	if err := required(map[string]bool{"boot_index": d.BootIndex != nil, "node_uuid": d.NodeUUID != nil,
		"volume_id": d.VolumeID != nil, "volume_type": d.VolumeType != nil}); err != nil {
		s.fail(c, err)
		return
	}
	if d.Properties, err = sl.unseal(d.Properties, "/properties"); err != nil {
		s.fail(c, err)
		return
	}
	if sl.leaked(out) {
		s.fail(c, badRequest("A JSON Patch may not copy or move a secret (a value shown as %s) out of properties.", Mask))
		return
	}
	n, err := s.linkedNode(c, *d.NodeUUID)
	if err != nil {
		s.fail(c, err)
		return
	}
	next := cur
	next.NodeUUID, next.VolumeType, next.VolumeID, next.BootIndex = n.UUID, *d.VolumeType, *d.VolumeID, *d.BootIndex
	next.Properties, next.Extra, next.UpdatedAt = d.Properties, d.Extra, time.Now().UTC()
	err = s.volumeWrite(c.Request.Context(), n.UUID, "volume target update", false, func(ctx context.Context) error {
		return recordNotFound(updateRecord(ctx, s.deps.Records.VolumeTargets, cur.UUID, next, uniqTarget, targetKey(cur), targetKey(next),
			func() error { return targetTaken(next) }), targetNotFound(cur.UUID))
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, renderTarget(next, s.base(c)))
}

// updateRecord writes next over record id, moving its unique value from
// old to now (taken when another record holds it).
func updateRecord[T any](ctx context.Context, coll *transport.Collection[T], id string, next T, field, old, now string, taken func() error) error {
	if now != old {
		if err := coll.Claim(ctx, field, now, id); err != nil {
			if errors.Is(err, transport.ErrExists) {
				return taken()
			}
			return err
		}
	}
	if _, err := coll.Update(ctx, id, func(r *T) error { *r = next; return nil }); err != nil {
		if now != old {
			coll.Release(ctx, field, now, id)
		}
		return err
	}
	if now != old {
		coll.Release(ctx, field, old, id)
	}
	return nil
}

func (s *Server) deleteConnector(c *gin.Context) {
	r, err := getRecord(c, s.deps.Records.VolumeConnectors, "connector", connectorNotFound)
	if err != nil {
		s.fail(c, err)
		return
	}
	err = s.volumeWrite(c.Request.Context(), r.NodeUUID, "volume connector deletion", true, func(ctx context.Context) error {
		return recordNotFound(deleteRecord(ctx, s.deps.Records.VolumeConnectors, r.UUID, uniqConnector, connectorKey(r)), connectorNotFound(r.UUID))
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) deleteTarget(c *gin.Context) {
	r, err := getRecord(c, s.deps.Records.VolumeTargets, "target", targetNotFound)
	if err != nil {
		s.fail(c, err)
		return
	}
	err = s.volumeWrite(c.Request.Context(), r.NodeUUID, "volume target deletion", true, func(ctx context.Context) error {
		return recordNotFound(deleteRecord(ctx, s.deps.Records.VolumeTargets, r.UUID, uniqTarget, targetKey(r)), targetNotFound(r.UUID))
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// recordNotFound is err, or notFound when err is the record's not-found
// (it was deleted meanwhile).
func recordNotFound(err, notFound error) error {
	if wire.CodeOf(err) == wire.CodeNotFound {
		return notFound
	}
	return err
}

func deleteRecord[T any](ctx context.Context, coll *transport.Collection[T], id, field, unique string) error {
	if err := coll.Delete(ctx, id); err != nil {
		return err
	}
	coll.Release(ctx, field, unique, id)
	return nil
}

// deleteVolumeOf deletes a deleted node's volume connectors and targets,
// as Ironic's destroy_node does.
func (s *Server) deleteVolumeOf(ctx context.Context, node string) error {
	conns, err := s.deps.Records.VolumeConnectors.List(ctx, func(r wire.VolumeConnector) bool { return r.NodeUUID == node })
	if err != nil {
		return err
	}
	for _, r := range conns {
		if err := deleteRecord(ctx, s.deps.Records.VolumeConnectors, r.UUID, uniqConnector, connectorKey(r)); err != nil && wire.CodeOf(err) != wire.CodeNotFound {
			return err
		}
	}
	targets, err := s.deps.Records.VolumeTargets.List(ctx, func(r wire.VolumeTarget) bool { return r.NodeUUID == node })
	if err != nil {
		return err
	}
	for _, r := range targets {
		if err := deleteRecord(ctx, s.deps.Records.VolumeTargets, r.UUID, uniqTarget, targetKey(r)); err != nil && wire.CodeOf(err) != wire.CodeNotFound {
			return err
		}
	}
	return nil
}
