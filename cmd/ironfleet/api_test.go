package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/internal/natstest"
	"github.com/ironfleet/ironfleet/internal/redistest"
	"github.com/ironfleet/ironfleet/internal/syncbuf"
)

func TestAPIServesAgainstExternalNATSAndRedis(t *testing.T) {
	ns := natstest.Start(t)
	rs := redistest.Start(t)
	l, err := new(net.ListenConfig).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	ctx, cancel := context.WithCancel(t.Context())
	var out syncbuf.Buffer
	done := make(chan error, 1)
	go func() {
		done <- runCmd(ctx, &out, "api", "--nats", ns.URL(), "--redis", rs.URL(), "--listen", addr, "--log-level", "error")
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("api: %v\n%s", err, out.String())
		}
	}()
	var ready bool
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+addr+"/readyz", nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			continue
		}
		res.Body.Close()
		if ready = res.StatusCode == http.StatusOK; ready {
			break
		}
	}
	if !ready {
		t.Fatalf("api never ready:\n%s", out.String())
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+addr+"/v1/nodes",
		strings.NewReader(`{"driver":"ipmi","name":"n1","driver_info":{"ipmi_address":"10.0.0.1","ipmi_password":"pw"}}`))
	req.Header.Set("X-OpenStack-Ironic-API-Version", "latest")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var node map[string]any
	if err := json.NewDecoder(res.Body).Decode(&node); err != nil || res.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %v %v", res.StatusCode, node, err)
	}
	if node["driver_info"].(map[string]any)["ipmi_password"] != "******" {
		t.Errorf("password not masked: %v", node["driver_info"])
	}
}

func TestBenchAPIJSON(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		redistest.Unavailable(t, err)
	}
	var out syncbuf.Buffer
	if err := runCmd(t.Context(), &out, "bench", "api", "--json", "--nodes", "20", "--clients", "4",
		"--duration", "200ms", "--warmup", "0s"); err != nil {
		t.Fatalf("bench api: %v\n%s", err, out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 7 {
		t.Fatalf("got %d lines, want 7 (the walk, then three benchmarks of two):\n%s", len(lines), out.String())
	}
	var walk map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &walk); err != nil {
		t.Fatalf("walk line %q: %v", lines[0], err)
	}
	if walk["bench"] != "walk" || walk["nodes"] != float64(20) || walk["pages"] != float64(1) {
		t.Errorf("walk = %v, want 20 nodes in 1 page", walk)
	}
	for i, want := range []string{"ironfleet", "bare-gin", "ironfleet", "bare-gin", "ironfleet", "bare-gin"} {
		var r map[string]any
		if err := json.Unmarshal([]byte(lines[i+1]), &r); err != nil {
			t.Fatalf("line %d %q: %v", i+1, lines[i+1], err)
		}
		if r["impl"] != want {
			t.Errorf("line %d impl = %v, want %s", i+1, r["impl"], want)
		}
		for _, k := range []string{"req_per_s", "p50_us", "p99_us", "cpu_us_per_req"} {
			if v, ok := r[k].(float64); !ok || v <= 0 {
				t.Errorf("line %d: %s = %v, want > 0", i+1, k, r[k])
			}
		}
	}
}
