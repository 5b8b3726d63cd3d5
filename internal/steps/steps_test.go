package steps_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/ironfleet/ironfleet/internal/steps"
	"github.com/ironfleet/ironfleet/transport/wire"
)

var (
	direct = wire.Node{UUID: "n-direct", Driver: "ipmi"}
	fake   = wire.Node{UUID: "n-fake", Driver: "fake-hardware"}
)

func ids(ss []wire.Step) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.ID()
	}
	return out
}

func TestAutomatedRunsByPriority(t *testing.T) {
	for _, tc := range []struct {
		name string
		node wire.Node
		want []string
	}{
		// ironic-python-agent: erase_devices_metadata 99 before erase_devices 10.
		{"direct deploy erases metadata, then the disk", direct, []string{"deploy.erase_devices_metadata", "deploy.erase_devices"}},
		{"fake deploy has no automated steps", fake, []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ids(steps.Automated(tc.node)); !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		flow       steps.Flow
		wantErr    string
		want       []wire.Step
	}{
		{"clean step", `[{"interface":"bios","step":"factory_reset"}]`, steps.Clean, "",
			[]wire.Step{{Interface: "bios", Step: "factory_reset", Args: map[string]any{}}}},
		{"deploy step with a string priority", `[{"interface":"raid","step":"delete_configuration","args":{},"priority":"90"}]`, steps.Deploy, "",
			[]wire.Step{{Interface: "raid", Step: "delete_configuration", Args: map[string]any{}, Priority: 90}}},
		{"not a list", `{"interface":"bios"}`, steps.Clean, "Invalid clean_steps: ", nil},
		{"unknown interface", `[{"interface":"boot","step":"x"}]`, steps.Clean, `Invalid clean_steps: 'boot' is not one of ['vendor', 'power', 'management', 'firmware', 'deploy', 'bios', 'raid']`, nil},
		{"missing step", `[{"interface":"bios"}]`, steps.Clean, "Invalid clean_steps: 'step' is a required property", nil},
		{"unexpected key", `[{"interface":"bios","step":"x","order":1}]`, steps.Clean, "Invalid clean_steps: Additional properties are not allowed ('order' unexpected)", nil},
		{"args not an object", `[{"interface":"bios","step":"x","args":[1]}]`, steps.Clean, "Invalid clean_steps: [1] is not of type 'object'", nil},
		{"deploy step needs a priority", `[{"interface":"bios","step":"x","args":{}}]`, steps.Deploy, "Invalid deploy_steps: 'priority' is a required property", nil},
		{"negative priority", `[{"interface":"bios","step":"x","args":{},"priority":-1}]`, steps.Deploy, "Invalid deploy_steps: -1 is not valid under any of the given schemas", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := steps.Decode(tc.flow, json.RawMessage(tc.body))
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) || wire.CodeOf(err) != wire.CodeInvalidInput {
					t.Fatalf("got %v (code %s), want an invalid_input error starting %q", err, wire.CodeOf(err), tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			gj, _ := json.Marshal(got)
			wj, _ := json.Marshal(tc.want)
			if string(gj) != string(wj) {
				t.Fatalf("got %s, want %s", gj, wj)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	settings := map[string]any{"settings": []any{map[string]any{"name": "LogicalProc", "value": "Enabled"}}}
	for _, tc := range []struct {
		name           string
		node           wire.Node
		flow           steps.Flow
		user           []wire.Step
		disableRamdisk bool
		wantErr        string
		wantPriorities []int
	}{
		{"metadata erase on direct takes its priority", direct, steps.Clean,
			[]wire.Step{{Interface: "deploy", Step: "erase_devices_metadata"}}, false, "", []int{99}},
		{"bios and raid on fake", fake, steps.Clean,
			[]wire.Step{{Interface: "raid", Step: "delete_configuration"}, {Interface: "bios", Step: "apply_configuration", Args: settings}}, false, "", []int{0, 0}},
		{"unknown step named as Ironic does", direct, steps.Clean,
			[]wire.Step{{Interface: "deploy", Step: "erase_everything"}}, false,
			"node does not support this clean step: {'interface': 'deploy', 'step': 'erase_everything'}", nil},
		{"raid step on a node without raid", direct, steps.Clean,
			[]wire.Step{{Interface: "raid", Step: "create_configuration"}}, false,
			"node does not support this clean step: {'interface': 'raid', 'step': 'create_configuration'}", nil},
		{"every problem named", fake, steps.Clean,
			[]wire.Step{{Interface: "bios", Step: "apply_configuration"}, {Interface: "bios", Step: "factory_reset", Args: map[string]any{"force": true}}}, false,
			"clean step {'interface': 'bios', 'step': 'apply_configuration'} is missing these required arguments: settings (List of BIOS settings, each item needs to contain a dictionary with name/value pairs); clean step {'interface': 'bios', 'step': 'factory_reset', 'args': {'force': True}} has these unexpected arguments: force", nil},
		{"disable_ramdisk refuses an agent step", direct, steps.Clean,
			[]wire.Step{{Interface: "deploy", Step: "erase_devices"}}, true,
			"clean step {'interface': 'deploy', 'step': 'erase_devices'} requires booting a ramdisk", nil},
		{"hold is a step", fake, steps.Clean,
			[]wire.Step{{Interface: "deploy", Step: "hold"}}, false, "", []int{0}},
		{"hold takes no arguments", fake, steps.Clean,
			[]wire.Step{{Interface: "deploy", Step: "hold", Args: map[string]any{"x": 1.0}}}, false, "unexpected arguments: x", nil},
		{"power steps are the conductor's", direct, steps.Clean,
			[]wire.Step{{Interface: "power", Step: "power_off"}}, true, "", []int{0}},
		{"deploy step keeps the user's priority", fake, steps.Deploy,
			[]wire.Step{{Interface: "bios", Step: "apply_configuration", Args: settings, Priority: 150}}, false, "", []int{150}},
		{"core deploy step", direct, steps.Deploy,
			[]wire.Step{{Interface: "deploy", Step: "deploy", Priority: 90}}, false, "is a core step and cannot be overridden by user steps", nil},
		{"deploy step unknown on direct", direct, steps.Deploy,
			[]wire.Step{{Interface: "bios", Step: "apply_configuration", Args: settings, Priority: 150}}, false,
			`Validation of deploy steps from "deploy steps" argument failed. node does not support this deploy step: {'interface': 'bios', 'step': 'apply_configuration', 'args': {'settings': [{'name': 'LogicalProc', 'value': 'Enabled'}]}, 'priority': 150}`, nil},
		{"raid_config checked against Ironic's schema", fake, steps.Deploy,
			[]wire.Step{{Interface: "raid", Step: "apply_configuration", Args: map[string]any{"raid_config": map[string]any{"logical_disks": []any{}}}, Priority: 90}}, false,
			"RAID config validation error: [] should be non-empty", nil},
		{"disabled deploy step needs no args", fake, steps.Deploy,
			[]wire.Step{{Interface: "raid", Step: "apply_configuration"}}, false, "", []int{0}},
		{"duplicate deploy steps", fake, steps.Deploy,
			[]wire.Step{{Interface: "bios", Step: "factory_reset", Priority: 1}, {Interface: "bios", Step: "factory_reset", Priority: 2}}, false, "Duplicate deploy steps for bios.factory_reset", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := steps.Validate(tc.node, tc.flow, tc.user, tc.disableRamdisk)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || wire.CodeOf(err) != wire.CodeInvalidInput {
					t.Fatalf("got %v, want an invalid_input error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var prios []int
			for _, s := range got {
				prios = append(prios, s.Priority)
			}
			if !slices.Equal(prios, tc.wantPriorities) {
				t.Fatalf("got priorities %v, want %v", prios, tc.wantPriorities)
			}
		})
	}
}

func TestDeployPlan(t *testing.T) {
	user := []wire.Step{
		{Interface: "bios", Step: "apply_configuration", Priority: 150},
		{Interface: "raid", Step: "apply_configuration", Priority: 50},
		{Interface: "bios", Step: "factory_reset", Priority: 0}, // disabled: not run
	}
	got := ids(steps.DeployPlan(fake, user, nil))
	want := []string{"bios.apply_configuration", "deploy.deploy", "raid.apply_configuration"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}
