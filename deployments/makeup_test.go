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
	f := upFleet(t, 4)
	f.deployAndSignal(syscall.SIGKILL, nil)
}

// TestStoppedConductorSendsNothing SIGSTOPs the conductor holding a node
// mid-deploy, past its lease and past AckWait: the other conductor takes the
// node to active. Then SIGCONT: the woken conductor finds its lease gone
// before it sends anything (lock.Check before every BMC and agent command;
// fencing for its writes), so the node stays active and no machine boots
// again.
func TestStoppedConductorSendsNothing(t *testing.T) {
	f := upFleet(t, 2)
	f.deployAndSignal(syscall.SIGSTOP, func(pid int) {
		boots := f.lookups()
		if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
			t.Fatalf("SIGCONT %d: %v", pid, err)
		}
		// Watch for a while: a woken conductor that still believed in its
		// lock would reboot a machine into the agent, or move a node.
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			for _, id := range f.ids {
				if n := f.c.node(id); n.ProvisionState != "active" {
					f.showLogs()
					t.Fatalf("node %s moved to %s after the stopped conductor woke", id, n.ProvisionState)
				}
			}
			time.Sleep(200 * time.Millisecond) // polling the API, not synchronising
		}
		if got := f.lookups(); got != boots {
			f.showLogs()
			t.Fatalf("agents looked up %d times after the stopped conductor woke, want none (a machine was booted again)", got-boots)
		}
	})
}

// fleet is a running `make up` fleet with simulated machines, provided.
type fleet struct {
	t     *testing.T
	state string
	c     *client
	ids   []string
}

// upFleet runs `make up` with n simulated machines (make down at cleanup)
// and takes them to available.
func upFleet(t *testing.T, n int) *fleet {
	t.Helper()
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
		"FLEET_DIR="+state, "FLEET_PORT_OFFSET="+strconv.Itoa(off), "FLEET_SIM_NODES="+strconv.Itoa(n),
		"FLEET_HEARTBEAT_TIMEOUT=10s",
		// A continuation lost at the cluster's start is published again
		// at the next heartbeat after this (conductor.Config.OrphanAfter).
		"IRONFLEET_ORPHAN_AFTER=5s")
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

	f := &fleet{t: t, state: state, c: &client{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", 6385+off)}}
	f.c.onFail = f.showLogs
	var list struct {
		Nodes []struct {
			UUID string `json:"uuid"`
			Name string `json:"name"`
		} `json:"nodes"`
	}
	f.c.do(http.MethodGet, "/v1/nodes", nil, &list)
	if len(list.Nodes) != n {
		t.Fatalf("ironfleet sim enrolled %d nodes, want %d", len(list.Nodes), n)
	}
	for _, node := range list.Nodes {
		f.ids = append(f.ids, node.UUID)
	}
	for _, step := range []struct{ verb, want string }{{"manage", "manageable"}, {"provide", "available"}} {
		for _, id := range f.ids {
			f.c.provision(id, step.verb)
		}
		f.c.waitAll(f.ids, step.want, 90*time.Second)
	}
	return f
}

// deployAndSignal deploys every node and sends sig to whichever conductor
// is first seen holding a node that is deploying (either may get the work:
// the group's tasks go to whichever pulls first). Every node must still
// reach active, with no last_error; then after, if not nil, runs with the
// signalled conductor's pid.
func (f *fleet) deployAndSignal(sig syscall.Signal, after func(pid int)) {
	t, c := f.t, f.c
	for _, id := range f.ids {
		c.provision(id, "active")
	}
	pids := map[string]int{"conductor-1": readPid(t, f.state, "conductor-1"), "conductor-2": readPid(t, f.state, "conductor-2")}
	pid := 0
	deadline := time.Now().Add(60 * time.Second)
	for pid == 0 {
		for _, id := range f.ids {
			n := c.node(id)
			p, ok := pids[n.Reservation]
			if ok && (n.ProvisionState == "deploying" || n.ProvisionState == "wait call-back") {
				if err := syscall.Kill(p, sig); err != nil {
					t.Fatalf("%s %s (pid %d): %v", sig, n.Reservation, p, err)
				}
				pid = p
				t.Logf("%s %s (pid %d) holding node %s in %s", sig, n.Reservation, p, id, n.ProvisionState)
				break
			}
		}
		if pid == 0 && time.Now().After(deadline) {
			f.showLogs()
			t.Fatal("no conductor was seen holding a deploying node")
		}
	}
	signalled := time.Now()
	c.waitAll(f.ids, "active", 120*time.Second)
	t.Logf("all %d nodes active %s after the %s", len(f.ids), time.Since(signalled).Round(100*time.Millisecond), sig)
	for _, id := range f.ids {
		if n := c.node(id); n.LastError != "" {
			t.Errorf("node %s active with last_error %q", id, n.LastError)
		}
	}
	if after != nil {
		after(pid)
	}
}

// showLogs logs the tail of every process's log and each node's state.
func (f *fleet) showLogs() {
	logs(f.t, f.state)
	for _, id := range f.ids {
		n := f.c.node(id)
		f.t.Logf("node %s: %s → %q, reservation %q, last_error %q", id, n.ProvisionState, n.TargetProvisionState, n.Reservation, n.LastError)
	}
}

// lookups counts the agents' lookups the simulated machines logged: one per
// boot into the agent.
func (f *fleet) lookups() int {
	b, err := os.ReadFile(filepath.Join(f.state, "log", "sim.log"))
	if err != nil {
		f.t.Fatal(err)
	}
	return strings.Count(string(b), `msg="looked up"`)
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
		t.Logf("--- %s\n%s", filepath.Base(p), tail(b, 300))
	}
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
