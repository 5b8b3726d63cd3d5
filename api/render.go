package api

import (
	"maps"
	"time"

	"github.com/ironfleet/ironfleet/transport/wire"
)

// nodeFieldVersion is the microversion each node field appeared in; a field
// absent here is in every version.
var nodeFieldVersion = map[string]int{
	"driver_internal_info":  3,
	"name":                  5,
	"inspection_started_at": 6, "inspection_finished_at": 6,
	"clean_step":  7,
	"raid_config": 12, "target_raid_config": 12,
	"states":            14,
	"network_interface": 20,
	"resource_class":    21,
	"portgroups":        24,
	"boot_interface":    31, "console_interface": 31, "deploy_interface": 31, "inspect_interface": 31,
	"management_interface": 31, "power_interface": 31, "raid_interface": 31, "vendor_interface": 31,
	"volume":             32,
	"storage_interface":  33,
	"traits":             37,
	"rescue_interface":   38,
	"bios_interface":     40,
	"firmware_interface": 86,
	"fault":              42,
	"deploy_step":        44,
	"conductor_group":    46,
	"automated_clean":    47,
	"protected":          48, "protected_reason": 48,
	"conductor":       49,
	"owner":           50,
	"description":     51,
	"allocation_uuid": 52,
	"retired":         61, "retired_reason": 61,
	"lessee":       65,
	"network_data": 66,
	"boot_mode":    75, "secure_boot": 75,
	"shard":             82,
	"parent_node":       83,
	"service_step":      87,
	"disable_power_off": 95,
	// Fields of versions above MaxVersion: never rendered, and a request
	// sending one gets 406, as an Ironic that has them answers a request
	// older than them (ironic/api/controllers/v1/utils.py VERSIONED_FIELDS).
	"instance_name": 104, "health": 109,
}

// fieldIn reports whether a node field exists at v.
func fieldIn(field string, v Version) bool { return v.AtLeast(nodeFieldVersion[field]) }

// ironicTime renders a time as Ironic does, or null when unset.
func ironicTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(ironicTimeLayout)
}

// ironicTimeLayout is how Ironic writes times: microseconds and the
// offset, +00:00 for UTC.
const ironicTimeLayout = "2006-01-02T15:04:05.000000-07:00"

// nullable renders "" as null.
func nullable[S ~string](s S) any {
	if s == "" {
		return nil
	}
	return string(s)
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// renderPort renders a port in Ironic's shape at v.
func renderPort(p wire.Port, base string, v Version) map[string]any {
	out := map[string]any{
		"uuid":                  p.UUID,
		"address":               p.Address,
		"node_uuid":             p.NodeUUID,
		"extra":                 orEmpty(maps.Clone(p.Extra)),
		"created_at":            ironicTime(p.CreatedAt),
		"updated_at":            ironicTime(p.UpdatedAt),
		"links":                 links(base, "ports/"+p.UUID),
		"local_link_connection": map[string]any{},
		"pxe_enabled":           p.PXEEnable,
		"internal_info":         portInternalInfo(p),
		"portgroup_uuid":        nullable(p.PortgroupUUID),
		"physical_network":      nil,
		"is_smartnic":           false,
		"name":                  nullable(p.Name),
	}
	for k := range out {
		if !portFieldIn(k, v) {
			delete(out, k)
		}
	}
	return out
}

// portInternalInfo is a port's internal_info: the tenant VIF bound to it,
// under Ironic's key.
func portInternalInfo(p wire.Port) map[string]any {
	if p.VIF == "" {
		return map[string]any{}
	}
	return map[string]any{"tenant_vif_port_id": p.VIF}
}
