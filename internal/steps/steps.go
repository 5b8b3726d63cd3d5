// Package steps holds clean and deploy steps as Ironic models them: which
// steps a node has (they come from the implementations of its driver
// interfaces, internal/hardware), the priority each runs at, the arguments
// it takes and whether it needs the agent ramdisk; how a user's steps are
// checked against them; and the order a flow runs them in.
//
// The API reads it to refuse, before anything is published, a clean or
// deploy step the node does not have; the conductor reads it to plan a
// flow's steps and to know which need the agent. Nothing else decides
// which steps exist.
//
// It follows ironic/conductor/steps.py (ordering, _validate_user_steps and
// its messages), ironic/api/controllers/v1/node.py and utils.py (the step
// schemas) and the step decorators of the interfaces ironfleet mirrors
// (ironic/drivers/modules/fake.py, agent.py; ironic-python-agent's
// GenericHardwareManager.get_clean_steps for the erase priorities).
//
// It imports nothing of ours but transport/wire and internal/hardware.
package steps

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/ironfleet/ironfleet/internal/hardware"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// Flow is the kind of work steps belong to.
type Flow string

// Flows with steps.
const (
	Clean  Flow = "clean"
	Deploy Flow = "deploy"
)

// Arg describes one argument of a step (Ironic's argsinfo).
type Arg struct {
	Description string
	Required    bool
}

// Def is a step an interface implementation offers.
type Def struct {
	Interface hardware.Kind
	Step      string
	// Priority is the step's default priority: above zero it runs in
	// automated cleaning (or every deploy), highest first; zero runs only
	// when a user asks for it.
	Priority int
	Args     map[string]Arg
	// Agent says the step runs in the agent ramdisk (Ironic's
	// requires_ramdisk): the node boots the agent before it runs.
	Agent bool
	// Core marks the deploy's own step (deploy.deploy), which a user may
	// not override.
	Core bool
}

// Reserved step names the conductor runs itself, whatever the interface
// named (Ironic's RESERVED_STEP_HANDLER_MAPPING and the flow steps hold
// and wait, ironic/conductor/steps.py).
const (
	PowerOn  = "power_on"
	PowerOff = "power_off"
	Reboot   = "reboot"
	Hold     = "hold"
	Wait     = "wait"
)

// interfacePriority breaks ties between steps of equal priority, highest
// first (CLEANING_INTERFACE_PRIORITY and DEPLOYING_INTERFACE_PRIORITY,
// which are the same): the interfaces a step may name.
var interfacePriority = map[string]int{
	"vendor": 7, "power": 6, "management": 5, "firmware": 4, "deploy": 3, "bios": 2, "raid": 1,
}

// stepInterfaces lists interfacePriority's keys in Ironic's order, as its
// schema's enum names them in errors.
var stepInterfaces = []string{"vendor", "power", "management", "firmware", "deploy", "bios", "raid"}

var (
	raidApplyArgs = map[string]Arg{
		"raid_config":            {Description: "The RAID configuration to apply.", Required: true},
		"create_root_volume":     {Description: "Setting this to 'False' indicates not to create root volume that is specified in 'raid_config'. Default value is 'True'."},
		"create_nonroot_volumes": {Description: "Setting this to 'False' indicates not to create non-root volumes (all except the root volume) in 'raid_config'. Default value is 'True'."},
		"delete_existing":        {Description: "Setting this to 'True' indicates to delete existing RAID configuration prior to creating the new configuration. Default value is 'True'."},
	}
	raidCreateArgs = map[string]Arg{
		"create_root_volume":     raidApplyArgs["create_root_volume"],
		"create_nonroot_volumes": raidApplyArgs["create_nonroot_volumes"],
		"delete_existing":        raidApplyArgs["delete_existing"],
	}
	biosApplyArgs = map[string]Arg{
		"settings": {Description: "List of BIOS settings, each item needs to contain a dictionary with name/value pairs", Required: true},
	}
)

// offer is what one interface implementation offers in each flow.
type offer struct{ clean, deploy []Def }

// catalog is every step ironfleet has, by interface kind and
// implementation. An implementation absent here has no steps.
var catalog = map[hardware.Kind]map[string]offer{
	hardware.Deploy: {
		// The agent's erase steps, at the priorities of ironic-python-agent's
		// GenericHardwareManager (erase_devices_metadata 99, erase_devices
		// 10), which Ironic's direct deploy reports (agent_base.get_clean_steps).
		hardware.Direct: {
			clean: []Def{
				{Interface: hardware.Deploy, Step: "erase_devices_metadata", Priority: 99, Agent: true},
				{Interface: hardware.Deploy, Step: "erase_devices", Priority: 10, Agent: true},
			},
			deploy: []Def{{Interface: hardware.Deploy, Step: "deploy", Priority: 100, Core: true, Agent: true}},
		},
		// FakeDeploy: one deploy step and no clean steps.
		hardware.Fake: {deploy: []Def{{Interface: hardware.Deploy, Step: "deploy", Priority: 100, Core: true}}},
	},
	hardware.Raid: {
		// RAID steps as Ironic's RAID interfaces declare them (agent.py
		// AgentRAID: create_configuration and delete_configuration clean
		// steps, apply_configuration a deploy step, all priority 0). Ironic's
		// FakeRAID does not decorate them; ironfleet's fake raid offers them
		// so that clients' RAID flows can run against fake-hardware.
		hardware.Fake: {
			clean: []Def{
				{Interface: hardware.Raid, Step: "delete_configuration"},
				{Interface: hardware.Raid, Step: "create_configuration", Args: raidCreateArgs},
			},
			deploy: []Def{
				{Interface: hardware.Raid, Step: "delete_configuration"},
				{Interface: hardware.Raid, Step: "apply_configuration", Args: raidApplyArgs},
			},
		},
	},
	hardware.Bios: {
		// FakeBIOS: apply_configuration (settings required) and
		// factory_reset, priority 0; offered as deploy steps too, as the
		// BIOS interfaces with deploy steps (redfish) do.
		hardware.Fake: {
			clean: []Def{
				{Interface: hardware.Bios, Step: "apply_configuration", Args: biosApplyArgs},
				{Interface: hardware.Bios, Step: "factory_reset"},
			},
			deploy: []Def{
				{Interface: hardware.Bios, Step: "apply_configuration", Args: biosApplyArgs},
				{Interface: hardware.Bios, Step: "factory_reset"},
			},
		},
	},
}

// Defs returns the steps node n has in flow, from the implementations of
// its interfaces.
func Defs(n wire.Node, flow Flow) []Def {
	var out []Def
	for _, k := range hardware.Kinds {
		o := catalog[k][hardware.Of(n, k)]
		if flow == Clean {
			out = append(out, o.clean...)
		} else {
			out = append(out, o.deploy...)
		}
	}
	return out
}

// Find returns node n's step of flow that s names.
func Find(n wire.Node, flow Flow, s wire.Step) (Def, bool) {
	for _, d := range Defs(n, flow) {
		if string(d.Interface) == s.Interface && d.Step == s.Step {
			return d, true
		}
	}
	return Def{}, false
}

// IsReserved reports whether s is a step the conductor runs itself (power,
// hold), whatever interface it names.
func IsReserved(s wire.Step) bool {
	switch s.Step {
	case PowerOn, PowerOff, Reboot, Hold, Wait:
		return true
	}
	return false
}

// NeedsAgent reports whether s, one of node n's steps of flow, runs in
// the agent ramdisk.
func NeedsAgent(n wire.Node, flow Flow, s wire.Step) bool {
	if IsReserved(s) {
		return false
	}
	d, ok := Find(n, flow, s)
	return !ok || d.Agent // a step unknown by now is not run without the agent's say
}

// AnyNeedsAgent reports whether one of steps needs the agent ramdisk.
func AnyNeedsAgent(n wire.Node, flow Flow, steps []wire.Step) bool {
	return slices.ContainsFunc(steps, func(s wire.Step) bool { return NeedsAgent(n, flow, s) })
}

func (d Def) step() wire.Step {
	return wire.Step{Interface: string(d.Interface), Step: d.Step, Priority: d.Priority, Args: map[string]any{}}
}

// byPriority orders steps highest priority first, ties by interface
// (Ironic's _sorted_steps with _clean_step_key / _deploy_step_key); the
// sort is stable.
func byPriority(steps []wire.Step) {
	slices.SortStableFunc(steps, func(a, b wire.Step) int {
		if c := cmp.Compare(b.Priority, a.Priority); c != 0 {
			return c
		}
		return cmp.Compare(interfacePriority[b.Interface], interfacePriority[a.Interface])
	})
}

// Automated is node n's automated cleaning: its clean steps of priority
// above zero, highest first (Ironic's _get_cleaning_steps(enabled=True)).
func Automated(n wire.Node) []wire.Step {
	var out []wire.Step
	for _, d := range Defs(n, Clean) {
		if d.Priority > 0 {
			out = append(out, d.step())
		}
	}
	byPriority(out)
	return out
}

// DeployPlan is the steps a deploy of node n runs, highest priority first:
// the node's deploy steps of priority above zero, except those the user's
// (validated) steps or its deploy templates' steps (templates, validated:
// provision.TemplateSteps) name, plus those of the user's and the
// templates' steps of priority above zero; the user's win where both name
// a step (Ironic's _get_all_deployment_steps).
func DeployPlan(n wire.Node, user, templates []wire.Step) []wire.Step {
	named := slices.Clone(user)
	for _, t := range templates {
		if !slices.ContainsFunc(named, func(s wire.Step) bool { return s.ID() == t.ID() }) {
			named = append(named, t)
		}
	}
	var out []wire.Step
	for _, d := range Defs(n, Deploy) {
		s := d.step()
		if d.Priority > 0 && !slices.ContainsFunc(named, func(u wire.Step) bool { return u.ID() == s.ID() }) {
			out = append(out, s)
		}
	}
	for _, s := range named {
		if s.Priority > 0 {
			out = append(out, s)
		}
	}
	byPriority(out)
	return out
}

// Validate checks a user's steps for flow against node n (Ironic's
// _validate_user_steps) and returns them as they will run: a clean step
// takes its step's own priority. Every problem is named, joined with "; "
// as Ironic joins them, in one invalid_input error. disableRamdisk (a
// manual clean with 1.70's disable_ramdisk) refuses steps that need the
// agent.
func Validate(n wire.Node, flow Flow, user []wire.Step, disableRamdisk bool) ([]wire.Step, error) {
	var errs []string
	out := make([]wire.Step, 0, len(user))
	seen := map[string]bool{}
	var dups []string
	for _, u := range user {
		if flow == Deploy {
			if seen[u.ID()] && !slices.Contains(dups, u.ID()) {
				dups = append(dups, u.ID())
			}
			seen[u.ID()] = true
		}
		if IsReserved(u) {
			switch {
			case u.Step == Wait:
				errs = append(errs, fmt.Sprintf("ironfleet does not support the %s step: %s", u.Step, repr(u, flow)))
			case len(u.Args) > 0:
				errs = append(errs, fmt.Sprintf("%s step %s has these unexpected arguments: %s", flow, repr(u, flow), strings.Join(sortedKeys(u.Args), ", ")))
			}
			out = append(out, u)
			continue
		}
		d, ok := Find(n, flow, u)
		if !ok {
			errs = append(errs, fmt.Sprintf("node does not support this %s step: %s", flow, repr(u, flow)))
			continue
		}
		var unexpected []string
		for _, k := range sortedKeys(u.Args) {
			if _, ok := d.Args[k]; !ok {
				unexpected = append(unexpected, k)
			}
		}
		if cfg, ok := u.Args["raid_config"]; ok && d.Interface == "raid" {
			m, _ := cfg.(map[string]any)
			if err := CheckRAIDConfig(m); err != nil {
				errs = append(errs, err.Error())
			}
		}
		if len(unexpected) > 0 {
			errs = append(errs, fmt.Sprintf("%s step %s has these unexpected arguments: %s", flow, repr(u, flow), strings.Join(unexpected, ", ")))
		}
		if flow != Deploy || u.Priority > 0 {
			var missing []string
			for _, k := range sortedKeys(d.Args) {
				if _, ok := u.Args[k]; d.Args[k].Required && !ok {
					missing = append(missing, fmt.Sprintf("%s (%s)", k, d.Args[k].Description))
				}
			}
			if len(missing) > 0 {
				errs = append(errs, fmt.Sprintf("%s step %s is missing these required arguments: %s", flow, repr(u, flow), strings.Join(missing, ", ")))
			}
			if disableRamdisk && d.Agent {
				errs = append(errs, fmt.Sprintf("%s step %s requires booting a ramdisk", flow, repr(u, flow)))
			}
		}
		switch {
		case flow != Deploy:
			u.Priority = d.Priority
		case d.Core && u.Priority > 0:
			errs = append(errs, fmt.Sprintf("deploy step %s on interface %s is a core step and cannot be overridden by user steps. It may be disabled by setting the priority to 0", u.Step, u.Interface))
		case d.Core:
			// Ironic lets a user disable the core step; ironfleet will not
			// report a node active whose image was never written.
			errs = append(errs, fmt.Sprintf("deploy step %s on interface %s is a core step; ironfleet does not allow disabling it", u.Step, u.Interface))
		}
		out = append(out, u)
	}
	if len(dups) > 0 {
		errs = append(errs, "deploy steps from all deploy templates matching this node's instance traits cannot have the same interface and step. Duplicate deploy steps for "+strings.Join(dups, ", "))
	}
	if len(errs) > 0 {
		prefix := ""
		if flow == Deploy {
			prefix = `Validation of deploy steps from "deploy steps" argument failed. `
		}
		return nil, wire.Errorf(wire.CodeInvalidInput, "%s%s", prefix, strings.Join(errs, "; "))
	}
	return out, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
