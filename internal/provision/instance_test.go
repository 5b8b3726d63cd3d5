package provision_test

import (
	"strings"
	"testing"

	"github.com/ironfleet/ironfleet/internal/provision"
	"github.com/ironfleet/ironfleet/transport/wire"
)

func TestCheckInstanceTraits(t *testing.T) {
	tests := []struct {
		name   string
		traits any
		err    string
	}{
		{"none", nil, ""},
		{"empty list", []any{}, ""},
		{"empty string", "", ""},
		{"a string", "CUSTOM_GPU", "A list of strings is expected."},
		{"not strings", []any{1.0}, "A list of strings is expected."},
		{"missing", []any{"CUSTOM_GPU", "CUSTOM_X"}, "Node n1 is missing traits CUSTOM_GPU, CUSTOM_X"},
		{"some missing", []any{"CUSTOM_GOLD", "CUSTOM_X"}, "Node n1 is missing traits CUSTOM_X"},
		{"all the node's", []any{"CUSTOM_GOLD"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := wire.Node{UUID: "n1", InstanceInfo: map[string]any{}, Traits: []string{"CUSTOM_GOLD"}}
			if tc.traits != nil {
				n.InstanceInfo["traits"] = tc.traits
			}
			err := provision.CheckInstanceTraits(n)
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("err %v, want nil", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("err %v, want %q", err, tc.err)
			case tc.err != "" && wire.CodeOf(err) != wire.CodeInvalidInput:
				t.Fatalf("code %s, want invalid_input", wire.CodeOf(err))
			}
		})
	}
}
