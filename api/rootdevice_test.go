package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/ironfleet/ironfleet/transport/wire"
)

// TestProvisionRootDeviceHints: a deploy or rebuild of a node whose root
// device hints are invalid is refused with 400 before anything is
// published, as Ironic's do_node_deploy validates the deploy interface
// (CustomAgentDeploy.validate → deploy_utils.get_root_device_for_deploy)
// before its RPC returns: "Failed to validate deploy or power info …",
// naming where the hints come from and the bad hint. Fake deploy validates
// nothing (FakeDeploy), so its nodes deploy whatever the hints.
func TestProvisionRootDeviceHints(t *testing.T) {
	e := newEnv(t)
	image := map[string]any{"image_source": "http://x/i.img", "image_checksum": strings.Repeat("a", 64)}
	node := func(name string, props, ii map[string]any, st wire.ProvisionState) string {
		info := map[string]any{}
		for k, v := range image {
			info[k] = v
		}
		for k, v := range ii {
			info[k] = v
		}
		u := e.createNode(name, map[string]any{"properties": props, "instance_info": info})
		e.setState(u, st)
		return u
	}
	rd := func(h any) map[string]any { return map[string]any{"root_device": h} }

	tests := []struct {
		name       string
		props, ii  map[string]any
		from       wire.ProvisionState
		target     string
		fake       bool
		wantStatus int
		wantFault  []string
	}{
		{"valid hints deploy", rd(map[string]any{"serial": "ironfleet-disk1", "size": ">= 1"}), nil, wire.StateAvailable, "active", false, 202, nil},
		{"no hints deploy", nil, nil, wire.StateAvailable, "active", false, 202, nil},
		{"unknown hint", rd(map[string]any{"colour": "red"}), nil, wire.StateAvailable, "active", false, 400,
			[]string{"Failed to validate deploy or power info for node", "properties.root_device", `The hints "colour" are invalid`}},
		{"size not an integer", rd(map[string]any{"size": "big"}), nil, wire.StateAvailable, "active", false, 400,
			[]string{"properties.root_device", `Root device hint "size" is not an integer value`}},
		{"size zero", rd(map[string]any{"size": 0}), nil, wire.StateAvailable, "active", false, 400,
			[]string{`Root device hint "size" should be a positive integer`}},
		{"rotational not a Boolean", rd(map[string]any{"rotational": "maybe"}), nil, wire.StateAvailable, "active", false, 400,
			[]string{`Root device hint "rotational" is not a Boolean value`}},
		{"serial a number", rd(map[string]any{"serial": 42}), nil, wire.StateAvailable, "active", false, 400,
			[]string{`Root device hint "serial" is not a string value`}},
		{"root_device a string", rd("sda"), nil, wire.StateAvailable, "active", false, 400,
			[]string{"properties.root_device", "must be an object"}},
		{"instance_info's hints win and are checked", rd(map[string]any{"serial": "ok"}), rd(map[string]any{"model": "s== "}),
			wire.StateAvailable, "active", false, 400, []string{"instance_info.root_device", `"model"`}},
		{"rebuild checks too", rd(map[string]any{"wwn": "<range-in> [ 1 2 ]"}), nil, wire.StateActive, "rebuild", false, 400,
			[]string{`Root device hint "wwn" is a string`}},
		{"fake deploy validates nothing", rd(map[string]any{"colour": "red"}), nil, wire.StateAvailable, "active", true, 202, nil},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var u string
			if tt.fake {
				u = e.createFake("", map[string]any{"properties": tt.props})
				e.setState(u, tt.from)
			} else {
				u = node("rd-"+string(rune('a'+i)), tt.props, tt.ii, tt.from)
			}
			before := len(e.tasks())
			r := e.do(http.MethodPut, "/v1/nodes/"+u+"/states/provision", map[string]any{"target": tt.target})
			mustStatus(t, r, tt.wantStatus)
			published := len(e.tasks()) - before
			if tt.wantStatus == http.StatusAccepted {
				if published != 1 {
					t.Errorf("%d tasks published, want 1", published)
				}
				return
			}
			if published != 0 {
				t.Errorf("a refused request published %d tasks", published)
			}
			f, _ := r.fault(t)["faultstring"].(string)
			for _, w := range tt.wantFault {
				if !strings.Contains(f, w) {
					t.Errorf("faultstring %q, want %q in it", f, w)
				}
			}
			v := e.do(http.MethodGet, "/v1/nodes/"+u+"/validate", nil).json(t)
			if d, _ := v["deploy"].(map[string]any); d["result"] != false || !strings.Contains(d["reason"].(string), "root_device") {
				t.Errorf("validate's deploy = %v, want false with a reason naming root_device", d)
			}
		})
	}
}
