package api_test

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/ironfleet/ironfleet/api"
)

// copies is a small JSON Patch whose copies double path's object n times.
func copies(path string, n int) string {
	ops := []string{`{"op":"add","path":"` + path + `/seed","value":"` + strings.Repeat("x", 1000) + `"}`}
	for i := range n {
		ops = append(ops, fmt.Sprintf(`{"op":"copy","from":"%s","path":"%s/c%d"}`, path, path, i))
	}
	return "[" + strings.Join(ops, ",") + "]"
}

// sizesNamed matches a message that names a size and a limit in bytes.
var sizesNamed = regexp.MustCompile(`\d{6,} .*\d{6,}`)

// TestRecordSizeLimit: a write whose record would exceed what the
// inventory stores — a small patch whose copies multiply, or a big value —
// is refused up front with 413 naming the size and the limit, never 503,
// and nothing is written.
func TestRecordSizeLimit(t *testing.T) {
	e := newEnv(t, func(c *api.Config) { c.MaxBodyBytes = 4 << 20 })
	id := e.createNode("big-1", nil)
	r := e.do(http.MethodPost, "/v1/ports", map[string]any{"node_uuid": id, "address": "52:54:00:dd:00:01"})
	mustStatus(t, r, 201)
	port := r.json(t)["uuid"].(string)
	big := strings.Repeat("y", 3<<19) // 1.5 MiB
	const tooLarge = http.StatusRequestEntityTooLarge
	tests := []call{
		{"node patch whose copies multiply", http.MethodPatch, "/v1/nodes/" + id, copies("/extra", 12), tooLarge},
		{"node patch with a big value", http.MethodPatch, "/v1/nodes/" + id, `[{"op":"add","path":"/extra/big","value":"` + big + `"}]`, tooLarge},
		{"node create with a big value", http.MethodPost, "/v1/nodes", map[string]any{"driver": "sim", "extra": map[string]any{"big": big}}, tooLarge},
		{"port patch whose copies multiply", http.MethodPatch, "/v1/ports/" + port, copies("/extra", 12), tooLarge},
		{"port create with a big value", http.MethodPost, "/v1/ports", map[string]any{"node_uuid": id, "address": "52:54:00:dd:00:02", "extra": map[string]any{"big": big}}, tooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(tt.method, tt.path, tt.body)
			mustStatus(t, r, tt.wantStatus)
			f := r.fault(t)
			if msg, _ := f["faultstring"].(string); f["faultcode"] != "Client" || !sizesNamed.MatchString(msg) {
				t.Errorf("fault %v: want the size and the limit named", f)
			}
		})
	}
	n, err := e.inv.Get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if len(n.Extra) != 0 {
		t.Errorf("a refused write changed the node: extra has %d keys", len(n.Extra))
	}
	p, err := e.inv.GetPort(t.Context(), port)
	if err != nil || len(p.Extra) != 0 {
		t.Errorf("a refused write changed the port: %v, %v", p.Extra, err)
	}
}
