package api_test

import (
	"net/http"
	"testing"
)

// TestConsoleState: GET and PUT …/states/console as Ironic answers them:
// a no-console node shows a disabled console and refuses to enable or
// disable one, naming the driver; the fake console
// (fake-hardware) is enabled and disabled, and the node shows it.
func TestConsoleState(t *testing.T) {
	e := newEnv(t)
	fake := e.createFake("console-fake", nil)
	none := e.createFake("console-none", map[string]any{"console_interface": "no-console"})

	r := e.do(http.MethodGet, "/v1/nodes/"+none+"/states/console", nil)
	mustStatus(t, r, http.StatusOK)
	if s := r.json(t); s["console_enabled"] != false || s["console_info"] != nil {
		t.Errorf("no-console shows %v, want disabled (Ironic's NodeConsoleNotEnabled comes first)", s)
	}
	for _, r := range []resp{
		e.do(http.MethodPut, "/v1/nodes/"+none+"/states/console", map[string]any{"enabled": true}),
		e.do(http.MethodPut, "/v1/nodes/"+none+"/states/console", map[string]any{"enabled": false}),
	} {
		mustStatus(t, r, http.StatusBadRequest)
		if got := faultString(t, r); got != "Driver fake-hardware does not support console (disabled or not implemented)." {
			t.Errorf("no-console: %q", got)
		}
	}
	for _, body := range []map[string]any{{}, {"enabled": "yes"}, {"enabled": true, "mode": "x"}} {
		mustStatus(t, e.do(http.MethodPut, "/v1/nodes/"+fake+"/states/console", body), http.StatusBadRequest)
	}

	state := func() map[string]any {
		r := e.do(http.MethodGet, "/v1/nodes/"+fake+"/states/console", nil)
		mustStatus(t, r, http.StatusOK)
		return r.json(t)
	}
	if s := state(); s["console_enabled"] != false || s["console_info"] != nil {
		t.Fatalf("before: %v", s)
	}
	mustStatus(t, e.do(http.MethodPut, "/v1/nodes/"+fake+"/states/console", map[string]any{"enabled": true}), http.StatusAccepted)
	if s := state(); s["console_enabled"] != true || s["console_info"] == nil {
		t.Fatalf("enabled: %v", s)
	}
	r = e.do(http.MethodGet, "/v1/nodes/"+fake, nil)
	if n := r.json(t); n["console_enabled"] != true {
		t.Errorf("node console_enabled %v, want true", n["console_enabled"])
	}
	mustStatus(t, e.do(http.MethodPut, "/v1/nodes/"+fake+"/states/console", map[string]any{"enabled": false}), http.StatusAccepted)
	if s := state(); s["console_enabled"] != false {
		t.Fatalf("disabled: %v", s)
	}
}
