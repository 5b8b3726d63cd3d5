package conductor_test

import (
	"strings"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/conductor"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// TestVerifyCachesBiosAndFirmware: verifying a node (manage) caches what
// its bios and firmware interfaces report, as Ironic's node_update_cache:
// the fake interfaces' settings and components, nothing for no-bios and
// no-firmware (the sim hardware type's defaults). The fake interfaces run
// on a sim machine here: the fake-hardware power driver is another part's.
func TestVerifyCachesBiosAndFirmware(t *testing.T) {
	tests := []struct {
		name          string
		interfaces    map[string]string
		wantBios      []string // setting names
		wantFirmware  []string // components
		wantBootValue string
	}{
		{"no-bios, no-firmware", nil, nil, nil, ""},
		{"fake bios and firmware", map[string]string{"bios": "fake", "firmware": "fake"},
			[]string{"AssetTag", "BootMode", "HyperThreading", "NumCores", "ProcVirtualization", "SystemModel"},
			[]string{"bios", "bmc"}, "Uefi"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.startConductor(t, "c1", nil, nil)
			n := e.enroll(t, "bios-"+string(rune('a'+i)), "")
			if tc.interfaces != nil {
				if _, err := e.inv.UpdateNode(t.Context(), n.UUID, 0, func(n *wire.Node) error {
					n.Interfaces = tc.interfaces
					return nil
				}); err != nil {
					t.Fatal(err)
				}
			}
			e.request(t, n.UUID, wire.OpManage, nil)
			got := e.waitState(t, n.UUID, wire.StateManageable, 10*time.Second)
			var names, components []string
			for _, b := range got.Bios {
				names = append(names, b.Name)
				if b.CreatedAt.IsZero() || b.Value == nil {
					t.Errorf("setting %+v: no created_at or value", b)
				}
				if b.Name == "BootMode" && *b.Value != tc.wantBootValue {
					t.Errorf("BootMode %q, want %q", *b.Value, tc.wantBootValue)
				}
			}
			for _, f := range got.Firmware {
				components = append(components, f.Component)
			}
			if strings.Join(names, ",") != strings.Join(tc.wantBios, ",") || strings.Join(components, ",") != strings.Join(tc.wantFirmware, ",") {
				t.Fatalf("bios %v, firmware %v; want %v, %v", names, components, tc.wantBios, tc.wantFirmware)
			}
		})
	}
}

// TestApplyBios: the fake BIOS's apply_configuration and factory_reset, as
// the clean and deploy step runner calls them.
func TestApplyBios(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	fake := wire.Node{Driver: "fake-hardware"}
	tests := []struct {
		name     string
		node     wire.Node
		settings []conductor.BiosValue
		want     map[string]string // values wanted after
		err      string
	}{
		{"an allowable value", fake, []conductor.BiosValue{{"BootMode", "Bios"}, {"NumCores", "8"}},
			map[string]string{"BootMode": "Bios", "NumCores": "8", "HyperThreading": "Enabled"}, ""},
		{"a setting the BIOS lacks is added, as Ironic's fake adds it", fake, []conductor.BiosValue{{"L2Cache", "on"}},
			map[string]string{"L2Cache": "on", "BootMode": "Uefi"}, ""},
		{"not an allowable value", fake, []conductor.BiosValue{{"BootMode", "Legacy"}}, nil,
			`Invalid value "Legacy" for BIOS setting BootMode: allowable values are Bios, Uefi`},
		{"read-only", fake, []conductor.BiosValue{{"SystemModel", "x"}}, nil,
			`Invalid value "x" for BIOS setting SystemModel: it is read-only`},
		{"out of bounds", fake, []conductor.BiosValue{{"NumCores", "65"}}, nil,
			`Invalid value "65" for BIOS setting NumCores: out of bounds`},
		{"too long", fake, []conductor.BiosValue{{"AssetTag", strings.Repeat("x", 33)}}, nil,
			`its length is out of bounds`},
		{"no-bios", wire.Node{Driver: "ipmi"}, []conductor.BiosValue{{"BootMode", "Bios"}}, nil,
			"Driver ipmi does not support bios (disabled or not implemented)."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := conductor.ApplyBios(tc.node, tc.settings, now)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || wire.CodeOf(err) != wire.CodeInvalidInput {
					t.Fatalf("got %v, want an invalid_input error with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			values := map[string]string{}
			for _, b := range got {
				values[b.Name] = *b.Value
			}
			for k, v := range tc.want {
				if values[k] != v {
					t.Errorf("%s = %q, want %q (all: %v)", k, values[k], v, values)
				}
			}
		})
	}
	applied, _ := conductor.ApplyBios(fake, []conductor.BiosValue{{"BootMode", "Bios"}}, now)
	fake.Bios = applied
	reset, err := conductor.FactoryResetBios(fake, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range reset {
		if b.Name == "BootMode" && *b.Value != "Uefi" {
			t.Fatalf("BootMode %q after factory reset, want the factory Uefi", *b.Value)
		}
	}
	if _, err := conductor.FactoryResetBios(wire.Node{Driver: "sim"}, now); wire.CodeOf(err) != wire.CodeInvalidInput {
		t.Fatalf("factory reset of a no-bios node: %v, want invalid_input", err)
	}
}
