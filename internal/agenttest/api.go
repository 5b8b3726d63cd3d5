package agenttest

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/transport/wire"
)

// API stands in for ironfleet's API on the agent's side of Ironic's
// ramdisk protocol: it knows nodes by MAC, hands out a token per lookup,
// and records heartbeats. It checks the API version header of lookups.
type API struct {
	*httptest.Server
	t testing.TB

	mu               sync.Mutex
	heartbeatTimeout float64
	nodes            map[string]string // mac → node uuid
	tokens           map[string]string // node uuid → token
	lookupCode       []int             // statuses to answer lookups with first
	beatCode         []int             // statuses to answer heartbeats with first
	lookups          int
	beats            map[string][]wire.HeartbeatRequest // node uuid → heartbeats
}

// NewAPI serves a stand-in API until the test ends. It tells agents a
// heartbeat timeout of an hour, so they beat 30–60 % of an hour apart
// unless the test sets another.
func NewAPI(t testing.TB) *API {
	t.Helper()
	a := &API{
		t:                t,
		heartbeatTimeout: 3600,
		nodes:            map[string]string{},
		tokens:           map[string]string{},
		beats:            map[string][]wire.HeartbeatRequest{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/lookup", a.lookup)
	mux.HandleFunc("POST /v1/heartbeat/{node}", a.heartbeat)
	a.Server = httptest.NewServer(mux)
	t.Cleanup(a.Close)
	return a
}

// AddNode makes lookups by any of macs find node uuid.
func (a *API) AddNode(uuid string, macs ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, m := range macs {
		a.nodes[m] = uuid
	}
}

// SetHeartbeatTimeout sets the heartbeat timeout later lookups return, in
// seconds.
func (a *API) SetHeartbeatTimeout(seconds float64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.heartbeatTimeout = seconds
}

// FailLookups answers the next lookups with these statuses, in order.
func (a *API) FailLookups(statuses ...int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lookupCode = append(a.lookupCode, statuses...)
}

// FailHeartbeats answers the next heartbeats that carry the right token
// with these statuses, in order, without recording them.
func (a *API) FailHeartbeats(statuses ...int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.beatCode = append(a.beatCode, statuses...)
}

func (a *API) lookup(w http.ResponseWriter, r *http.Request) {
	if got := r.Header.Get(wire.APIVersionHeader); got != wire.AgentAPIVersion {
		a.t.Errorf("lookup %s = %q, want %q", wire.APIVersionHeader, got, wire.AgentAPIVersion)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lookups++
	if len(a.lookupCode) > 0 {
		code := a.lookupCode[0]
		a.lookupCode = a.lookupCode[1:]
		http.Error(w, http.StatusText(code), code)
		return
	}
	for mac := range strings.SplitSeq(r.URL.Query().Get("addresses"), ",") {
		if uuid, ok := a.nodes[mac]; ok {
			token := rand.Text()
			a.tokens[uuid] = token
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(wire.LookupResponse{
				Node: wire.LookupNode{UUID: uuid, Properties: map[string]any{"cpus": 2}},
				Config: wire.LookupConfig{
					HeartbeatTimeout: a.heartbeatTimeout, AgentToken: token, AgentTokenRequired: true,
				},
			})
			return
		}
	}
	http.Error(w, `{"error_message": "node not found"}`, http.StatusNotFound)
}

func (a *API) heartbeat(w http.ResponseWriter, r *http.Request) {
	var hb wire.HeartbeatRequest
	if err := json.NewDecoder(r.Body).Decode(&hb); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	uuid := r.PathValue("node")
	a.mu.Lock()
	defer a.mu.Unlock()
	if tok, ok := a.tokens[uuid]; !ok || tok != hb.AgentToken {
		http.Error(w, "bad token", http.StatusUnauthorized)
		return
	}
	if len(a.beatCode) > 0 {
		code := a.beatCode[0]
		a.beatCode = a.beatCode[1:]
		http.Error(w, http.StatusText(code), code)
		return
	}
	a.beats[uuid] = append(a.beats[uuid], hb)
	w.WriteHeader(http.StatusAccepted)
}

// Token is the token the last lookup of node uuid handed out, or "".
func (a *API) Token(uuid string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.tokens[uuid]
}

// LastBeat returns the number of accepted heartbeats of node uuid and the
// last.
func (a *API) LastBeat(uuid string) (int, wire.HeartbeatRequest) {
	a.mu.Lock()
	defer a.mu.Unlock()
	b := a.beats[uuid]
	if len(b) == 0 {
		return 0, wire.HeartbeatRequest{}
	}
	return len(b), b[len(b)-1]
}

// ForgetBeats forgets every heartbeat accepted so far.
func (a *API) ForgetBeats() {
	a.mu.Lock()
	defer a.mu.Unlock()
	clear(a.beats)
}

// Lookups is the number of lookups answered so far.
func (a *API) Lookups() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lookups
}

// AwaitHeartbeat waits until node uuid has heartbeated and returns the
// last heartbeat, as the conductor learns it from the API.
func (a *API) AwaitHeartbeat(ctx context.Context, uuid string) (wire.HeartbeatRequest, error) {
	for {
		if n, hb := a.LastBeat(uuid); n > 0 {
			return hb, nil
		}
		select {
		case <-ctx.Done():
			return wire.HeartbeatRequest{}, fmt.Errorf("node %s never heartbeated: %w", uuid, ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}
