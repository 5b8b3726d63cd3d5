package api

import (
	"github.com/ironfleet/ironfleet/internal/hardware"
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

// renderNodeShort renders the fields of a list without detail: uuid,
// instance_uuid, maintenance, power_state, provision_state, name (1.5) and
// links. It is renderNode's subset, built directly, as a struct rather than
// a map, because lists are hot: encoding/json writes a struct's fields
// without building and sorting a map's keys.
func renderNodeShort(n wire.Node, base string, v Version) any {
	short := nodeShort{
		UUID: n.UUID, InstanceUUID: nullableString(n.InstanceUUID), Maintenance: n.Maintenance,
		PowerState: nullableString(n.PowerState), ProvisionState: nullableString(n.ProvisionState),
		Links: links(base, "nodes/"+n.UUID),
	}
	if !v.AtLeast(2) && n.ProvisionState == wire.StateAvailable {
		short.ProvisionState = nil // before 1.2, "available" was spelled None
	}
	if !fieldIn("name", v) {
		return short
	}
	return nodeShortNamed{nodeShort: short, Name: nullableString(n.Name)}
}

// nodeShort is a node in a list without detail, before 1.5.
type nodeShort struct {
	UUID           string  `json:"uuid"`
	InstanceUUID   *string `json:"instance_uuid"`
	Maintenance    bool    `json:"maintenance"`
	PowerState     *string `json:"power_state"`
	ProvisionState *string `json:"provision_state"`
	Links          []link  `json:"links"`
}

// nodeShortNamed is a node in a list without detail from 1.5.
type nodeShortNamed struct {
	nodeShort
	Name *string `json:"name"`
}

// nullableString is nullable for a typed field: nil (null) for "".
func nullableString[S ~string](s S) *string {
	if s == "" {
		return nil
	}
	str := string(s)
	return &str
}

// ironicTime renders a time as Ironic does, or null when unset.
func ironicTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format("2006-01-02T15:04:05.000000-07:00")
}

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

// renderNode renders n in Ironic's shape at microversion v: every field
// the version has, nulls where unset, secrets masked, never the fence, the
// conductor's step or the agent token. reservation is the lock holder.
func renderNode(n wire.Node, reservation, base string, v Version) map[string]any {
	provision := nullable(n.ProvisionState)
	if !v.AtLeast(2) && n.ProvisionState == wire.StateAvailable {
		provision = nil // before 1.2, "available" was spelled None
	}
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
	cleanStep, deployStep := stepsOf(n, internal)
	var automated any
	if n.AutomatedClean != nil {
		automated = *n.AutomatedClean
	}
	path := "nodes/" + n.UUID
	out := map[string]any{
		"uuid":                   n.UUID,
		"name":                   nullable(n.Name),
		"created_at":             ironicTime(n.CreatedAt),
		"updated_at":             ironicTime(n.UpdatedAt),
		"automated_clean":        automated,
		"boot_mode":              nil,
		"clean_step":             cleanStep,
		"conductor_group":        n.ConductorGroup,
		"console_enabled":        n.ConsoleEnabled,
		"deploy_step":            deployStep,
		"description":            nullable(n.Description),
		"driver":                 n.Driver,
		"driver_info":            masked(n.DriverInfo),
		"driver_internal_info":   internal,
		"extra":                  orEmpty(maps.Clone(n.Extra)),
		"fault":                  nullable(n.Fault),
		"inspection_finished_at": nil,
		"inspection_started_at":  nil,
		"instance_info":          masked(n.InstanceInfo),
		"instance_uuid":          nullable(n.InstanceUUID),
		"last_error":             nullable(n.LastError),
		"lessee":                 nullable(n.Lessee),
		"maintenance":            n.Maintenance,
		"maintenance_reason":     nullable(n.MaintenanceReason),
		"network_data":           orEmpty(n.NetworkData),
		"owner":                  nullable(n.Owner),
		"power_state":            nullable(n.PowerState),
		"properties":             orEmpty(maps.Clone(n.Properties)),
		"protected":              n.Protected,
		"protected_reason":       nil,
		"provision_state":        provision,
		"provision_updated_at":   ironicTime(n.ProvisionUpdatedAt),
		"raid_config":            orEmpty(maps.Clone(n.RAIDConfig)),
		"reservation":            nullable(reservation),
		"resource_class":         nullable(n.ResourceClass),
		"retired":                false,
		"retired_reason":         nil,
		"secure_boot":            nil,
		"shard":                  nil,
		"target_power_state":     nullable(n.TargetPowerState),
		"target_provision_state": nullable(n.TargetProvisionState),
		"target_raid_config":     orEmpty(maps.Clone(n.TargetRAIDConfig)),
		"traits":                 traitsOf(n),
		"conductor":              nullable(n.Conductor),
		"allocation_uuid":        nullable(n.AllocationUUID),
		"chassis_uuid":           nullable(n.ChassisUUID),
		"parent_node":            nullable(n.ParentNode),
		"service_step":           map[string]any{},
		"disable_power_off":      false,
		"links":                  links(base, path),
		"ports":                  links(base, path+"/ports"),
		"states":                 links(base, path+"/states"),
		"portgroups":             links(base, path+"/portgroups"),
		"volume":                 links(base, path+"/volume"),
	}
	for _, k := range hardware.Kinds {
		out[k.Field()] = nullable(hardware.Of(n, k))
	}
	for k := range out {
		if !fieldIn(k, v) {
			delete(out, k)
		}
	}
	return out
}

// renderStates is GET /v1/nodes/{node}/states.
func renderStates(n wire.Node, v Version) map[string]any {
	full := renderNode(n, "", "", v)
	out := map[string]any{}
	for _, k := range []string{"console_enabled", "last_error", "power_state", "provision_state", "target_power_state",
		"target_provision_state", "provision_updated_at", "raid_config", "target_raid_config", "boot_mode", "secure_boot"} {
		if val, ok := full[k]; ok {
			out[k] = val
		}
	}
	return out
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
