package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/ironfleet/ironfleet/internal/hardware"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/gin-gonic/gin"

	"github.com/ironfleet/ironfleet/internal/provision"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

var (
	uuidRe  = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	nameRe  = regexp.MustCompile(`^[A-Za-z0-9._~-]{1,255}$`)
	groupRe = regexp.MustCompile(`^[A-Za-z0-9_-]{0,255}$`)
)

func isUUID(s string) bool { return uuidRe.MatchString(s) }

func nodeNotFound(ident string) error {
	return wire.Errorf(wire.CodeNotFound, "Node %s could not be found.", ident)
}

// findNode resolves a path's node by UUID (the cache, then the store for a
// node written elsewhere a moment ago) or by name (from 1.5).
func (s *Server) findNode(c *gin.Context, ident string) (wire.Node, error) {
	if isUUID(ident) {
		ident = strings.ToLower(ident)
		if n, ok := s.deps.Nodes.Node(ident); ok {
			return n, nil
		}
		n, err := s.deps.Nodes.Get(c.Request.Context(), ident)
		if wire.CodeOf(err) == wire.CodeNotFound {
			return wire.Node{}, nodeNotFound(ident)
		}
		return n, err
	}
	if !version(c).AtLeast(5) || !nameRe.MatchString(ident) {
		return wire.Node{}, nodeNotFound(ident)
	}
	n, err := s.deps.Nodes.NodeByName(c.Request.Context(), ident)
	if wire.CodeOf(err) == wire.CodeNotFound {
		return wire.Node{}, nodeNotFound(ident)
	}
	return n, err
}

// reservation is the holder of a node's lock, "" when free or unknown: the
// lock view is advisory in a node's rendering, so Redis being down degrades
// it rather than failing the read.
func (s *Server) reservation(ctx context.Context, uuid string) string {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.LockViewTimeout)
	defer cancel()
	snap, err := s.deps.Locks.Snapshot(ctx, uuid)
	if err != nil {
		s.log.DebugContext(ctx, "reservation unknown", "node", uuid, "err", err)
		return ""
	}
	if !snap.Held {
		return ""
	}
	return snap.Holder
}

// reservations is every held lock's holder, from one Summary call.
func (s *Server) reservations(ctx context.Context) map[string]string {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.LockViewTimeout)
	defer cancel()
	snaps, err := s.deps.Locks.Summary(ctx)
	if err != nil {
		s.log.DebugContext(ctx, "reservations unknown", "err", err)
		return nil
	}
	out := make(map[string]string, len(snaps))
	for _, sn := range snaps {
		if sn.Held {
			out[sn.Resource] = sn.Holder
		}
	}
	return out
}

func (s *Server) getNode(c *gin.Context) {
	n, err := s.findNode(c, c.Param("node"))
	if err != nil {
		s.fail(c, err)
		return
	}
	v := version(c)
	out := renderNode(n, s.reservation(c.Request.Context(), n.UUID), s.base(c), v)
	if f := c.Query("fields"); f != "" {
		if out, err = pickFields(out, f, v); err != nil {
			s.fail(c, err)
			return
		}
	}
	c.JSON(http.StatusOK, out)
}

// pickFields keeps the fields asked for (plus links), from 1.8.
func pickFields(doc map[string]any, fields string, v Version) (map[string]any, error) {
	if !v.AtLeast(8) {
		return nil, notAcceptable()
	}
	out := map[string]any{"links": doc["links"]}
	for f := range strings.SplitSeq(fields, ",") {
		f = strings.TrimSpace(f)
		val, ok := doc[f]
		if !ok {
			return nil, badRequest("Field(s) %q are not valid", f)
		}
		out[f] = val
	}
	return out, nil
}

func parseBool(name, s string) (*bool, error) {
	if s == "" {
		return nil, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return nil, badRequest("Invalid value for %s: %q is not a boolean.", name, s)
	}
	return &b, nil
}

// unsupportedFilters are Ironic node filters ironfleet cannot apply:
// refusing them beats answering an unfiltered list as if filtered.
var unsupportedFilters = []string{"instance_uuid", "resource_class", "fault", "owner", "lessee",
	"project", "description_contains", "retired", "shard", "sharded", "conductor", "include_children", "parent_node"}

// nodeQuery reads a list's filters, sort and page from the query string.
func nodeQuery(c *gin.Context, v Version) (transport.NodeQuery, int, error) {
	var q transport.NodeQuery
	limit := transport.MaxLimit
	if l := c.Query("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			return q, 0, badRequest("Limit must be a non-negative integer, got %q.", l)
		}
		if n > 0 && n < limit {
			limit = n
		}
	}
	q.Limit = limit
	q.Marker = c.Query("marker")
	if q.Marker != "" && !isUUID(q.Marker) {
		return q, 0, badRequest("Marker %q is not a node UUID.", q.Marker)
	}
	for _, f := range unsupportedFilters {
		if c.Query(f) != "" {
			return q, 0, badRequest("The %s filter is not supported by ironfleet.", f)
		}
	}
	q.SortKey, q.SortDir = c.Query("sort_key"), c.Query("sort_dir")
	gated := map[string]int{"provision_state": 9, "driver": 16, "conductor_group": 46}
	for k, minor := range gated {
		if c.Query(k) != "" && !v.AtLeast(minor) {
			return q, 0, notAcceptable()
		}
	}
	q.ProvisionState = wire.ProvisionState(c.Query("provision_state"))
	q.ChassisUUID = strings.ToLower(c.Query("chassis_uuid"))
	if c.Param("chassis") != "" {
		q.ChassisUUID = strings.ToLower(c.Param("chassis"))
	}
	q.Driver = c.Query("driver")
	if g, ok := c.GetQuery("conductor_group"); ok {
		g = strings.ToLower(g)
		q.ConductorGroup = &g
	}
	var err error
	if q.Maintenance, err = parseBool("maintenance", c.Query("maintenance")); err != nil {
		return q, 0, err
	}
	if q.Associated, err = parseBool("associated", c.Query("associated")); err != nil {
		return q, 0, err
	}
	return q, limit, nil
}

func (s *Server) listNodes(detail bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		v := version(c)
		if d := c.Query("detail"); d != "" {
			b, err := parseBool("detail", d)
			if err != nil {
				s.fail(c, err)
				return
			}
			if detail || !v.AtLeast(43) {
				s.fail(c, badRequest("The detail parameter is only valid on /v1/nodes from version 1.43."))
				return
			}
			detail = *b
		}
		fields := c.Query("fields")
		if detail && fields != "" {
			s.fail(c, badRequest("Can not specify ?detail=True and fields in the same request."))
			return
		}
		q, limit, err := nodeQuery(c, v)
		if err != nil {
			s.fail(c, err)
			return
		}
		nodes, err := s.deps.Nodes.List(q)
		if err != nil {
			s.fail(c, err)
			return
		}
		base := s.base(c)
		var held map[string]string
		if detail || strings.Contains(fields, "reservation") {
			held = s.reservations(c.Request.Context())
		}
		out := make([]map[string]any, 0, len(nodes))
		for _, n := range nodes {
			if !detail && fields == "" {
				out = append(out, renderNodeShort(n, base, v))
				continue
			}
			doc := renderNode(n, held[n.UUID], base, v)
			switch {
			case fields != "":
				if doc, err = pickFields(doc, fields, v); err != nil {
					s.fail(c, err)
					return
				}
			}
			out = append(out, doc)
		}
		body := gin.H{"nodes": out}
		if len(nodes) == limit && limit > 0 {
			next := nextURL(base, c.Request.URL, limit, nodes[len(nodes)-1].UUID)
			// Ironic sends "next"; gophercloud reads only "nodes_links".
			body["next"] = next
			body["nodes_links"] = []link{{Href: next, Rel: "next"}}
		}
		c.JSON(http.StatusOK, body)
	}
}

// nextURL is the request's URL with limit and marker set for the next page.
func nextURL(base string, u *url.URL, limit int, marker string) string {
	q := u.Query()
	q.Set("limit", strconv.Itoa(limit))
	q.Set("marker", marker)
	return base + u.Path + "?" + q.Encode()
}

// readBody reads the (size-limited) body.
func readBody(c *gin.Context) ([]byte, error) {
	b, err := io.ReadAll(c.Request.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, err
		}
		return nil, badRequest("Reading the request body: %v", err)
	}
	return b, nil
}

// decodeObject reads the body as one JSON object.
func decodeObject(c *gin.Context) (map[string]json.RawMessage, error) {
	b, err := readBody(c)
	if err != nil {
		return nil, err
	}
	return parseObject(b)
}

func parseObject(b []byte) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&m); err != nil {
		return nil, badRequest("The request body is not a JSON object: %v", err)
	}
	if dec.More() {
		return nil, badRequest("The request body holds more than one JSON value.")
	}
	if m == nil {
		return nil, badRequest("The request body must be a JSON object.")
	}
	return m, nil
}

// nodeDoc is the writable part of a node as clients see it: the body of a
// create, and the document a PATCH is applied to.
type nodeDoc struct {
	Name              *string        `json:"name"`
	Description       *string        `json:"description"`
	Driver            *string        `json:"driver"`
	DriverInfo        map[string]any `json:"driver_info"`
	InstanceInfo      map[string]any `json:"instance_info"`
	Properties        map[string]any `json:"properties"`
	Extra             map[string]any `json:"extra"`
	InstanceUUID      *string        `json:"instance_uuid"`
	Maintenance       *bool          `json:"maintenance"`
	MaintenanceReason *string        `json:"maintenance_reason"`
	ConductorGroup    *string        `json:"conductor_group"`
	ResourceClass     *string        `json:"resource_class"`
	Owner             *string        `json:"owner"`
	Lessee            *string        `json:"lessee"`
	AutomatedClean    *bool          `json:"automated_clean"`
	Protected         *bool          `json:"protected"`
	ChassisUUID       *string        `json:"chassis_uuid"`

	BiosInterface       *string `json:"bios_interface"`
	BootInterface       *string `json:"boot_interface"`
	ConsoleInterface    *string `json:"console_interface"`
	DeployInterface     *string `json:"deploy_interface"`
	FirmwareInterface   *string `json:"firmware_interface"`
	InspectInterface    *string `json:"inspect_interface"`
	ManagementInterface *string `json:"management_interface"`
	NetworkInterface    *string `json:"network_interface"`
	PowerInterface      *string `json:"power_interface"`
	RaidInterface       *string `json:"raid_interface"`
	RescueInterface     *string `json:"rescue_interface"`
	StorageInterface    *string `json:"storage_interface"`
	VendorInterface     *string `json:"vendor_interface"`
}

// interfaces are d's interface fields by kind.
func (d *nodeDoc) interfaces() map[hardware.Kind]**string {
	return map[hardware.Kind]**string{
		hardware.Bios: &d.BiosInterface, hardware.Boot: &d.BootInterface, hardware.Console: &d.ConsoleInterface,
		hardware.Deploy: &d.DeployInterface, hardware.Firmware: &d.FirmwareInterface, hardware.Inspect: &d.InspectInterface,
		hardware.Management: &d.ManagementInterface, hardware.Network: &d.NetworkInterface, hardware.Power: &d.PowerInterface,
		hardware.Raid: &d.RaidInterface, hardware.Rescue: &d.RescueInterface, hardware.Storage: &d.StorageInterface,
		hardware.Vendor: &d.VendorInterface,
	}
}

// writable are nodeDoc's keys.
var writable = []string{"name", "description", "driver", "driver_info", "instance_info", "properties", "extra",
	"instance_uuid", "maintenance", "maintenance_reason", "conductor_group", "resource_class", "owner", "lessee",
	"automated_clean", "protected", "chassis_uuid",
	"bios_interface", "boot_interface", "console_interface", "deploy_interface", "firmware_interface", "inspect_interface",
	"management_interface", "network_interface", "power_interface", "raid_interface", "rescue_interface",
	"storage_interface", "vendor_interface"}

func strp(s string) *string { return &s }

// docOf is n's writable part, secrets unmasked (it never leaves the
// server; applyPatch seals them before a patch sees it).
func docOf(n wire.Node) nodeDoc {
	opt := func(s string) *string {
		if s == "" {
			return nil
		}
		return strp(s)
	}
	d := nodeDoc{
		Name: opt(n.Name), Description: opt(n.Description), Driver: strp(n.Driver),
		DriverInfo: orEmpty(n.DriverInfo), InstanceInfo: orEmpty(n.InstanceInfo), Properties: orEmpty(n.Properties),
		Extra: orEmpty(n.Extra), InstanceUUID: opt(n.InstanceUUID), Maintenance: &n.Maintenance,
		MaintenanceReason: opt(n.MaintenanceReason), ConductorGroup: strp(n.ConductorGroup),
		ResourceClass: opt(n.ResourceClass), Owner: opt(n.Owner), Lessee: opt(n.Lessee),
		AutomatedClean: n.AutomatedClean, Protected: &n.Protected, ChassisUUID: opt(n.ChassisUUID),
	}
	for k, field := range d.interfaces() {
		*field = opt(hardware.Of(n, k))
	}
	return d
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// applyDoc validates d and writes it onto n.
func (s *Server) applyDoc(n *wire.Node, d nodeDoc) error {
	old := *n
	driver := deref(d.Driver)
	if driver == "" {
		return badRequest("Mandatory field missing: driver.")
	}
	if !slices.Contains(s.drivers, driver) {
		return badRequest("No valid host was found. Reason: No conductor service registered which supports driver %s for conductor group %q.",
			driver, deref(d.ConductorGroup))
	}
	name := deref(d.Name)
	if name != "" && (!nameRe.MatchString(name) || isUUID(name)) {
		return badRequest("Expected a logical name but received %q: letters, digits and ._~- only, not a UUID.", name)
	}
	iu := deref(d.InstanceUUID)
	if iu != "" && !isUUID(iu) {
		return badRequest("Expected a UUID for instance_uuid but received %q.", iu)
	}
	group := strings.ToLower(deref(d.ConductorGroup))
	if !groupRe.MatchString(group) {
		return badRequest("Invalid conductor_group %q: letters, digits, '-' and '_' only.", group)
	}
	n.Name, n.Description, n.Driver = name, deref(d.Description), driver
	n.DriverInfo, n.InstanceInfo, n.Properties, n.Extra = d.DriverInfo, d.InstanceInfo, d.Properties, d.Extra
	n.InstanceUUID = strings.ToLower(iu)
	n.Maintenance = deref(d.Maintenance)
	n.MaintenanceReason = deref(d.MaintenanceReason)
	if !n.Maintenance {
		n.MaintenanceReason, n.Fault = "", ""
	}
	n.ConductorGroup = group
	n.ResourceClass, n.Owner, n.Lessee = deref(d.ResourceClass), deref(d.Owner), deref(d.Lessee)
	n.AutomatedClean = d.AutomatedClean
	n.Protected = deref(d.Protected)
	n.ChassisUUID = strings.ToLower(deref(d.ChassisUUID))
	return applyInterfaces(n, old, d)
}

// applyInterfaces writes d's interface choices onto n: an empty or null
// one runs the hardware type's default, as does one a driver change left
// behind (a value the new type does not offer that the client did not
// write: it was the old type's). A choice the type does not offer is 400.
func applyInterfaces(n *wire.Node, before wire.Node, d nodeDoc) error {
	t, _ := hardware.Lookup(deref(d.Driver))
	chosen := map[string]string{}
	for k, field := range d.interfaces() {
		impl := deref(*field)
		if impl == "" || impl == t.Offers[k].Default {
			continue
		}
		if before.Driver != t.Name && impl == hardware.Of(before, k) && t.Check(k, impl) != nil {
			continue
		}
		if err := t.Check(k, impl); err != nil {
			return err
		}
		chosen[string(k)] = impl
	}
	n.Interfaces = nil
	if len(chosen) > 0 {
		n.Interfaces = chosen
	}
	return nil
}

// decodeDoc decodes a writable document, rejecting unknown keys.
func decodeDoc(raw []byte) (nodeDoc, error) {
	var d nodeDoc
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return d, badRequest("Invalid node: %v", err)
	}
	return d, nil
}

func (s *Server) createNode(c *gin.Context) {
	v := version(c)
	body, err := decodeObject(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	var n wire.Node
	if raw, ok := body["uuid"]; ok {
		var id string
		if err := json.Unmarshal(raw, &id); err != nil || !isUUID(id) {
			s.fail(c, badRequest("Expected a UUID for uuid but received %s.", raw))
			return
		}
		n.UUID = strings.ToLower(id)
		delete(body, "uuid")
	}
	var driver string
	_ = json.Unmarshal(body["driver"], &driver)
	for k := range body {
		if !slices.Contains(writable, k) || k == "maintenance" || k == "maintenance_reason" {
			s.fail(c, badRequest("Unknown attribute for node: %s.", k))
			return
		}
		if !fieldIn(k, v) {
			s.fail(c, notAcceptable())
			return
		}
	}
	raw, _ := json.Marshal(body) // re-encoding decoded JSON cannot fail
	d, err := decodeDoc(raw)
	if err != nil {
		s.fail(c, err)
		return
	}
	if d.Driver == nil {
		s.fail(c, badRequest("Mandatory field missing: driver."))
		return
	}
	if d.ConductorGroup == nil {
		d.ConductorGroup = strp("")
	}
	if err := s.applyDoc(&n, d); err != nil {
		s.fail(c, err)
		return
	}
	if !v.AtLeast(11) {
		n.ProvisionState = wire.StateAvailable // before 1.11 new nodes started available
	}
	ctx := c.Request.Context()
	if err := s.checkChassis(ctx, "", n.ChassisUUID, v); err != nil {
		s.fail(c, err)
		return
	}
	created, err := s.deps.Nodes.CreateNode(ctx, n)
	if errors.Is(err, transport.ErrExists) {
		if n.Name != "" {
			err = wire.Errorf(wire.CodeConflict, "A node with name %s already exists.", n.Name)
		} else {
			err = wire.Errorf(wire.CodeConflict, "A node with UUID %s already exists.", n.UUID)
		}
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	s.syncCache(ctx)
	c.Header("Location", s.base(c)+"/v1/nodes/"+created.UUID)
	c.JSON(http.StatusCreated, renderNode(created, "", s.base(c), v))
}

// syncCache waits, briefly, until this process's cache has its own write,
// so that the client's next read here sees it.
func (s *Server) syncCache(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.LockViewTimeout)
	defer cancel()
	if err := s.deps.Nodes.Sync(ctx); err != nil {
		s.log.WarnContext(ctx, "inventory cache did not catch up with a write", "err", err)
	}
}

// patchableAt reports whether a JSON pointer names a writable field at v.
func patchableAt(path string, v Version) error {
	top, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	top = strings.ReplaceAll(strings.ReplaceAll(top, "~1", "/"), "~0", "~")
	if !slices.Contains(writable, top) {
		return badRequest("'/%s' is an internal or read-only attribute and can not be updated.", top)
	}
	if !fieldIn(top, v) {
		return notAcceptable()
	}
	return nil
}

// decodeJSONPatch decodes a JSON Patch (RFC 6902) document: a non-empty
// list of operations.
func decodeJSONPatch(body []byte) (jsonpatch.Patch, error) {
	patch, err := jsonpatch.DecodePatch(body)
	if err != nil {
		return nil, badRequest("Invalid JSON Patch: %v", err)
	}
	if len(patch) == 0 {
		return nil, badRequest("The JSON Patch is empty.")
	}
	return patch, nil
}

// checkPatch checks every operation's kind and the paths it reads and
// writes with allow.
func checkPatch(patch jsonpatch.Patch, allow func(path string) error) error {
	for _, op := range patch {
		kind := op.Kind()
		if !slices.Contains([]string{"add", "remove", "replace", "move", "copy", "test"}, kind) {
			return badRequest("Invalid JSON Patch operation %q.", kind)
		}
		path, err := op.Path()
		if err != nil {
			return badRequest("Invalid JSON Patch: %v", err)
		}
		if err := allow(path); err != nil {
			return err
		}
		if kind == "move" || kind == "copy" {
			from, err := op.From()
			if err != nil {
				return badRequest("Invalid JSON Patch: %v", err)
			}
			if err := allow(from); err != nil {
				return err
			}
		}
	}
	return nil
}

// patchOps decodes a node's JSON Patch: operations on writable fields only.
func patchOps(body []byte, v Version) (jsonpatch.Patch, error) {
	patch, err := decodeJSONPatch(body)
	if err != nil {
		return nil, err
	}
	if err := checkPatch(patch, func(path string) error { return patchableAt(path, v) }); err != nil {
		return nil, err
	}
	return patch, nil
}

// applyJSONPatch applies patch to doc (of what, for messages). The size
// its copies add is bounded by limit, the inventory's record size: a
// result larger than that could never be stored, and unbounded copies
// (each may copy the document so far) turn a 1 KB body into gigabytes of
// memory. Exceeding it is ErrTooLarge (413), as a record over the limit is.
func applyJSONPatch(patch jsonpatch.Patch, doc []byte, limit int, ensurePaths bool, what string) ([]byte, error) {
	opts := jsonpatch.NewApplyOptions()
	opts.EnsurePathExistsOnAdd = ensurePaths
	opts.AccumulatedCopySizeLimit = int64(limit)
	out, err := patch.ApplyWithOptions(doc, opts)
	var tooBig *jsonpatch.AccumulatedCopySizeError
	switch {
	case errors.As(err, &tooBig):
		return nil, wire.Errorf(wire.CodeInvalidInput, "%w: the JSON Patch's copies would make %s larger than the inventory stores (%d bytes): %v",
			transport.ErrTooLarge, what, limit, err)
	case err != nil:
		return nil, badRequest("Applying the JSON Patch: %v", err)
	}
	return out, nil
}

// applyPatch applies a checked patch to n's writable document as the
// client sees it — its secrets sealed (sealer), so that no operation can
// read one — and decodes the result with the secrets back where they were;
// it never touches anything but writable fields.
func applyPatch(n wire.Node, patch jsonpatch.Patch, limit int) (nodeDoc, error) {
	d := docOf(n)
	sl := newSealer()
	d.DriverInfo, d.InstanceInfo = sl.seal(d.DriverInfo, "/driver_info"), sl.seal(d.InstanceInfo, "/instance_info")
	doc, err := json.Marshal(d)
	if err != nil {
		return nodeDoc{}, fmt.Errorf("api: node %s document: %w", n.UUID, err)
	}
	out, err := applyJSONPatch(patch, doc, limit, true, "node "+n.UUID)
	if err != nil {
		return nodeDoc{}, err
	}
	if d, err = decodeDoc(out); err != nil {
		return nodeDoc{}, err
	}
	if d.DriverInfo, err = sl.unseal(d.DriverInfo, "/driver_info"); err != nil {
		return nodeDoc{}, err
	}
	if d.InstanceInfo, err = sl.unseal(d.InstanceInfo, "/instance_info"); err != nil {
		return nodeDoc{}, err
	}
	if sl.leaked(out) {
		return nodeDoc{}, badRequest("A JSON Patch may not copy or move a secret (a value shown as %s) out of driver_info or instance_info.", Mask)
	}
	return d, nil
}

func (s *Server) patchNode(c *gin.Context) {
	v := version(c)
	body, err := readBody(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	patch, err := patchOps(body, v)
	if err != nil {
		s.fail(c, err)
		return
	}
	n, err := s.findNode(c, c.Param("node"))
	if err != nil {
		s.fail(c, err)
		return
	}
	ctx := c.Request.Context()
	var updated wire.Node
	err = s.underLock(ctx, n.UUID, "node update", func(ctx context.Context, fence uint64) error {
		var err error
		updated, err = s.deps.Nodes.UpdateNode(ctx, n.UUID, fence, func(cur *wire.Node) error {
			d, err := applyPatch(*cur, patch, s.deps.Nodes.MaxRecordBytes())
			if err != nil {
				return err
			}
			before := cur.ChassisUUID
			if err := s.applyDoc(cur, d); err != nil {
				return err
			}
			return s.checkChassis(ctx, before, cur.ChassisUUID, v)
		})
		return err
	})
	if errors.Is(err, transport.ErrExists) {
		err = wire.Errorf(wire.CodeConflict, "A node with name %s already exists.", n.Name)
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	s.syncCache(ctx)
	c.JSON(http.StatusOK, renderNode(updated, s.reservation(ctx, updated.UUID), s.base(c), v))
}

// deletableStates lists, for the message, the states a node may be deleted in.
func deletableStates() string {
	var out []string
	for st := range provision.States {
		if provision.Deletable(st) {
			out = append(out, "'"+string(st)+"'")
		}
	}
	slices.Sort(out)
	return "(" + strings.Join(out, ", ") + ")"
}

func (s *Server) deleteNode(c *gin.Context) {
	n, err := s.findNode(c, c.Param("node"))
	if err != nil {
		s.fail(c, err)
		return
	}
	ctx := c.Request.Context()
	check := func(n wire.Node) error {
		if n.Protected {
			return badRequest("Node %s is protected and cannot be undeployed, rebuilt or deleted.", n.UUID)
		}
		if !provision.Deletable(n.ProvisionState) && !n.Maintenance {
			return wire.Errorf(wire.CodeConflict, "Can not delete node %q while it is in provision state %q. Valid provision states to perform deletion are: %q, or set the node into maintenance mode",
				n.UUID, n.ProvisionState, deletableStates())
		}
		return nil
	}
	if err := check(n); err != nil {
		s.fail(c, err)
		return
	}
	err = s.underLock(ctx, n.UUID, "delete", func(ctx context.Context, fence uint64) error {
		fresh, err := s.deps.Nodes.Get(ctx, n.UUID)
		if wire.CodeOf(err) == wire.CodeNotFound {
			return nodeNotFound(n.UUID)
		}
		if err == nil {
			err = check(fresh)
		}
		if err == nil {
			err = s.deps.Nodes.DeleteNode(ctx, n.UUID, fence)
		}
		if err == nil {
			err = s.deleteVolumeOf(ctx, n.UUID)
		}
		if err == nil {
			err = s.deletePortgroupsOf(ctx, n.UUID)
		}
		return err
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	s.forgetLock(ctx, n.UUID)
	s.syncCache(ctx)
	c.Status(http.StatusNoContent)
}
