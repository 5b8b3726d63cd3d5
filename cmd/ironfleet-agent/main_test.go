package main

import (
	"bufio"
	"debug/elf"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/agent/protocol"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// TestAgentBinaryStaysSmall: the ramdisk's agent must not pull in the
// server side of the fleet.
func TestAgentBinaryStaysSmall(t *testing.T) {
	out, err := exec.CommandContext(t.Context(), "go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, heavy := range []string{"github.com/nats-io/", "github.com/gin-gonic/", "github.com/redis/", "github.com/bougou/go-ipmi", "github.com/prometheus/"} {
		if strings.Contains(string(out), heavy) {
			t.Errorf("ironfleet-agent depends on %s…", heavy)
		}
	}
}

// TestAgentBinary builds the static binary as `make build-agent` does and
// runs it against a stand-in API: it looks up, heartbeats, serves its
// inventory with the token, refuses to reboot under --power=none, and
// exits 0 on SIGTERM.
func TestAgentBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "ironfleet-agent")
	build := exec.CommandContext(t.Context(), "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if f, err := elf.Open(bin); err != nil {
		t.Fatal(err)
	} else {
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Error("ironfleet-agent is dynamically linked (has PT_INTERP), want static")
			}
		}
		_ = f.Close()
	}

	const token = "binary-test-token"
	beats := make(chan wire.HeartbeatRequest, 16)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/lookup", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("addresses") != "52:54:00:12:34:56" {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(wire.LookupResponse{
			Node:   wire.LookupNode{UUID: "node-bin"},
			Config: wire.LookupConfig{HeartbeatTimeout: 300, AgentToken: token, AgentTokenRequired: true},
		})
	})
	mux.HandleFunc("POST /v1/heartbeat/node-bin", func(w http.ResponseWriter, r *http.Request) {
		var hb wire.HeartbeatRequest
		_ = json.NewDecoder(r.Body).Decode(&hb)
		select {
		case beats <- hb:
		default:
		}
		w.WriteHeader(http.StatusAccepted)
	})
	api := httptest.NewServer(mux)
	t.Cleanup(api.Close)

	cmd := exec.Command(bin, "--api-url", api.URL, "--listen", "127.0.0.1:0", "--cmdline", "",
		"--root", "../../agent/testdata/host1", "--macs", "52:54:00:12:34:56", "--power", "none")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var log strings.Builder
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
		}
	}()

	var hb wire.HeartbeatRequest
	select {
	case hb = <-beats:
	case <-time.After(30 * time.Second):
		t.Fatal("no heartbeat from ironfleet-agent within 30s")
	}
	if hb.AgentToken != token || !strings.HasPrefix(hb.CallbackURL, "http://127.0.0.1:") {
		t.Fatalf("heartbeat = %+v", hb)
	}
	c, err := protocol.NewClient(hb.CallbackURL, token, protocol.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	inv, err := c.Inventory(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if inv.CPU.Count != 4 || len(inv.Disks) != 3 {
		t.Errorf("inventory = %+v, want the fixture's 4 CPUs and 3 disks", inv)
	}
	rb, err := c.Reboot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Wait(t.Context(), rb.ID, 10*time.Millisecond); !errors.Is(err, protocol.ErrMachine) {
		t.Errorf("reboot under --power=none: %v, want %v", err, protocol.ErrMachine)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-logDone
	if err := cmd.Wait(); err != nil {
		t.Errorf("ironfleet-agent after SIGTERM: %v, want exit 0\n%s", err, log.String())
	}
	if strings.Contains(log.String(), token) {
		t.Errorf("the agent token appears in the log:\n%s", log.String())
	}
}

// TestArgs: as /init the agent ignores what the kernel passes init, such
// as the image name iPXE's EFI build puts first on the command line.
func TestArgs(t *testing.T) {
	tests := []struct {
		name  string
		pid   int
		given []string
		want  []string
	}{
		{"init under UEFI iPXE", 1, []string{"kernel"}, []string{}},
		{"init", 1, nil, []string{}},
		{"a command", 4242, []string{"--log-level", "debug"}, []string{"--log-level", "debug"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := args(tt.pid, tt.given)
			if strings.Join(got, " ") != strings.Join(tt.want, " ") || got == nil {
				t.Errorf("args(%d, %q) = %q, want %q", tt.pid, tt.given, got, tt.want)
			}
		})
	}
}
