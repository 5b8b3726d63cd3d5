package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/ironfleet/ironfleet/api"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// TestActionsOverTheGroupLimitAre503: a deploy (or a provide, clean or
// undeploy) that would put more nodes of a conductor group to work than
// its limit is refused up front with 503, as Ironic's ConcurrentActionLimit
// (ironic/common/exception.py; raised by the conductor manager's
// _concurrent_action_limit for 'provisioning' against max_concurrent_deploy
// and 'unprovisioning'/'cleaning' against max_concurrent_clean), so that no
// accepted node waits in a transient state for a slot; nothing is
// published. Below the limit the action is accepted. As Ironic, the
// message names the kind of action, not the limit's value.
func TestActionsOverTheGroupLimitAre503(t *testing.T) {
	e := newEnv(t, func(c *api.Config) { c.MaxDeploys, c.MaxCleans = 1, 1 })
	busy := e.createNode("busy", nil)
	e.setState(busy, wire.StateWaitCallback)
	cleaning := e.createNode("cleaning", nil)
	e.setState(cleaning, wire.StateCleanWait)
	other := e.createNode("other", map[string]any{"conductor_group": "east"})
	e.setState(other, wire.StateAvailable)
	ready := e.createNode("ready", nil)
	e.setState(ready, wire.StateAvailable)
	manageable := e.createNode("manageable", nil)
	e.setState(manageable, wire.StateManageable)

	before := len(e.tasks())
	tests := []struct {
		name, node, target string
		want               int
		says               string
	}{
		{"deploy over the limit", ready, "active", http.StatusServiceUnavailable, "provisioning"},
		{"provide over the limit", manageable, "provide", http.StatusServiceUnavailable, "cleaning"},
		{"another group has room", other, "active", http.StatusAccepted, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(http.MethodPut, "/v1/nodes/"+tt.node+"/states/provision", map[string]any{"target": tt.target})
			mustStatus(t, r, tt.want)
			if tt.says != "" {
				msg, _ := r.fault(t)["faultstring"].(string)
				want := "The concurrent action limit for " + tt.says + " has been reached."
				if !strings.Contains(msg, want) {
					t.Fatalf("faultstring %q, want Ironic's %q", msg, want)
				}
			}
		})
	}
	if got := len(e.tasks()) - before; got != 1 {
		t.Fatalf("%d tasks published, want 1 (the accepted deploy only)", got)
	}
}

// TestABurstOfDeploysStopsAtTheLimit: deploys sent all at once to one API
// process, more than its group's limit, are admitted exactly up to the
// limit: each admitted dispatch counts (a reservation) until the node cache
// shows its move, though the dispatches themselves run side by side.
func TestABurstOfDeploysStopsAtTheLimit(t *testing.T) {
	const nodes, limit = 8, 3
	e := newEnv(t, func(c *api.Config) { c.MaxDeploys = limit })
	var ids []string
	for i := range nodes {
		id := e.createNode(fmt.Sprintf("burst-%d", i), nil)
		e.setState(id, wire.StateAvailable)
		ids = append(ids, id)
	}
	statuses := make([]int, nodes)
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			statuses[i] = e.do(http.MethodPut, "/v1/nodes/"+id+"/states/provision", map[string]any{"target": "active"}).status
		})
	}
	wg.Wait()
	count := map[int]int{}
	for _, s := range statuses {
		count[s]++
	}
	if count[http.StatusAccepted] != limit || count[http.StatusServiceUnavailable] != nodes-limit {
		t.Fatalf("answers %v, want %d × 202 and %d × 503", count, limit, nodes-limit)
	}
}
