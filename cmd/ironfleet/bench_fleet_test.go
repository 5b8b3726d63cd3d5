package main

import (
	"encoding/json"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/internal/redistest"
	"github.com/ironfleet/ironfleet/internal/syncbuf"
)

// TestBenchFleetJSON runs the command at its smallest — 3 nodes, handoff
// only — and checks its output: one JSON line with the promised fields, and
// the chart written where --svg says.
func TestBenchFleetJSON(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a whole fleet; skipped with -short")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		redistest.Unavailable(t, err)
	}
	svg := filepath.Join(t.TempDir(), "chart", "fleet.svg")
	var out syncbuf.Buffer
	err := runCmd(t.Context(), &out, "bench", "fleet", "--json", "--nodes", "3", "--strategies", "handoff",
		"--timeout", "30s", "--heartbeat-timeout", "2s", "--svg", svg, "--data-dir", t.TempDir())
	if err != nil {
		t.Fatalf("bench fleet: %v\n%s", err, out.String())
	}
	var line string
	for l := range strings.Lines(out.String()) {
		if strings.HasPrefix(l, "{") {
			line = l
		}
	}
	var r map[string]any
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		t.Fatalf("no JSON line in:\n%s", out.String())
	}
	for _, k := range []string{"strategy", "nodes", "active", "stuck", "deploy_p50_ms", "deploy_p99_ms", "raced_handoffs"} {
		if _, ok := r[k]; !ok {
			t.Errorf("JSON has no %q: %s", k, line)
		}
	}
	if r["strategy"] != "handoff" || r["active"] != 3.0 || r["stuck"] != 0.0 || r["raced_handoffs"] != 0.0 {
		t.Errorf("got %s, want handoff with 3 active, 0 stuck, 0 raced", line)
	}
	b, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(b, new(struct{})); err != nil {
		t.Errorf("chart is not XML: %v", err)
	}
}

func TestBenchFleetUnknownStrategy(t *testing.T) {
	var out syncbuf.Buffer
	err := runCmd(t.Context(), &out, "bench", "fleet", "--strategies", "optimistic")
	if err == nil || !strings.Contains(err.Error(), "optimistic") {
		t.Fatalf("got %v, want an error naming the unknown strategy", err)
	}
}

// TestBenchFleetTargetFlagsRefused: a flag about --target is refused where
// nothing would read it, naming it, before anything starts.
func TestBenchFleetTargetFlagsRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"target without lifecycle", []string{"--target", "http://127.0.0.1:1"}, "--target: only with --lifecycle"},
		{"pids without target", []string{"--lifecycle", "--target-pids", "1"}, "--target-pids: only with --target"},
		{"machines without target", []string{"--lifecycle", "--machines", "m.json"}, "--machines: only with --target"},
		{"unknown process", []string{"--lifecycle", "--target", "http://127.0.0.1:1", "--target-procs", "no-such-ironfleet-process"}, "no process named"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out syncbuf.Buffer
			err := runCmd(t.Context(), &out, append([]string{"bench", "fleet"}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

// TestBenchSync: --sync-interval 0 reaches the benchmarks as "on every
// write" (negative), since their configs' zero is the 1 s default; any
// other value passes unchanged, in both modes of bench fleet.
func TestBenchSync(t *testing.T) {
	for _, tc := range []struct {
		flag, want time.Duration
	}{
		{0, -1},
		{time.Second, time.Second},
		{250 * time.Millisecond, 250 * time.Millisecond},
	} {
		if got := benchSync(tc.flag); got != tc.want {
			t.Errorf("benchSync(%v) = %v, want %v", tc.flag, got, tc.want)
		}
	}
}
