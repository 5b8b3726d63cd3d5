package steps

import (
	"fmt"
	"slices"
	"strings"

	"github.com/ironfleet/ironfleet/transport/wire"
)

// raidLevels are the RAID levels a logical disk may ask for
// (ironic/drivers/raid_config_schema.json).
var raidLevels = []string{"JBOD", "0", "1", "2", "5", "6", "1+0", "5+0", "6+0"}

// logicalDiskKeys are the properties a logical disk may have.
var logicalDiskKeys = []string{"raid_level", "size_gb", "volume_name", "is_root_volume", "share_physical_disks",
	"disk_type", "interface_type", "number_of_physical_disks", "controller", "physical_disks"}

// CheckRAIDConfig checks a target RAID configuration as Ironic's
// RAIDInterface.validate_raid_config does (raid_config_schema.json, then
// at most one root volume): logical_disks, a non-empty list of objects
// with raid_level and size_gb (a whole number of GiB or "MAX"), no other
// keys. The error carries wire.CodeInvalidInput and reads "RAID config
// validation error: …".
func CheckRAIDConfig(cfg map[string]any) error {
	bad := func(format string, args ...any) error {
		return wire.Errorf(wire.CodeInvalidInput, "RAID config validation error: %s", fmt.Sprintf(format, args...))
	}
	for k := range cfg {
		if k != "logical_disks" {
			return bad("Additional properties are not allowed ('%s' was unexpected)", k)
		}
	}
	raw, ok := cfg["logical_disks"]
	if !ok {
		return bad("'logical_disks' is a required property")
	}
	disks, ok := raw.([]any)
	if !ok {
		return bad("%s is not of type 'array'", pyRepr(raw))
	}
	if len(disks) == 0 {
		return bad("[] should be non-empty")
	}
	roots := 0
	for _, d := range disks {
		disk, ok := d.(map[string]any)
		if !ok {
			return bad("%s is not of type 'object'", pyRepr(d))
		}
		for _, k := range sortedKeys(disk) {
			if !slices.Contains(logicalDiskKeys, k) {
				return bad("Additional properties are not allowed ('%s' was unexpected)", k)
			}
		}
		for _, k := range []string{"raid_level", "size_gb"} {
			if _, ok := disk[k]; !ok {
				return bad("'%s' is a required property", k)
			}
		}
		if lvl, ok := disk["raid_level"].(string); !ok || !slices.Contains(raidLevels, lvl) {
			return bad("%s is not one of ['%s']", pyRepr(disk["raid_level"]), strings.Join(raidLevels, "', '"))
		}
		switch size := disk["size_gb"].(type) {
		case float64:
			if size < 0 || size != float64(int64(size)) {
				return bad("%s is not valid under any of the given schemas", pyRepr(size))
			}
		case string:
			if size != "MAX" {
				return bad("%s is not valid under any of the given schemas", pyRepr(size))
			}
		default:
			return bad("%s is not valid under any of the given schemas", pyRepr(size))
		}
		if root, ok := disk["is_root_volume"]; ok {
			b, isBool := root.(bool)
			if !isBool {
				return bad("%s is not of type 'boolean'", pyRepr(root))
			}
			if b {
				roots++
			}
		}
	}
	if roots > 1 {
		return wire.Errorf(wire.CodeInvalidInput, "Raid config cannot have more than one root volume. %d root volumes were specified", roots)
	}
	return nil
}

// SupportsRAID reports whether node n's raid interface configures RAID
// (has RAID steps); a target RAID configuration for one that does not is
// refused, as Ironic's no-raid refuses it.
func SupportsRAID(n wire.Node) bool {
	return slices.ContainsFunc(Defs(n, Clean), func(d Def) bool { return d.Interface == "raid" })
}
