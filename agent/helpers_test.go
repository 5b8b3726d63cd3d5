package agent

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/agent/protocol"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// recordingMachine is a Machine that records what it was asked to do.
type recordingMachine struct {
	mu       sync.Mutex
	reboots  int
	poweroff int
	err      error
	// onReboot, if set, runs inside Reboot (the simulated machine shuts its
	// agent down there).
	onReboot func()
}

func (m *recordingMachine) Reboot(context.Context) error {
	m.mu.Lock()
	m.reboots++
	f, err := m.onReboot, m.err
	m.mu.Unlock()
	if f != nil {
		f()
	}
	return err
}

func (m *recordingMachine) PowerOff(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.poweroff++
	return m.err
}

func (m *recordingMachine) counts() (reboots, poweroffs int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reboots, m.poweroff
}

// image is test image content and its checksum.
type image struct {
	data []byte
	sum  string
}

func newImage(t testing.TB, size int) image {
	t.Helper()
	b := make([]byte, size)
	_, _ = rand.Read(b)
	s := sha256.Sum256(b)
	return image{data: b, sum: hex.EncodeToString(s[:])}
}

// imageServer is a real HTTP server serving an image well and badly:
//
//	/image      the whole image, with Content-Length
//	/chunked    the whole image, without Content-Length
//	/truncated  Content-Length of the whole, half the bytes, then the connection is cut
//	/stall      half the bytes, then nothing until the client gives up
//	/gated      the whole image once the gate channel is closed
//	/missing    404
type imageServer struct {
	*httptest.Server
	img  image
	gate chan struct{}
}

func newImageServer(t testing.TB, img image) *imageServer {
	t.Helper()
	s := &imageServer{img: img, gate: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /image", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(img.data)))
		_, _ = w.Write(img.data)
	})
	mux.HandleFunc("GET /chunked", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write(img.data[:len(img.data)/2])
		w.(http.Flusher).Flush()
		_, _ = w.Write(img.data[len(img.data)/2:])
	})
	mux.HandleFunc("GET /truncated", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(img.data)))
		_, _ = w.Write(img.data[:len(img.data)/2])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // cuts the connection mid-body
	})
	mux.HandleFunc("GET /stall", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(img.data)))
		_, _ = w.Write(img.data[:len(img.data)/2])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	mux.HandleFunc("GET /gated", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-s.gate:
		case <-r.Context().Done():
			return
		}
		_, _ = w.Write(img.data)
	})
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

const testToken = "s3cret-agent-token"

// commandServer runs a CommandServer with testToken on a real HTTP server
// and returns it, a client of it and its URL.
func commandServer(t testing.TB, m Machine, cfg CommandConfig) (*CommandServer, *protocol.Client, string) {
	t.Helper()
	cs := NewCommandServer(m, cfg)
	cs.SetToken(testToken)
	srv := httptest.NewServer(cs)
	t.Cleanup(func() { srv.Close(); cs.Close() })
	c, err := protocol.NewClient(srv.URL, testToken, protocol.ClientConfig{HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return cs, c, srv.URL
}

// fakeAPI stands in for ironfleet's API on the agent's side of Ironic's
// ramdisk protocol (our own protocol, so a fake is allowed): it knows
// nodes by MAC, hands out a token per lookup, and records heartbeats.
type fakeAPI struct {
	*httptest.Server
	t                testing.TB
	heartbeatTimeout float64

	mu         sync.Mutex
	nodes      map[string]string // mac → node uuid
	tokens     map[string]string // node uuid → token
	lookupCode []int             // statuses to answer lookups with first
	beatCode   []int             // statuses to answer heartbeats with first
	lookups    int
	beats      map[string][]wire.HeartbeatRequest // node uuid → heartbeats
}

func newFakeAPI(t testing.TB) *fakeAPI {
	t.Helper()
	a := &fakeAPI{
		t:                t,
		heartbeatTimeout: 3600, // beats 30–60 % of an hour apart unless a test says otherwise
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

func (a *fakeAPI) addNode(uuid string, macs ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, m := range macs {
		a.nodes[m] = uuid
	}
}

func (a *fakeAPI) lookup(w http.ResponseWriter, r *http.Request) {
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

func (a *fakeAPI) heartbeat(w http.ResponseWriter, r *http.Request) {
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

// lastBeat returns the number of accepted heartbeats of node and the last.
func (a *fakeAPI) lastBeat(uuid string) (int, wire.HeartbeatRequest) {
	a.mu.Lock()
	defer a.mu.Unlock()
	b := a.beats[uuid]
	if len(b) == 0 {
		return 0, wire.HeartbeatRequest{}
	}
	return len(b), b[len(b)-1]
}

func (a *fakeAPI) lookupCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lookups
}

// listen opens a loopback TCP listener.
func listen(t testing.TB) net.Listener {
	t.Helper()
	l, err := new(net.ListenConfig).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// newHTTPServer serves h on a real loopback HTTP server and returns its URL.
func newHTTPServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
