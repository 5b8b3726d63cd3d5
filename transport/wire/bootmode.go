package wire

import (
	"encoding/json"
	"strings"
)

// BootMode is the firmware mode a node boots its deploy ramdisk and its
// instance in: legacy BIOS or UEFI.
type BootMode string

// Boot modes, as Ironic spells them (ironic/common/boot_modes.py).
const (
	BootModeBIOS BootMode = "bios"
	BootModeUEFI BootMode = "uefi"
)

// DefaultBootMode is the boot mode of a node whose capabilities name none:
// UEFI, as Ironic's [deploy]default_boot_mode since Yoga, because most
// hardware sold today boots UEFI (some only UEFI), and because clients
// written against Ironic (bifrost, Metal3, nova) expect that default. A
// legacy machine says so with the capability boot_mode:bios.
const DefaultBootMode = BootModeUEFI

// NodeBootMode is the boot mode to deploy n in, as Ironic's
// boot_mode_utils.get_boot_mode: instance_info.capabilities' boot_mode
// (this deploy's request) wins over properties.capabilities' (the node's),
// else DefaultBootMode. Both are checked as Ironic's
// deploy_utils.validate_capabilities does: a value other than bios or uefi
// is refused, and so is an instance_info boot mode that disagrees with the
// one the node's properties lock it to. Errors carry CodeInvalidInput and
// name the field.
func NodeBootMode(n Node) (BootMode, error) {
	inst, err := instanceCapability(n, "boot_mode")
	if err != nil {
		return "", err
	}
	prop, err := propertyCapability(n.Properties, "boot_mode")
	if err != nil {
		return "", err
	}
	for _, c := range []struct{ field, v string }{{"instance_info['capabilities']", inst}, {"properties/capabilities", prop}} {
		switch BootMode(strings.ToLower(c.v)) {
		case "", BootModeBIOS, BootModeUEFI:
		default:
			return "", Errorf(CodeInvalidInput, "The parameter 'boot_mode' from %s has an invalid value: '%s'. Acceptable values are: bios, uefi.", c.field, c.v)
		}
	}
	inst, prop = strings.ToLower(inst), strings.ToLower(prop)
	if inst != "" && prop != "" && inst != prop {
		return "", Errorf(CodeInvalidInput, "Node %s boot mode %s violates node properties/capabilities %s", n.UUID, inst, prop)
	}
	switch {
	case inst != "":
		return BootMode(inst), nil
	case prop != "":
		return BootMode(prop), nil
	}
	return DefaultBootMode, nil
}

// propertyCapability reads one key of properties.capabilities, which
// Ironic keeps as a "key:value,key:value" string (driver_utils
// get_node_capability); an object is taken too.
func propertyCapability(props map[string]any, key string) (string, error) {
	switch c := props["capabilities"].(type) {
	case nil:
		return "", nil
	case string:
		var v string
		for kv := range strings.SplitSeq(c, ",") {
			if k, val, ok := strings.Cut(strings.TrimSpace(kv), ":"); ok && strings.TrimSpace(k) == key {
				v = strings.TrimSpace(val)
			}
		}
		return v, nil
	case map[string]any:
		return capabilityValue(c[key], "properties/capabilities", key)
	default:
		return "", Errorf(CodeInvalidInput, "properties/capabilities must be a string of key:value pairs or an object, got %s", jsonType(c))
	}
}

// instanceCapability reads one key of instance_info.capabilities: an object
// or its JSON text, as Ironic's parse_instance_info_capabilities.
func instanceCapability(n Node, key string) (string, error) {
	raw := n.InstanceInfo["capabilities"]
	var caps map[string]any
	switch c := raw.(type) {
	case nil:
		return "", nil
	case map[string]any:
		caps = c
	case string:
		if c == "" {
			return "", nil
		}
		if err := json.Unmarshal([]byte(c), &caps); err != nil || caps == nil {
			return "", badInstanceCapabilities(n)
		}
	default:
		return "", badInstanceCapabilities(n)
	}
	return capabilityValue(caps[key], "instance_info['capabilities']", key)
}

func capabilityValue(v any, field, key string) (string, error) {
	switch v := v.(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	}
	return "", Errorf(CodeInvalidInput, "The parameter '%s' from %s has an invalid value: %s. Acceptable values are: bios, uefi.", key, field, jsonType(v))
}

func badInstanceCapabilities(n Node) error {
	return Errorf(CodeInvalidInput, "Error parsing capabilities from Node %s instance_info field. A dictionary or a \"jsonified\" dictionary is expected.", n.UUID)
}

func jsonType(v any) string {
	switch v.(type) {
	case bool:
		return "a boolean"
	case float64, json.Number:
		return "a number"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	case string:
		return "a string"
	}
	return "null"
}
