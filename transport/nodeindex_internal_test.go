package transport

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/transport/wire"
)

// scan is List's answer the way it was before the index: every match after
// the marker, sorted, cut at the limit. The index must give exactly this.
func scan(t *testing.T, nodes map[string]wire.Node, q NodeQuery) []string {
	t.Helper()
	order, err := sortOrder(nodeSortKeys, q.SortKey, q.SortDir, func(n *wire.Node) string { return n.UUID })
	if err != nil {
		t.Fatal(err)
	}
	var marker *wire.Node
	if q.Marker != "" {
		m := nodes[q.Marker]
		marker = &m
	}
	var out []*wire.Node
	for _, n := range nodes {
		if q.match(&n) && (marker == nil || order(marker, &n) < 0) {
			out = append(out, &n)
		}
	}
	slices.SortFunc(out, order)
	uuids := make([]string, 0, len(out))
	for _, n := range out[:min(len(out), q.Limit)] {
		uuids = append(uuids, n.UUID)
	}
	return uuids
}

func pageUUIDs(ix *nodeIndex, q NodeQuery) []string {
	var marker *wire.Node
	if q.Marker != "" {
		marker = ix.entries[q.Marker]
	}
	page, build := ix.page(&q, q.SortKey, q.SortDir == "desc", marker, true)
	if build != nil { // as List does
		ix.build(build)
		page, _ = ix.page(&q, q.SortKey, q.SortDir == "desc", marker, false)
	}
	var out []string
	for _, n := range page {
		out = append(out, n.UUID)
	}
	return out
}

// randomNode is node i with fields drawn from small sets, so that filters
// and sort keys tie often.
func randomNode(r *rand.Rand, i int) wire.Node {
	pick := func(vals ...string) string { return vals[r.IntN(len(vals))] }
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	n := wire.Node{
		UUID:           fmt.Sprintf("%08x-0000-4000-8000-%012x", r.Uint32(), i),
		Name:           pick("", "a", "b", fmt.Sprintf("n%d", i)),
		Driver:         pick("ipmi", "sim", "fake-hardware"),
		ProvisionState: wire.ProvisionState(pick("enroll", "manageable", "available", "active")),
		PowerState:     wire.PowerState(pick("", "power on", "power off")),
		Maintenance:    r.IntN(4) == 0,
		ConductorGroup: pick("", "rack1", "rack2"),
		ResourceClass:  pick("", "small", "large"),
		Owner:          pick("", "p1", "p2"),
		Lessee:         pick("", "p1", "p3"),
		Conductor:      pick("", "c1", "c2"),
		Fault:          pick("", "", "", "power failure"),
		Description:    pick("", "blue box", "red box"),
		ParentNode:     pick("", "", "", "11111111-0000-4000-8000-000000000000"),
		ChassisUUID:    pick("", "", "22222222-0000-4000-8000-000000000000"),
		CreatedAt:      base.Add(time.Duration(r.IntN(50)) * time.Second),
		UpdatedAt:      base.Add(time.Duration(r.IntN(50)) * time.Second),
	}
	if r.IntN(3) == 0 {
		n.InstanceUUID = fmt.Sprintf("33333333-0000-4000-8000-%012x", r.IntN(5))
	}
	return n
}

// randomQuery draws filters, a sort, a limit and sometimes a marker.
func randomQuery(r *rand.Rand, uuids []string) NodeQuery {
	str := func(vals ...string) *string { s := vals[r.IntN(len(vals))]; return &s }
	boolp := func() *bool { b := r.IntN(2) == 0; return &b }
	maybe := func() bool { return r.IntN(4) == 0 }
	var q NodeQuery
	if maybe() {
		q.ProvisionState = wire.ProvisionState(*str("enroll", "active", "deploying"))
	}
	if maybe() {
		q.Driver = *str("ipmi", "sim")
	}
	if maybe() {
		q.ConductorGroup = str("", "rack1", "rack9")
	}
	if maybe() {
		q.Maintenance = boolp()
	}
	if maybe() {
		q.Associated = boolp()
	}
	if r.IntN(10) == 0 {
		q.InstanceUUID = fmt.Sprintf("33333333-0000-4000-8000-%012x", r.IntN(6))
	}
	if maybe() {
		q.ResourceClass = *str("small", "large", "huge")
	}
	if r.IntN(10) == 0 {
		q.Fault = "power failure"
	}
	if maybe() {
		q.Owner = *str("p1", "p2")
	}
	if r.IntN(8) == 0 {
		q.Lessee = *str("p1", "p3")
	}
	if r.IntN(8) == 0 {
		q.Project = *str("p1", "p2", "p3")
	}
	if r.IntN(8) == 0 {
		q.Conductor = *str("c1", "c2", "c9")
	}
	if r.IntN(8) == 0 {
		q.DescriptionContains = *str("box", "blue")
	}
	if r.IntN(20) == 0 {
		q.Shards = []string{"s1"}
	}
	if r.IntN(20) == 0 {
		q.Sharded = boolp()
	}
	if r.IntN(20) == 0 {
		q.Retired = boolp()
	}
	if r.IntN(2) == 0 {
		q.ParentNode = str("", "11111111-0000-4000-8000-000000000000")
	}
	if r.IntN(8) == 0 {
		q.ChassisUUID = "22222222-0000-4000-8000-000000000000"
	}
	if r.IntN(2) == 0 {
		keys := slices.Sorted(maps.Keys(nodeSortKeys))
		q.SortKey = keys[r.IntN(len(keys))]
	}
	q.SortDir = *str("", "asc", "desc")
	q.Limit = []int{1, 3, 10, 50, 1000}[r.IntN(5)]
	if len(uuids) > 0 && r.IntN(2) == 0 {
		q.Marker = uuids[r.IntN(len(uuids))]
	}
	return q
}

// TestNodeIndexPageIsTheScan checks the index against the full scan it
// replaced, for random queries over nodes that are added, changed in every
// indexed field and removed: same nodes, same order. It runs with the
// index's own limits, and again building a tree for every query that can
// have one and keeping only three, so that trees are built, kept current
// through every change, and dropped.
func TestNodeIndexPageIsTheScan(t *testing.T) {
	tests := []struct {
		name            string
		worth, maxTrees int
	}{
		{"as configured", treeWorth, maxMatchTrees},
		{"a tree for every query", -1 << 30, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ix := newNodeIndex()
			ix.worth, ix.maxTrees = tt.worth, tt.maxTrees
			checkIndexIsTheScan(t, ix)
			if tt.worth < 0 && len(ix.trees) != tt.maxTrees {
				t.Errorf("%d trees kept, want %d", len(ix.trees), tt.maxTrees)
			}
		})
	}
}

// checkMatchTrees checks that each tree of ix holds exactly the nodes that
// pass its filters, in its order.
func checkMatchTrees(t *testing.T, ix *nodeIndex) {
	t.Helper()
	for _, mt := range ix.trees {
		var want []*wire.Node
		for _, e := range ix.entries {
			if mt.member(e) {
				want = append(want, e)
			}
		}
		slices.SortFunc(want, ix.orders[mt.key])
		var got []*wire.Node
		mt.tree.Ascend(func(e *wire.Node) bool { got = append(got, e); return true })
		if !slices.Equal(got, want) {
			t.Fatalf("tree %v by %s holds %d nodes, want %d", mt.filters, mt.key, len(got), len(want))
		}
	}
}

func checkIndexIsTheScan(t *testing.T, ix *nodeIndex) {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	nodes := map[string]wire.Node{}
	var uuids []string
	for i := range 600 {
		n := randomNode(r, i)
		nodes[n.UUID] = n
		uuids = append(uuids, n.UUID)
		ix.put(n.UUID, n)
	}
	check := func(round string) {
		t.Helper()
		for range 400 {
			q := randomQuery(r, uuids)
			got, want := pageUUIDs(ix, q), scan(t, nodes, q)
			if !slices.Equal(got, want) {
				t.Fatalf("%s: query %+v:\ngot  %d %v\nwant %d %v", round, q, len(got), got, len(want), want)
			}
		}
	}
	check("fresh")
	for round := range 5 {
		for range 300 {
			u := uuids[r.IntN(len(uuids))]
			if _, ok := nodes[u]; !ok || r.IntN(10) == 0 {
				// removed, or a tenth of the time removed now
				delete(nodes, u)
				ix.remove(u)
				continue
			}
			n := randomNode(r, 0)
			n.UUID = u
			nodes[u] = n
			ix.put(u, n)
		}
		for _, u := range uuids {
			if _, ok := nodes[u]; !ok && r.IntN(2) == 0 {
				n := randomNode(r, 0)
				n.UUID = u
				nodes[u] = n
				ix.put(u, n)
			}
		}
		// Markers must be nodes: List refuses others before the index.
		live := slices.DeleteFunc(slices.Clone(uuids), func(u string) bool { _, ok := nodes[u]; return !ok })
		uuidsBefore := uuids
		uuids = live
		checkMatchTrees(t, ix)
		check(fmt.Sprintf("after changes %d", round))
		uuids = uuidsBefore
	}
	checkMatchTrees(t, ix)
	if len(ix.entries) != len(nodes) {
		t.Fatalf("index holds %d nodes, want %d", len(ix.entries), len(nodes))
	}
	for k, set := range ix.sets {
		if set.Len() == 0 {
			t.Errorf("set %v is empty but kept", k)
		}
	}
}

// TestNodeIndexWalk pages through every node with each sort key and
// direction, following the last node of each page as the next marker: each
// node comes exactly once, as a client walking "next" links sees them.
func TestNodeIndexWalk(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	ix := newNodeIndex()
	const total = 2500
	for i := range total {
		n := randomNode(r, i)
		ix.put(n.UUID, n)
	}
	for _, key := range slices.Sorted(maps.Keys(nodeSortKeys)) {
		for _, dir := range []string{"asc", "desc"} {
			t.Run(key+"/"+dir, func(t *testing.T) {
				seen := map[string]bool{}
				q := NodeQuery{SortKey: key, SortDir: dir, Limit: 1000}
				for pages := 1; ; pages++ {
					page := pageUUIDs(ix, q)
					for _, u := range page {
						if seen[u] {
							t.Fatalf("page %d: node %s came again", pages, u)
						}
						seen[u] = true
					}
					if len(page) < q.Limit {
						break
					}
					q.Marker = page[len(page)-1]
				}
				if len(seen) != total {
					t.Fatalf("walked %d nodes, want %d", len(seen), total)
				}
			})
		}
	}
}

// BenchmarkListPage is one page of 100 at 10,000 nodes, from a marker,
// as bench api's list_sorted_paged asks: the index walk (and the copy of
// the page) against the full scan it replaced.
func BenchmarkListPage(b *testing.B) {
	const total = 10000
	c := newCache()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var uuids []string
	for i := range total {
		n := wire.Node{
			UUID: fmt.Sprintf("%08x-0000-4000-8000-%012x", i*2654435761%(1<<32), i), Name: fmt.Sprintf("bench-%05d", i),
			Driver: "sim", ProvisionState: wire.StateEnroll, ConductorGroup: []string{"rack1", "rack2"}[i%2],
			ResourceClass: []string{"small", "medium", "large"}[i%3], Maintenance: i%10 == 9,
			DriverInfo: map[string]any{"sim_machine": i}, CreatedAt: base.Add(time.Duration(i) * time.Millisecond),
		}
		c.nodes[n.UUID] = n
		c.index.put(n.UUID, n)
		uuids = append(uuids, n.UUID)
	}
	inv := &Inventory{cache: c}
	rack1, off := "rack1", false
	top := ""
	queries := []struct {
		name string
		q    NodeQuery
	}{
		{"filtered", NodeQuery{ConductorGroup: &rack1, Maintenance: &off, ParentNode: &top, Limit: 100}},
		{"sorted_paged", NodeQuery{ConductorGroup: &rack1, ResourceClass: "small", Maintenance: &off, ParentNode: &top,
			SortKey: "name", SortDir: "desc", Limit: 100}},
	}
	for _, qq := range queries {
		b.Run(qq.name+"/index", func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				q := qq.q
				q.Marker = uuids[(i*7919)%total]
				if _, err := inv.List(q); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(qq.name+"/scan", func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				q := qq.q
				q.Marker = uuids[(i*7919)%total]
				order, _ := sortOrder(nodeSortKeys, q.SortKey, q.SortDir, func(n *wire.Node) string { return n.UUID })
				m := c.nodes[q.Marker]
				var out []wire.Node
				for _, n := range c.nodes {
					if q.match(&n) && order(&m, &n) < 0 {
						out = append(out, copyNode(n))
					}
				}
				slices.SortFunc(out, func(a, b wire.Node) int { return order(&a, &b) })
			}
		})
	}
}
