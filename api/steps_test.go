package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/lock"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// TestProvisionStepsAreCheckedBeforePublishing: clean_steps, deploy_steps
// and disable_ramdisk are read as Ironic's API reads them (node.py
// provision, _check_clean_steps; utils.py check_allow_deploy_steps,
// check_allow_disable_ramdisk) and every step is checked against the
// node's interfaces (internal/steps, after ironic/conductor/steps.py
// _validate_user_steps) before anything is published: a refused request
// publishes no task and leaves the node where it was.
func TestProvisionStepsAreCheckedBeforePublishing(t *testing.T) {
	e := newEnv(t)
	sim := e.createNode("steps-sim", nil) // ipmi-like: deploy direct, no-raid, no-bios
	e.setState(sim, wire.StateManageable)
	avail := e.createNode("steps-avail", map[string]any{"instance_info": map[string]any{"image_source": "http://x/i.img"}})
	e.setState(avail, wire.StateAvailable)
	fake, err := e.inv.CreateNode(t.Context(), wire.Node{UUID: wire.NewUUID(), Name: "steps-fake", Driver: "fake-hardware",
		ProvisionState: wire.StateManageable, CreatedAt: time.Now().UTC()})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.inv.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	bios := map[string]any{"interface": "bios", "step": "apply_configuration",
		"args": map[string]any{"settings": []any{map[string]any{"name": "LogicalProc", "value": "Disabled"}}}}
	clean := func(steps ...any) map[string]any { return map[string]any{"target": "clean", "clean_steps": steps} }
	tests := []struct {
		name       string
		node       string
		version    string
		body       map[string]any
		wantStatus int
		wantFault  string
		// wantSteps are the step IDs and priorities the published task carries.
		wantSteps []string
	}{
		{"unknown clean step", sim, "latest", clean(map[string]any{"interface": "deploy", "step": "erase_everything"}), 400,
			"node does not support this clean step: {'interface': 'deploy', 'step': 'erase_everything'}", nil},
		{"a raid step on a node without raid", sim, "latest", clean(map[string]any{"interface": "raid", "step": "create_configuration"}), 400,
			"node does not support this clean step: {'interface': 'raid', 'step': 'create_configuration'}", nil},
		{"unknown interface", sim, "latest", clean(map[string]any{"interface": "boot", "step": "x"}), 400,
			`Invalid clean_steps: 'boot' is not one of ['vendor', 'power', 'management', 'firmware', 'deploy', 'bios', 'raid']`, nil},
		{"unknown key in a step", sim, "latest", clean(map[string]any{"interface": "deploy", "step": "erase_devices", "priority": 5}), 400,
			"Additional properties are not allowed ('priority' unexpected)", nil},
		{"empty clean_steps", sim, "latest", clean(), 400,
			`"clean_steps" is required when setting target provision state to clean`, nil},
		{"clean_steps with provide", sim, "latest", map[string]any{"target": "provide", "clean_steps": []any{bios}}, 400,
			`"clean_steps" is only valid when setting target provision state to clean`, nil},
		{"disable_ramdisk below 1.70", fake.UUID, "1.69", map[string]any{"target": "clean", "clean_steps": []any{bios}, "disable_ramdisk": true}, 406,
			"disable_ramdisk is not acceptable in this API version", nil},
		{"disable_ramdisk with provide", sim, "latest", map[string]any{"target": "provide", "disable_ramdisk": true}, 400,
			"disable_ramdisk is supported only with manual cleaning or servicing", nil},
		{"disable_ramdisk with an agent step", sim, "latest", map[string]any{"target": "clean", "disable_ramdisk": true,
			"clean_steps": []any{map[string]any{"interface": "deploy", "step": "erase_devices"}}}, 400,
			"clean step {'interface': 'deploy', 'step': 'erase_devices'} requires booting a ramdisk", nil},
		{"bios step missing its settings", fake.UUID, "latest", clean(map[string]any{"interface": "bios", "step": "apply_configuration"}), 400,
			"is missing these required arguments: settings", nil},
		{"deploy_steps below 1.69", avail, "1.68", map[string]any{"target": "active",
			"deploy_steps": []any{map[string]any{"interface": "deploy", "step": "deploy", "args": map[string]any{}, "priority": 0}}}, 406,
			"Request not acceptable. The minimal required API version should be 1.69", nil},
		{"deploy_steps with provide", sim, "latest", map[string]any{"target": "provide",
			"deploy_steps": []any{map[string]any{"interface": "deploy", "step": "deploy", "args": map[string]any{}, "priority": 0}}}, 400,
			`"deploy_steps" is only valid when setting target provision state to active or rebuild`, nil},
		{"a bios deploy step on a node without bios", avail, "latest", map[string]any{"target": "active",
			"deploy_steps": []any{map[string]any{"interface": "bios", "step": "factory_reset", "args": map[string]any{}, "priority": 120}}}, 400,
			"node does not support this deploy step: {'interface': 'bios', 'step': 'factory_reset', 'priority': 120}", nil},
		{"metadata erase", sim, "latest", clean(map[string]any{"interface": "deploy", "step": "erase_devices_metadata"}), 202, "",
			[]string{"deploy.erase_devices_metadata@99"}},
		{"raid and bios on fake-hardware without the ramdisk", fake.UUID, "latest", map[string]any{"target": "clean", "disable_ramdisk": true,
			"clean_steps": []any{map[string]any{"interface": "raid", "step": "delete_configuration"}, bios}}, 202, "",
			[]string{"raid.delete_configuration@0", "bios.apply_configuration@0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(e.tasks())
			r := e.do(http.MethodPut, "/v1/nodes/"+tt.node+"/states/provision", tt.body, "X-OpenStack-Ironic-API-Version", tt.version)
			mustStatus(t, r, tt.wantStatus)
			tasks := e.tasks()
			if tt.wantStatus != http.StatusAccepted {
				if f := r.fault(t)["faultstring"].(string); !strings.Contains(f, tt.wantFault) {
					t.Errorf("faultstring %q, want %q in it", f, tt.wantFault)
				}
				if len(tasks) != before {
					t.Errorf("a refused request published %d tasks", len(tasks)-before)
				}
				return
			}
			if len(tasks) != before+1 {
				t.Fatalf("%d tasks published, want 1", len(tasks)-before)
			}
			task := tasks[len(tasks)-1]
			var p wire.StepsParams
			if err := json.Unmarshal(task.Params, &p); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range p.CleanSteps {
				got = append(got, s.ID()+"@"+itoa(s.Priority))
			}
			if strings.Join(got, ",") != strings.Join(tt.wantSteps, ",") {
				t.Errorf("task carries steps %v, want %v", got, tt.wantSteps)
			}
			// Play the conductor: claim the task's ticket, put the node back.
			lk, err := e.locker.Acquire(t.Context(), tt.node, &lock.Options{Ticket: task.Ticket})
			if err != nil {
				t.Fatal(err)
			}
			_ = lk.Release(t.Context())
			e.setState(tt.node, wire.StateManageable)
		})
	}
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

// TestTargetRAIDConfig: PUT /v1/nodes/{n}/states/raid stores the target
// RAID configuration a raid create_configuration step builds, as Ironic's
// NodeStatesController.raid: 406 below 1.12, 404 for a node whose raid
// interface configures no RAID, Ironic's schema checked (400), {} clears.
func TestTargetRAIDConfig(t *testing.T) {
	e := newEnv(t)
	sim := e.createNode("raid-sim", nil)
	fake, err := e.inv.CreateNode(t.Context(), wire.Node{UUID: wire.NewUUID(), Name: "raid-fake", Driver: "fake-hardware",
		ProvisionState: wire.StateManageable, CreatedAt: time.Now().UTC()})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.inv.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	good := map[string]any{"logical_disks": []any{map[string]any{"size_gb": 100, "raid_level": "1", "is_root_volume": true}}}
	tests := []struct {
		name       string
		node       string
		version    string
		body       any
		wantStatus int
		wantFault  string
		wantTarget any
	}{
		{"below 1.12", fake.UUID, "1.11", good, 406, "Request not acceptable.", nil},
		{"a node without raid", sim, "latest", good, 404, "Driver sim does not support raid (disabled or not implemented).", nil},
		{"unknown raid level", fake.UUID, "latest", map[string]any{"logical_disks": []any{map[string]any{"size_gb": 1, "raid_level": "7"}}}, 400,
			"RAID config validation error: '7' is not one of", nil},
		{"size missing", fake.UUID, "latest", map[string]any{"logical_disks": []any{map[string]any{"raid_level": "1"}}}, 400,
			"RAID config validation error: 'size_gb' is a required property", nil},
		{"two root volumes", fake.UUID, "latest", map[string]any{"logical_disks": []any{
			map[string]any{"size_gb": 1, "raid_level": "1", "is_root_volume": true},
			map[string]any{"size_gb": "MAX", "raid_level": "0", "is_root_volume": true}}}, 400,
			"Raid config cannot have more than one root volume. 2 root volumes were specified", nil},
		{"set", fake.UUID, "latest", good, 204, "", good},
		{"cleared", fake.UUID, "latest", map[string]any{}, 204, "", map[string]any{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(http.MethodPut, "/v1/nodes/"+tt.node+"/states/raid", tt.body, "X-OpenStack-Ironic-API-Version", tt.version)
			mustStatus(t, r, tt.wantStatus)
			if tt.wantStatus != http.StatusNoContent {
				if f := r.fault(t)["faultstring"].(string); !strings.Contains(f, tt.wantFault) {
					t.Errorf("faultstring %q, want %q in it", f, tt.wantFault)
				}
				return
			}
			got := e.do(http.MethodGet, "/v1/nodes/"+tt.node, nil).json(t)["target_raid_config"]
			gj, _ := json.Marshal(got)
			wj, _ := json.Marshal(tt.wantTarget)
			if string(gj) != string(wj) {
				t.Errorf("target_raid_config %s, want %s", gj, wj)
			}
		})
	}
}

// TestRunningStepIsRendered: while a clean runs, the node shows the step
// running as clean_step (1.7) and the clean's steps in
// driver_internal_info, as Ironic does; deploy_step stays {}.
func TestRunningStepIsRendered(t *testing.T) {
	e := newEnv(t)
	id := e.createNode("render-steps", nil)
	lk, err := e.locker.Acquire(t.Context(), id, &lock.Options{Purpose: "test"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.inv.UpdateNode(t.Context(), id, lk.Token(), func(n *wire.Node) error {
		n.ProvisionState, n.TargetProvisionState = wire.StateCleanWait, wire.StateManageable
		n.Steps = []wire.Step{
			{Interface: "deploy", Step: "erase_devices_metadata", Priority: 99, Args: map[string]any{}},
			{Interface: "deploy", Step: "erase_devices", Priority: 10, Args: map[string]any{}},
		}
		n.StepIndex = 1
		return nil
	})
	_ = lk.Release(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := e.inv.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	n := e.do(http.MethodGet, "/v1/nodes/"+id, nil).json(t)
	step, _ := json.Marshal(n["clean_step"])
	if want := `{"args":{},"interface":"deploy","priority":10,"step":"erase_devices"}`; string(step) != want {
		t.Errorf("clean_step %s, want %s", step, want)
	}
	if d, _ := json.Marshal(n["deploy_step"]); string(d) != "{}" {
		t.Errorf("deploy_step %s, want {}", d)
	}
	internal, _ := n["driver_internal_info"].(map[string]any)
	if steps, _ := internal["clean_steps"].([]any); len(steps) != 2 || internal["clean_step_index"] != float64(1) {
		t.Errorf("driver_internal_info %v, want the clean's two steps and index 1", internal)
	}
	if _, ok := e.do(http.MethodGet, "/v1/nodes/"+id, nil, "X-OpenStack-Ironic-API-Version", "1.6").json(t)["clean_step"]; ok {
		t.Errorf("clean_step rendered at 1.6")
	}
}
