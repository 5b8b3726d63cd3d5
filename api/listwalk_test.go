package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/ironfleet/ironfleet/transport/wire"
)

// TestNodeListWalksTenThousand pages through 10,000 nodes at limit=1000,
// following "next" from the first page, in creation order and by name
// descending: every node comes exactly once, in order, and the last page
// is the only one without a next link, as a client walking an Ironic
// inventory sees it (the nodes are written to the inventory directly; the
// API's create path is tested elsewhere).
func TestNodeListWalksTenThousand(t *testing.T) {
	const total, limit = 10000, 1000
	e := newEnv(t)
	g, ctx := errgroup.WithContext(t.Context())
	g.SetLimit(32)
	for i := range total {
		g.Go(func() error {
			_, err := e.inv.CreateNode(ctx, wire.Node{Name: fmt.Sprintf("walk-%05d", i), Driver: "sim", ConductorGroup: []string{"", "rack1"}[i%2]})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := e.inv.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		query string
		nodes int
		less  func(a, b map[string]any) bool // the order pages must keep, nil for any
	}{
		{"", total, nil},
		{"sort_key=name&sort_dir=desc", total, func(a, b map[string]any) bool { return a["name"].(string) > b["name"].(string) }},
		{"conductor_group=rack1&sort_key=uuid", total / 2, func(a, b map[string]any) bool { return a["uuid"].(string) < b["uuid"].(string) }},
	}
	for _, tt := range tests {
		t.Run("query="+tt.query, func(t *testing.T) {
			seen := map[string]bool{}
			var prev map[string]any
			pages := 0
			path := fmt.Sprintf("/v1/nodes?limit=%d&%s", limit, tt.query)
			for path != "" {
				r := e.do(http.MethodGet, path, nil)
				mustStatus(t, r, 200)
				pages++
				doc := r.json(t)
				for _, n := range doc["nodes"].([]any) {
					n := n.(map[string]any)
					u := n["uuid"].(string)
					if seen[u] {
						t.Fatalf("page %d: node %s came again", pages, u)
					}
					seen[u] = true
					if tt.less != nil && prev != nil && !tt.less(prev, n) {
						t.Fatalf("page %d: %v came after %v", pages, n, prev)
					}
					prev = n
				}
				next, _ := doc["next"].(string)
				path = strings.TrimPrefix(next, e.url)
			}
			if len(seen) != tt.nodes {
				t.Errorf("walked %d nodes, want %d", len(seen), tt.nodes)
			}
			// Full pages carry a next link; the page after the last full one is empty.
			if want := tt.nodes/limit + 1; pages != want {
				t.Errorf("%d pages, want %d", pages, want)
			}
		})
	}
}
