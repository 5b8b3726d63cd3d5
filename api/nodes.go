package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/ironfleet/ironfleet/internal/hardware"
	"io"
	"maps"
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
// it rather than failing the read. Concurrent requests' reads share round
// trips (holderBatch).
func (s *Server) reservation(ctx context.Context, uuid string) string {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.LockViewTimeout)
	defer cancel()
	snap, err := s.holders.snapshot(ctx, uuid)
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
	view := wholeNode(version(c))
	if f := c.Query("fields"); f != "" {
		if view, err = pickNodeFields(f, version(c)); err != nil {
			s.fail(c, err)
			return
		}
	}
	var holder string
	if view.has("reservation") { // a lock read only when it is shown
		holder = s.reservation(c.Request.Context(), n.UUID)
	}
	s.writeNode(c, http.StatusOK, &n, holder, view)
}

// pickFields keeps the fields asked for (plus links), from 1.8, as
// Ironic's check_allow_specify_fields, check_allowed_fields and
// check_for_invalid_fields (ironic/api/controllers/v1/utils.py) do: a
// field newer than the request is 406, one the resource does not have is
// 400 naming every such field. since gives each field's microversion (a
// field absent from it is in every version). Nodes have their own,
// pickNodeFields.
func pickFields(doc map[string]any, fields string, v Version, since map[string]int) (map[string]any, error) {
	if !v.AtLeast(8) {
		return nil, notAcceptable()
	}
	names := splitFields(fields)
	for _, f := range names {
		if min, ok := since[f]; ok && !v.AtLeast(min) {
			return nil, notAcceptable()
		}
	}
	out := map[string]any{"links": doc["links"]}
	var invalid []string
	for _, f := range names {
		val, ok := doc[f]
		if !ok {
			invalid = append(invalid, f)
			continue
		}
		out[f] = val
	}
	if len(invalid) > 0 {
		return nil, badRequest("Field(s) \"%s\" are not valid", strings.Join(invalid, ", "))
	}
	return out, nil
}

// splitFields splits a fields parameter (comma-separated, as Ironic's
// args.string_list) into names.
func splitFields(fields string) []string {
	var out []string
	for f := range strings.SplitSeq(fields, ",") {
		if f = strings.TrimSpace(f); f != "" && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
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

// nodeFilterVersion is the microversion each node list filter appeared in
// (Ironic's check_allow_filter_by_* and check_allow_child_node_params in
// ironic/api/controllers/v1/utils.py); a filter absent here is in every
// version. Older requests get 406, as Ironic answers.
var nodeFilterVersion = map[string]int{
	"provision_state": 9, "driver": 16, "resource_class": 21, "fault": 42, "conductor_group": 46,
	"conductor": 49, "owner": 50, "lessee": 65, "shard": 82, "sharded": 82,
	"include_children": 83, "parent_node": 83,
}

// validFaults are the faults Ironic knows (ironic/common/faults.py
// VALID_FAULTS), in its order: the fault filter accepts only these.
var validFaults = []string{"power failure", "clean failure", "rescue abort failure", "service failure"}

// nodeQuery reads a list's filters, sort and page from the query string.
func (s *Server) nodeQuery(c *gin.Context, v Version) (transport.NodeQuery, int, error) {
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
	q.SortKey, q.SortDir = c.Query("sort_key"), c.Query("sort_dir")
	if q.SortKey != "" && !fieldIn(q.SortKey, v) {
		return q, 0, notAcceptable() // check_allowed_fields([sort_key]), as Ironic
	}
	for _, k := range slices.Sorted(maps.Keys(nodeFilterVersion)) {
		if _, ok := c.GetQuery(k); ok && !v.AtLeast(nodeFilterVersion[k]) {
			return q, 0, notAcceptableBefore(nodeFilterVersion[k])
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
	if q.InstanceUUID = strings.ToLower(c.Query("instance_uuid")); q.InstanceUUID != "" && !isUUID(q.InstanceUUID) {
		return q, 0, badRequest("Expected a UUID for instance_uuid but received %q.", c.Query("instance_uuid"))
	}
	q.ResourceClass, q.Owner, q.Lessee, q.Project = c.Query("resource_class"), c.Query("owner"), c.Query("lessee"), c.Query("project")
	q.Conductor, q.DescriptionContains = c.Query("conductor"), c.Query("description_contains")
	if q.Fault = c.Query("fault"); q.Fault != "" && !slices.Contains(validFaults, q.Fault) {
		return q, 0, badRequest("Unrecognized fault %q is specified, allowed faults are ('%s')", q.Fault, strings.Join(validFaults, "', '"))
	}
	for sh := range strings.SplitSeq(c.Query("shard"), ",") {
		if sh = strings.TrimSpace(sh); sh != "" {
			q.Shards = append(q.Shards, sh)
		}
	}
	var err error
	bools := []struct {
		name string
		dst  **bool
	}{{"maintenance", &q.Maintenance}, {"associated", &q.Associated}, {"retired", &q.Retired}, {"sharded", &q.Sharded}}
	for _, b := range bools {
		if *b.dst, err = parseBool(b.name, c.Query(b.name)); err != nil {
			return q, 0, err
		}
	}
	children, err := parseBool("include_children", c.Query("include_children"))
	if err != nil {
		return q, 0, err
	}
	// Ironic lists only the nodes without a parent unless include_children
	// is true (ironic/db/sqlalchemy/api.py _add_nodes_filters); parent_node
	// lists that node's children. Unlike Ironic, which drops parent_node
	// when include_children is true, both apply: a filter sent is a filter
	// honoured.
	top := ""
	switch parent := c.Query("parent_node"); {
	case parent != "":
		p, err := s.parentUUID(c.Request.Context(), parent)
		if err != nil {
			return q, 0, err
		}
		q.ParentNode = &p
	case children == nil || !*children:
		q.ParentNode = &top
	}
	return q, limit, nil
}

// parentUUID resolves a parent_node filter: a UUID as given, a name to
// its node's UUID. A name no node has matches nothing, as in Ironic,
// where the filter compares the stored UUID.
func (s *Server) parentUUID(ctx context.Context, ident string) (string, error) {
	if isUUID(ident) {
		return strings.ToLower(ident), nil
	}
	n, err := s.deps.Nodes.NodeByName(ctx, ident)
	switch {
	case wire.CodeOf(err) == wire.CodeNotFound:
		return ident, nil
	case err != nil:
		return "", err
	}
	return n.UUID, nil
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
		view := shortNode(v)
		switch {
		case detail:
			view = wholeNode(v)
		case fields != "":
			// Checked before the query, so that an empty page refuses a
			// bad field too.
			var err error
			if view, err = pickNodeFields(fields, v); err != nil {
				s.fail(c, err)
				return
			}
		}
		q, limit, err := s.nodeQuery(c, v)
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
		if view.has("reservation") {
			held = s.reservations(c.Request.Context())
		}
		var next string
		// One node per instance: Ironic sends no next link for an
		// instance_uuid query (NodesController._get_nodes_collection).
		if len(nodes) == limit && limit > 0 && q.InstanceUUID == "" {
			next = nextURL(base, c.Request.URL, limit, nodes[len(nodes)-1].UUID)
		}
		s.writeBody(c, http.StatusOK, func(b []byte) ([]byte, error) {
			return appendNodeList(b, nodes, held, base, v, view, next)
		})
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
	ParentNode        *string        `json:"parent_node"`
	DisablePowerOff   *bool          `json:"disable_power_off"`
	ChassisUUID       *string        `json:"chassis_uuid"`
	NetworkData       map[string]any `json:"network_data"`

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
	"automated_clean", "protected", "parent_node", "disable_power_off", "chassis_uuid", "network_data",
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
		AutomatedClean: n.AutomatedClean, Protected: &n.Protected, ParentNode: opt(n.ParentNode),
		ChassisUUID: opt(n.ChassisUUID), NetworkData: orEmpty(n.NetworkData),
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
	if deref(d.DisablePowerOff) {
		// Ironic then never powers the node off: reboots instead of power
		// cycles in every flow, power off refused. ironfleet's flows power
		// nodes off, so the only value it can honour is false.
		return badRequest("disable_power_off is not supported by ironfleet: its deploy, clean and inspect flows power nodes off.")
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
	n.NetworkData = d.NetworkData
	if len(n.NetworkData) == 0 {
		n.NetworkData = nil
	}
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
	if err := newerFields(body, v); err != nil {
		s.fail(c, err)
		return
	}
	for k := range body {
		if !slices.Contains(writable, k) || k == "maintenance" || k == "maintenance_reason" {
			s.fail(c, badRequest("Unknown attribute for node: %s.", k))
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
	if err := s.linkParent(c.Request.Context(), &n, "", d); err != nil {
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
	s.writeNode(c, http.StatusCreated, &created, "", wholeNode(v))
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

// patchableAt reports whether a JSON pointer names a writable field at v:
// a field newer than v is 406 before anything else, as Ironic's
// reject_patch_in_newer_versions (ironic/api/controllers/v1/node.py).
func patchableAt(path string, v Version) error {
	top, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	top = strings.ReplaceAll(strings.ReplaceAll(top, "~1", "/"), "~0", "~")
	if !fieldIn(top, v) {
		return notAcceptable()
	}
	if !slices.Contains(writable, top) {
		return badRequest("'/%s' is an internal or read-only attribute and can not be updated.", top)
	}
	return nil
}

// newerFields applies Ironic's reject_fields_in_newer_versions
// (ironic/api/controllers/v1/node.py) to a create body: a field newer
// than v is 406 unless its value is null (or "" for conductor_group),
// which is its default and is dropped.
func newerFields(body map[string]json.RawMessage, v Version) error {
	for k, raw := range body {
		if fieldIn(k, v) {
			continue
		}
		if val := strings.TrimSpace(string(raw)); val == "null" || k == "conductor_group" && val == `""` {
			delete(body, k)
			continue
		}
		return notAcceptable()
	}
	return nil
}

// badParent is Ironic's answer to a parent_node that names no node it
// may link to (authorize_node_link in ironic/api/controllers/v1/utils.py):
// the same words whether the node is missing or another owner's.
func badParent(value string) error {
	return badRequest("Unable to apply the requested parent_node '%s'. Requested value was invalid.", value)
}

// linkParent sets n's parent from d: the node named (by UUID or name)
// must exist, have n's owner and not be n. A value unchanged from
// before (the parent's UUID) is kept without a lookup, so a PATCH of
// other fields does not fail on a parent deleted since.
func (s *Server) linkParent(ctx context.Context, n *wire.Node, before string, d nodeDoc) error {
	ident := deref(d.ParentNode)
	switch {
	case ident == "":
		n.ParentNode = ""
		return nil
	case strings.EqualFold(ident, before):
		n.ParentNode = before
		return nil
	}
	var (
		p   wire.Node
		err error
	)
	if isUUID(ident) {
		p, err = s.deps.Nodes.Get(ctx, strings.ToLower(ident))
	} else {
		p, err = s.deps.Nodes.NodeByName(ctx, ident)
	}
	switch {
	case wire.CodeOf(err) == wire.CodeNotFound:
		return badParent(ident)
	case err != nil:
		return err
	case p.UUID == n.UUID, p.Owner != n.Owner:
		return badParent(ident)
	}
	n.ParentNode = p.UUID
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
	reset, err := resetInterfaces(c, v, patch)
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
	// refused is the patch's own refusal, which the client reads in
	// Ironic's words, without the inventory's wrapping.
	var refused error
	err = s.underLock(ctx, n.UUID, "node update", func(ctx context.Context, fence uint64) error {
		var err error
		var drop string // the allocation a removed instance_uuid ends
		updated, err = s.deps.Nodes.UpdateNode(ctx, n.UUID, fence, func(cur *wire.Node) error {
			drop, refused = s.applyNodePatch(ctx, cur, patch, reset, v)
			return refused
		})
		if err == nil && drop != "" {
			err = s.deps.Records.DropAllocation(ctx, drop)
		}
		return err
	})
	if refused != nil {
		err = refused
	}
	if errors.Is(err, transport.ErrExists) {
		err = wire.Errorf(wire.CodeConflict, "A node with name %s already exists.", n.Name)
	}
	// The client reads the refusal itself, not the store's "update node"
	// context around it.
	if bad := (*wire.Error)(nil); errors.As(err, &bad) && bad.Code() == wire.CodeInvalidInput {
		err = bad
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	s.syncCache(ctx)
	s.writeNode(c, http.StatusOK, &updated, s.reservation(ctx, updated.UUID), wholeNode(v))
}

// applyNodePatch applies patch to cur: the patched document, the interface
// rules (interfacesUpdatable, ?reset_interfaces), applyDoc, the parent
// node (1.83), the chassis; it returns the allocation a removed instance_uuid ends.
func (s *Server) applyNodePatch(ctx context.Context, cur *wire.Node, patch jsonpatch.Patch, reset bool, v Version) (drop string, err error) {
	before := *cur
	d, err := applyPatch(*cur, patch, s.deps.Nodes.MaxRecordBytes())
	if err != nil {
		return "", err
	}
	if err := interfacesUpdatable(*cur, d); err != nil {
		return "", err
	}
	if reset {
		d.resetUnwritten(patch)
	}
	if err := s.applyDoc(cur, d); err != nil {
		return "", err
	}
	if err := s.linkParent(ctx, cur, before.ParentNode, d); err != nil {
		return "", err
	}
	if err := s.checkChassis(ctx, before.ChassisUUID, cur.ChassisUUID, v); err != nil {
		return "", err
	}
	return instanceChange(before, cur)
}

// deletableStates lists, for the message, the states a node may be
// deleted in, as Ironic prints its tuple: "('manageable', 'enroll', …)".
func deletableStates() string {
	out := make([]string, len(provision.DeleteAllowed))
	for i, st := range provision.DeleteAllowed {
		out[i] = "'" + string(st) + "'"
	}
	return "(" + strings.Join(out, ", ") + ")"
}

func (s *Server) deleteNode(c *gin.Context) {
	n, err := s.findNode(c, c.Param("node"))
	if err != nil {
		s.fail(c, err)
		return
	}
	ctx := c.Request.Context()
	// Ironic's destroy_node, in its order: an instance's node, a protected
	// node, a node in a state that may hold work or a tenant's data; the
	// instance and state rules are waived in maintenance.
	check := func(n wire.Node) error {
		if !n.Maintenance && n.InstanceUUID != "" {
			return wire.Errorf(wire.CodeConflict, "Node %s is associated with instance %s.", n.UUID, n.InstanceUUID)
		}
		if n.Protected {
			return badRequest("Node %s is protected and cannot be undeployed, rebuilt or deleted.", n.UUID)
		}
		if n.InstanceUUID != "" && !n.Maintenance {
			// Ironic's destroy_node (ironic/conductor/manager.py): NodeAssociated.
			return wire.Errorf(wire.CodeConflict, "Node %s is associated with instance %s.", n.UUID, n.InstanceUUID)
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
	if err := s.deps.Records.ForgetNode(context.WithoutCancel(ctx), n.UUID); err != nil {
		// The node is gone; what referred to it is left behind, and said so.
		s.log.WarnContext(ctx, "records of a deleted node remain", "node", n.UUID, "err", err)
	}
	s.syncCache(ctx)
	c.Status(http.StatusNoContent)
}
