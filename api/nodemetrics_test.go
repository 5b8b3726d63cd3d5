package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/ironfleet/ironfleet/transport/wire"
)

// TestNodeStateMetrics: /metrics counts the nodes per provision state (the
// Grafana dashboard's node-state panel).
func TestNodeStateMetrics(t *testing.T) {
	e := newEnv(t)
	e.createNode("ns-1", nil)
	e.createNode("ns-2", nil)
	e.setState(e.createNode("ns-3", nil), wire.StateAvailable)
	r := e.do(http.MethodGet, "/metrics", nil)
	mustStatus(t, r, 200)
	for _, want := range []string{
		`ironfleet_api_nodes{maintenance="false",provision_state="enroll"} 2`,
		`ironfleet_api_nodes{maintenance="false",provision_state="available"} 1`,
	} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
