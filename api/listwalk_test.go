package api_test

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
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

// TestNodeListShortShape checks a list item without detail at the versions
// that change it: Ironic's default list fields (_DEFAULT_RETURN_FIELDS in
// ironic/api/controllers/v1/node.py), name only from 1.5, and "available"
// spelled null before 1.2.
func TestNodeListShortShape(t *testing.T) {
	e := newEnv(t)
	id := e.createNode("shape-short", nil)
	e.setState(id, wire.StateAvailable)
	base := []string{"instance_uuid", "links", "maintenance", "power_state", "provision_state", "uuid"}
	tests := []struct {
		version   string
		keys      []string
		provision any
	}{
		{"1.1", base, nil},
		{"1.4", base, "available"},
		{"1.5", append(slices.Clone(base), "name"), "available"},
		{"1.95", append(slices.Clone(base), "name"), "available"},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			r := e.do(http.MethodGet, "/v1/nodes", nil, "X-OpenStack-Ironic-API-Version", tt.version)
			mustStatus(t, r, 200)
			nodes := r.json(t)["nodes"].([]any)
			if len(nodes) != 1 {
				t.Fatalf("%d nodes, want 1", len(nodes))
			}
			n := nodes[0].(map[string]any)
			keys := slices.Sorted(maps.Keys(n))
			want := slices.Sorted(slices.Values(tt.keys))
			if !slices.Equal(keys, want) {
				t.Errorf("keys %v, want %v", keys, want)
			}
			if n["provision_state"] != tt.provision || n["uuid"] != id || n["maintenance"] != false ||
				n["instance_uuid"] != nil || n["power_state"] != nil {
				t.Errorf("node %v: want provision_state %v, uuid %s, not in maintenance, null instance and power", n, tt.provision, id)
			}
			if name, ok := n["name"]; ok && name != "shape-short" {
				t.Errorf("name %v, want shape-short", name)
			}
			if l := n["links"].([]any); len(l) != 2 || l[0].(map[string]any)["href"] != e.url+"/v1/nodes/"+id {
				t.Errorf("links %v", l)
			}
		})
	}
}
