package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/internal/fleet"
	"github.com/ironfleet/ironfleet/internal/redistest"
)

// buildBinary builds ironfleet once per test binary run into dir.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ironfleet")
	out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestDevStartsAnswersAndStopsOnSIGINT is `make run` in a test: the real
// binary starts the fleet, answers on the address it prints, and on SIGINT
// stops everything and exits 0 with no child process left behind.
func TestDevStartsAnswersAndStopsOnSIGINT(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		redistest.Unavailable(t, err)
	}
	bin := buildBinary(t)
	dataDir := t.TempDir()
	cmd := exec.Command(bin, "dev", "--api-addr", "127.0.0.1:0", "--data-dir", dataDir, "--nodes", "2", "--realistic=false", "--log-level", "warn")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	addrRe := regexp.MustCompile(`API\s+(http://\S+)`)
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := addrRe.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
				break
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	var base string
	select {
	case base = <-found:
	case <-time.After(60 * time.Second):
		t.Fatal("ironfleet dev printed no API address within 60s")
	}

	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s = %d, want 200", path, resp.StatusCode)
		}
	}
	// The simulated nodes are enrolled and provided; one deploys.
	waitNodes(t, base, "available", 2)
	req, _ := http.NewRequest(http.MethodPut, base+"/v1/nodes/sim-0001/states/provision", strings.NewReader(`{"target":"active"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-OpenStack-Ironic-API-Version", "latest") // names need >= 1.5
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("PUT provision active = %d, want 202", resp.StatusCode)
	}
	waitNodes(t, base, "active", 1)

	// ironfleet watch shows the states the API reports.
	out, err := exec.CommandContext(t.Context(), bin, "watch", "--once", "--api", base).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "active") || !strings.Contains(string(out), "nodes: 2") {
		t.Fatalf("ironfleet watch --once: %v\n%s", err, out)
	}

	redisPID := findProcess(t, dataDir)
	if redisPID == "" {
		t.Fatal("no redis-server child found for the dev fleet")
	}

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("ironfleet dev exited %d after SIGINT, want 0", ee.ExitCode())
		} else if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("ironfleet dev did not exit within 30s of SIGINT")
	}
	if _, err := os.Stat("/proc/" + redisPID); err == nil {
		t.Fatalf("redis-server (pid %s) still running after ironfleet dev exited", redisPID)
	}
}

// waitNodes waits until n nodes are in state, reading the API as a client does.
func waitNodes(t *testing.T, base, state string, n int) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodGet, base+"/v1/nodes?provision_state="+url.QueryEscape(state), nil)
		req.Header.Set("X-OpenStack-Ironic-API-Version", "latest")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			var body struct {
				Nodes []json.RawMessage `json:"nodes"`
			}
			err = json.NewDecoder(resp.Body).Decode(&body)
			_ = resp.Body.Close()
			if err == nil && len(body.Nodes) >= n {
				return
			}
			last = fmt.Sprintf("%d nodes %s", len(body.Nodes), state)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("not %d nodes %s within 90s (last: %s)", n, state, last)
}

// findProcess returns the pid of a process whose command line mentions s.
func findProcess(t *testing.T, s string) string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), s) && strings.Contains(string(b), "redis") {
			return e.Name()
		}
	}
	return ""
}

// TestDevSyncInterval: a dev fleet flushes every write only where its data
// is kept, unless told otherwise.
func TestDevSyncInterval(t *testing.T) {
	for _, tc := range []struct {
		name           string
		dataDir, given bool
		flag, want     time.Duration
	}{
		{"temporary directory, default", false, false, fleet.DefaultTempSyncInterval, fleet.DefaultTempSyncInterval},
		{"temporary directory, --sync-interval 0", false, true, 0, 0},
		{"--data-dir, default", true, false, fleet.DefaultTempSyncInterval, 0},
		{"--data-dir with --sync-interval 5s", true, true, 5 * time.Second, 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := devSyncInterval(tc.dataDir, tc.given, tc.flag); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}
