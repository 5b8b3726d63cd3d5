package fleetbench_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/internal/fleetbench"
	"github.com/ironfleet/ironfleet/internal/redistest"
)

// TestRun runs the benchmark small — 10 nodes, the three strategies, real
// NATS, Redis, API, conductors and simulated agents — and checks what it
// promises rather than how fast it is: handoff strands nothing and races
// nothing, every result has its JSON fields, the table names every
// strategy, and the chart is well-formed XML.
func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three whole fleets; skipped with -short")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		redistest.Unavailable(t, err)
	}
	results, err := fleetbench.Run(t.Context(), fleetbench.Config{
		Nodes: 10, Timeout: 40 * time.Second, DataDir: t.TempDir(),
		PestHold: 100 * time.Millisecond, PestGap: 50 * time.Millisecond,
		HeartbeatTimeout: 2 * time.Second,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(results), 3; got != want {
		t.Fatalf("got %d results, want %d", got, want)
	}
	for _, r := range results {
		if r.Active+r.Stuck != r.Nodes || r.Nodes != 10 {
			t.Errorf("%s: active %d + stuck %d, want %d nodes", r.Strategy, r.Active, r.Stuck, 10)
		}
		if r.PestGrabs == 0 {
			t.Errorf("%s: the pests never took a lock: nothing contended", r.Strategy)
		}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"strategy", "nodes", "active", "stuck", "deploy_p50_ms", "deploy_p99_ms", "deploy_max_ms",
			"lock_wait_p99_ms", "raced_handoffs", "redis_commands_per_deploy"} {
			if _, ok := m[k]; !ok {
				t.Errorf("%s: JSON %s has no %q", r.Strategy, b, k)
			}
		}
		t.Logf("%s", b)
	}
	ours := results[2]
	if ours.Strategy != "handoff" {
		t.Fatalf("third strategy is %q, want handoff", ours.Strategy)
	}
	if ours.Stuck != 0 || ours.RacedHandoffs != 0 {
		t.Errorf("handoff: %d stuck, %d raced; want 0 and 0", ours.Stuck, ours.RacedHandoffs)
	}
	if ours.DeployP50ms <= 0 || ours.DeployP99ms < ours.DeployP50ms {
		t.Errorf("handoff: deploy p50 %.0f ms, p99 %.0f ms", ours.DeployP50ms, ours.DeployP99ms)
	}

	var table bytes.Buffer
	if err := fleetbench.WriteTable(&table, results); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"release-reacquire", "patient-retry", "handoff"} {
		if !strings.Contains(table.String(), s) {
			t.Errorf("table has no row for %s:\n%s", s, table.String())
		}
	}
	var svg bytes.Buffer
	if err := fleetbench.WriteSVG(&svg, results); err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(&svg)
	root := ""
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("chart is not XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && root == "" {
			root = se.Name.Local
		}
	}
	if root != "svg" {
		t.Errorf("chart's root element is %q, want svg", root)
	}
}

func TestWriteSVGEmpty(t *testing.T) {
	var b bytes.Buffer
	if err := fleetbench.WriteSVG(&b, []fleetbench.Result{{Strategy: "handoff", Nodes: 3, Stuck: 3}}); err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(b.Bytes(), new(struct{})); err != nil {
		t.Fatalf("chart of a strategy with no deploys is not XML: %v\n%s", err, b.String())
	}
}

// TestRunLifecycle runs the lifecycle benchmark small — 6 nodes, 2 clients
// — with clients that poll and with clients that also watch, and checks
// what it promises: every node reaches active, nothing is stuck, every hop
// of the timeline is traced for every node (each mark was observed), the
// CPU is measured (and profiled when asked), and the table names every hop.
func TestRunLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a whole fleet; skipped with -short")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		redistest.Unavailable(t, err)
	}
	const nodes = 6
	for _, tc := range []struct {
		name    string
		watch   bool
		profile bool
	}{
		{"polling", false, true},
		{"watching", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var prof bytes.Buffer
			cfg := fleetbench.LifecycleConfig{
				Nodes: nodes, Clients: 2, Timeout: 40 * time.Second, DataDir: t.TempDir(), HeartbeatTimeout: 2 * time.Second,
				Watch: tc.watch,
			}
			if tc.profile {
				cfg.CPUProfile = &prof
			}
			r, err := fleetbench.RunLifecycle(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if r.Active != nodes || r.Stuck != 0 {
				t.Fatalf("active %d, stuck %d; want %d active", r.Active, r.Stuck, nodes)
			}
			if r.CPUSeconds <= 0 || r.NodesPerSecond <= 0 {
				t.Errorf("CPU %v s, %v nodes/s: want both measured", r.CPUSeconds, r.NodesPerSecond)
			}
			if tc.profile && prof.Len() == 0 {
				t.Error("no CPU profile written")
			}
			var table bytes.Buffer
			if err := fleetbench.WriteLifecycle(&table, r); err != nil {
				t.Fatal(err)
			}
			for _, h := range r.Hops {
				if h.Nodes != nodes {
					t.Errorf("hop %q traced for %d nodes, want %d", h.Name, h.Nodes, nodes)
				}
				if !strings.Contains(table.String(), h.Name) {
					t.Errorf("the table does not name hop %q:\n%s", h.Name, table.String())
				}
			}
		})
	}
}
