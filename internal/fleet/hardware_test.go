package fleet_test

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/ironfleet/ironfleet/internal/fleet"
)

// TestValidateOnlyDrivers: an API process accepts the hardware types it is
// told, ipmi and fake-hardware by default, and refuses to start with an
// unknown one or none.
func TestValidateOnlyDrivers(t *testing.T) {
	tests := []struct {
		name  string
		types []string
		want  []string
		err   string
	}{
		{"default", nil, []string{"fake-hardware", "ipmi"}, ""},
		{"sim", []string{"sim"}, []string{"sim"}, ""},
		{"all", []string{"ipmi", " fake-hardware", "sim"}, []string{"fake-hardware", "ipmi", "sim"}, ""},
		{"unknown", []string{"ipmi", "redfish"}, nil, `unknown hardware type "redfish": want one of ipmi, fake-hardware, sim`},
		{"none", []string{}, nil, "no hardware type enabled"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ds, err := fleet.ValidateOnlyDrivers(tc.types)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := slices.Sorted(maps.Keys(ds)); !slices.Equal(got, tc.want) {
				t.Fatalf("types %v, want %v", got, tc.want)
			}
		})
	}
	ds, _ := fleet.ValidateOnlyDrivers(nil)
	if props, err := ds.Properties("ipmi"); err != nil || props["ipmi_address"] == "" {
		t.Errorf("ipmi properties %v, %v: want ipmi_address described", props, err)
	}
}
