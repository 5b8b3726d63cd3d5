package conductor

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ironfleet/ironfleet/internal/hardware"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// This file is what the nodes' bios and firmware interfaces report, cached
// on the node (wire.Node.Bios, .Firmware) under its lock, as Ironic caches
// them in its bios_settings and firmware_information tables: when a node is
// verified (node_update_cache in ironic/conductor/utils.py) and when the
// bios clean steps change them. The API serves the cache.
//
// no-bios and no-firmware (ipmi, sim) report nothing, so their lists stay
// empty, as Ironic's do for those interfaces (node_cache_bios_settings
// skips an interface that does not support it). ipmi could report the BMC
// from IPMI's Get Device ID, but its hardware type offers no firmware
// interface, as Ironic's ipmi does not, so it reports none.

// BiosValue is one setting of a bios.apply_configuration step's
// "settings" argument (Ironic's [{"name": …, "value": …}]).
type BiosValue struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

func biosStr(s string) *string { return &s }
func biosBool(b bool) *bool    { return &b }
func biosInt(i int) *int       { return &i }

// fakeBiosDefaults are the factory settings of the fake bios interface: a
// small BIOS with a registry (1.74's attribute_type, allowable_values, …),
// so that clients find settings to read and change. Ironic's FakeBIOS
// starts with none and reports only what apply_configuration stored.
func fakeBiosDefaults(now time.Time) []wire.BiosSetting {
	enum := func(name, value string, reset bool, allowed ...string) wire.BiosSetting {
		return wire.BiosSetting{Name: name, Value: biosStr(value), AttributeType: biosStr("Enumeration"), AllowableValues: allowed,
			ReadOnly: biosBool(false), ResetRequired: biosBool(reset), Unique: biosBool(false), CreatedAt: now}
	}
	return []wire.BiosSetting{
		{Name: "AssetTag", Value: biosStr(""), AttributeType: biosStr("String"), MinLength: biosInt(0), MaxLength: biosInt(32),
			ReadOnly: biosBool(false), ResetRequired: biosBool(false), Unique: biosBool(true), CreatedAt: now},
		enum("BootMode", "Uefi", true, "Bios", "Uefi"),
		enum("HyperThreading", "Enabled", true, "Enabled", "Disabled"),
		{Name: "NumCores", Value: biosStr("0"), AttributeType: biosStr("Integer"), LowerBound: biosInt(0), UpperBound: biosInt(64),
			ReadOnly: biosBool(false), ResetRequired: biosBool(true), Unique: biosBool(false), CreatedAt: now},
		enum("ProcVirtualization", "Enabled", true, "Enabled", "Disabled"),
		{Name: "SystemModel", Value: biosStr("ironfleet fake"), AttributeType: biosStr("String"), ReadOnly: biosBool(true),
			ResetRequired: biosBool(false), Unique: biosBool(false), CreatedAt: now},
	}
}

// fakeFirmware is what the fake firmware interface reports: a BIOS and a
// BMC. (Ironic's FakeFirmware caches nothing; ironfleet reports the
// components a real firmware interface would, so clients have a list.)
func fakeFirmware(now time.Time) []wire.FirmwareComponent {
	return []wire.FirmwareComponent{
		{Component: "bios", InitialVersion: "1.0.0", CurrentVersion: "1.0.0", CreatedAt: now},
		{Component: "bmc", InitialVersion: "1.0.0", CurrentVersion: "1.0.0", CreatedAt: now},
	}
}

// cacheReports records on n what its bios and firmware interfaces report,
// as Ironic's node_update_cache does when a node is verified: the fake
// interfaces' state (their factory state the first time); nothing for
// no-bios and no-firmware, whose earlier cache, if any, is left as it is.
func cacheReports(n *wire.Node, now time.Time) {
	if hardware.Of(*n, hardware.Bios) == hardware.Fake && len(n.Bios) == 0 {
		n.Bios = fakeBiosDefaults(now)
	}
	if hardware.Of(*n, hardware.Firmware) == hardware.Fake && len(n.Firmware) == 0 {
		n.Firmware = fakeFirmware(now)
	}
}

// ApplyBios returns node n's BIOS settings after its bios interface's
// apply_configuration step with settings, for the step runner to cache on
// the node under its lock (w.update(func(n) { n.Bios = next })). Only the
// fake interface has the step; another refuses with Ironic's
// UnsupportedDriverExtension. Each named setting takes its value (one the
// BIOS does not have is added, as Ironic's FakeBIOS adds it), and the
// others keep theirs, as a real BIOS keeps them (Ironic's fake deletes
// them). A value the setting's registry forbids (read-only, not allowable,
// out of bounds or length) is refused, coded invalid_input and naming the
// setting, and nothing changes. An empty cache is the factory state.
func ApplyBios(n wire.Node, settings []BiosValue, now time.Time) ([]wire.BiosSetting, error) {
	if err := fakeBiosOnly(n); err != nil {
		return nil, err
	}
	next := slices.Clone(n.Bios)
	if len(next) == 0 {
		next = fakeBiosDefaults(now)
	}
	for _, s := range settings {
		if s.Name == "" {
			return nil, wire.Errorf(wire.CodeInvalidInput, "A BIOS setting in apply_configuration has no name.")
		}
		i := slices.IndexFunc(next, func(b wire.BiosSetting) bool { return b.Name == s.Name })
		if i < 0 {
			next = append(next, wire.BiosSetting{Name: s.Name, Value: biosStr(s.Value), CreatedAt: now})
			continue
		}
		if err := allowed(next[i], s.Value); err != nil {
			return nil, err
		}
		if next[i].Value == nil || *next[i].Value != s.Value {
			next[i].Value, next[i].UpdatedAt = biosStr(s.Value), now
		}
	}
	return next, nil
}

// FactoryResetBios returns node n's BIOS settings after its bios
// interface's factory_reset step: the fake BIOS's factory settings (Ironic's
// FakeBIOS deletes every setting instead; a BIOS reset to its defaults
// still has settings). Another interface refuses, as ApplyBios.
func FactoryResetBios(n wire.Node, now time.Time) ([]wire.BiosSetting, error) {
	if err := fakeBiosOnly(n); err != nil {
		return nil, err
	}
	return fakeBiosDefaults(now), nil
}

// allowed checks value against setting b's registry.
func allowed(b wire.BiosSetting, value string) error {
	bad := func(why string) error {
		return wire.Errorf(wire.CodeInvalidInput, "Invalid value %q for BIOS setting %s: %s", value, b.Name, why)
	}
	switch {
	case b.ReadOnly != nil && *b.ReadOnly:
		return bad("it is read-only")
	case len(b.AllowableValues) > 0 && !slices.Contains(b.AllowableValues, value):
		return bad("allowable values are " + strings.Join(b.AllowableValues, ", "))
	case b.MaxLength != nil && len(value) > *b.MaxLength, b.MinLength != nil && len(value) < *b.MinLength:
		return bad("its length is out of bounds")
	}
	if b.LowerBound != nil || b.UpperBound != nil {
		v, err := strconv.Atoi(value)
		if err != nil {
			return bad("not an integer")
		}
		if (b.LowerBound != nil && v < *b.LowerBound) || (b.UpperBound != nil && v > *b.UpperBound) {
			return bad("out of bounds")
		}
	}
	return nil
}

func fakeBiosOnly(n wire.Node) error {
	if hardware.Of(n, hardware.Bios) != hardware.Fake {
		return wire.Errorf(wire.CodeInvalidInput, "Driver %s does not support bios (disabled or not implemented).", n.Driver)
	}
	return nil
}
