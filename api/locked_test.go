package api_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/agent"
	"github.com/ironfleet/ironfleet/api"
	"github.com/ironfleet/ironfleet/lock"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// mustNodeLocked fails unless r is Ironic's NodeLocked answer for node id
// held by holder: 409, its double-encoded body and its headers.
func mustNodeLocked(t *testing.T, r resp, id, holder string) {
	t.Helper()
	mustStatus(t, r, http.StatusConflict)
	want := "Node " + id + " is locked by host " + holder + ", please retry after the current operation is completed."
	if f := r.fault(t); f["faultstring"] != want || f["faultcode"] != "Client" {
		t.Errorf("fault %v, want Client %q", f, want)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q", ct)
	}
	if r.header.Get("X-OpenStack-Ironic-API-Version") == "" || r.header.Get("X-OpenStack-Ironic-API-Minimum-Version") != "1.1" ||
		r.header.Get("X-OpenStack-Ironic-API-Maximum-Version") != api.MaxVersion.String() || !strings.HasPrefix(r.header.Get("Openstack-Request-Id"), "req-") {
		t.Errorf("headers %v", r.header)
	}
}

// TestWritesTakeTheNodeLock: every write of a node or its ports takes the
// node's lock in standard mode as Ironic's conductor does: 409 NodeLocked
// naming the holder while another holds it (nothing written), and a write
// fenced with the lock's token once it is free.
func TestWritesTakeTheNodeLock(t *testing.T) {
	e := newEnv(t)
	id := e.createNode("locked-1", nil)
	r := e.do(http.MethodPost, "/v1/ports", map[string]any{"node_uuid": id, "address": "52:54:00:ee:00:01"})
	mustStatus(t, r, 201)
	port := r.json(t)["uuid"].(string)
	tests := []call{
		{"patch node", http.MethodPatch, "/v1/nodes/" + id, `[{"op":"add","path":"/extra/x","value":1}]`, 200},
		{"patch node driver_info", http.MethodPatch, "/v1/nodes/" + id, `[{"op":"add","path":"/driver_info/sim_machine","value":"m2"}]`, 200},
		{"maintenance on", http.MethodPut, "/v1/nodes/" + id + "/maintenance", map[string]any{"reason": "disk"}, 202},
		{"maintenance off", http.MethodDelete, "/v1/nodes/" + id + "/maintenance", nil, 202},
		{"create port", http.MethodPost, "/v1/ports", map[string]any{"node_uuid": id, "address": "52:54:00:ee:00:02"}, 201},
		{"patch port", http.MethodPatch, "/v1/ports/" + port, `[{"op":"add","path":"/extra/x","value":1}]`, 200},
		{"delete port", http.MethodDelete, "/v1/ports/" + port, nil, 204},
		{"set traits", http.MethodPut, "/v1/nodes/" + id + "/traits", map[string]any{"traits": []string{"CUSTOM_X"}}, 204},
		{"add a trait", http.MethodPut, "/v1/nodes/" + id + "/traits/CUSTOM_Y", nil, 204},
		{"remove a trait", http.MethodDelete, "/v1/nodes/" + id + "/traits/CUSTOM_Y", nil, 204},
		{"attach a VIF", http.MethodPost, "/v1/nodes/" + id + "/vifs", map[string]any{"id": "vif-1"}, 204},
		{"detach a VIF", http.MethodDelete, "/v1/nodes/" + id + "/vifs/vif-1", nil, 204},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			lk, err := e.locker.WithHolder("conductor-1").Acquire(ctx, id, &lock.Options{Purpose: "deploy", Attempts: 1})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = lk.Release(context.WithoutCancel(ctx)) })
			before, _ := e.inv.Get(ctx, id)
			ports, _ := e.inv.Ports(transport.PortQuery{NodeUUID: id})
			mustNodeLocked(t, e.do(tt.method, tt.path, tt.body), id, "conductor-1")
			after, _ := e.inv.Get(ctx, id)
			if !after.UpdatedAt.Equal(before.UpdatedAt) {
				t.Errorf("the node was written while locked")
			}
			if now, _ := e.inv.Ports(transport.PortQuery{NodeUUID: id}); mustJSON(t, now) != mustJSON(t, ports) {
				t.Errorf("ports changed while locked:\n%+v\n%+v", ports, now)
			}
			token := lk.Token()
			if err := lk.Release(ctx); err != nil {
				t.Fatal(err)
			}
			mustStatus(t, e.do(tt.method, tt.path, tt.body), tt.wantStatus)
			if after, _ = e.inv.Get(ctx, id); after.Fence <= token {
				t.Errorf("node fence %d after the write, want above the last holder's %d: the write was not fenced", after.Fence, token)
			}
			if s, err := e.locker.Snapshot(ctx, id); err != nil || !s.Empty() {
				t.Errorf("lock after the write: %+v, %v; want released", s, err)
			}
		})
	}
}

// TestAgentLookupWaitsOutTheLock: while a conductor holds the node's lock
// (booting it into the agent), lookup answers 409 NodeLocked without
// issuing a token; the real agent pauses and retries, and gets its token
// once the lock is free: the deploy goes on.
func TestAgentLookupWaitsOutTheLock(t *testing.T) {
	e := newEnv(t)
	id := e.createNode("agent-lk", nil)
	mac := "52:54:00:ee:01:01"
	mustStatus(t, e.do(http.MethodPost, "/v1/ports", map[string]any{"node_uuid": id, "address": mac}), 201)
	e.setState(id, wire.StateWaitCallback)
	ctx := t.Context()
	lk, err := e.locker.WithHolder("conductor-1").Acquire(ctx, id, &lock.Options{Purpose: "deploy"})
	if err != nil {
		t.Fatal(err)
	}
	mustNodeLocked(t, e.do(http.MethodGet, "/v1/lookup?addresses="+mac, nil, "X-OpenStack-Ironic-API-Version", wire.AgentAPIVersion), id, "conductor-1")
	if n, _ := e.inv.Get(ctx, id); n.Agent != nil {
		t.Fatalf("a token was issued while the node was locked: %+v", n.Agent)
	}

	a, err := agent.New(noMachine{}, agent.Config{
		APIURL: e.url, MACs: []string{mac}, CallbackURL: "http://127.0.0.1:9",
		Lookup: agent.LookupConfig{Timeout: 30 * time.Second, InitialBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, ConflictPause: 20 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	runUntilCleanup(t, "agent", a.Run)
	waitUntil(t, "the agent's lookup to meet the lock", func() bool { return lookups409(t, e) >= 2 })
	if err := lk.Release(ctx); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the agent's lookup to succeed", func() bool { return a.Node().UUID == id })
	if n, _ := e.inv.Get(ctx, id); n.Agent == nil || n.Agent.TokenHash == "" {
		t.Errorf("no token stored after the lookup: %+v", n.Agent)
	}
}

type noMachine struct{}

func (noMachine) Reboot(context.Context) error   { return nil }
func (noMachine) PowerOff(context.Context) error { return nil }

// lookups409 is how many lookups the API answered 409, from /metrics.
func lookups409(t *testing.T, e *env) int {
	t.Helper()
	for line := range strings.SplitSeq(string(e.do(http.MethodGet, "/metrics", nil).body), "\n") {
		if strings.HasPrefix(line, "ironfleet_api_requests_total{") && strings.Contains(line, `route="/v1/lookup"`) && strings.Contains(line, `code="409"`) {
			n, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			return int(n)
		}
	}
	return 0
}

// waitUntil polls cond every few milliseconds until it holds, for at most
// ten seconds.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
