package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/ironfleet/ironfleet/internal/hardware"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// referenceNode is the map the node renderer built before it wrote fields
// in a fixed order (api/render.go at aa6f9af), kept as the reference the
// bytes must equal: encoding/json sorts a map's keys, so this is the
// document Ironic-format clients have been reading.
func referenceNode(n wire.Node, reservation, base string, v Version) map[string]any {
	provision := nullable(n.ProvisionState)
	if !v.AtLeast(2) && n.ProvisionState == wire.StateAvailable {
		provision = nil
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
	traits := n.Traits
	if traits == nil {
		traits = []string{}
	}
	path := "nodes/" + n.UUID
	out := map[string]any{
		"uuid": n.UUID, "name": nullable(n.Name), "created_at": ironicTime(n.CreatedAt), "updated_at": ironicTime(n.UpdatedAt),
		"automated_clean": automated, "boot_mode": nil, "clean_step": cleanStep, "conductor_group": n.ConductorGroup,
		"console_enabled": n.ConsoleEnabled, "deploy_step": deployStep, "description": nullable(n.Description),
		"driver": n.Driver, "driver_info": masked(n.DriverInfo), "driver_internal_info": internal,
		"extra": orEmpty(maps.Clone(n.Extra)), "fault": nullable(n.Fault), "inspection_finished_at": nil,
		"inspection_started_at": nil, "instance_info": masked(n.InstanceInfo), "instance_uuid": nullable(n.InstanceUUID),
		"last_error": nullable(n.LastError), "lessee": nullable(n.Lessee), "maintenance": n.Maintenance,
		"maintenance_reason": nullable(n.MaintenanceReason), "network_data": orEmpty(n.NetworkData),
		"owner": nullable(n.Owner), "power_state": nullable(n.PowerState), "properties": orEmpty(maps.Clone(n.Properties)),
		"protected": n.Protected, "protected_reason": nil, "provision_state": provision,
		"provision_updated_at": ironicTime(n.ProvisionUpdatedAt), "raid_config": orEmpty(maps.Clone(n.RAIDConfig)),
		"reservation": nullable(reservation), "resource_class": nullable(n.ResourceClass), "retired": false,
		"retired_reason": nil, "secure_boot": nil, "shard": nil, "target_power_state": nullable(n.TargetPowerState),
		"target_provision_state": nullable(n.TargetProvisionState), "target_raid_config": orEmpty(maps.Clone(n.TargetRAIDConfig)),
		"traits": traits, "conductor": nullable(n.Conductor), "allocation_uuid": nullable(n.AllocationUUID),
		"chassis_uuid": nullable(n.ChassisUUID), "parent_node": nullable(n.ParentNode), "service_step": map[string]any{},
		"disable_power_off": false, "links": links(base, path), "ports": links(base, path+"/ports"),
		"states": links(base, path+"/states"), "portgroups": links(base, path+"/portgroups"), "volume": links(base, path+"/volume"),
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

// referencePick is the fields= selection the map renderer made (pickFields
// at aa6f9af, given the node's versions and sub-resource links).
func referencePick(doc map[string]any, fields string, v Version) (map[string]any, error) {
	if !v.AtLeast(8) {
		return nil, notAcceptable()
	}
	names := splitFields(fields)
	for _, f := range names {
		if min, ok := nodeFieldVersion[f]; ok && !v.AtLeast(min) {
			return nil, notAcceptable()
		}
	}
	out := map[string]any{"links": doc["links"]}
	var invalid []string
	for _, f := range names {
		val, ok := doc[f]
		if !ok || slices.Contains(nodeSubLinks, f) {
			invalid = append(invalid, f)
			continue
		}
		out[f] = val
	}
	if len(invalid) > 0 {
		return nil, badRequest("Field(s) \"%s\" are not valid", strings.Join(invalid, ", "))
	}
	return out, nil
}

// subset is doc's keys among keys.
func subset(doc map[string]any, keys ...string) map[string]any {
	out := map[string]any{}
	for _, k := range keys {
		if val, ok := doc[k]; ok {
			out[k] = val
		}
	}
	return out
}

// renderNodes are nodes that exercise every value a field can take: unset
// and set, every provision state the rendering treats apart, secrets at
// depth, strings encoding/json escapes.
func renderNodes() map[string]wire.Node {
	at := time.Date(2026, 11, 30, 21, 4, 5, 123456789, time.FixedZone("CET", 3600))
	yes, no := true, false
	full := wire.Node{
		UUID: "1be26c0b-03f2-4d2d-ae87-c02d7f33c781", Name: "node-1", Driver: "ipmi",
		Interfaces:  map[string]string{"boot": "ipxe", "deploy": "direct"},
		Description: "rack 4 <top> & \"bottom\"",
		DriverInfo: map[string]any{"ipmi_address": "10.0.0.1", "ipmi_password": "hunter2", "ipmi_port": 623.0,
			"nested": map[string]any{"auth_token": "t", "list": []any{map[string]any{"secret": 1.0}, "x"}}},
		InstanceInfo: map[string]any{"image_source": "http://img/a?b=1&c=<2>", "configdrive": "big", "root_gb": 10.0},
		Properties:   map[string]any{"cpus": 8.0, "memory_mb": 16384.0, "capabilities": "boot_mode:uefi"},
		NetworkData:  map[string]any{"links": []any{map[string]any{"id": "eth0"}}},
		Extra:        map[string]any{"é": "ü\u2028", "bad": "\xff\xfe", "z": nil, "a": true},
		InstanceUUID: "a2b7c1de-0000-4000-8000-000000000001", ProvisionState: wire.StateActive,
		TargetProvisionState: wire.StateDeploying, ProvisionUpdatedAt: at, PowerState: wire.PowerState("power on"),
		TargetPowerState: wire.PowerState("power off"), ConsoleEnabled: true, Maintenance: true,
		MaintenanceReason: "fan\tbroken\n", Fault: "power failure", LastError: "IPMI said \"no\"",
		ConductorGroup: "rack1", Conductor: "c-1", ResourceClass: "baremetal", Owner: "p1", Lessee: "p2",
		AutomatedClean: &no, Protected: true, Traits: []string{"CUSTOM_A", "HW_CPU_X86_AVX2"},
		ChassisUUID: "c1a55150-0000-4000-8000-000000000002", AllocationUUID: "a110c000-0000-4000-8000-000000000003",
		ParentNode: "9a4e1f00-0000-4000-8000-000000000004",
		Agent: &wire.AgentInfo{URL: "http://10.0.0.9:9999", Version: "10.1", LastHeartbeat: at, Token: "never shown",
			TokenHash: "never"},
		RAIDConfig:       map[string]any{"logical_disks": []any{map[string]any{"size_gb": 100.0}}},
		TargetRAIDConfig: map[string]any{"logical_disks": []any{}},
		CreatedAt:        at, UpdatedAt: at.Add(time.Second),
	}
	cleaning := full
	cleaning.ProvisionState, cleaning.AutomatedClean = wire.StateCleanWait, &yes
	cleaning.Steps = []wire.Step{{Interface: "deploy", Step: "erase_devices", Priority: 10}, {Interface: "raid", Step: "delete_configuration", Args: map[string]any{"x": 1.0}}}
	cleaning.StepIndex = 1
	deploying := full
	deploying.ProvisionState = wire.StateWaitCallback
	deploying.Steps = []wire.Step{{Interface: "deploy", Step: "deploy", Priority: 100}}
	done := deploying
	done.StepIndex = 1 // past the last step: the list, no current one
	return map[string]wire.Node{
		"empty":      {UUID: "00000000-0000-4000-8000-000000000000"},
		"enrolled":   {UUID: "2c0d6f7e-0000-4000-8000-000000000005", Driver: "sim", ProvisionState: wire.StateEnroll, CreatedAt: at},
		"available":  {UUID: "3c0d6f7e-0000-4000-8000-000000000006", Driver: "fake-hardware", ProvisionState: wire.StateAvailable, Traits: []string{}},
		"full":       full,
		"cleaning":   cleaning,
		"deploying":  deploying,
		"steps done": done,
	}
}

// TestNodeRenderingIsTheMap holds the node renderer to the map it replaced,
// byte for byte, at every microversion: the whole node (GET, POST, PATCH,
// detail lists), a list item without detail, the states document, every
// single-field fields= selection and a few together, with secrets masked,
// under a plain base URL and one encoding/json escapes.
func TestNodeRenderingIsTheMap(t *testing.T) {
	bases := []string{"http://127.0.0.1:6385", "https://ironic.example/<a>&b"}
	for name, n := range renderNodes() {
		for _, base := range bases {
			for minor := MinVersion.Minor; minor <= MaxVersion.Minor; minor++ {
				v := Version{Minor: minor}
				for _, reservation := range []string{"", "conductor-2"} {
					ref := referenceNode(n, reservation, base, v)
					check := func(what string, view *nodeView, want any) {
						t.Helper()
						got, err := appendNode(nil, &n, reservation, base, v, view)
						if err != nil {
							t.Fatalf("%s %s at %s: %v", name, what, v, err)
						}
						wantJSON, err := json.Marshal(want)
						if err != nil {
							t.Fatal(err)
						}
						if !bytes.Equal(got, wantJSON) {
							t.Errorf("%s %s at %s, base %s:\n got %s\nwant %s", name, what, v, base, got, wantJSON)
						}
					}
					check("whole", wholeNode(v), ref)
					check("short", shortNode(v), subset(ref, "uuid", "instance_uuid", "maintenance", "power_state", "provision_state", "name", "links"))
					if reservation == "" {
						check("states", nodeStatesView(v), subset(referenceNode(n, "", "", v), "console_enabled", "last_error", "power_state",
							"provision_state", "target_power_state", "target_provision_state", "provision_updated_at", "raid_config",
							"target_raid_config", "boot_mode", "secure_boot"))
					}
					if !v.AtLeast(8) {
						continue
					}
					selections := []string{"name,uuid,driver_info", " extra , instance_info,reservation,extra", "links", ",", "provision_state,driver_internal_info,clean_step,deploy_step"}
					for k := range ref {
						if !slices.Contains(nodeSubLinks, k) {
							selections = append(selections, k)
						}
					}
					for _, fields := range selections {
						want, err := referencePick(ref, fields, v)
						if err != nil {
							continue // the refusals are TestNodeFieldsRefusalsAreTheMaps'
						}
						view, err := pickNodeFields(fields, v)
						if err != nil {
							t.Fatalf("%s fields=%q at %s: %v, want the reference's selection", name, fields, v, err)
						}
						check("fields="+fields, view, want)
					}
				}
			}
		}
	}
}

// TestNodeFieldsRefusalsAreTheMaps checks fields= refusals against the map
// renderer's: 406 for a field newer than the request (or any fields=
// before 1.8), 400 naming every unknown field or sub-resource link in the
// request's order.
func TestNodeFieldsRefusalsAreTheMaps(t *testing.T) {
	tests := []struct {
		name, fields string
		minor        int
	}{
		{"before 1.8", "uuid", 7},
		{"newer than the request", "owner", 49},
		{"newer than any version served", "health", MaxVersion.Minor},
		{"unknown", "uuid,bogus,name,also_bogus", MaxVersion.Minor},
		{"sub-resource links", "ports,uuid,volume", MaxVersion.Minor},
		{"sub-resource link not yet a link", "volume", 31},
		{"unknown and newer", "bogus,owner", 49},
		{"the agent's token", "token", MaxVersion.Minor},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Version{Minor: tt.minor}
			_, want := referencePick(referenceNode(renderNodes()["full"], "", "", v), tt.fields, v)
			_, got := pickNodeFields(tt.fields, v)
			if want == nil {
				t.Fatalf("the reference accepts fields=%q at %s: not a refusal", tt.fields, v)
			}
			if got == nil || got.Error() != want.Error() || errors.Is(got, ErrNotAcceptable) != errors.Is(want, ErrNotAcceptable) ||
				wire.CodeOf(got) != wire.CodeOf(want) {
				t.Errorf("fields=%q at %s: got %v, want %v", tt.fields, v, got, want)
			}
		})
	}
}

// TestNodeListBodyIsTheMap holds a list's body to the gin.H it replaced,
// with and without a next page.
func TestNodeListBodyIsTheMap(t *testing.T) {
	nodes := slices.Collect(maps.Values(renderNodes()))
	held := map[string]string{nodes[0].UUID: "conductor-9"}
	const base = "http://127.0.0.1:6385"
	v := MaxVersion
	tests := []struct {
		name string
		view *nodeView
		keys []string // nil: whole
		next string
	}{
		{"short, last page", shortNode(v), []string{"uuid", "instance_uuid", "maintenance", "power_state", "provision_state", "name", "links"}, ""},
		{"short, with next", shortNode(v), []string{"uuid", "instance_uuid", "maintenance", "power_state", "provision_state", "name", "links"},
			base + "/v1/nodes?limit=2&marker=" + nodes[1].UUID + "&sort_key=name"},
		{"detail", wholeNode(v), nil, base + "/v1/nodes/detail?limit=7&marker=x"},
		{"empty", shortNode(v), nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page := nodes
			if tt.name == "empty" {
				page = nil
			}
			docs := make([]any, 0, len(page))
			for _, n := range page {
				doc := referenceNode(n, held[n.UUID], base, v)
				if tt.keys != nil {
					doc = subset(doc, tt.keys...)
				}
				docs = append(docs, doc)
			}
			body := gin.H{"nodes": docs}
			if tt.next != "" {
				body["next"] = tt.next
				body["nodes_links"] = []link{{Href: tt.next, Rel: "next"}}
			}
			want, err := json.Marshal(body)
			if err != nil {
				t.Fatal(err)
			}
			got, err := appendNodeList(nil, page, held, base, v, tt.view, tt.next)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("body:\n got %s\nwant %s", got, want)
			}
		})
	}
}

// TestNodeRenderingNeverShowsSecrets checks what the byte comparison takes
// from the reference: no secret, token or fence appears in any rendering.
func TestNodeRenderingNeverShowsSecrets(t *testing.T) {
	n := renderNodes()["cleaning"]
	got, err := appendNode(nil, &n, "", "http://x", MaxVersion, wholeNode(MaxVersion))
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"hunter2", `"auth_token":"t"`, `"secret":1`, "big", "never shown", "never"} {
		if bytes.Contains(got, []byte(secret)) {
			t.Errorf("rendering shows %q: %s", secret, got)
		}
	}
	if c := bytes.Count(got, []byte(fmt.Sprintf("%q", Mask))); c != 4 {
		t.Errorf("%d masked values, want 4 (ipmi_password, auth_token, secret, configdrive): %s", c, got)
	}
}

// BenchmarkRenderNode renders a whole node at 1.95, as GET node does, with
// the renderer and with the map it replaced.
func BenchmarkRenderNode(b *testing.B) {
	n := renderNodes()["enrolled"]
	n.Name, n.ConductorGroup, n.ResourceClass = "bench-00001", "rack1", "small"
	n.DriverInfo = map[string]any{"sim_machine": "m-00001"}
	const base = "http://127.0.0.1:6385"
	b.Run("fields", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			var err error
			if buf, err = appendNode(buf[:0], &n, "", base, MaxVersion, wholeNode(MaxVersion)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("map", func(b *testing.B) {
		for b.Loop() {
			if _, err := json.Marshal(referenceNode(n, "", base, MaxVersion)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
