package apiclient_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/internal/apiclient"
)

// fakeAPI is a hand-written stand-in for the API's node, port and
// provision endpoints. Nodes move to a verb's target state at once; the
// first locked answers to a provision request are 409.
type fakeAPI struct {
	mu      sync.Mutex
	srv     *httptest.Server
	nodes   map[string]map[string]any // by name
	ports   []string
	patched []string
	locked  int // 409s still to answer to provision requests
	headers http.Header
}

func newFakeAPI(t *testing.T) *fakeAPI {
	f := &fakeAPI{nodes: map[string]map[string]any{}}
	f.srv = httptest.NewServer(f)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPI) client() *apiclient.Client {
	return &apiclient.Client{Base: f.srv.URL + "/", LockedRetry: time.Millisecond, Poll: time.Millisecond}
}

func (f *fakeAPI) node(key string) map[string]any {
	if n, ok := f.nodes[key]; ok {
		return n
	}
	for _, n := range f.nodes {
		if n["uuid"] == key {
			return n
		}
	}
	return nil
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.headers = r.Header.Clone()
	var body map[string]any
	if r.Method == http.MethodPost || r.Method == http.MethodPut {
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	reply := func(code int, v any) {
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	}
	path := r.URL.Path
	switch {
	case r.Method == http.MethodPost && path == "/v1/nodes":
		name := body["name"].(string)
		if f.nodes[name] != nil {
			reply(http.StatusConflict, map[string]string{"error_message": "exists"})
			return
		}
		body["uuid"], body["provision_state"] = "uuid-"+name, "enroll"
		f.nodes[name] = body
		reply(http.StatusCreated, body)
	case r.Method == http.MethodPatch && strings.HasPrefix(path, "/v1/nodes/"):
		name := strings.TrimPrefix(path, "/v1/nodes/")
		f.patched = append(f.patched, name)
		reply(http.StatusOK, f.nodes[name])
	case r.Method == http.MethodPost && path == "/v1/ports":
		mac := body["address"].(string)
		if slices.Contains(f.ports, mac) {
			reply(http.StatusConflict, map[string]string{"error_message": "exists"})
			return
		}
		f.ports = append(f.ports, mac)
		reply(http.StatusCreated, body)
	case r.Method == http.MethodPut && strings.HasSuffix(path, "/states/provision"):
		if f.locked > 0 {
			f.locked--
			reply(http.StatusConflict, map[string]string{"error_message": "NodeLocked"})
			return
		}
		n := f.node(strings.TrimSuffix(strings.TrimPrefix(path, "/v1/nodes/"), "/states/provision"))
		n["provision_state"] = map[string]string{"manage": "manageable", "provide": "available", "active": "deploy failed"}[body["target"].(string)]
		if n["provision_state"] == "deploy failed" {
			n["last_error"] = "image checksum mismatch"
		}
		w.WriteHeader(http.StatusAccepted)
	case r.Method == http.MethodGet && path == "/v1/nodes":
		names := slices.Sorted(maps.Keys(f.nodes))
		marker := r.URL.Query().Get("marker")
		var page []map[string]any
		for _, name := range names {
			if name > marker && len(page) < 2 {
				page = append(page, f.nodes[name])
			}
		}
		doc := map[string]any{"nodes": page}
		if len(page) == 2 {
			doc["next"] = fmt.Sprintf("%s/v1/nodes?limit=2&marker=%s", f.srv.URL, page[1]["name"])
		}
		reply(http.StatusOK, doc)
	case r.Method == http.MethodGet && strings.HasPrefix(path, "/v1/nodes/"):
		if n := f.node(strings.TrimPrefix(path, "/v1/nodes/")); n != nil {
			reply(http.StatusOK, n)
			return
		}
		reply(http.StatusNotFound, map[string]string{"error_message": "no such node"})
	default:
		reply(http.StatusServiceUnavailable, map[string]string{"error_message": "unavailable"})
	}
}

func TestDo(t *testing.T) {
	f := newFakeAPI(t)
	c := f.client()
	err := c.Do(t.Context(), http.MethodGet, "/v1/nodes/nope", nil, nil)
	if !apiclient.IsStatus(err, http.StatusNotFound) || !strings.Contains(err.Error(), "GET /v1/nodes/nope: HTTP 404") {
		t.Fatalf("got %v, want a 404 naming the request", err)
	}
	if v := f.headers.Get("X-OpenStack-Ironic-API-Version"); v != "latest" {
		t.Errorf("microversion header %q, want latest", v)
	}
	var n struct{ UUID string }
	if err := c.Do(t.Context(), http.MethodPost, "/v1/nodes", map[string]any{"name": "a"}, &n); err != nil || n.UUID != "uuid-a" {
		t.Fatalf("got %+v, %v; want uuid-a", n, err)
	}
	if ct := f.headers.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	if err := c.Do(t.Context(), http.MethodGet, f.srv.URL+"/v1/nodes/a", nil, &n); err != nil {
		t.Errorf("absolute URL: %v", err)
	}
}

func TestListNodesFollowsPages(t *testing.T) {
	f := newFakeAPI(t)
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		f.nodes[name] = map[string]any{"name": name}
	}
	got, err := apiclient.ListNodes[struct{ Name string }](t.Context(), f.client(), "/v1/nodes?limit=2")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range got {
		names = append(names, n.Name)
	}
	if want := []string{"a", "b", "c", "d", "e"}; !slices.Equal(names, want) {
		t.Fatalf("got %v, want %v", names, want)
	}
}

func TestSetProvisionStateRetriesWhileLocked(t *testing.T) {
	f := newFakeAPI(t)
	f.nodes["a"] = map[string]any{"name": "a", "uuid": "uuid-a", "provision_state": "enroll"}
	f.locked = 3
	c := f.client()
	conflicts, err := c.SetProvisionState(t.Context(), "uuid-a", "manage")
	if err != nil || conflicts != 3 {
		t.Fatalf("got %d conflicts, %v; want 3, nil", conflicts, err)
	}
	if err := c.WaitState(t.Context(), "uuid-a", "manageable"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetProvisionState(t.Context(), "uuid-a", "active"); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitState(t.Context(), "uuid-a", "active"); err == nil || !strings.Contains(err.Error(), "image checksum mismatch") {
		t.Fatalf("waiting for a node that failed: %v, want its last_error", err)
	}
}

func TestEnroll(t *testing.T) {
	f := newFakeAPI(t)
	nodes := []apiclient.Node{
		{Name: "n1", Driver: "sim", DriverInfo: map[string]any{"k": "1"}, MACs: []string{"52:54:00:00:00:01"}},
		{Name: "n2", Driver: "sim", AutomatedClean: new(bool), MACs: []string{"52:54:00:00:00:02", "52:54:00:00:00:03"}},
	}
	c := f.client()
	uuids, err := c.Enroll(t.Context(), nodes, apiclient.EnrollConfig{Provide: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(uuids) != 2 || uuids["n1"] != "uuid-n1" || uuids["n2"] != "uuid-n2" {
		t.Fatalf("got %v", uuids)
	}
	f.mu.Lock()
	if len(f.ports) != 3 || f.nodes["n1"]["provision_state"] != "available" || f.nodes["n2"]["automated_clean"] != false {
		t.Errorf("ports %v, n1 %v, n2 %v", f.ports, f.nodes["n1"], f.nodes["n2"])
	}
	if _, set := f.nodes["n1"]["automated_clean"]; set {
		t.Error("automated_clean sent for n1, which left it unset")
	}
	f.mu.Unlock()

	// Enrolling again reuses the nodes and keeps their ports.
	again, err := c.Enroll(t.Context(), nodes, apiclient.EnrollConfig{Workers: 1})
	if err != nil || !maps.Equal(again, uuids) {
		t.Fatalf("second Enroll = %v, %v; want %v", again, err, uuids)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !slices.Equal(f.patched, []string{"n1", "n2"}) || len(f.ports) != 3 {
		t.Errorf("second Enroll patched %v and left %d ports; want n1, n2 and 3", f.patched, len(f.ports))
	}
}

func TestEnrollError(t *testing.T) {
	f := newFakeAPI(t)
	c := f.client()
	c.Base += "broken" // every path 503s
	_, err := c.Enroll(t.Context(), []apiclient.Node{{Name: "n1"}}, apiclient.EnrollConfig{})
	if !apiclient.IsStatus(err, http.StatusServiceUnavailable) || !strings.Contains(err.Error(), "enroll n1") {
		t.Fatalf("got %v, want the 503 and the node's name", err)
	}
}
