package api_test

import (
	"net/http"
	"reflect"
	"testing"
)

// TestVIFs follows Ironic's VIFPortIDMixin without neutron
// (ironic/drivers/modules/network/common.py): a VIF goes to a free port,
// PXE-enabled first, then in creation order, and is shown in the port's
// internal_info.tenant_vif_port_id; attaching it twice is 409
// VifAlreadyAttached, with no free port 400 NoFreePhysicalPorts, detaching
// one not attached 400 VifNotAttached; a bound port cannot be deleted
// outside maintenance.
func TestVIFs(t *testing.T) {
	e := newEnv(t)
	id := e.createNode("vifs-1", nil)
	port := func(mac string, pxe bool) string {
		r := e.do(http.MethodPost, "/v1/ports", map[string]any{"node_uuid": id, "address": mac, "pxe_enabled": pxe})
		mustStatus(t, r, http.StatusCreated)
		return r.json(t)["uuid"].(string)
	}
	noPXE, pxe1, pxe2 := port("52:54:00:aa:00:01", false), port("52:54:00:aa:00:02", true), port("52:54:00:aa:00:03", true)
	bound := func(port string) any {
		t.Helper()
		info, _ := e.do(http.MethodGet, "/v1/ports/"+port, nil).json(t)["internal_info"].(map[string]any)
		return info["tenant_vif_port_id"]
	}
	vifs := func() []any {
		t.Helper()
		r := e.do(http.MethodGet, "/v1/nodes/"+id+"/vifs", nil)
		mustStatus(t, r, http.StatusOK)
		got, _ := r.json(t)["vifs"].([]any)
		return got
	}
	attach := func(body any) resp { return e.do(http.MethodPost, "/v1/nodes/"+id+"/vifs", body) }
	const vifA, vifB, vifC = "6d3c5c4a-3f7e-4f8e-9d35-0a4f1a4e6b01", "6d3c5c4a-3f7e-4f8e-9d35-0a4f1a4e6b02", "vif-c"

	steps := []struct {
		name       string
		r          func() resp
		wantStatus int
		wantFault  string
		wantPort   string // the port the step bound, if it binds
		wantVIF    string
	}{
		{"first goes to a PXE port", func() resp { return attach(map[string]any{"id": vifA}) }, 204, "", pxe1, vifA},
		{"twice is a conflict", func() resp { return attach(map[string]any{"id": vifA}) }, 409,
			"Unable to attach VIF because VIF " + vifA + " is already attached to Ironic Port " + pxe1, "", ""},
		{"second goes to the other PXE port", func() resp { return attach(map[string]any{"id": vifB}) }, 204, "", pxe2, vifB},
		{"third to the port without PXE", func() resp { return attach(map[string]any{"id": vifC}) }, 204, "", noPXE, vifC},
		{"no free port", func() resp { return attach(map[string]any{"id": "vif-d"}) }, 400,
			"Unable to attach VIF vif-d, not enough free physical ports.", "", ""},
		{"bound port not deleted", func() resp { return e.do(http.MethodDelete, "/v1/ports/"+pxe1, nil) }, 409,
			"Cannot delete the port " + pxe1 + " as it is bound to VIF " + vifA + " for use.", "", ""},
		{"detach", func() resp { return e.do(http.MethodDelete, "/v1/nodes/"+id+"/vifs/"+vifA, nil) }, 204, "", pxe1, ""},
		{"detach again", func() resp { return e.do(http.MethodDelete, "/v1/nodes/"+id+"/vifs/"+vifA, nil) }, 400,
			"Unable to detach VIF " + vifA + " from node " + id + " because it is not attached to it.", "", ""},
		{"detach a bad ID", func() resp { return e.do(http.MethodDelete, "/v1/nodes/"+id+"/vifs/bad%20id", nil) }, 400,
			"Expected a logical name or UUID but received bad id.", "", ""},
		{"port_uuid below 1.67", func() resp {
			return e.do(http.MethodPost, "/v1/nodes/"+id+"/vifs", map[string]any{"id": vifA, "port_uuid": pxe1}, "X-OpenStack-Ironic-API-Version", "1.66")
		}, 406, "", "", ""},
		{"port_uuid of a bound port", func() resp { return attach(map[string]any{"id": vifA, "port_uuid": pxe2}) }, 400,
			"Unable to attach VIF " + vifA + ", not enough free physical ports.", "", ""},
		{"port_uuid", func() resp { return attach(map[string]any{"id": vifA, "port_uuid": pxe1}) }, 204, "", pxe1, vifA},
		{"unknown key", func() resp { return attach(map[string]any{"id": "vif-e", "network": "x"}) }, 400,
			"Unknown attribute for VIF attachment: network.", "", ""},
		{"no id", func() resp { return attach(map[string]any{}) }, 400, "Invalid VIF attachment: 'id' is a required property.", "", ""},
		{"below 1.28", func() resp {
			return e.do(http.MethodGet, "/v1/nodes/"+id+"/vifs", nil, "X-OpenStack-Ironic-API-Version", "1.27")
		}, 404, "", "", ""},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			before := vifs()
			r := st.r()
			mustStatus(t, r, st.wantStatus)
			if st.wantFault != "" {
				if got := r.fault(t)["faultstring"]; got != st.wantFault {
					t.Errorf("faultstring %q, want %q", got, st.wantFault)
				}
			}
			if r.status >= 400 {
				if after := vifs(); !reflect.DeepEqual(after, before) {
					t.Errorf("VIFs %v after a refusal, want %v", after, before)
				}
			}
			if st.wantPort != "" {
				var want any
				if st.wantVIF != "" {
					want = st.wantVIF
				}
				if got := bound(st.wantPort); got != want {
					t.Errorf("port %s bound to %v, want %v", st.wantPort, got, want)
				}
			}
		})
	}
	want := []any{map[string]any{"id": vifC}, map[string]any{"id": vifA}, map[string]any{"id": vifB}}
	if got := vifs(); !reflect.DeepEqual(got, want) {
		t.Errorf("vifs %v, want %v (ports in creation order)", got, want)
	}

	t.Run("a bound port is deleted in maintenance", func(t *testing.T) {
		mustStatus(t, e.do(http.MethodPut, "/v1/nodes/"+id+"/maintenance", map[string]any{"reason": "x"}), http.StatusAccepted)
		mustStatus(t, e.do(http.MethodDelete, "/v1/ports/"+noPXE, nil), http.StatusNoContent)
	})
}
