package transport

import (
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/google/btree"

	"github.com/ironfleet/ironfleet/transport/wire"
)

// nodeIndex keeps the cached nodes in the orders List pages through, so
// that a page costs O(log n + limit) instead of a copy and sort of every
// match:
//
//   - one B-tree per sort key over every node, ordered by (key, UUID): the
//     order sortOrder defines, walked forwards for asc and backwards for
//     desc, starting at the marker;
//
//   - one B-tree per value of each equality filter (provision_state,
//     maintenance, driver, resource_class, owner, …) holding the nodes with
//     that value, in creation order (created_at, UUID).
//
//   - on demand, one B-tree per query shape that paging would otherwise
//     cost more than the page: the nodes passing a conjunction of
//     equality filters, in one sort key's order (a matchTree), so that a
//     filtered, sorted page costs O(log n + limit) however selective the
//     filters are. A page that finds no such tree and would walk more than
//     treeWorth nodes asks List to build one (under the write lock, from
//     the smallest of its filter sets); at most maxMatchTrees are kept,
//     the least recently used dropped first, and every update keeps each
//     one current.
//
// List walks the smallest structure that can answer a query and checks each
// node it meets against the whole query (NodeQuery.match), so every filter
// keeps exactly the semantics of the full scan it replaces; the index only
// decides where to look. Entries are stable pointers, one per node, updated
// in place: a change repositions the node only in the trees whose key it
// changed. Every method must be called with the cache's lock held (for
// writing by put and remove, reading by the rest).
type nodeIndex struct {
	entries map[string]*wire.Node                    // UUID → the indexed copy
	sorted  map[string]*btree.BTreeG[*wire.Node]     // sort key → every node
	sets    map[nodeFilter]*btree.BTreeG[*wire.Node] // filter value → its nodes, in creation order
	orders  map[string]func(a, b *wire.Node) int     // sort key → (key, UUID) ascending
	free    *btree.FreeListG[*wire.Node]             // shared by every tree
	setLess btree.LessFunc[*wire.Node]               // creation order, for sets
	keys    []string                                 // the sort keys with a tree, "id" aliased to created_at
	trees   map[string]*matchTree                    // matchTree.id → tree
	clock   atomic.Int64                             // ticks at every page a tree answers, for eviction
	// worth and maxTrees are treeWorth and maxMatchTrees; tests lower them.
	worth, maxTrees int
}

// matchTree holds the nodes that pass every filter of filters, in the
// order of sort key key (then UUID).
type matchTree struct {
	id      string
	filters []nodeFilter
	key     string // a key of ix.sorted: "id" is created_at
	tree    *btree.BTreeG[*wire.Node]
	used    atomic.Int64 // ix.clock when it last answered a page
}

// member reports whether e passes every filter of t.
func (t *matchTree) member(e *wire.Node) bool {
	for _, f := range t.filters {
		if filterValue(e, f.field) != f.value {
			return false
		}
	}
	return true
}

// matchTreeID names the tree of filters (in q.filters' order) and key.
func matchTreeID(filters []nodeFilter, key string) string {
	var b strings.Builder
	b.WriteString(key)
	for _, f := range filters {
		b.WriteByte(0)
		b.WriteByte(byte(f.field))
		b.WriteString(f.value)
	}
	return b.String()
}

// treeRequest is what page asks List to build: a matchTree.
type treeRequest struct {
	id      string
	filters []nodeFilter
	key     string
}

// Limits of the matchTrees: a tree is built when a page would otherwise
// meet more than twice its limit plus treeWorth nodes, and at most
// maxMatchTrees are kept (each costs a pointer per member, and a
// membership check per tree on every update).
const (
	treeWorth     = 256
	maxMatchTrees = 16
)

// nodeFilter is one value of an indexed equality filter.
type nodeFilter struct {
	field filterField
	value string
}

// filterField is an equality filter of NodeQuery the index keeps sets for.
type filterField uint8

const (
	fProvisionState filterField = iota
	fDriver
	fConductorGroup
	fMaintenance
	fAssociated
	fInstanceUUID
	fResourceClass
	fFault
	fOwner
	fLessee
	fConductor
	fParentNode
	fChassis
	nFilterFields
)

// filterValue is n's value of field f, as NodeQuery.match compares it.
func filterValue(n *wire.Node, f filterField) string {
	switch f {
	case fProvisionState:
		return string(n.ProvisionState)
	case fDriver:
		return n.Driver
	case fConductorGroup:
		return n.ConductorGroup
	case fMaintenance:
		return strconv.FormatBool(n.Maintenance)
	case fAssociated:
		return strconv.FormatBool(n.InstanceUUID != "")
	case fInstanceUUID:
		return n.InstanceUUID
	case fResourceClass:
		return n.ResourceClass
	case fFault:
		return n.Fault
	case fOwner:
		return n.Owner
	case fLessee:
		return n.Lessee
	case fConductor:
		return n.Conductor
	case fParentNode:
		return n.ParentNode
	case fChassis:
		return n.ChassisUUID
	}
	return ""
}

// filters are the indexed equality filters q sets. Each narrows q to one
// set: a node outside any of them cannot match.
func (q *NodeQuery) filters() []nodeFilter {
	var out []nodeFilter
	add := func(f filterField, set bool, v string) {
		if set {
			out = append(out, nodeFilter{f, v})
		}
	}
	add(fProvisionState, q.ProvisionState != "", string(q.ProvisionState))
	add(fDriver, q.Driver != "", q.Driver)
	add(fConductorGroup, q.ConductorGroup != nil, deref(q.ConductorGroup))
	add(fMaintenance, q.Maintenance != nil, strconv.FormatBool(deref(q.Maintenance)))
	add(fAssociated, q.Associated != nil, strconv.FormatBool(deref(q.Associated)))
	add(fInstanceUUID, q.InstanceUUID != "", q.InstanceUUID)
	add(fResourceClass, q.ResourceClass != "", q.ResourceClass)
	add(fFault, q.Fault != "", q.Fault)
	add(fOwner, q.Owner != "", q.Owner)
	add(fLessee, q.Lessee != "", q.Lessee)
	add(fConductor, q.Conductor != "", q.Conductor)
	add(fParentNode, q.ParentNode != nil, deref(q.ParentNode))
	add(fChassis, q.ChassisUUID != "", q.ChassisUUID)
	return out
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// indexDegree is the B-trees' degree: nodes of up to 63 pointers, a few
// cache lines each, shallow trees (three levels at 10,000 nodes).
const indexDegree = 32

func newNodeIndex() *nodeIndex {
	ix := &nodeIndex{
		entries: map[string]*wire.Node{},
		sorted:  map[string]*btree.BTreeG[*wire.Node]{},
		sets:    map[nodeFilter]*btree.BTreeG[*wire.Node]{},
		orders:  map[string]func(a, b *wire.Node) int{},
		free:    btree.NewFreeListG[*wire.Node](btree.DefaultFreeListSize),
		trees:   map[string]*matchTree{},
		worth:   treeWorth, maxTrees: maxMatchTrees,
	}
	for key, by := range nodeSortKeys {
		ix.orders[key] = func(a, b *wire.Node) int {
			if c := by(a, b); c != 0 {
				return c
			}
			return cmpString(a.UUID, b.UUID)
		}
		if key == "id" {
			continue // the same order as created_at: one tree serves both
		}
		ix.keys = append(ix.keys, key)
		less := ix.orders[key]
		ix.sorted[key] = btree.NewWithFreeListG(indexDegree, func(a, b *wire.Node) bool { return less(a, b) < 0 }, ix.free)
	}
	slices.Sort(ix.keys)
	byCreation := ix.orders["created_at"]
	ix.setLess = func(a, b *wire.Node) bool { return byCreation(a, b) < 0 }
	return ix
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// tree is the tree of sort key key ("id" is created_at's).
func (ix *nodeIndex) tree(key string) *btree.BTreeG[*wire.Node] {
	if key == "id" {
		key = "created_at"
	}
	return ix.sorted[key]
}

// put indexes n under key (its UUID), replacing the node there.
func (ix *nodeIndex) put(key string, n wire.Node) {
	e, ok := ix.entries[key]
	if !ok {
		e = new(wire.Node)
		*e = n
		ix.entries[key] = e
		for _, key := range ix.keys {
			ix.sorted[key].ReplaceOrInsert(e)
		}
		for f := range nFilterFields {
			ix.set(nodeFilter{f, filterValue(e, f)}).ReplaceOrInsert(e)
		}
		for _, t := range ix.trees {
			if t.member(e) {
				t.tree.ReplaceOrInsert(e)
			}
		}
		return
	}
	// Take e out of every tree its new value moves it in, while it still
	// holds the old value the tree is ordered by; update it; put it back.
	var moved []string
	for _, key := range ix.keys {
		if nodeSortKeys[key](e, &n) != 0 {
			ix.sorted[key].Delete(e)
			moved = append(moved, key)
		}
	}
	creationMoved := !e.CreatedAt.Equal(n.CreatedAt)
	var left []filterField
	for f := range nFilterFields {
		if creationMoved || filterValue(e, f) != filterValue(&n, f) {
			ix.unset(nodeFilter{f, filterValue(e, f)}, e)
			left = append(left, f)
		}
	}
	var enter []*matchTree
	for _, t := range ix.trees {
		was, is := t.member(e), t.member(&n)
		moves := nodeSortKeys[t.key](e, &n) != 0
		if was && (!is || moves) {
			t.tree.Delete(e)
		}
		if is && (!was || moves) {
			enter = append(enter, t)
		}
	}
	*e = n
	for _, key := range moved {
		ix.sorted[key].ReplaceOrInsert(e)
	}
	for _, f := range left {
		ix.set(nodeFilter{f, filterValue(e, f)}).ReplaceOrInsert(e)
	}
	for _, t := range enter {
		t.tree.ReplaceOrInsert(e)
	}
}

// remove drops the node under key, if indexed.
func (ix *nodeIndex) remove(key string) {
	e, ok := ix.entries[key]
	if !ok {
		return
	}
	for _, key := range ix.keys {
		ix.sorted[key].Delete(e)
	}
	for f := range nFilterFields {
		ix.unset(nodeFilter{f, filterValue(e, f)}, e)
	}
	for _, t := range ix.trees {
		if t.member(e) {
			t.tree.Delete(e)
		}
	}
	delete(ix.entries, key)
}

// build makes the matchTree r asks for, unless it exists, dropping the
// least recently used tree when maxMatchTrees are kept.
func (ix *nodeIndex) build(r *treeRequest) {
	if _, ok := ix.trees[r.id]; ok {
		return
	}
	if len(ix.trees) >= ix.maxTrees {
		var oldest *matchTree
		for _, t := range ix.trees {
			if oldest == nil || t.used.Load() < oldest.used.Load() {
				oldest = t
			}
		}
		delete(ix.trees, oldest.id)
	}
	order := ix.orders[r.key]
	t := &matchTree{id: r.id, filters: r.filters, key: r.key,
		tree: btree.NewWithFreeListG(indexDegree, func(a, b *wire.Node) bool { return order(a, b) < 0 }, ix.free)}
	t.used.Store(ix.clock.Add(1))
	ix.trees[r.id] = t
	// Every member is in each of its filters' sets: fill from the smallest.
	var smallest *btree.BTreeG[*wire.Node]
	for _, f := range r.filters {
		set, ok := ix.sets[f]
		if !ok {
			return // no node has this value: empty until one does
		}
		if smallest == nil || set.Len() < smallest.Len() {
			smallest = set
		}
	}
	smallest.Ascend(func(e *wire.Node) bool {
		if t.member(e) {
			t.tree.ReplaceOrInsert(e)
		}
		return true
	})
}

// set is the set of filter value k, created when missing.
func (ix *nodeIndex) set(k nodeFilter) *btree.BTreeG[*wire.Node] {
	t, ok := ix.sets[k]
	if !ok {
		t = btree.NewWithFreeListG(indexDegree, ix.setLess, ix.free)
		ix.sets[k] = t
	}
	return t
}

// unset takes e out of the set of k, dropping the set when it empties, so
// values no node has any longer (instance UUIDs, conductors) do not pile up.
func (ix *nodeIndex) unset(k nodeFilter, e *wire.Node) {
	t, ok := ix.sets[k]
	if !ok {
		return
	}
	t.Delete(e)
	if t.Len() == 0 {
		delete(ix.sets, k)
	}
}

// page returns up to q.Limit nodes matching q after marker (an entry, or
// nil: from the start) in the order of sort key key, asc or desc; key must
// be valid ("" is created_at) and q.Limit positive.
//
// It walks one tree from the marker, checking each node against q:
//   - the matchTree of q's equality filters and key, when there is one;
//   - the smallest filter set, when the sort is creation order: it is
//     already in that order;
//   - otherwise the sort key's tree, or, when the filters are so selective
//     that the walk would meet more non-matching nodes than the smallest set
//     holds, that set in full, its matches sorted (O(s log s) for a set of
//     s nodes, bounded by the walk it replaces: about limit·n/matches).
//
// When ask is set, there is no matchTree and the walk would meet more than
// 2·limit + treeWorth nodes, it returns no page but the tree to build
// (never for a query without filters, or with one in creation order:
// those trees exist).
func (ix *nodeIndex) page(q *NodeQuery, key string, desc bool, marker *wire.Node, ask bool) ([]*wire.Node, *treeRequest) {
	if key == "" || key == "id" {
		key = "created_at"
	}
	if q.none() {
		return nil, nil
	}
	n := len(ix.entries)
	filters := q.filters()
	var smallest *btree.BTreeG[*wire.Node]
	expected := float64(n) // matches expected, taking the filters as independent
	for _, f := range filters {
		t, ok := ix.sets[f]
		if !ok {
			return nil, nil // no node has this value
		}
		if smallest == nil || t.Len() < smallest.Len() {
			smallest = t
		}
		expected *= float64(t.Len()) / float64(n)
	}
	creation := key == "created_at"
	walk := ix.tree(key)
	order := ix.orders[key]
	// The nodes the walk below meets for a full page, estimated.
	cost := float64(q.Limit) * float64(n) / max(expected, 1)
	switch {
	case smallest == nil:
	case creation:
		walk = smallest
		cost = float64(q.Limit) * float64(smallest.Len()) / max(expected, 1)
	case cost > float64(smallest.Len()):
		cost = float64(smallest.Len())
	}
	if smallest != nil && (len(filters) > 1 || !creation) {
		id := matchTreeID(filters, key)
		if t, ok := ix.trees[id]; ok {
			t.used.Store(ix.clock.Add(1))
			walk, smallest = t.tree, nil
		} else if ask && cost > float64(2*q.Limit+ix.worth) {
			return nil, &treeRequest{id: id, filters: filters, key: key}
		}
	}
	if smallest != nil && !creation && float64(q.Limit)*float64(n)/max(expected, 1) > float64(smallest.Len()) {
		return ix.sortSet(q, smallest, order, desc, marker), nil
	}
	out := make([]*wire.Node, 0, min(q.Limit, n))
	visit := func(e *wire.Node) bool {
		if e == marker {
			return true // the pivot itself; the page starts after it
		}
		if q.match(e) {
			out = append(out, e)
		}
		return len(out) < q.Limit
	}
	switch {
	case marker == nil && !desc:
		walk.Ascend(visit)
	case marker == nil:
		walk.Descend(visit)
	case !desc:
		walk.AscendGreaterOrEqual(marker, visit)
	default:
		walk.DescendLessOrEqual(marker, visit)
	}
	return out, nil
}

// sortSet is page by a full pass over set: its matches after marker,
// sorted by order (reversed for desc), cut at q.Limit.
func (ix *nodeIndex) sortSet(q *NodeQuery, set *btree.BTreeG[*wire.Node], order func(a, b *wire.Node) int, desc bool, marker *wire.Node) []*wire.Node {
	sign := 1
	if desc {
		sign = -1
	}
	var out []*wire.Node
	set.Ascend(func(e *wire.Node) bool {
		if (marker == nil || sign*order(marker, e) < 0) && q.match(e) {
			out = append(out, e)
		}
		return true
	})
	slices.SortFunc(out, func(a, b *wire.Node) int { return sign * order(a, b) })
	return out[:min(len(out), q.Limit)]
}
