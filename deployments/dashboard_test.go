package deployments

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestGrafanaDashboard parses the dashboard and checks every query names
// only metrics the code exports (found in the Go sources), and that it
// shows what the issue asks for: line length, longest wait, handoffs,
// expiries, node states.
func TestGrafanaDashboard(t *testing.T) {
	for _, p := range files(t, "*.json") {
		t.Run(p, func(t *testing.T) {
			b, err := os.ReadFile(p) //nolint:gosec // a file of this repository
			if err != nil {
				t.Fatal(err)
			}
			var d map[string]any
			if err := json.Unmarshal(b, &d); err != nil {
				t.Fatal(err)
			}
			if str(d["title"]) == "" || str(d["uid"]) == "" {
				t.Error("no title or uid")
			}
			exported := exportedMetrics(t)
			used := map[string]bool{}
			ids := map[float64]bool{}
			for _, panel := range list(d["panels"]) {
				id, _ := dig(panel, "id").(float64)
				if ids[id] {
					t.Errorf("panel id %v twice", id)
				}
				ids[id] = true
				for _, tg := range list(dig(panel, "targets")) {
					expr := str(dig(tg, "expr"))
					if expr == "" {
						t.Errorf("panel %q: a target without expr", str(dig(panel, "title")))
					}
					if strings.Count(expr, "(") != strings.Count(expr, ")") {
						t.Errorf("panel %q: unbalanced parentheses in %s", str(dig(panel, "title")), expr)
					}
					for _, m := range metricRe.FindAllString(expr, -1) {
						base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_sum"), "_count")
						used[base] = true
						if !exported[base] {
							t.Errorf("panel %q queries %s, which no Go source exports", str(dig(panel, "title")), m)
						}
					}
				}
			}
			for _, want := range []string{
				"ironfleet_lock_line_length", "ironfleet_lock_longest_wait_seconds",
				"ironfleet_lock_handoffs_total", "ironfleet_lock_expired_total", "ironfleet_api_nodes",
			} {
				if !used[want] {
					t.Errorf("no panel shows %s", want)
				}
			}
		})
	}
}

var metricRe = regexp.MustCompile(`\bironfleet_[a-z_]+\b`)

// exportedMetrics finds the metric names the Go sources define: literal
// "ironfleet_…" names, and Namespace/Subsystem/Name triples.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	lit := regexp.MustCompile(`"(ironfleet_[a-z_]+)"`)
	triple := regexp.MustCompile(`Namespace:\s*"(\w+)",\s*Subsystem:\s*"(\w+)",\s*Name:\s*"(\w+)"`)
	out := map[string]bool{}
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != ".." || d.Name() == "deployments") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path) //nolint:gosec // a file of this repository
		if err != nil {
			return err
		}
		for _, m := range lit.FindAllSubmatch(b, -1) {
			out[string(m[1])] = true
		}
		for _, m := range triple.FindAllSubmatch(b, -1) {
			out[string(m[1])+"_"+string(m[2])+"_"+string(m[3])] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !out["ironfleet_lock_handoffs_total"] {
		t.Fatalf("found no lock metrics in the sources (%d names): the scan is broken", len(out))
	}
	return out
}
