package api_test

import (
	"fmt"
	"net/http"
	"reflect"
	"testing"
)

// TestNodeTraits follows Ironic's NodeTraitsController
// (ironic/api/controllers/v1/node.py): replace, add, remove one, remove all,
// each 204, the node's traits field showing them sorted; names checked
// against os-traits and CUSTOM_*; at most 50; 404 below 1.37.
func TestNodeTraits(t *testing.T) {
	e := newEnv(t)
	id := e.createNode("traits-1", nil)
	traits := func() []any {
		t.Helper()
		r := e.do(http.MethodGet, "/v1/nodes/"+id+"/traits", nil)
		mustStatus(t, r, http.StatusOK)
		got, _ := r.json(t)["traits"].([]any)
		return got
	}
	steps := []struct {
		name       string
		method     string
		path       string
		body       any
		wantStatus int
		wantFault  string
		want       []any
	}{
		{"replace", http.MethodPut, "/traits", map[string]any{"traits": []string{"CUSTOM_B", "HW_CPU_X86_AVX2", "CUSTOM_B"}}, 204, "", []any{"CUSTOM_B", "HW_CPU_X86_AVX2"}},
		{"add one", http.MethodPut, "/traits/CUSTOM_A", nil, 204, "", []any{"CUSTOM_A", "CUSTOM_B", "HW_CPU_X86_AVX2"}},
		{"add one again", http.MethodPut, "/traits/CUSTOM_A", nil, 204, "", []any{"CUSTOM_A", "CUSTOM_B", "HW_CPU_X86_AVX2"}},
		{"add one with a body", http.MethodPut, "/traits/CUSTOM_C", map[string]any{"traits": []string{"CUSTOM_D"}}, 400,
			"No body should be provided when adding a trait", nil},
		{"not a trait", http.MethodPut, "/traits/custom_lower", nil, 400, "", nil},
		{"not a standard trait", http.MethodPut, "/traits/HW_CPU_X86_NOPE", nil, 400, "", nil},
		{"a list with a bad name", http.MethodPut, "/traits", map[string]any{"traits": []string{"CUSTOM_OK", "BAD"}}, 400, "", nil},
		{"no traits key", http.MethodPut, "/traits", map[string]any{}, 400, "", nil},
		{"unknown key", http.MethodPut, "/traits", map[string]any{"traits": []string{}, "x": 1}, 400, "Unknown attribute for node traits: x.", nil},
		{"remove one", http.MethodDelete, "/traits/CUSTOM_B", nil, 204, "", []any{"CUSTOM_A", "HW_CPU_X86_AVX2"}},
		{"remove one it lacks", http.MethodDelete, "/traits/CUSTOM_B", nil, 404, "Node " + id + " doesn't have a trait 'CUSTOM_B'", nil},
		{"remove all", http.MethodDelete, "/traits", nil, 204, "", []any{}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			before := traits()
			r := e.do(st.method, "/v1/nodes/"+id+st.path, st.body)
			mustStatus(t, r, st.wantStatus)
			if st.wantFault != "" {
				if got := r.fault(t)["faultstring"]; got != st.wantFault {
					t.Errorf("faultstring %q, want %q", got, st.wantFault)
				}
			}
			want := st.want
			if r.status >= 400 {
				want = before
			}
			if got := traits(); !reflect.DeepEqual(got, want) {
				t.Errorf("traits %v, want %v", got, want)
			}
			shown := e.do(http.MethodGet, "/v1/nodes/"+id+"?fields=traits", nil).json(t)["traits"]
			if !reflect.DeepEqual(shown, any(want)) {
				t.Errorf("node's traits field %v, want %v", shown, want)
			}
		})
	}

	t.Run("at most 50", func(t *testing.T) {
		var many []string
		for i := range 51 {
			many = append(many, fmt.Sprintf("CUSTOM_T%02d", i))
		}
		r := e.do(http.MethodPut, "/v1/nodes/"+id+"/traits", map[string]any{"traits": many})
		mustStatus(t, r, http.StatusBadRequest)
		want := "Could not modify traits for node " + id + " as it would exceed the maximum number of traits per node (51 vs. 50)"
		if got := r.fault(t)["faultstring"]; got != want {
			t.Errorf("faultstring %q, want %q", got, want)
		}
		mustStatus(t, e.do(http.MethodPut, "/v1/nodes/"+id+"/traits", map[string]any{"traits": many[:50]}), http.StatusNoContent)
		mustStatus(t, e.do(http.MethodPut, "/v1/nodes/"+id+"/traits/CUSTOM_ONE_MORE", nil), http.StatusBadRequest)
	})

	t.Run("version gating", func(t *testing.T) {
		for _, tt := range []call{
			{"list at 1.36", http.MethodGet, "/v1/nodes/" + id + "/traits", nil, 404},
			{"add at 1.36", http.MethodPut, "/v1/nodes/" + id + "/traits/CUSTOM_X", nil, 404},
		} {
			mustStatus(t, e.do(tt.method, tt.path, tt.body, "X-OpenStack-Ironic-API-Version", "1.36"), tt.wantStatus)
		}
		if _, ok := e.do(http.MethodGet, "/v1/nodes/"+id, nil, "X-OpenStack-Ironic-API-Version", "1.36").json(t)["traits"]; ok {
			t.Error("traits field shown at 1.36")
		}
	})

	t.Run("unknown node", func(t *testing.T) {
		mustStatus(t, e.do(http.MethodGet, "/v1/nodes/no-such-node/traits", nil), http.StatusNotFound)
		mustStatus(t, e.do(http.MethodPut, "/v1/nodes/no-such-node/traits/CUSTOM_X", nil), http.StatusNotFound)
	})
}
