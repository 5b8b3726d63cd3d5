package api

import (
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/ironfleet/ironfleet/internal/hardware"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// A node is rendered by appending its JSON object field by field, from a
// table (nodeFields) kept in the order encoding/json writes a map's keys
// (sorted by name), so that the bytes are those of the map[string]any the
// renderer used to build and encoding/json used to sort: every response
// GET, list, create, PATCH and states send is byte for byte what it was
// (TestNodeRenderingIsTheMap holds it to that reference at every
// microversion). Building a map of ~70 entries and sorting its keys was
// most of a GET's CPU; writing the fields in a fixed order is not.
//
// A nodeView says which fields a rendering writes: the whole node at a
// version, a list item without detail, the states document, or a fields=
// selection. All four are the same renderer.

// nodeField is one field of a rendered node: its name and how its value is
// appended.
type nodeField struct {
	name  string
	value func(b []byte, r *nodeRender) []byte
}

// nodeRender is what one rendering's fields are written from.
type nodeRender struct {
	n           *wire.Node
	reservation string
	base        string
	path        string // "nodes/<uuid>"
	v           Version
	// internal, clean and deploy are driver_internal_info, clean_step and
	// deploy_step, computed together (stepsOf), only when one is written.
	internal, clean, deploy map[string]any
	err                     error // the first value encoding/json refused
}

// nodeSubLinks are the links a node carries only when rendered whole:
// they are not fields a fields= selection may name.
var nodeSubLinks = []string{"ports", "states", "portgroups", "volume"}

// nodeFields is every field a node can render, sorted by name.
var nodeFields = func() []nodeField {
	str := func(get func(n *wire.Node) string) func([]byte, *nodeRender) []byte {
		return func(b []byte, r *nodeRender) []byte { return appendNullable(b, get(r.n)) }
	}
	null := func(b []byte, _ *nodeRender) []byte { return append(b, "null"...) }
	link := func(sub string) func([]byte, *nodeRender) []byte {
		return func(b []byte, r *nodeRender) []byte { return appendLinks(b, r.base, r.path+sub) }
	}
	object := func(get func(r *nodeRender) map[string]any) func([]byte, *nodeRender) []byte {
		return func(b []byte, r *nodeRender) []byte { return r.appendObject(b, get(r)) }
	}
	fields := []nodeField{
		{"uuid", func(b []byte, r *nodeRender) []byte { return appendString(b, r.n.UUID) }},
		{"name", str(func(n *wire.Node) string { return n.Name })},
		{"created_at", func(b []byte, r *nodeRender) []byte { return appendTime(b, r.n.CreatedAt) }},
		{"updated_at", func(b []byte, r *nodeRender) []byte { return appendTime(b, r.n.UpdatedAt) }},
		{"automated_clean", func(b []byte, r *nodeRender) []byte {
			if r.n.AutomatedClean == nil {
				return append(b, "null"...)
			}
			return appendBool(b, *r.n.AutomatedClean)
		}},
		{"boot_mode", null},
		{"clean_step", object(func(r *nodeRender) map[string]any { return r.clean })},
		{"conductor_group", func(b []byte, r *nodeRender) []byte { return appendString(b, r.n.ConductorGroup) }},
		{"console_enabled", func(b []byte, r *nodeRender) []byte { return appendBool(b, r.n.ConsoleEnabled) }},
		{"deploy_step", object(func(r *nodeRender) map[string]any { return r.deploy })},
		{"description", str(func(n *wire.Node) string { return n.Description })},
		{"driver", func(b []byte, r *nodeRender) []byte { return appendString(b, r.n.Driver) }},
		{"driver_info", object(func(r *nodeRender) map[string]any { return masked(r.n.DriverInfo) })},
		{"driver_internal_info", object(func(r *nodeRender) map[string]any { return r.internal })},
		{"extra", object(func(r *nodeRender) map[string]any { return r.n.Extra })},
		{"fault", str(func(n *wire.Node) string { return n.Fault })},
		{"inspection_finished_at", null},
		{"inspection_started_at", null},
		{"instance_info", object(func(r *nodeRender) map[string]any { return masked(r.n.InstanceInfo) })},
		{"instance_uuid", str(func(n *wire.Node) string { return n.InstanceUUID })},
		{"last_error", str(func(n *wire.Node) string { return n.LastError })},
		{"lessee", str(func(n *wire.Node) string { return n.Lessee })},
		{"maintenance", func(b []byte, r *nodeRender) []byte { return appendBool(b, r.n.Maintenance) }},
		{"maintenance_reason", str(func(n *wire.Node) string { return n.MaintenanceReason })},
		{"network_data", object(func(r *nodeRender) map[string]any { return r.n.NetworkData })},
		{"owner", str(func(n *wire.Node) string { return n.Owner })},
		{"power_state", str(func(n *wire.Node) string { return string(n.PowerState) })},
		{"properties", object(func(r *nodeRender) map[string]any { return r.n.Properties })},
		{"protected", func(b []byte, r *nodeRender) []byte { return appendBool(b, r.n.Protected) }},
		{"protected_reason", null},
		{"provision_state", func(b []byte, r *nodeRender) []byte {
			if !r.v.AtLeast(2) && r.n.ProvisionState == wire.StateAvailable {
				return append(b, "null"...) // before 1.2, "available" was spelled None
			}
			return appendNullable(b, string(r.n.ProvisionState))
		}},
		{"provision_updated_at", func(b []byte, r *nodeRender) []byte { return appendTime(b, r.n.ProvisionUpdatedAt) }},
		{"raid_config", object(func(r *nodeRender) map[string]any { return r.n.RAIDConfig })},
		{"reservation", func(b []byte, r *nodeRender) []byte { return appendNullable(b, r.reservation) }},
		{"resource_class", str(func(n *wire.Node) string { return n.ResourceClass })},
		{"retired", func(b []byte, _ *nodeRender) []byte { return append(b, "false"...) }},
		{"retired_reason", null},
		{"secure_boot", null},
		{"shard", null},
		{"target_power_state", str(func(n *wire.Node) string { return string(n.TargetPowerState) })},
		{"target_provision_state", str(func(n *wire.Node) string { return string(n.TargetProvisionState) })},
		{"target_raid_config", object(func(r *nodeRender) map[string]any { return r.n.TargetRAIDConfig })},
		{"traits", func(b []byte, r *nodeRender) []byte {
			b = append(b, '[')
			for i, t := range r.n.Traits {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendString(b, t)
			}
			return append(b, ']')
		}},
		{"conductor", str(func(n *wire.Node) string { return n.Conductor })},
		{"allocation_uuid", str(func(n *wire.Node) string { return n.AllocationUUID })},
		{"chassis_uuid", str(func(n *wire.Node) string { return n.ChassisUUID })},
		{"parent_node", str(func(n *wire.Node) string { return n.ParentNode })},
		{"service_step", func(b []byte, _ *nodeRender) []byte { return append(b, "{}"...) }},
		{"disable_power_off", func(b []byte, _ *nodeRender) []byte { return append(b, "false"...) }},
		{"links", link("")},
		{"ports", link("/ports")},
		{"states", link("/states")},
		{"portgroups", link("/portgroups")},
		{"volume", link("/volume")},
	}
	for _, k := range hardware.Kinds {
		fields = append(fields, nodeField{k.Field(), str(func(n *wire.Node) string { return hardware.Of(*n, k) })})
	}
	slices.SortFunc(fields, func(a, b nodeField) int { return strings.Compare(a.name, b.name) })
	return fields
}()

// nodeFieldIndex is each field's index in nodeFields.
var nodeFieldIndex = func() map[string]int {
	out := make(map[string]int, len(nodeFields))
	for i, f := range nodeFields {
		out[f.name] = i
	}
	return out
}()

// stepFields are the fields whose values stepsOf computes.
var stepFields = []string{"clean_step", "deploy_step", "driver_internal_info"}

// nodeView is the fields one rendering writes, as indexes into nodeFields
// in ascending order.
type nodeView struct {
	fields []int
	steps  bool // one of stepFields is written
}

// has reports whether the view writes field name.
func (w *nodeView) has(name string) bool {
	i, ok := nodeFieldIndex[name]
	return ok && slices.Contains(w.fields, i)
}

// newNodeView is the view of the named fields (each one of nodeFields).
func newNodeView(names []string) *nodeView {
	w := &nodeView{}
	for _, name := range names {
		i, ok := nodeFieldIndex[name]
		if !ok {
			panic("api: no node field " + name) // a programming error: the views below are fixed
		}
		if !slices.Contains(w.fields, i) {
			w.fields = append(w.fields, i)
		}
		w.steps = w.steps || slices.Contains(stepFields, name)
	}
	slices.Sort(w.fields)
	return w
}

// viewsAt builds one view per microversion from the fields of names that
// exist at it.
func viewsAt(names []string) []*nodeView {
	out := make([]*nodeView, MaxVersion.Minor+1)
	for minor := range out {
		var in []string
		for _, name := range names {
			if fieldIn(name, Version{Minor: minor}) {
				in = append(in, name)
			}
		}
		out[minor] = newNodeView(in)
	}
	return out
}

var (
	wholeViews = viewsAt(func() []string {
		var all []string
		for _, f := range nodeFields {
			all = append(all, f.name)
		}
		return all
	}())
	// Ironic's default fields of a list without detail
	// (_DEFAULT_RETURN_FIELDS in ironic/api/controllers/v1/node.py), with
	// name from 1.5.
	shortViews = viewsAt([]string{"uuid", "instance_uuid", "maintenance", "power_state", "provision_state", "name", "links"})
	// GET /v1/nodes/{node}/states (NodeStates in
	// ironic/api/controllers/v1/node.py).
	statesViews = viewsAt([]string{"console_enabled", "last_error", "power_state", "provision_state", "target_power_state",
		"target_provision_state", "provision_updated_at", "raid_config", "target_raid_config", "boot_mode", "secure_boot"})
)

func viewAt(views []*nodeView, v Version) *nodeView {
	return views[min(max(v.Minor, 0), len(views)-1)]
}

// wholeNode is every field of a node at v, with its sub-resource links.
func wholeNode(v Version) *nodeView { return viewAt(wholeViews, v) }

// shortNode is a list item without detail at v.
func shortNode(v Version) *nodeView { return viewAt(shortViews, v) }

// nodeStatesView is GET /v1/nodes/{node}/states at v.
func nodeStatesView(v Version) *nodeView { return viewAt(statesViews, v) }

// pickNodeFields is the view of a fields= selection: the fields asked for
// plus links, from 1.8, as Ironic's check_allow_specify_fields,
// check_allowed_fields and check_for_invalid_fields
// (ironic/api/controllers/v1/utils.py) do: a field newer than the request
// is 406, one the node does not have (or a sub-resource link) is 400
// naming every such field.
func pickNodeFields(fields string, v Version) (*nodeView, error) {
	if !v.AtLeast(8) {
		return nil, notAcceptable()
	}
	names := splitFields(fields)
	for _, f := range names {
		if min, ok := nodeFieldVersion[f]; ok && !v.AtLeast(min) {
			return nil, notAcceptable()
		}
	}
	whole := wholeNode(v)
	var invalid []string
	for _, f := range names {
		if !whole.has(f) || slices.Contains(nodeSubLinks, f) {
			invalid = append(invalid, f)
		}
	}
	if len(invalid) > 0 {
		return nil, badRequest("Field(s) \"%s\" are not valid", strings.Join(invalid, ", "))
	}
	return newNodeView(append(names, "links")), nil
}

// appendNode appends n's JSON object with the fields of view, at v;
// reservation is the holder of its lock and base the links' URL prefix.
// The error is encoding/json's, for a value in one of the node's maps it
// cannot encode (none that came from JSON).
func appendNode(b []byte, n *wire.Node, reservation, base string, v Version, view *nodeView) ([]byte, error) {
	r := nodeRender{n: n, reservation: reservation, base: base, path: "nodes/" + n.UUID, v: v}
	if view.steps {
		r.internal = agentInternalInfo(n)
		r.clean, r.deploy = stepsOf(*n, r.internal)
	}
	b = append(b, '{')
	for i, f := range view.fields {
		if i > 0 {
			b = append(b, ',')
		}
		field := &nodeFields[f]
		b = append(b, '"')
		b = append(b, field.name...) // names need no escaping
		b = append(b, '"', ':')
		b = field.value(b, &r)
	}
	return append(b, '}'), r.err
}

// agentInternalInfo is driver_internal_info's part from the agent's
// record: its URL, version and last heartbeat.
func agentInternalInfo(n *wire.Node) map[string]any {
	internal := map[string]any{}
	if a := n.Agent; a != nil {
		if a.URL != "" {
			internal["agent_url"] = a.URL
		}
		if a.Version != "" {
			internal["agent_version"] = a.Version
		}
		if !a.LastHeartbeat.IsZero() {
			internal["agent_last_heartbeat"] = ironicTime(a.LastHeartbeat)
		}
	}
	return internal
}

// appendObject appends m as encoding/json writes it, {} when empty.
func (r *nodeRender) appendObject(b []byte, m map[string]any) []byte {
	if len(m) == 0 {
		return append(b, "{}"...)
	}
	j, err := json.Marshal(m)
	if err != nil {
		if r.err == nil {
			r.err = err
		}
		return append(b, "{}"...)
	}
	return append(b, j...)
}

// renderBuffers recycles response bodies: a node is ~2 KiB, a page of
// short items ~20 KiB.
var renderBuffers = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledBuffer is the largest buffer put back: a page of 1,000 detailed
// nodes is not kept for the next short answer.
const maxPooledBuffer = 256 << 10

// writeBody answers with status and the body fill appends to an empty
// buffer, as application/json like gin's c.JSON; an error from fill is
// answered instead.
func (s *Server) writeBody(c *gin.Context, status int, fill func(b []byte) ([]byte, error)) {
	buf := renderBuffers.Get().(*[]byte) //nolint:forcetypeassert // the pool holds only these
	b, err := fill((*buf)[:0])
	if err != nil {
		s.fail(c, err)
	} else {
		c.Data(status, "application/json; charset=utf-8", b)
	}
	if cap(b) <= maxPooledBuffer {
		*buf = b[:0]
		renderBuffers.Put(buf)
	}
}

// writeNode answers with n rendered with the fields of view.
func (s *Server) writeNode(c *gin.Context, status int, n *wire.Node, reservation string, view *nodeView) {
	base, v := s.base(c), version(c)
	s.writeBody(c, status, func(b []byte) ([]byte, error) { return appendNode(b, n, reservation, base, v, view) })
}

// appendNodeList appends a list's body: {"next": …, "nodes": […],
// "nodes_links": […]}, the keys in encoding/json's order, without next
// and nodes_links when next is "". held is each node's lock holder.
func appendNodeList(b []byte, nodes []wire.Node, held map[string]string, base string, v Version, view *nodeView, next string) ([]byte, error) {
	b = append(b, '{')
	if next != "" {
		b = append(b, `"next":`...)
		b = appendString(b, next)
		b = append(b, ',')
	}
	b = append(b, `"nodes":[`...)
	for i := range nodes {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = appendNode(b, &nodes[i], held[nodes[i].UUID], base, v, view); err != nil {
			return b, err
		}
	}
	b = append(b, ']')
	if next != "" {
		// Ironic sends "next"; gophercloud reads only "nodes_links".
		b = append(b, `,"nodes_links":[{"href":`...)
		b = appendString(b, next)
		b = append(b, `,"rel":"next"}]`...)
	}
	return append(b, '}'), nil
}

// appendLinks appends links(base, path) as encoding/json writes them.
func appendLinks(b []byte, base, path string) []byte {
	if !plain(base) || !plain(path) {
		b = append(b, `[{"href":`...)
		b = appendString(b, base+"/v1/"+path)
		b = append(b, `,"rel":"self"},{"href":`...)
		b = appendString(b, base+"/"+path)
		return append(b, `,"rel":"bookmark"}]`...)
	}
	// The same bytes, without building the two URLs.
	b = append(b, `[{"href":"`...)
	b = append(b, base...)
	b = append(b, "/v1/"...)
	b = append(b, path...)
	b = append(b, `","rel":"self"},{"href":"`...)
	b = append(b, base...)
	b = append(b, '/')
	b = append(b, path...)
	return append(b, `","rel":"bookmark"}]`...)
}

// plain reports whether encoding/json writes s between quotes unchanged:
// printable ASCII without ", \, <, > or &.
func plain(s string) bool {
	for i := range len(s) {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// appendString appends s as a JSON string exactly as encoding/json writes
// it (HTML-safe: <, > and & escaped). Plain printable ASCII, nearly every
// value, is copied; anything else is left to encoding/json.
func appendString(b []byte, s string) []byte {
	if !plain(s) {
		j, _ := json.Marshal(s) // a string always encodes
		return append(b, j...)
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendNullable appends s as a JSON string, null when "".
func appendNullable(b []byte, s string) []byte {
	if s == "" {
		return append(b, "null"...)
	}
	return appendString(b, s)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, "true"...)
	}
	return append(b, "false"...)
}

// appendTime appends t as ironicTime renders it, null when unset.
func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, ironicTimeLayout)
	return append(b, '"')
}
