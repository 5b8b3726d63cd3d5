package api

import (
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/ironfleet/ironfleet/transport/wire"
)

// A node's BIOS settings (1.40) and firmware components (1.86), as its
// bios and firmware interfaces last reported them: the conductor caches
// them on the node when it verifies it and when BIOS steps change them
// (conductor/bios.go). Ironic's controllers: ironic/api/controllers/v1/
// bios.py and firmware.py, with their query schemas in
// ironic/api/schemas/v1/.

// biosRegistryVersion is when BIOS settings gained their registry fields
// and the list its detail and fields queries (Ironic's
// MINOR_74_BIOS_REGISTRY).
const biosRegistryVersion = 74

// biosFields are the fields a BIOS setting's fields query may name
// (index_request_query_v74), in Ironic's order.
var biosFields = []string{"allowable_values", "attribute_type", "created_at", "lower_bound", "links", "max_length",
	"min_length", "name", "node_uuid", "read_only", "reset_required", "unique", "updated_at", "value"}

// biosRegistry are the registry fields, rendered with detail=True and by a
// setting's GET from 1.74.
var biosRegistry = []string{"name", "value", "attribute_type", "allowable_values", "lower_bound", "max_length",
	"min_length", "read_only", "reset_required", "unique", "upper_bound"}

// firmwareFields are a firmware component's fields below 1.114 (the
// vendor, model and serial_number of Ironic's MINOR_114 are not served).
var firmwareFields = []string{"component", "initial_version", "current_version", "last_version_flashed"}

// firmwareIdentity are the 1.114 fields a fields query may not name yet.
var firmwareIdentity = []string{"model", "serial_number", "vendor"}

// schemaUnexpected refuses query parameters outside allowed with the
// words of Ironic's query schema validation (additionalProperties false).
func schemaUnexpected(c *gin.Context, allowed ...string) error {
	var extra []string
	for k := range c.Request.URL.Query() {
		if !slices.Contains(allowed, k) {
			extra = append(extra, "'"+k+"'")
		}
	}
	if len(extra) == 0 {
		return nil
	}
	sort.Strings(extra)
	verb := "was"
	if len(extra) > 1 {
		verb = "were"
	}
	return badRequest("Schema error: Additional properties are not allowed (%s %s unexpected)", strings.Join(extra, ", "), verb)
}

// listFields reads the fields and detail queries of a bios or firmware
// list as Ironic's get_request_return_fields: fields from enum, not both,
// and the defaults when neither. detail=True returns detailFields (nil:
// none beyond the timestamps, as Ironic's firmware list).
func listFields(c *gin.Context, enum, defaults, detailFields []string) ([]string, error) {
	detail, err := parseBool("detail", c.Query("detail"))
	if err != nil {
		return nil, err
	}
	raw, hasFields := c.GetQuery("fields")
	if hasFields && detail != nil && *detail {
		return nil, badRequest("Can not specify ?detail=True and fields in the same request.")
	}
	if !hasFields {
		if detail != nil && *detail {
			return detailFields, nil
		}
		return defaults, nil
	}
	var fields []string
	for _, f := range strings.Split(raw, ",") {
		f = strings.TrimSpace(f)
		if !slices.Contains(enum, f) {
			return nil, badRequest("Schema error: '%s' is not one of ['%s']", f, strings.Join(enum, "', '"))
		}
		fields = append(fields, f)
	}
	return fields, nil
}

// renderBios renders one setting: created_at, updated_at, fields, links
// (Ironic's object_to_dict with link_resource nodes/<node>/bios/<name>).
func renderBios(b wire.BiosSetting, base, node string, fields []string) map[string]any {
	out := map[string]any{"created_at": ironicTime(b.CreatedAt), "updated_at": ironicTime(b.UpdatedAt),
		"links": links(base, "nodes/"+node+"/bios/"+b.Name)}
	for _, f := range fields {
		switch f {
		case "name":
			out[f] = b.Name
		case "value":
			out[f] = b.Value
		case "attribute_type":
			out[f] = b.AttributeType
		case "allowable_values":
			if b.AllowableValues == nil {
				out[f] = nil // Ironic's null for a setting without a registry
			} else {
				out[f] = b.AllowableValues
			}
		case "lower_bound":
			out[f] = b.LowerBound
		case "upper_bound":
			out[f] = b.UpperBound
		case "min_length":
			out[f] = b.MinLength
		case "max_length":
			out[f] = b.MaxLength
		case "read_only":
			out[f] = b.ReadOnly
		case "reset_required":
			out[f] = b.ResetRequired
		case "unique":
			out[f] = b.Unique
		}
	}
	return out
}

// listBios answers GET /v1/nodes/{n}/bios: {"bios": [...]}, empty for a
// node whose bios interface reports nothing (no-bios), as Ironic's.
func (s *Server) listBios(c *gin.Context) {
	allowed := []string{}
	if version(c).AtLeast(biosRegistryVersion) {
		allowed = []string{"fields", "detail"}
	}
	err := schemaUnexpected(c, allowed...)
	var n wire.Node
	if err == nil {
		n, err = s.findNode(c, c.Param("node"))
	}
	var fields []string
	if err == nil {
		fields, err = listFields(c, biosFields, []string{"name", "value"}, biosRegistry)
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	base, ident := s.base(c), c.Param("node") // Ironic links the list by the node as named
	out := make([]map[string]any, 0, len(n.Bios))
	for _, b := range n.Bios {
		out = append(out, renderBios(b, base, ident, fields))
	}
	c.JSON(http.StatusOK, gin.H{"bios": out})
}

// getBios answers GET /v1/nodes/{n}/bios/{name}: {name: setting}, with
// the registry fields from 1.74; 404 with Ironic's BIOSSettingNotFound.
func (s *Server) getBios(c *gin.Context) {
	err := schemaUnexpected(c)
	var n wire.Node
	if err == nil {
		n, err = s.findNode(c, c.Param("node"))
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	name := c.Param("setting")
	i := slices.IndexFunc(n.Bios, func(b wire.BiosSetting) bool { return b.Name == name })
	if i < 0 {
		s.fail(c, wire.Errorf(wire.CodeNotFound, "Node %s doesn't have a BIOS setting '%s'", n.UUID, name))
		return
	}
	fields := []string{"name", "value"}
	if version(c).AtLeast(biosRegistryVersion) {
		fields = biosRegistry
	}
	c.JSON(http.StatusOK, gin.H{name: renderBios(n.Bios[i], s.base(c), n.UUID, fields)})
}

// listFirmware answers GET /v1/nodes/{n}/firmware (1.86): {"firmware":
// [...]}, empty for no-firmware; fields as Ironic's below 1.114.
func (s *Server) listFirmware(c *gin.Context) {
	err := schemaUnexpected(c, "fields", "detail")
	var n wire.Node
	if err == nil {
		n, err = s.findNode(c, c.Param("node"))
	}
	if err == nil {
		var newer []string
		for _, f := range strings.Split(c.Query("fields"), ",") {
			if f = strings.TrimSpace(f); slices.Contains(firmwareIdentity, f) && !slices.Contains(newer, f) {
				newer = append(newer, f)
			}
		}
		if len(newer) > 0 {
			sort.Strings(newer)
			err = badRequest("Fields %s are not allowed in this API version. They require at least API version 1.114.", strings.Join(newer, ", "))
		}
	}
	var fields []string
	if err == nil {
		enum := append([]string{"created_at", "updated_at"}, firmwareFields...)
		fields, err = listFields(c, enum, firmwareFields, nil)
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	out := make([]map[string]any, 0, len(n.Firmware))
	for _, f := range n.Firmware {
		m := map[string]any{"created_at": ironicTime(f.CreatedAt), "updated_at": ironicTime(f.UpdatedAt)}
		values := map[string]string{"component": f.Component, "initial_version": f.InitialVersion,
			"current_version": f.CurrentVersion, "last_version_flashed": f.LastVersionFlashed}
		for _, k := range fields {
			if v, ok := values[k]; ok {
				m[k] = nullable(v)
			}
		}
		out = append(out, m)
	}
	c.JSON(http.StatusOK, gin.H{"firmware": out})
}
