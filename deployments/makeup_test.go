package deployments

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/internal/apiclient"
	"github.com/ironfleet/ironfleet/internal/redistest"
)

// fleetPorts are the ports fleet.sh uses before its offset.
var fleetPorts = []int{4222, 4223, 4224, 6222, 6223, 6224, 8222, 8223, 8224, 6385, 6390, 9386, 9387}

// freeOffset finds a FLEET_PORT_OFFSET under which every port of the fleet
// is free, so the test fleet runs beside make run or another test.
func freeOffset(t *testing.T) int {
	t.Helper()
	for range 50 {
		off := 10000 + 100*rand.IntN(500) //nolint:gosec // a port pick, not a secret
		free := true
		for _, p := range append(fleetPorts, 6969, 6970) {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+off))
			if err != nil {
				free = false
				break
			}
			_ = l.Close()
		}
		if free {
			return off
		}
	}
	t.Fatal("no free port range for the fleet")
	return 0
}

// TestMakeUp runs `make up` — 3 nats-server processes, redis-server, the
// api and two conductors as separate processes, and `ironfleet sim` with
// four machines behind IPMI BMCs — deploys the machines through the API,
// SIGKILLs one conductor while it holds a node mid-deploy, and sees every
// node reach active (the other conductor finishes: the dead lease ends,
// the task is redelivered, conductor/doc.go), then `make down`.
func TestMakeUp(t *testing.T) {
	for _, bin := range []string{"make", "redis-server", "redis-cli", "curl", "setsid", "go"} {
		if _, err := exec.LookPath(bin); err != nil {
			redistest.Unavailable(t, err)
		}
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	off := freeOffset(t)
	env := append(os.Environ(),
		"FLEET_DIR="+state, "FLEET_PORT_OFFSET="+strconv.Itoa(off), "FLEET_SIM_NODES=4",
		"FLEET_HEARTBEAT_TIMEOUT=10s")
	runMake := func(target string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "make", "-C", root, target) //nolint:gosec // our Makefile
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			logs(t, state)
			t.Fatalf("make %s: %v\n%s", target, err, out)
		}
		t.Logf("make %s:\n%s", target, tail(out, 12))
	}
	t.Cleanup(func() { runMake("down") })
	start := time.Now()
	runMake("up")
	t.Logf("make up took %s", time.Since(start).Round(100*time.Millisecond))

	api := fmt.Sprintf("http://127.0.0.1:%d", 6385+off)
	c := &client{t: t, base: api}
	var list struct {
		Nodes []struct {
			UUID string `json:"uuid"`
			Name string `json:"name"`
		} `json:"nodes"`
	}
	c.do(http.MethodGet, "/v1/nodes", nil, &list)
	if len(list.Nodes) != 4 {
		t.Fatalf("ironfleet sim enrolled %d nodes, want 4", len(list.Nodes))
	}
	var ids []string
	for _, n := range list.Nodes {
		ids = append(ids, n.UUID)
	}
	for _, step := range []struct{ verb, want string }{{"manage", "manageable"}, {"provide", "available"}} {
		for _, id := range ids {
			c.provision(id, step.verb)
		}
		c.waitAll(ids, step.want, 90*time.Second)
	}

	// Deploy all four; SIGKILL whichever conductor is first seen holding a
	// node that is deploying (either may get the work: the group's tasks
	// go to whichever pulls first).
	for _, id := range ids {
		c.provision(id, "active")
	}
	pids := map[string]int{"conductor-1": readPid(t, state, "conductor-1"), "conductor-2": readPid(t, state, "conductor-2")}
	killed := ""
	deadline := time.Now().Add(60 * time.Second)
	for killed == "" {
		for _, id := range ids {
			n := c.node(id)
			pid, ok := pids[n.Reservation]
			if ok && (n.ProvisionState == "deploying" || n.ProvisionState == "wait call-back") {
				if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
					t.Fatalf("kill %s (pid %d): %v", n.Reservation, pid, err)
				}
				killed = id
				t.Logf("SIGKILLed %s (pid %d) holding node %s in %s", n.Reservation, pid, id, n.ProvisionState)
				break
			}
		}
		if killed == "" && time.Now().After(deadline) {
			logs(t, state)
			t.Fatal("no conductor was seen holding a deploying node")
		}
	}
	killedAt := time.Now()
	c.onFail = func() {
		logs(t, state)
		for _, id := range ids {
			n := c.node(id)
			t.Logf("node %s: %s → %q, reservation %q, last_error %q", id, n.ProvisionState, n.TargetProvisionState, n.Reservation, n.LastError)
		}
	}
	c.waitAll(ids, "active", 120*time.Second)
	t.Logf("all %d nodes active %s after the kill", len(ids), time.Since(killedAt).Round(100*time.Millisecond))
	for _, id := range ids {
		if n := c.node(id); n.LastError != "" {
			t.Errorf("node %s active with last_error %q", id, n.LastError)
		}
	}
}

type node struct {
	ProvisionState       string `json:"provision_state"`
	TargetProvisionState string `json:"target_provision_state"`
	Reservation          string `json:"reservation"`
	LastError            string `json:"last_error"`
}

// client speaks to the fleet's API.
type client struct {
	t    *testing.T
	base string
	// onFail, when set, runs before a wait fails (to show the fleet's logs).
	onFail func()
}

func (c *client) do(method, path string, body, out any) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.t.Context(), 10*time.Second)
	defer cancel()
	if err := (&apiclient.Client{Base: c.base}).Do(ctx, method, path, body, out); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) provision(id, verb string) {
	c.t.Helper()
	c.do(http.MethodPut, "/v1/nodes/"+id+"/states/provision", map[string]string{"target": verb}, nil)
}

func (c *client) node(id string) node {
	c.t.Helper()
	var n node
	c.do(http.MethodGet, "/v1/nodes/"+id, nil, &n)
	return n
}

// waitAll waits until every node is in state want, failing at once if one
// lands in a failed state.
func (c *client) waitAll(ids []string, want string, within time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for {
		done := 0
		var states []string
		for _, id := range ids {
			n := c.node(id)
			states = append(states, n.ProvisionState)
			if n.ProvisionState == want {
				done++
			}
			if strings.HasSuffix(n.ProvisionState, "failed") {
				c.t.Fatalf("node %s: %s (%s), want %s", id, n.ProvisionState, n.LastError, want)
			}
		}
		if done == len(ids) {
			return
		}
		if time.Now().After(deadline) {
			if c.onFail != nil {
				c.onFail()
			}
			c.t.Fatalf("nodes %v after %s, want all %s", states, within, want)
		}
		time.Sleep(100 * time.Millisecond) // polling the API, not synchronising
	}
}

func readPid(t *testing.T, state, name string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(state, "pid", name+".pid")) //nolint:gosec // the test's own state dir
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// logs prints the tail of every process's log.
func logs(t *testing.T, state string) {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(state, "log", "*.log"))
	for _, p := range paths {
		b, err := os.ReadFile(p) //nolint:gosec // the test's own state dir
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Log(err)
		}
		t.Logf("--- %s\n%s", filepath.Base(p), tail(b, 80))
	}
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
