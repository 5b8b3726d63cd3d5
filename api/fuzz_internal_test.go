package api

import (
	"bytes"
	"encoding/json"
	"reflect"
	"regexp"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/transport/wire"
)

// FuzzNodePatch applies arbitrary JSON Patch documents to a node: no input
// panics, and whatever is accepted changes writable fields only.
func FuzzNodePatch(f *testing.F) {
	for _, seed := range []string{
		`[{"op":"replace","path":"/name","value":"n2"}]`,
		`[{"op":"add","path":"/extra/a","value":{"b":[1,2]}}]`,
		`[{"op":"remove","path":"/driver_info/ipmi_password"}]`,
		`[{"op":"replace","path":"/driver_info","value":{"ipmi_password":"******"}}]`,
		`[{"op":"move","from":"/extra","path":"/properties"}]`,
		`[{"op":"copy","from":"/name","path":"/description"}]`,
		`[{"op":"test","path":"/maintenance","value":false},{"op":"replace","path":"/maintenance","value":true}]`,
		`[{"op":"replace","path":"/provision_state","value":"active"}]`,
		`[{"op":"add","path":"/extra/-","value":1}]`,
		`[{"op":"replace","path":"/~1x","value":1}]`,
		`[{"op":"remove","path":"/driver"}]`,
		`[{"op":"add","path":"/properties/cpus","value":1e309}]`,
		`[{"op":"copy","from":"/driver_info/ipmi_password","path":"/extra/x"}]`,
		`[{"op":"copy","from":"/driver_info","path":"/properties/d"}]`,
		`[{"op":"move","from":"/driver_info/ipmi_password","path":"/driver_info/a"}]`,
		`[]`, `{}`, `null`, `[null]`, `[{"op":"add"}]`,
	} {
		f.Add([]byte(seed), uint8(82))
	}
	s := &Server{drivers: []string{"ipmi", "sim"}}
	base := wire.Node{
		UUID: "4c1c8b37-55d2-4b7b-9a53-0c1b2b8b1e57", Name: "n1", Driver: "ipmi",
		DriverInfo:     map[string]any{"ipmi_address": "10.0.0.1", "ipmi_password": "fuzz-secret-pw"},
		Extra:          map[string]any{"k": "v"},
		ProvisionState: wire.StateActive, PowerState: wire.PowerOn, Fence: 7, Step: "x", Conductor: "c1",
		Agent:     &wire.AgentInfo{TokenHash: "h", Token: "t"},
		CreatedAt: time.Unix(1, 0).UTC(),
	}
	f.Fuzz(func(t *testing.T, body []byte, minor uint8) {
		v := Version{Minor: int(minor%uint8(MaxVersion.Minor)) + 1}
		patch, err := patchOps(body, v)
		if err != nil {
			if c := wire.CodeOf(err); c != wire.CodeInvalidInput && !isNotAcceptable(err) {
				t.Fatalf("patchOps error of code %s: %v", c, err)
			}
			return
		}
		var n wire.Node
		raw, _ := json.Marshal(base)
		_ = json.Unmarshal(raw, &n)
		d, err := applyPatch(n, patch, 1<<20)
		if err != nil {
			return
		}
		if err := s.applyDoc(&n, d); err != nil {
			return
		}
		if n.UUID != base.UUID || n.ProvisionState != base.ProvisionState || n.PowerState != base.PowerState ||
			n.Fence != base.Fence || n.Step != base.Step || n.Conductor != base.Conductor ||
			!reflect.DeepEqual(n.Agent, base.Agent) || !n.CreatedAt.Equal(base.CreatedAt) {
			t.Fatalf("patch %s changed a field it may not: %+v", body, n)
		}
		rec, err := json.Marshal(n)
		if err != nil {
			t.Fatalf("patched record does not encode: %v", err)
		}
		if bytes.Count(rec, []byte("fuzz-secret-pw")) > 1 || sealedToken.Match(rec) {
			t.Fatalf("patch %s copied the password or left a sealed token: %s", body, rec)
		}
		if n.Driver != "ipmi" && n.Driver != "sim" {
			t.Fatalf("unknown driver %q accepted", n.Driver)
		}
	})
}

// sealedToken matches what sealer puts in place of a secret.
var sealedToken = regexp.MustCompile(`\*{6}[0-9a-f]{32}\.`)

func isNotAcceptable(err error) bool {
	status, _ := httpStatus(err)
	return status == 406
}

func TestVersionParse(t *testing.T) {
	tests := []struct {
		in      string
		want    int
		wantErr bool
	}{
		{"", 1, false}, {"latest", MaxVersion.Minor, false}, {"LATEST", MaxVersion.Minor, false},
		{"1.1", 1, false}, {"1.82", 82, false}, {"1.99", 99, false},
		{"1.01", 0, true}, {"1.", 0, true}, {"1", 0, true}, {"2.1", 0, true}, {"1.-1", 0, true}, {"1.x", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			v, err := parseVersion(tt.in)
			if (err != nil) != tt.wantErr || (err == nil && v.Minor != tt.want) {
				t.Errorf("parseVersion(%q) = %v, %v; want 1.%d, error %v", tt.in, v, err, tt.want, tt.wantErr)
			}
		})
	}
}
