package conductor_test

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/agent/protocol"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// metadataSpan is what erase_devices_metadata wipes at each end of a disk
// (ironic-lib's destroy_disk_metadata: 36 sectors of 512 bytes).
const metadataSpan = 36 * 512

// TestManualCleanErasesOnlyMetadata: a manual clean of
// deploy.erase_devices_metadata asks the agent for erase_metadata and never
// for erase_disk, and leaves the data between the disk's two ends as it
// was; automated cleaning then runs the node's automated steps by priority
// (ironic-python-agent's: metadata 99, then the whole disk 10).
func TestManualCleanErasesOnlyMetadata(t *testing.T) {
	e := newEnv(t)
	e.startConductor(t, "c1", nil, nil)
	n := e.enroll(t, "meta-0", "")
	e.request(t, n.UUID, wire.OpManage, nil)
	e.waitState(t, n.UUID, wire.StateManageable, 30*time.Second)

	disk := filepath.Join(e.diskDir, n.Name+".img")
	const span = 2 << 20
	f, err := os.OpenFile(disk, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	full := bytes.Repeat([]byte{0xff}, span)
	_, err = f.WriteAt(full, 0)
	if err == nil {
		_, err = f.WriteAt(full, 1<<30-span)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}

	e.request(t, n.UUID, wire.OpClean, wire.StepsParams{CleanSteps: []wire.Step{{Interface: "deploy", Step: "erase_devices_metadata"}}})
	got := e.waitState(t, n.UUID, wire.StateManageable, 30*time.Second)
	if got.LastError != "" || len(got.Steps) != 0 || got.Step != "" {
		t.Fatalf("after the clean: last_error %q, steps %v, step %q", got.LastError, got.Steps, got.Step)
	}
	if cmds := e.agentCommands(n.UUID); !slices.Equal(cmds, []string{protocol.CmdEraseMetadata}) {
		t.Fatalf("the agent was asked for %v, want only %s", cmds, protocol.CmdEraseMetadata)
	}
	data, err := os.ReadFile(disk)
	if err != nil {
		t.Fatal(err)
	}
	size := len(data)
	for _, r := range []struct {
		name     string
		from, to int
		zero     bool
	}{
		{"the first 18 KiB", 0, metadataSpan, true},
		{"the data after them", metadataSpan, span, false},
		{"the data before the last 18 KiB", size - span, size - metadataSpan, false},
		{"the last 18 KiB", size - metadataSpan, size, true},
	} {
		want := byte(0xff)
		if r.zero {
			want = 0
		}
		if i := slices.IndexFunc(data[r.from:r.to], func(b byte) bool { return b != want }); i >= 0 {
			t.Errorf("%s: byte %d is %#x, want %#x", r.name, r.from+i, data[r.from+i], want)
		}
	}
	if m, _ := e.machines.Machine(n.Name); m.State().Power != wire.PowerOff {
		t.Errorf("machine %+v after the clean, want powered off", m.State())
	}

	e.request(t, n.UUID, wire.OpProvide, nil)
	e.waitState(t, n.UUID, wire.StateAvailable, 30*time.Second)
	want := []string{protocol.CmdEraseMetadata, protocol.CmdEraseMetadata, protocol.CmdEraseDisk}
	if cmds := e.agentCommands(n.UUID); !slices.Equal(cmds, want) {
		t.Fatalf("after automated cleaning the agent was asked for %v, want %v", cmds, want)
	}
}

// fakeNode creates a fake-hardware node (raid, bios and deploy fake) in
// state st: no machine, no port, no driver_info, nothing to boot.
func (e *env) fakeNode(t *testing.T, name string, st wire.ProvisionState, set func(*wire.Node)) wire.Node {
	t.Helper()
	n := wire.Node{UUID: wire.NewUUID(), Name: name, Driver: "fake-hardware", ProvisionState: st, CreatedAt: time.Now().UTC()}
	if set != nil {
		set(&n)
	}
	n, err := e.inv.CreateNode(t.Context(), n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

var targetRAID = map[string]any{"logical_disks": []any{
	map[string]any{"size_gb": float64(100), "raid_level": "1", "is_root_volume": true},
	map[string]any{"size_gb": "MAX", "raid_level": "5"},
}}

// TestFakeRAIDAndBIOSCleanSteps: RAID and BIOS clean steps on fake
// interfaces run in the order given and record what they configure
// (raid_config from target_raid_config, BIOS settings), without booting
// anything or touching power: the node has no machine and no port, so
// either would have failed it.
func TestFakeRAIDAndBIOSCleanSteps(t *testing.T) {
	e := newEnv(t)
	e.startConductor(t, "c1", nil, nil)
	setting := func(name, value string) map[string]any {
		return map[string]any{"settings": []any{map[string]any{"name": name, "value": value}}}
	}
	tests := []struct {
		name     string
		steps    []wire.Step
		wantRAID map[string]any
		// wantBIOS are settings of the node's BIOS after the clean ("": absent).
		wantBIOS map[string]string
	}{
		{"create the target's volumes, then apply settings",
			[]wire.Step{{Interface: "raid", Step: "create_configuration"}, {Interface: "bios", Step: "apply_configuration", Args: setting("LogicalProc", "Disabled")}},
			targetRAID, map[string]string{"LogicalProc": "Disabled", "ProcVirtualization": "Enabled"}},
		{"delete, then create only the root volume",
			[]wire.Step{{Interface: "raid", Step: "delete_configuration"}, {Interface: "raid", Step: "create_configuration", Args: map[string]any{"create_nonroot_volumes": false}}},
			map[string]any{"logical_disks": []any{targetRAID["logical_disks"].([]any)[0]}}, map[string]string{}},
		{"create, then delete it all",
			[]wire.Step{{Interface: "raid", Step: "create_configuration"}, {Interface: "raid", Step: "delete_configuration"}},
			nil, map[string]string{}},
		{"steps run in the order given: apply, reset, apply",
			[]wire.Step{
				{Interface: "bios", Step: "apply_configuration", Args: setting("ProcVirtualization", "Disabled")},
				{Interface: "bios", Step: "factory_reset"},
				{Interface: "bios", Step: "apply_configuration", Args: setting("HyperThreading", "Disabled")},
			}, nil, map[string]string{"ProcVirtualization": "Enabled", "HyperThreading": "Disabled"}},
		{"a value the BIOS registry forbids fails the step",
			[]wire.Step{{Interface: "bios", Step: "apply_configuration", Args: setting("ProcVirtualization", "Maybe")}},
			nil, nil},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := e.fakeNode(t, "fake-clean-"+string(rune('a'+i)), wire.StateManageable, func(n *wire.Node) { n.TargetRAIDConfig = targetRAID })
			e.request(t, n.UUID, wire.OpClean, wire.StepsParams{CleanSteps: tt.steps, DisableRamdisk: true})
			if tt.wantBIOS == nil {
				got := e.waitState(t, n.UUID, wire.StateCleanFailed, 30*time.Second)
				if want := "Invalid value \"Maybe\" for BIOS setting ProcVirtualization"; !bytes.Contains([]byte(got.LastError), []byte(want)) {
					t.Errorf("last_error %q, want it to say %q", got.LastError, want)
				}
				return
			}
			got := e.waitState(t, n.UUID, wire.StateManageable, 30*time.Second)
			if got.LastError != "" || got.PowerState != "" || got.Agent != nil || len(got.Steps) != 0 {
				t.Fatalf("after the clean: last_error %q, power %q, agent %+v, steps %v", got.LastError, got.PowerState, got.Agent, got.Steps)
			}
			if !jsonEqual(got.RAIDConfig, tt.wantRAID) {
				t.Errorf("raid_config %v, want %v", got.RAIDConfig, tt.wantRAID)
			}
			if b := bios(got, slices.Collect(maps.Keys(tt.wantBIOS))...); !maps.Equal(b, tt.wantBIOS) {
				t.Errorf("bios settings %v, want %v", b, tt.wantBIOS)
			}
		})
	}
	t.Run("create_configuration with no target fails the clean, naming the step", func(t *testing.T) {
		n := e.fakeNode(t, "fake-clean-none", wire.StateManageable, nil)
		e.request(t, n.UUID, wire.OpClean, wire.StepsParams{CleanSteps: []wire.Step{{Interface: "raid", Step: "create_configuration"}}})
		got := e.waitState(t, n.UUID, wire.StateCleanFailed, 30*time.Second)
		if want := "failed step raid.create_configuration"; !bytes.Contains([]byte(got.LastError), []byte(want)) {
			t.Errorf("last_error %q, want it to say %q", got.LastError, want)
		}
	})
	t.Run("a step the node lost since the request fails the clean before anything runs", func(t *testing.T) {
		n := e.fakeNode(t, "fake-clean-lost", wire.StateManageable, func(n *wire.Node) {
			n.Interfaces = map[string]string{"bios": "no-bios"}
			n.RAIDConfig = targetRAID
		})
		e.request(t, n.UUID, wire.OpClean, wire.StepsParams{CleanSteps: []wire.Step{
			{Interface: "raid", Step: "delete_configuration"},
			{Interface: "bios", Step: "factory_reset"},
		}})
		got := e.waitState(t, n.UUID, wire.StateCleanFailed, 30*time.Second)
		if want := "node does not support this clean step: {'interface': 'bios', 'step': 'factory_reset'}"; !bytes.Contains([]byte(got.LastError), []byte(want)) {
			t.Errorf("last_error %q, want it to say %q", got.LastError, want)
		}
		if !jsonEqual(got.RAIDConfig, targetRAID) {
			t.Errorf("raid_config %v: the step before the unknown one ran", got.RAIDConfig)
		}
	})
}

// TestDeployStepsRunByPriority: a deploy's user steps run with the
// deploy's own (fake: deploy.deploy at 100), highest priority first, and
// a step disabled with priority 0 does not run.
func TestDeployStepsRunByPriority(t *testing.T) {
	e := newEnv(t)
	e.startConductor(t, "c1", nil, nil)
	n := e.fakeNode(t, "fake-deploy", wire.StateAvailable, func(n *wire.Node) {
		n.InstanceInfo = map[string]any{"image_source": e.imageURL, "image_checksum": e.imageSHA}
	})
	raid := map[string]any{"logical_disks": []any{map[string]any{"size_gb": float64(50), "raid_level": "0", "is_root_volume": true}}}
	e.request(t, n.UUID, wire.OpDeploy, wire.StepsParams{DeploySteps: []wire.Step{
		// 150 resets, 120 applies: in that order the setting stays.
		{Interface: "bios", Step: "apply_configuration", Priority: 120, Args: map[string]any{"settings": []any{map[string]any{"name": "HyperThreading", "value": "Disabled"}}}},
		{Interface: "bios", Step: "factory_reset", Priority: 150, Args: map[string]any{}},
		{Interface: "raid", Step: "apply_configuration", Priority: 50, Args: map[string]any{"raid_config": raid}},
		{Interface: "raid", Step: "delete_configuration", Priority: 0, Args: map[string]any{}},
	}})
	got := e.waitState(t, n.UUID, wire.StateActive, 30*time.Second)
	if got.LastError != "" || len(got.Steps) != 0 {
		t.Fatalf("after the deploy: last_error %q, steps %v", got.LastError, got.Steps)
	}
	if b := bios(got, "HyperThreading"); b["HyperThreading"] != "Disabled" {
		t.Errorf("bios settings %v: want HyperThreading Disabled (factory_reset at 150 before apply_configuration at 120)", b)
	}
	if !jsonEqual(got.RAIDConfig, raid) || !jsonEqual(got.TargetRAIDConfig, raid) {
		t.Errorf("raid_config %v, target %v, want %v (and delete_configuration at priority 0 not run)", got.RAIDConfig, got.TargetRAIDConfig, raid)
	}
}

// jsonEqual compares two values as JSON documents (nil and {} alike).
func jsonEqual(a, b map[string]any) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// TestRedeliveredCleanGoesOnAtItsStep: a clean task delivered again after
// its first delivery died between steps (the node in cleaning, its steps
// recorded, the first done) runs the steps from the one it stopped at,
// not from the start.
func TestRedeliveredCleanGoesOnAtItsStep(t *testing.T) {
	e := newEnv(t)
	e.startConductor(t, "c1", nil, nil)
	apply := func(name string) wire.Step {
		return wire.Step{Interface: "bios", Step: "apply_configuration",
			Args: map[string]any{"settings": []any{map[string]any{"name": name, "value": "on"}}}}
	}
	n := e.fakeNode(t, "fake-redelivered", wire.StateCleaning, func(n *wire.Node) {
		n.TargetProvisionState = wire.StateManageable
		n.Steps = []wire.Step{apply("First"), apply("Second")}
		n.StepIndex, n.Step = 1, "steps"
		// Moved just now: a node in cleaning since the zero time is
		// stale at once, and the recovery sweep could fail it first.
		n.ProvisionUpdatedAt = time.Now().UTC()
	})
	task := wire.NewTask(wire.OpClean, n, "test", nil)
	task.FirstMove = &wire.Move{From: wire.StateManageable, To: wire.StateCleaning, Target: wire.StateManageable}
	if _, err := e.bus.Publish(t.Context(), task); err != nil {
		t.Fatal(err)
	}
	got := e.waitState(t, n.UUID, wire.StateManageable, 30*time.Second)
	if b, want := bios(got, "First", "Second"), map[string]string{"First": "", "Second": "on"}; !maps.Equal(b, want) {
		t.Fatalf("bios settings %v, want %v: the redelivery ran the steps from the start", b, want)
	}
}

// bios reads the named settings of n's cached BIOS ("" for one it lacks).
func bios(n wire.Node, names ...string) map[string]string {
	out := map[string]string{}
	for _, name := range names {
		out[name] = ""
		for _, b := range n.Bios {
			if b.Name == name && b.Value != nil {
				out[name] = *b.Value
			}
		}
	}
	return out
}

// TestCleanWithoutAgentStepsDoesNotBootTheAgent: a manual clean of a
// direct-deploy node whose steps all run without the agent (the
// conductor's power steps) never boots it, as Ironic's cleaning.py skips
// the ramdisk when every step can run without it.
func TestCleanWithoutAgentStepsDoesNotBootTheAgent(t *testing.T) {
	e := newEnv(t)
	e.startConductor(t, "c1", nil, nil)
	n := e.enroll(t, "power-steps", "")
	e.request(t, n.UUID, wire.OpManage, nil)
	e.waitState(t, n.UUID, wire.StateManageable, 30*time.Second)
	e.request(t, n.UUID, wire.OpClean, wire.StepsParams{CleanSteps: []wire.Step{
		{Interface: "power", Step: "power_on"}, {Interface: "power", Step: "power_off"},
	}})
	got := e.waitState(t, n.UUID, wire.StateManageable, 30*time.Second)
	if got.LastError != "" || got.PowerState != wire.PowerOff {
		t.Fatalf("after the clean: last_error %q, power %q; want no error, powered off", got.LastError, got.PowerState)
	}
	m, _ := e.machines.Machine(n.Name)
	if st := m.State(); st.Power != wire.PowerOff || st.BootedFrom == wire.BootPXE || st.Boots != 1 {
		t.Errorf("machine %+v: want off, booted once (power_on) and never from the network", st)
	}
	if cmds := e.agentCommands(n.UUID); len(cmds) != 0 {
		t.Errorf("the agent was asked for %v", cmds)
	}
}

// TestHoldStepParksTheNodeUntilUnhold: a manual clean with a hold step
// between two steps runs the first, waits in clean hold (aiming
// manageable), and only on unhold (1.85) runs the rest, as Ironic's hold
// step and unhold verb do.
func TestHoldStepParksTheNodeUntilUnhold(t *testing.T) {
	e := newEnv(t)
	e.startConductor(t, "c1", nil, nil)
	n := e.fakeNode(t, "fake-hold", wire.StateManageable, func(n *wire.Node) { n.TargetRAIDConfig = targetRAID })
	e.request(t, n.UUID, wire.OpClean, wire.StepsParams{CleanSteps: []wire.Step{
		{Interface: "bios", Step: "factory_reset"},
		{Interface: "deploy", Step: "hold"},
		{Interface: "raid", Step: "create_configuration"},
	}})
	held := e.waitState(t, n.UUID, wire.StateCleanHold, 30*time.Second)
	if held.TargetProvisionState != wire.StateManageable || held.LastError != "" {
		t.Fatalf("held: target %q, last_error %q; want manageable, none", held.TargetProvisionState, held.LastError)
	}
	if len(held.Bios) == 0 || len(held.RAIDConfig) != 0 {
		t.Fatalf("held: bios %v, raid_config %v; want the step before the hold done, the one after it not", held.Bios, held.RAIDConfig)
	}
	e.request(t, n.UUID, wire.OpUnhold, nil)
	got := e.waitState(t, n.UUID, wire.StateManageable, 30*time.Second)
	if got.LastError != "" || len(got.Steps) != 0 || !jsonEqual(got.RAIDConfig, targetRAID) {
		t.Fatalf("after unhold: last_error %q, steps %v, raid_config %v; want the step after the hold done", got.LastError, got.Steps, got.RAIDConfig)
	}
}

// TestDeployTemplatesJoinTheDeploy: a deploy of a node whose instance
// traits name a deploy template runs the template's steps with the
// deploy's (Ironic's deploy templates, 1.55), and a template whose step
// the node does not have fails the deploy naming it before anything runs.
func TestDeployTemplatesJoinTheDeploy(t *testing.T) {
	e := newEnv(t)
	e.startConductor(t, "c1", nil, nil)
	raid := map[string]any{"logical_disks": []any{map[string]any{"size_gb": float64(50), "raid_level": "0", "is_root_volume": true}}}
	recs := transport.NewRecords(e.inv)
	for _, tpl := range []wire.DeployTemplate{
		{UUID: wire.NewUUID(), Name: "CUSTOM_RAID0", Steps: []wire.Step{{Interface: "raid", Step: "apply_configuration", Priority: 50, Args: map[string]any{"raid_config": raid}}}},
		{UUID: wire.NewUUID(), Name: "CUSTOM_NOSUCH", Steps: []wire.Step{{Interface: "vendor", Step: "flash_it", Priority: 60, Args: map[string]any{}}}},
	} {
		if err := recs.DeployTemplates.Create(t.Context(), tpl.UUID, tpl); err != nil {
			t.Fatal(err)
		}
	}
	deploy := func(name, trait string) wire.Node {
		n := e.fakeNode(t, name, wire.StateAvailable, func(n *wire.Node) {
			n.Traits = []string{trait}
			n.InstanceInfo = map[string]any{"traits": []any{trait}}
		})
		e.request(t, n.UUID, wire.OpDeploy, nil)
		return n
	}
	n := deploy("tpl-raid", "CUSTOM_RAID0")
	got := e.waitState(t, n.UUID, wire.StateActive, 30*time.Second)
	if got.LastError != "" || !jsonEqual(got.RAIDConfig, raid) {
		t.Fatalf("after the deploy: last_error %q, raid_config %v; want the template's RAID applied", got.LastError, got.RAIDConfig)
	}
	bad := deploy("tpl-bad", "CUSTOM_NOSUCH")
	got = e.waitState(t, bad.UUID, wire.StateDeployFailed, 30*time.Second)
	if !strings.Contains(got.LastError, "flash_it") {
		t.Fatalf("last_error %q: want the template's unknown step named", got.LastError)
	}
}
