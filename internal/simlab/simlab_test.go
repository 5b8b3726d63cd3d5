package simlab_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/conductor/ipmi"
	"github.com/ironfleet/ironfleet/internal/simlab"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// fakeAPI is a hand-written stand-in for our API's node, port and lookup
// endpoints: it records what it is sent.
type fakeAPI struct {
	mu      sync.Mutex
	nodes   []map[string]any
	ports   []map[string]any
	patched int
	lookups chan string
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	if r.Method == http.MethodPost {
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1/nodes":
		for _, n := range f.nodes {
			if n["name"] == body["name"] {
				http.Error(w, `{"error_message":"exists"}`, http.StatusConflict)
				return
			}
		}
		f.nodes = append(f.nodes, body)
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]any{"uuid": "uuid-" + body["name"].(string)})
	case r.Method == http.MethodPatch && strings.HasPrefix(r.URL.Path, "/v1/nodes/"):
		var patch []map[string]any
		if err := json.NewDecoder(r.Body).Decode(&patch); err != nil || len(patch) != 2 {
			http.Error(w, "bad patch", http.StatusBadRequest)
			return
		}
		f.patched++
		_ = json.NewEncoder(w).Encode(map[string]any{"uuid": "uuid-" + strings.TrimPrefix(r.URL.Path, "/v1/nodes/")})
	case r.Method == http.MethodPost && r.URL.Path == "/v1/ports":
		for _, p := range f.ports {
			if p["address"] == body["address"] {
				http.Error(w, `{"error_message":"exists"}`, http.StatusConflict)
				return
			}
		}
		f.ports = append(f.ports, body)
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, "{}")
	case r.URL.Path == "/v1/lookup":
		select {
		case f.lookups <- r.URL.Query().Get("addresses"):
		default:
		}
		http.Error(w, `{"error_message":"not found"}`, http.StatusNotFound)
	default:
		http.NotFound(w, r)
	}
}

func start(t *testing.T, cfg simlab.Config) *simlab.Lab {
	t.Helper()
	l, err := simlab.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return l
}

// TestLab: every machine answers IPMI with the real driver; a PXE boot
// starts its agent, which looks itself up at the API by its MAC; Enroll
// posts nodes of driver ipmi with their ports and the lab's image, which
// the image server serves with that checksum.
func TestLab(t *testing.T) {
	api := &fakeAPI{lookups: make(chan string, 16)}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	lab := start(t, simlab.Config{
		Nodes: 3, First: 7, APIURL: srv.URL, Dir: t.TempDir(), ImageSize: 4096,
		BMCUsername: "u", BMCPassword: "p",
	})
	ms := lab.Machines()
	if len(ms) != 3 || ms[0].Name != "sim-0007" || ms[2].Name != "sim-0009" {
		t.Fatalf("machines %+v, want sim-0007..sim-0009", ms)
	}
	drv, err := ipmi.New(ipmi.Config{RequestTimeout: time.Second, PollInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for _, m := range ms {
		info, err := ipmi.ParseInfo(m.DriverInfo)
		if err != nil {
			t.Fatalf("%s: driver_info: %v", m.Name, err)
		}
		if got, err := drv.BMC(m.Name, info).PowerState(ctx); err != nil || got != wire.PowerOff {
			t.Fatalf("%s: PowerState = %q, %v; want power off", m.Name, got, err)
		}
	}

	// PXE boot sim-0008: its agent looks itself up.
	info, _ := ipmi.ParseInfo(ms[1].DriverInfo)
	bmc := drv.BMC(ms[1].Name, info)
	if err := bmc.SetBootDevice(ctx, wire.BootPXE, false); err != nil {
		t.Fatal(err)
	}
	if err := bmc.SetPower(ctx, wire.PowerOn); err != nil {
		t.Fatal(err)
	}
	select {
	case addrs := <-api.lookups:
		if !strings.Contains(addrs, ms[1].MACs[0]) {
			t.Errorf("lookup by %q, want %s", addrs, ms[1].MACs[0])
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the agent of the PXE-booted machine never looked itself up")
	}

	uuids, err := lab.Enroll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(uuids) != 3 || uuids["sim-0007"] != "uuid-sim-0007" {
		t.Errorf("Enroll = %v", uuids)
	}
	api.mu.Lock()
	nodes, ports := api.nodes, api.ports
	api.mu.Unlock()
	if len(nodes) != 3 || len(ports) != 3 {
		t.Fatalf("posted %d nodes and %d ports, want 3 and 3", len(nodes), len(ports))
	}
	if nodes[0]["driver"] != "ipmi" || ports[0]["node_uuid"] != "uuid-sim-0007" || ports[0]["address"] != ms[0].MACs[0] {
		t.Errorf("node %v, port %v", nodes[0], ports[0])
	}
	ii, _ := nodes[0]["instance_info"].(map[string]any)

	// Enrolling again reuses the nodes: their driver_info is replaced.
	again, err := lab.Enroll(ctx)
	if err != nil || again["sim-0009"] != "uuid-sim-0009" {
		t.Fatalf("second Enroll = %v, %v", again, err)
	}
	api.mu.Lock()
	if api.patched != 3 || len(api.nodes) != 3 || len(api.ports) != 3 {
		t.Errorf("second Enroll: %d patched, %d nodes, %d ports; want 3, 3, 3", api.patched, len(api.nodes), len(api.ports))
	}
	api.mu.Unlock()

	resp, err := http.Get(ii["image_source"].(string)) //nolint:noctx // test
	if err != nil {
		t.Fatal(err)
	}
	img, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil || len(img) != 4096 {
		t.Fatalf("image: %d bytes, %v", len(img), err)
	}
	sum := sha256.Sum256(img)
	if hex.EncodeToString(sum[:]) != ii["image_checksum"] {
		t.Error("image checksum does not match the image served")
	}
}

func TestEnrollError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, `{"error_message":"unavailable"}`, http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	lab := start(t, simlab.Config{Nodes: 1, APIURL: srv.URL, Dir: t.TempDir()})
	if _, err := lab.Enroll(t.Context()); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("Enroll against a 503: %v, want the status in the error", err)
	}
}

func TestBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  simlab.Config
	}{
		{"no nodes", simlab.Config{APIURL: "http://x", Dir: "d"}},
		{"too many", simlab.Config{Nodes: 1<<16 + 1, APIURL: "http://x", Dir: "d"}},
		{"negative first", simlab.Config{Nodes: 1, First: -1, APIURL: "http://x", Dir: "d"}},
		{"no api", simlab.Config{Nodes: 1, Dir: "d"}},
		{"no dir", simlab.Config{Nodes: 1, APIURL: "http://x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := simlab.New(t.Context(), tc.cfg); !errors.Is(err, simlab.ErrConfig) {
				t.Fatalf("New: %v, want ErrConfig", err)
			}
		})
	}
}
