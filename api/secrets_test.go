package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/ironfleet/ironfleet/api"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// secretValues are the secrets of secretNode; no response may contain one.
var secretValues = []string{"s3cret-pw", "tok-9", "pw-in-list", "cd-secret", "priv-key", "Phrase-1", "obj-secret"}

// secretNode creates a node whose driver_info and instance_info hold
// secrets at several depths, under the key names Ironic masks.
func (e *env) secretNode(name string) string {
	e.t.Helper()
	return e.createNode(name, map[string]any{
		"driver_info": map[string]any{
			"sim_machine":   name,
			"ipmi_address":  "10.0.0.1",
			"ipmi_username": "admin",
			"ipmi_password": "s3cret-pw",
			"deploy_key":    "not-a-secret", // Ironic does not mask "key" alone
			"nested":        map[string]any{"snmp": map[string]any{"Auth_Token": "tok-9", "community": "public"}},
			"users":         []any{map[string]any{"name": "a", "password": "pw-in-list"}},
			"client_secret": map[string]any{"value": "obj-secret"},
		},
		"instance_info": map[string]any{
			"image_source": "http://images/x.qcow2",
			"configdrive":  "cd-secret",
			"tls":          map[string]any{"private_key": "priv-key", "PassPhrase": "Phrase-1"},
		},
	})
}

// noSecrets fails if body shows any of secretValues.
func noSecrets(t *testing.T, what string, body []byte) {
	t.Helper()
	for _, s := range secretValues {
		if strings.Contains(string(body), s) {
			t.Errorf("%s shows the secret %q: %s", what, s, body)
		}
	}
}

// TestSecretsMaskedAtAnyDepth: every driver_info and instance_info value
// whose key names a secret (Ironic's list: password, secret, token,
// configdrive, private_key, passphrase, …) reads as the mask, however deep,
// in objects and in lists; other values show.
func TestSecretsMaskedAtAnyDepth(t *testing.T) {
	e := newEnv(t)
	id := e.secretNode("deep-1")
	for _, path := range []string{"/v1/nodes/" + id, "/v1/nodes/detail", "/v1/nodes?fields=uuid,driver_info,instance_info"} {
		r := e.do(http.MethodGet, path, nil)
		mustStatus(t, r, 200)
		noSecrets(t, path, r.body)
		for _, want := range []string{"not-a-secret", "public", "http://images/x.qcow2", `"name":"a"`} {
			if !strings.Contains(string(r.body), want) {
				t.Errorf("%s hides %q, which is no secret: %s", path, want, r.body)
			}
		}
	}
	n := e.do(http.MethodGet, "/v1/nodes/"+id, nil).json(t)
	di := n["driver_info"].(map[string]any)
	if got := di["nested"].(map[string]any)["snmp"].(map[string]any)["Auth_Token"]; got != api.Mask {
		t.Errorf("nested token reads %v", got)
	}
	if got := di["users"].([]any)[0].(map[string]any)["password"]; got != api.Mask {
		t.Errorf("password in a list reads %v", got)
	}
	if got := di["client_secret"]; got != api.Mask {
		t.Errorf("an object under a secret key reads %v, want the mask", got)
	}
}

// TestPatchCannotReadSecrets: a JSON Patch works on the document a client
// sees, so no operation can copy, move or test a secret into view; secrets
// stay where they are unless replaced or removed, and sending the mask back
// keeps them.
func TestPatchCannotReadSecrets(t *testing.T) {
	e := newEnv(t)
	id := e.secretNode("sec-1")
	stored := func() wire.Node {
		t.Helper()
		n, err := e.inv.Get(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	tests := []struct {
		name       string
		patch      string
		wantStatus int
		check      func(t *testing.T, n wire.Node)
	}{
		{"copy a password into extra", `[{"op":"copy","from":"/driver_info/ipmi_password","path":"/extra/x"}]`, 400, nil},
		{"move a password into extra", `[{"op":"move","from":"/driver_info/ipmi_password","path":"/extra/x"}]`, 400, nil},
		{"copy driver_info into extra", `[{"op":"copy","from":"/driver_info","path":"/extra/di"}]`, 400, nil},
		{"move driver_info into properties", `[{"op":"move","from":"/driver_info","path":"/properties/di"}]`, 400, nil},
		{"copy a nested token into the description", `[{"op":"copy","from":"/driver_info/nested/snmp/Auth_Token","path":"/description"}]`, 400, nil},
		{"copy a configdrive into instance_info", `[{"op":"copy","from":"/instance_info/configdrive","path":"/instance_info/image_source"}]`, 400, nil},
		{"copy a password to another secret key", `[{"op":"copy","from":"/driver_info/ipmi_password","path":"/driver_info/snmp_password"}]`, 400, nil},
		{"move a list holding a password", `[{"op":"move","from":"/driver_info/users","path":"/extra/users"}]`, 400, nil},
		{"copy a secret, then remove it again", `[{"op":"copy","from":"/driver_info/ipmi_password","path":"/extra/x"},{"op":"copy","from":"/extra/x","path":"/name"},{"op":"remove","path":"/extra/x"}]`, 400, nil},
		{"copy a non-secret", `[{"op":"copy","from":"/driver_info/ipmi_address","path":"/extra/bmc"}]`, 200, func(t *testing.T, n wire.Node) {
			if n.Extra["bmc"] != "10.0.0.1" {
				t.Errorf("extra %v", n.Extra)
			}
		}},
		{"replace driver_info with what GET shows", `[{"op":"replace","path":"/driver_info","value":{"sim_machine":"sec-1","ipmi_address":"10.0.0.2","ipmi_username":"admin","ipmi_password":"******","deploy_key":"not-a-secret","nested":{"snmp":{"Auth_Token":"******","community":"public"}},"client_secret":"******","users":[]}}]`, 200, func(t *testing.T, n wire.Node) {
			snmp := n.DriverInfo["nested"].(map[string]any)["snmp"].(map[string]any)
			if n.DriverInfo["ipmi_password"] != "s3cret-pw" || snmp["Auth_Token"] != "tok-9" || n.DriverInfo["ipmi_address"] != "10.0.0.2" {
				t.Errorf("driver_info %v", n.DriverInfo)
			}
			if cs, _ := n.DriverInfo["client_secret"].(map[string]any); cs["value"] != "obj-secret" {
				t.Errorf("client_secret %v", n.DriverInfo["client_secret"])
			}
		}},
		{"the mask where no secret was", `[{"op":"add","path":"/driver_info/bmc_password","value":"******"}]`, 400, nil},
		{"set a password", `[{"op":"replace","path":"/driver_info/ipmi_password","value":"new-pw"}]`, 200, func(t *testing.T, n wire.Node) {
			if n.DriverInfo["ipmi_password"] != "new-pw" {
				t.Errorf("password %v", n.DriverInfo["ipmi_password"])
			}
		}},
		{"remove a token", `[{"op":"remove","path":"/driver_info/nested/snmp/Auth_Token"}]`, 200, func(t *testing.T, n wire.Node) {
			if _, ok := n.DriverInfo["nested"].(map[string]any)["snmp"].(map[string]any)["Auth_Token"]; ok {
				t.Errorf("token still there: %v", n.DriverInfo)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := stored()
			r := e.do(http.MethodPatch, "/v1/nodes/"+id, tt.patch)
			mustStatus(t, r, tt.wantStatus)
			noSecrets(t, "PATCH answer", r.body)
			after := stored()
			for _, s := range secretValues {
				for field, m := range map[string]map[string]any{"extra": after.Extra, "properties": after.Properties} {
					if strings.Contains(mustJSON(t, m), s) {
						t.Errorf("%s now holds the secret %q: %v", field, s, m)
					}
				}
				if strings.Contains(after.Name+after.Description, s) {
					t.Errorf("name or description now holds the secret %q", s)
				}
			}
			if tt.wantStatus != 200 && mustJSON(t, after) != mustJSON(t, before) {
				t.Errorf("a refused patch changed the node:\n%+v\n%+v", before, after)
			}
			if tt.check != nil {
				tt.check(t, after)
			}
		})
	}
	// A test op is no oracle: the right guess and a wrong one get the same answer.
	e.do(http.MethodPatch, "/v1/nodes/"+id, `[{"op":"replace","path":"/driver_info/ipmi_password","value":"s3cret-pw"}]`)
	right := e.do(http.MethodPatch, "/v1/nodes/"+id, `[{"op":"test","path":"/driver_info/ipmi_password","value":"s3cret-pw"}]`)
	wrong := e.do(http.MethodPatch, "/v1/nodes/"+id, `[{"op":"test","path":"/driver_info/ipmi_password","value":"guess"}]`)
	if right.status != wrong.status || right.fault(t)["faultstring"] != wrong.fault(t)["faultstring"] {
		t.Errorf("test op tells a right guess (%d %s) from a wrong one (%d %s)", right.status, right.body, wrong.status, wrong.body)
	}
}

// TestLookupMasksSecrets: the agent's lookup answer (unauthenticated, by
// MAC) shows instance_info as Ironic's does: secrets masked.
func TestLookupMasksSecrets(t *testing.T) {
	e := newEnv(t)
	id := e.secretNode("lk-sec")
	mustStatus(t, e.do(http.MethodPost, "/v1/ports", map[string]any{"node_uuid": id, "address": "52:54:00:cc:00:09"}), 201)
	e.setState(id, wire.StateWaitCallback)
	r := e.do(http.MethodGet, "/v1/lookup?addresses=52:54:00:cc:00:09", nil, "X-OpenStack-Ironic-API-Version", wire.AgentAPIVersion)
	mustStatus(t, r, 200)
	noSecrets(t, "lookup", r.body)
	if !strings.Contains(string(r.body), "http://images/x.qcow2") {
		t.Errorf("lookup hides instance_info: %s", r.body)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
