// Package hardware holds ironfleet's hardware types as Ironic models them:
// a hardware type (the node's "driver") offers, for each kind of driver
// interface (boot, deploy, power, …), a set of enabled implementations and
// a default one. A node runs with the implementation it chose for each
// interface, at create or by PATCH, or the hardware type's default.
//
// The API reads it to render nodes and drivers and to refuse an interface a
// node's hardware type does not offer; the conductor reads it to decide
// what each step of a flow does (a fake deploy completes at once, a direct
// one boots the agent). Nothing else decides which interfaces exist.
//
// It imports nothing of ours but transport/wire.
package hardware

import (
	"slices"
	"strings"

	"github.com/ironfleet/ironfleet/transport/wire"
)

// Kind is a kind of driver interface, spelled as Ironic spells it without
// the "_interface" suffix.
type Kind string

// The kinds of driver interface, in Ironic's order.
const (
	Bios       Kind = "bios"
	Boot       Kind = "boot"
	Console    Kind = "console"
	Deploy     Kind = "deploy"
	Firmware   Kind = "firmware"
	Inspect    Kind = "inspect"
	Management Kind = "management"
	Network    Kind = "network"
	Power      Kind = "power"
	Raid       Kind = "raid"
	Rescue     Kind = "rescue"
	Storage    Kind = "storage"
	Vendor     Kind = "vendor"
)

// Kinds is every kind of interface, in the order Ironic lists them.
var Kinds = []Kind{Bios, Boot, Console, Deploy, Firmware, Inspect, Management, Network, Power, Raid, Rescue, Storage, Vendor}

// Field is the node (and driver) field naming the interface: "boot_interface".
func (k Kind) Field() string { return string(k) + "_interface" }

// KindOfField parses a node field such as "boot_interface".
func KindOfField(field string) (Kind, bool) {
	name, ok := strings.CutSuffix(field, "_interface")
	if !ok || !slices.Contains(Kinds, Kind(name)) {
		return "", false
	}
	return Kind(name), true
}

// Interface implementations ironfleet has. Each one named here does what
// Ironic's does of that name, or it is not offered.
const (
	Fake     = "fake"     // does nothing and succeeds at once
	Noop     = "noop"     // network and storage: records only
	PXE      = "pxe"      // PXELINUX and iPXE configs on our TFTP server
	IPXE     = "ipxe"     // the same configs; iPXE reads its own
	Direct   = "direct"   // the agent writes the image
	Agent    = "agent"    // inspection by the agent's inventory
	IPMITool = "ipmitool" // power and management over IPMI
	SimPower = "sim"      // power and management of a simulated machine
	// IPMISocat is Ironic's ipmitool-socat console: Serial-over-LAN through
	// `ipmitool sol activate`, served on a TCP port of the conductor by socat.
	IPMISocat = "ipmitool-socat"
	// SimConsole is a simulated machine's serial console, served on a TCP
	// port of the conductor as ipmitool-socat's is.
	SimConsole = "sim"
	NoBios     = "no-bios" //
	NoConsole  = "no-console"
	NoFirm     = "no-firmware"
	NoInspect  = "no-inspect"
	NoRaid     = "no-raid"
	NoRescue   = "no-rescue"
	NoVendor   = "no-vendor"
)

// Offer is what a hardware type offers for one kind of interface: the
// implementations a node may choose and the one it gets by default.
type Offer struct {
	Enabled []string
	Default string
}

// Type is a hardware type: its name (the node's driver) and its offer for
// every kind of interface.
type Type struct {
	Name   string
	Offers map[Kind]Offer
	// NeedsDriverInfo is false for a type whose nodes need no driver_info
	// (fake-hardware).
	NeedsDriverInfo bool
}

func offer(def string, more ...string) Offer {
	return Offer{Enabled: append([]string{def}, more...), Default: def}
}

// agentType is a hardware type that deploys through the agent, booted by
// PXE or iPXE, with power and management by pm and an optional console.
// The console defaults to no-console, as Ironic's does out of the box
// ([DEFAULT]enabled_console_interfaces = no-console): a console runs a
// process and takes a port on a conductor, so a node opts in.
func agentType(name, pm, console string) Type {
	return Type{Name: name, NeedsDriverInfo: true, Offers: map[Kind]Offer{
		Bios: offer(NoBios), Boot: offer(PXE, IPXE), Console: offer(NoConsole, console),
		Deploy: offer(Direct), Firmware: offer(NoFirm), Inspect: offer(Agent, NoInspect),
		Management: offer(pm), Network: offer(Noop), Power: offer(pm), Raid: offer(NoRaid),
		Rescue: offer(NoRescue), Storage: offer(Noop), Vendor: offer(NoVendor),
	}}
}

// Types are ironfleet's hardware types, by name.
var Types = map[string]Type{
	"ipmi": agentType("ipmi", IPMITool, IPMISocat),
	"sim":  agentType("sim", SimPower, SimConsole),
	"fake-hardware": {Name: "fake-hardware", Offers: map[Kind]Offer{
		Bios: offer(Fake, NoBios), Boot: offer(Fake), Console: offer(Fake, NoConsole),
		Deploy: offer(Fake), Firmware: offer(Fake, NoFirm), Inspect: offer(Fake, Agent, NoInspect),
		Management: offer(Fake), Network: offer(Noop), Power: offer(Fake), Raid: offer(Fake, NoRaid),
		Rescue: offer(Fake, NoRescue), Storage: offer(Noop, Fake), Vendor: offer(Fake, NoVendor),
	}},
}

// Lookup returns the hardware type of a driver name.
func Lookup(driver string) (Type, bool) {
	t, ok := Types[driver]
	return t, ok
}

// Check reports whether a node of hardware type t may use impl for kind;
// the error, always the same for the same input, names the interface and
// the choices, and carries wire.CodeInvalidInput.
func (t Type) Check(kind Kind, impl string) error {
	o, ok := t.Offers[kind]
	if !ok {
		return wire.Errorf(wire.CodeInvalidInput, "Unknown interface %q.", kind.Field())
	}
	if !slices.Contains(o.Enabled, impl) {
		return wire.Errorf(wire.CodeInvalidInput,
			"Could not find the following interface in the 'ironic.hardware.interfaces.%s' entrypoint: %s. Valid interfaces for hardware type %s are %s.",
			kind, impl, t.Name, strings.Join(o.Enabled, ", "))
	}
	return nil
}

// Of returns the implementation node n runs for kind: its own choice, or
// its hardware type's default ("" for an unknown driver).
func Of(n wire.Node, kind Kind) string {
	if impl := n.Interfaces[string(kind)]; impl != "" {
		return impl
	}
	if t, ok := Types[n.Driver]; ok {
		return t.Offers[kind].Default
	}
	return ""
}

// CheckNode checks every interface node n chose against its hardware type;
// a driver ironfleet has no hardware type for is the caller's to refuse.
func CheckNode(n wire.Node) error {
	t, ok := Types[n.Driver]
	if !ok {
		return nil
	}
	for _, k := range Kinds {
		if impl, ok := n.Interfaces[string(k)]; ok {
			if err := t.Check(k, impl); err != nil {
				return err
			}
		}
	}
	return nil
}

// Unsupported is the error Ironic's no-* interfaces raise, in validation
// and when asked to act (ironic/drivers/modules/noop.py, whose _fail
// raises exception.UnsupportedDriverExtension): node n's implementation of
// kind is one that refuses ("no-inspect"). It is nil when the node's
// implementation does the work.
func Unsupported(n wire.Node, kind Kind) error {
	if !strings.HasPrefix(Of(n, kind), "no-") {
		return nil
	}
	return wire.Errorf(wire.CodeInvalidInput, "Driver %s does not support %s (disabled or not implemented).", n.Driver, kind)
}

// BootDevices are the boot devices node n's management interface can set:
// Ironic's fake management knows only PXE (FakeManagement in
// ironic/drivers/modules/fake.py); IPMI and simulated machines boot from
// PXE or disk.
func BootDevices(n wire.Node) []wire.BootDevice {
	if Of(n, Management) == Fake {
		return []wire.BootDevice{wire.BootPXE}
	}
	return []wire.BootDevice{wire.BootPXE, wire.BootDisk}
}
