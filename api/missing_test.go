package api_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/api"
)

// TestNodeBehindTheCacheIsFound: every single-node path reads a node the
// store holds even when the API's watch-fed cache has not seen it (here
// its watch is stopped before the node is created, so the cache never
// will), and a node that exists nowhere is still 404.
func TestNodeBehindTheCacheIsFound(t *testing.T) {
	e := newEnv(t, func(c *api.Config) { c.LockViewTimeout = 50 * time.Millisecond })
	missing := "6f1a7a6e-0000-4000-8000-000000000404"
	mustStatus(t, e.do(http.MethodGet, "/v1/nodes/"+missing, nil), http.StatusNotFound)

	e.inv.Close() // the cache stops here
	uuid := e.createNode("behind", map[string]any{"driver": "fake-hardware", "driver_info": map[string]any{}})
	if _, ok := e.inv.Node(uuid); ok {
		t.Fatal("the stopped cache has the new node; the test proves nothing")
	}
	// In order: each runs on the node as the one before left it.
	tests := []struct {
		name   string
		method string
		path   string
		body   any
		want   int
	}{
		{"GET by uuid", http.MethodGet, "/v1/nodes/" + uuid, nil, http.StatusOK},
		{"GET by name", http.MethodGet, "/v1/nodes/behind", nil, http.StatusOK},
		{"GET states", http.MethodGet, "/v1/nodes/" + uuid + "/states", nil, http.StatusOK},
		{"PATCH", http.MethodPatch, "/v1/nodes/" + uuid, []map[string]any{{"op": "add", "path": "/description", "value": "seen"}}, http.StatusOK},
		{"POST port with node_uuid", http.MethodPost, "/v1/ports", map[string]any{"node_uuid": uuid, "address": "52:54:00:00:04:04"}, http.StatusCreated},
		{"PUT maintenance", http.MethodPut, "/v1/nodes/" + uuid + "/maintenance", map[string]any{"reason": "test"}, http.StatusAccepted},
		{"DELETE maintenance", http.MethodDelete, "/v1/nodes/" + uuid + "/maintenance", nil, http.StatusAccepted},
		// Last: the lock goes to the task's ticket, which no conductor claims here.
		{"PUT provision", http.MethodPut, "/v1/nodes/" + uuid + "/states/provision", map[string]any{"target": "manage"}, http.StatusAccepted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustStatus(t, e.do(tt.method, tt.path, tt.body), tt.want)
		})
	}
}
