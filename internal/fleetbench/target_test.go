package fleetbench_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ironfleet/ironfleet/internal/fleet"
	"github.com/ironfleet/ironfleet/internal/fleetbench"
	"github.com/ironfleet/ironfleet/internal/redistest"
)

// TestRunLifecycleTarget drives an API this run did not start — a dev
// fleet's, as make up's or Ironic's would be — with the lifecycle clients,
// once per way of naming the nodes: fake-hardware, and machines as
// `ironfleet sim` prints them (here the dev fleet's simulated machines).
// Every node reaches active, the CPU is read from the target's process,
// the client-side hops are traced for every node, the conductors' tasks
// come from their metrics endpoint, and what cannot be seen from outside
// is unknown, not zero.
func TestRunLifecycleTarget(t *testing.T) {
	if testing.Short() {
		t.Skip("starts whole fleets; skipped with -short")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		redistest.Unavailable(t, err)
	}
	const nodes = 4
	for _, tc := range []struct {
		name     string
		machines func(d *fleet.Dev) []fleetbench.Machine
	}{
		{name: "fake-hardware"},
		{name: "machines", machines: func(d *fleet.Dev) []fleetbench.Machine {
			sum := imageSum(t, d.ImageURL())
			var ms []fleetbench.Machine
			for i := range nodes {
				name, mac := fleet.SimMachine(i)
				ms = append(ms, fleetbench.Machine{
					Name: name, Driver: fleet.Sim, MACs: []string{mac},
					DriverInfo:   map[string]any{"sim_machine": name},
					InstanceInfo: map[string]any{"image_source": d.ImageURL(), "image_checksum": sum},
				})
			}
			return ms
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := fleet.StartDev(t.Context(), fleet.DevConfig{
				DataDir: t.TempDir(), APIAddr: "127.0.0.1:0", Nodes: nodes, NoEnroll: true,
				HeartbeatTimeout: 2 * time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(d.Stop)
			metrics := httptest.NewServer(promhttp.HandlerFor(d.Registry, promhttp.HandlerOpts{}))
			t.Cleanup(metrics.Close)
			target := &fleetbench.Target{URL: d.APIURL(), PIDs: []int{os.Getpid()}, ConductorMetrics: []string{metrics.URL}}
			if tc.machines != nil {
				target.Machines = tc.machines(d)
			}
			r, err := fleetbench.RunLifecycle(t.Context(), fleetbench.LifecycleConfig{
				Nodes: nodes, Clients: 2, Timeout: 40 * time.Second, Target: target,
			})
			if err != nil {
				t.Fatal(err)
			}
			if r.Active != nodes || r.Stuck != 0 {
				t.Fatalf("active %d, stuck %d; want %d active", r.Active, r.Stuck, nodes)
			}
			if r.Target == nil || r.Target.CPUSeconds <= 0 || r.Target.Processes < 1 || r.CPUPerNode <= 0 ||
				len(r.Target.ByProcess) != 1 || r.Target.ByProcess[0].CPUSeconds != r.Target.CPUSeconds {
				t.Errorf("target %+v, %v CPU-s/node: want the target's CPU measured, all of it in its one process", r.Target, r.CPUPerNode)
			}
			if r.Target.ActiveSeconds <= 0 || r.Target.ActiveSeconds > r.Seconds || r.Target.ActiveNodesPerSecond < r.NodesPerSecond {
				t.Errorf("active in %v s of %v, %v nodes/s: want the span to the last active node, within the run", r.Target.ActiveSeconds, r.Seconds, r.Target.ActiveNodesPerSecond)
			}
			if r.StoredPerNode != nil {
				t.Errorf("stored per node %v: want unknown (nil) from outside", r.StoredPerNode)
			}
			// A task is counted after its handler returns, which may be
			// after the client saw the node move: only the manage tasks,
			// done long before the run ends, are certain to be counted.
			if r.Outcomes["done"] < nodes {
				t.Errorf("task outcomes %v: want at least each node's manage done", r.Outcomes)
			}
			if len(r.Target.Conductors) != 1 || r.Target.Conductors[0].Share != 1 {
				t.Errorf("conductors %+v: want the one endpoint with all of the tasks", r.Target.Conductors)
			}
			for _, h := range r.Hops {
				if h.Nodes != nodes {
					t.Errorf("hop %q traced for %d nodes, want %d", h.Name, h.Nodes, nodes)
				}
			}
			var table bytes.Buffer
			if err := fleetbench.WriteLifecycle(&table, r); err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{d.APIURL(), "JetStream messages stored per node: unknown", "client sees active", "(100%)"} {
				if !strings.Contains(table.String(), want) {
					t.Errorf("table has no %q:\n%s", want, table.String())
				}
			}
		})
	}
}

// TestTargetRefused: a target the run cannot measure is refused before
// any client starts.
func TestTargetRefused(t *testing.T) {
	pid := []int{os.Getpid()}
	for _, tc := range []struct {
		name   string
		target fleetbench.Target
		want   string
	}{
		{"not a URL", fleetbench.Target{URL: "127.0.0.1:6385", PIDs: pid}, "http(s) URL"},
		{"no process", fleetbench.Target{URL: "http://127.0.0.1:1"}, "process ids"},
		{"process gone", fleetbench.Target{URL: "http://127.0.0.1:1", PIDs: []int{1 << 30}}, "target process"},
		{"driver needs machines", fleetbench.Target{URL: "http://127.0.0.1:1", Driver: "ipmi", PIDs: pid}, "needs machines"},
		{"too few machines", fleetbench.Target{URL: "http://127.0.0.1:1", PIDs: pid, Machines: []fleetbench.Machine{{Name: "m", MACs: []string{"52:54:00:00:00:01"}}}}, "1 machines for 2 nodes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := fleetbench.RunLifecycle(t.Context(), fleetbench.LifecycleConfig{Nodes: 2, Target: &tc.target})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

func TestReadMachines(t *testing.T) {
	// What `ironfleet sim` writes to its log: logs and machines, one a line.
	const out = `time=2026-11-30T22:00:00Z level=INFO msg="simulated machines running"
{"name":"sim-0000","macs":["52:54:aa:00:00:00"],"bmc":"127.0.0.1:40001","driver_info":{"ipmi_address":"127.0.0.1","ipmi_port":40001},"instance_info":{"image_source":"http://127.0.0.1:1/image.raw"}}
{"name":"sim-0001","driver":"fake-hardware","macs":["52:54:aa:00:00:01"],"driver_info":{}}
`
	ms, err := fleetbench.ReadMachines(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0].Name != "sim-0000" || ms[0].Driver != "ipmi" || ms[1].Driver != "fake-hardware" ||
		ms[0].InstanceInfo["image_source"] != "http://127.0.0.1:1/image.raw" || ms[0].DriverInfo["ipmi_port"] != 40001.0 {
		t.Errorf("got %+v", ms)
	}
	_, err = fleetbench.ReadMachines(strings.NewReader(`{"name":"x","driver_info":{}}`))
	if err == nil {
		t.Error("a machine without a MAC: got no error")
	}
	if _, err := fleetbench.ReadMachines(strings.NewReader(`{"driver_info": [}`)); err == nil {
		t.Error("a line that is not JSON: got no error")
	}
}

// imageSum is the SHA-256 of what url serves.
func imageSum(t *testing.T, url string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	h := sha256.New()
	if _, err := io.Copy(h, resp.Body); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
