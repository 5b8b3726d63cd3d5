package transport

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ironfleet/ironfleet/internal/wait"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// MaxLimit is the largest page List and Ports return, as in Ironic.
const MaxLimit = 1000

// cache is the in-memory view of the nodes and ports buckets.
type cache struct {
	mu      sync.RWMutex
	nodes   map[string]wire.Node
	index   *nodeIndex // the nodes again, ordered for List
	ports   map[string]wire.Port
	rev     map[string]uint64 // bucket → highest revision reflected
	changed chan struct{}     // closed and replaced on every change
}

func newCache() *cache {
	return &cache{
		nodes:   map[string]wire.Node{},
		index:   newNodeIndex(),
		ports:   map[string]wire.Port{},
		rev:     map[string]uint64{},
		changed: make(chan struct{}),
	}
}

// notifyLocked wakes every waiter; c.mu must be held for writing.
func (c *cache) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// load replaces a bucket's contents with a fresh snapshot.
func (c *cache) load(bucket string, snap map[string]jetstream.KeyValueEntry, rev uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch bucket {
	case NodesBucket:
		c.nodes = map[string]wire.Node{}
		c.index = newNodeIndex()
	case PortsBucket:
		c.ports = map[string]wire.Port{}
	}
	for _, e := range snap {
		c.putLocked(bucket, e)
	}
	// A reload may legitimately move backwards only if the bucket was
	// recreated; never let a waiter see a lower revision than it was told.
	c.rev[bucket] = max(c.rev[bucket], rev)
	c.notifyLocked()
}

// apply applies one watched change.
func (c *cache) apply(bucket string, e jetstream.KeyValueEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(bucket, e)
	c.rev[bucket] = max(c.rev[bucket], e.Revision())
	c.notifyLocked()
}

func (c *cache) putLocked(bucket string, e jetstream.KeyValueEntry) {
	del := e.Operation() == jetstream.KeyValueDelete || e.Operation() == jetstream.KeyValuePurge
	switch bucket {
	case NodesBucket:
		var n wire.Node
		if del || json.Unmarshal(e.Value(), &n) != nil {
			delete(c.nodes, e.Key())
			c.index.remove(e.Key())
			return
		}
		c.nodes[e.Key()] = n
		c.index.put(e.Key(), n)
	case PortsBucket:
		var p wire.Port
		if del || json.Unmarshal(e.Value(), &p) != nil {
			delete(c.ports, e.Key())
			return
		}
		c.ports[e.Key()] = p
	}
}

// waitRev waits until the cache reflects revision rev of bucket.
func (c *cache) waitRev(ctx context.Context, bucket string, rev uint64) error {
	for {
		c.mu.RLock()
		ok, ch := c.rev[bucket] >= rev, c.changed
		c.mu.RUnlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return wire.Errorf(wire.CodeUnavailable, "transport: cache of %s not at revision %d: %w", bucket, rev, context.Cause(ctx))
		}
	}
}

func (c *cache) revision(bucket string) uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.rev[bucket]
}

func (c *cache) portsOf(node string) []wire.Port {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []wire.Port
	for _, p := range c.ports {
		if p.NodeUUID == node {
			out = append(out, p)
		}
	}
	return out
}

var errWatchStalled = errors.New("transport: watch stalled behind the bucket")

// watch keeps bucket's part of the cache current until ctx ends: it loads a
// full snapshot, applies changes, and on any end or stall of the watch
// re-watches and reloads from scratch, so the cache converges after a
// reconnect or server restart whatever was missed. ready gets one value
// after the first load.
func (inv *Inventory) watch(ctx context.Context, kv jetstream.KeyValue, ready chan<- struct{}) {
	first := true
	loaded := func() {
		if first {
			first = false
			ready <- struct{}{}
		}
	}
	for ctx.Err() == nil {
		err := inv.watchOnce(ctx, kv, loaded)
		if ctx.Err() != nil {
			return
		}
		inv.log.Warn("inventory watch restarting", "bucket", kv.Bucket(), "err", err)
		_ = wait.Sleep(ctx, inv.cfg.WatchRestartDelay)
	}
}

func bucketLastSeq(ctx context.Context, kv jetstream.KeyValue) (uint64, error) {
	st, err := kv.Status(ctx)
	if err != nil {
		return 0, err
	}
	s, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok {
		return 0, fmt.Errorf("transport: bucket %s: unexpected status type %T", kv.Bucket(), st)
	}
	return s.StreamInfo().State.LastSeq, nil
}

func (inv *Inventory) watchOnce(ctx context.Context, kv jetstream.KeyValue, loaded func()) error {
	bucket := kv.Bucket()
	last, err := bucketLastSeq(ctx, kv)
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	defer func() { _ = w.Stop() }()
	snap := map[string]jetstream.KeyValueEntry{}
	loading := true
	var maxRev uint64
	tick := time.NewTicker(inv.cfg.StallCheckEvery)
	defer tick.Stop()
	var behind bool     // the previous check found the cache behind the bucket…
	var behindAt uint64 // …at this revision
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("watch ended")
			}
			switch {
			case e == nil:
				if loading {
					inv.cache.load(bucket, snap, max(maxRev, last))
					snap, loading = nil, false
					loaded()
				}
			case loading:
				snap[e.Key()] = e
				maxRev = max(maxRev, e.Revision())
			default:
				inv.cache.apply(bucket, e)
			}
		case <-tick.C:
			if loading {
				continue
			}
			seq, err := bucketLastSeq(ctx, kv)
			if err != nil {
				continue // the server is away; the watch will tell, or the next check
			}
			cur := inv.cache.revision(bucket)
			switch {
			case cur >= seq:
				behind = false
			case behind && behindAt == cur:
				return errWatchStalled
			default:
				behind, behindAt = true, cur
			}
		}
	}
}

// Sync waits until the cache reflects every write the buckets had stored
// when Sync was called: read-your-writes for List, Node and Ports after a
// write by this or any other process.
func (inv *Inventory) Sync(ctx context.Context) error {
	for _, kv := range []jetstream.KeyValue{inv.nodes, inv.ports} {
		seq, err := bucketLastSeq(ctx, kv)
		if err != nil {
			return kvErr("sync "+kv.Bucket(), err)
		}
		if err := inv.cache.waitRev(ctx, kv.Bucket(), seq); err != nil {
			return err
		}
	}
	return nil
}

// Node returns a node from the cache.
func (inv *Inventory) Node(uuid string) (wire.Node, bool) {
	inv.cache.mu.RLock()
	defer inv.cache.mu.RUnlock()
	n, ok := inv.cache.nodes[uuid]
	return copyNode(n), ok
}

// copyNode copies the maps of a cached node (one level deep), so callers
// may change what they get without touching the cache.
func copyNode(n wire.Node) wire.Node {
	n.DriverInfo = maps.Clone(n.DriverInfo)
	n.InstanceInfo = maps.Clone(n.InstanceInfo)
	n.Properties = maps.Clone(n.Properties)
	n.Extra = maps.Clone(n.Extra)
	n.Interfaces = maps.Clone(n.Interfaces)
	n.NetworkData = maps.Clone(n.NetworkData)
	if n.Agent != nil {
		a := *n.Agent
		n.Agent = &a
	}
	if n.AutomatedClean != nil {
		b := *n.AutomatedClean
		n.AutomatedClean = &b
	}
	return n
}

// NodeQuery selects, sorts and pages nodes for List. Every zero value
// means "any" or the documented default.
type NodeQuery struct {
	ProvisionState wire.ProvisionState // only nodes in this state
	Driver         string              // only nodes with this driver
	// ConductorGroup, when set, keeps only the nodes of that group ("" is the default group).
	ConductorGroup *string
	Maintenance    *bool  // only nodes with maintenance on (true) or off (false)
	Associated     *bool  // only nodes with (true) or without (false) an instance_uuid
	InstanceUUID   string // only the node with this instance_uuid
	ResourceClass  string // only nodes of this resource class
	Fault          string // only nodes with this fault
	Owner          string // only nodes of this owner
	Lessee         string // only nodes of this lessee
	// Project keeps only the nodes whose owner or lessee it is.
	Project string
	// Conductor keeps only the nodes whose conductor (wire.Node.Conductor)
	// is this host.
	Conductor string
	// DescriptionContains keeps only the nodes whose description contains it.
	DescriptionContains string
	// Shards, when not empty, keeps only the nodes in one of these shards;
	// ironfleet has no shards, so it keeps none.
	Shards []string
	// Sharded keeps the nodes with (true) or without (false) a shard:
	// ironfleet's nodes are all without.
	Sharded *bool
	// Retired keeps the retired (true) or unretired (false) nodes: ironfleet
	// retires none.
	Retired *bool
	// ParentNode, when set, keeps only the children of that node UUID; ""
	// keeps only the nodes without a parent.
	ParentNode  *string
	ChassisUUID string // only nodes in this chassis
	// Marker is the UUID of the last node of the previous page; the page
	// starts after it in the sort order.
	Marker string
	// Limit is the page size; 0 or more than MaxLimit means MaxLimit.
	Limit int
	// SortKey is a key of nodeSortKeys: created_at (default; id, Ironic's
	// default, is the same order), updated_at, uuid, name, …
	SortKey string
	// SortDir is asc (default) or desc.
	SortDir string
}

var nodeSortKeys = map[string]func(a, b *wire.Node) int{
	"created_at":      func(a, b *wire.Node) int { return a.CreatedAt.Compare(b.CreatedAt) },
	"updated_at":      func(a, b *wire.Node) int { return a.UpdatedAt.Compare(b.UpdatedAt) },
	"uuid":            func(*wire.Node, *wire.Node) int { return 0 }, // the tie-break is the order
	"name":            func(a, b *wire.Node) int { return cmp.Compare(a.Name, b.Name) },
	"provision_state": func(a, b *wire.Node) int { return cmp.Compare(a.ProvisionState, b.ProvisionState) },
	"power_state":     func(a, b *wire.Node) int { return cmp.Compare(a.PowerState, b.PowerState) },
	"driver":          func(a, b *wire.Node) int { return cmp.Compare(a.Driver, b.Driver) },
	"conductor_group": func(a, b *wire.Node) int { return cmp.Compare(a.ConductorGroup, b.ConductorGroup) },
	// Ironic's default key: its rows' ids grow in creation order.
	"id":                     func(a, b *wire.Node) int { return a.CreatedAt.Compare(b.CreatedAt) },
	"provision_updated_at":   func(a, b *wire.Node) int { return a.ProvisionUpdatedAt.Compare(b.ProvisionUpdatedAt) },
	"target_provision_state": func(a, b *wire.Node) int { return cmp.Compare(a.TargetProvisionState, b.TargetProvisionState) },
	"target_power_state":     func(a, b *wire.Node) int { return cmp.Compare(a.TargetPowerState, b.TargetPowerState) },
	"instance_uuid":          func(a, b *wire.Node) int { return cmp.Compare(a.InstanceUUID, b.InstanceUUID) },
	"maintenance":            func(a, b *wire.Node) int { return cmp.Compare(boolInt(a.Maintenance), boolInt(b.Maintenance)) },
	"resource_class":         func(a, b *wire.Node) int { return cmp.Compare(a.ResourceClass, b.ResourceClass) },
	"fault":                  func(a, b *wire.Node) int { return cmp.Compare(a.Fault, b.Fault) },
	"owner":                  func(a, b *wire.Node) int { return cmp.Compare(a.Owner, b.Owner) },
	"lessee":                 func(a, b *wire.Node) int { return cmp.Compare(a.Lessee, b.Lessee) },
	"description":            func(a, b *wire.Node) int { return cmp.Compare(a.Description, b.Description) },
	"conductor":              func(a, b *wire.Node) int { return cmp.Compare(a.Conductor, b.Conductor) },
	"parent_node":            func(a, b *wire.Node) int { return cmp.Compare(a.ParentNode, b.ParentNode) },
}

// List returns one page of the cached nodes that match q, sorted by
// q.SortKey with the UUID breaking ties, so pages never overlap or skip.
// An unknown sort key or direction, or a marker that is no node, is
// ErrInvalid (invalid_input). It walks the cache's index from the marker
// (nodeIndex.page): the cost is the page, not the inventory.
func (inv *Inventory) List(q NodeQuery) ([]wire.Node, error) {
	if _, err := sortOrder(nodeSortKeys, q.SortKey, q.SortDir, func(n *wire.Node) string { return n.UUID }); err != nil {
		return nil, err
	}
	if q.Limit <= 0 || q.Limit > MaxLimit {
		q.Limit = MaxLimit
	}
	page, build, err := inv.page(&q, true)
	if build != nil {
		// The page would walk far more nodes than it returns: build the
		// index's tree for this query's filters and sort key, then walk it
		// (or, should it be gone already, walk as without it).
		inv.cache.mu.Lock()
		inv.cache.index.build(build)
		inv.cache.mu.Unlock()
		page, _, err = inv.page(&q, false)
	}
	return page, err
}

// page is List's page from the cache's index, copied, or, if ask, the tree
// the index asks to build first (nodeIndex.page).
func (inv *Inventory) page(q *NodeQuery, ask bool) ([]wire.Node, *treeRequest, error) {
	inv.cache.mu.RLock()
	defer inv.cache.mu.RUnlock()
	ix := inv.cache.index
	var marker *wire.Node
	if q.Marker != "" {
		m, ok := ix.entries[q.Marker]
		if !ok {
			return nil, nil, wire.Errorf(wire.CodeInvalidInput, "%w: marker %q is no node", ErrInvalid, q.Marker)
		}
		marker = m
	}
	page, build := ix.page(q, q.SortKey, strings.EqualFold(q.SortDir, "desc"), marker, ask)
	if build != nil {
		return nil, build, nil
	}
	out := make([]wire.Node, len(page))
	for i, n := range page {
		out[i] = copyNode(*n)
	}
	return out, nil, nil
}

// match reports whether n passes every filter of q.
func (q *NodeQuery) match(n *wire.Node) bool {
	switch {
	case q.none():
		return false
	case q.ProvisionState != "" && n.ProvisionState != q.ProvisionState,
		q.Driver != "" && n.Driver != q.Driver,
		q.ConductorGroup != nil && n.ConductorGroup != *q.ConductorGroup,
		q.Maintenance != nil && n.Maintenance != *q.Maintenance,
		q.Associated != nil && (n.InstanceUUID != "") != *q.Associated,
		q.InstanceUUID != "" && n.InstanceUUID != q.InstanceUUID,
		q.ResourceClass != "" && n.ResourceClass != q.ResourceClass,
		q.Fault != "" && n.Fault != q.Fault,
		q.Owner != "" && n.Owner != q.Owner,
		q.Lessee != "" && n.Lessee != q.Lessee,
		q.Project != "" && n.Owner != q.Project && n.Lessee != q.Project,
		q.Conductor != "" && n.Conductor != q.Conductor,
		q.DescriptionContains != "" && !strings.Contains(n.Description, q.DescriptionContains),
		q.ParentNode != nil && n.ParentNode != *q.ParentNode,
		q.ChassisUUID != "" && n.ChassisUUID != q.ChassisUUID:
		return false
	}
	return true
}

// none reports whether q's filters exclude every node whatever it holds:
// ironfleet's nodes have no shard and are never retired.
func (q *NodeQuery) none() bool {
	return len(q.Shards) > 0 || (q.Sharded != nil && *q.Sharded) || (q.Retired != nil && *q.Retired)
}

// PortQuery selects, sorts and pages ports for Ports.
type PortQuery struct {
	NodeUUID string // only this node's ports
	Address  string // only the port with this MAC (any form NormalizeMAC accepts)
	// PortgroupUUID keeps only the ports in this portgroup.
	PortgroupUUID string
	Marker        string // UUID of the last port of the previous page
	Limit         int    // 0 or more than MaxLimit means MaxLimit
	// SortKey is one of created_at (default; or id, the same order),
	// updated_at, uuid, address, name, node_uuid, pxe_enabled.
	SortKey string
	// SortDir is asc (default) or desc.
	SortDir string
}

var portSortKeys = map[string]func(a, b wire.Port) int{
	"created_at":  func(a, b wire.Port) int { return a.CreatedAt.Compare(b.CreatedAt) },
	"id":          func(a, b wire.Port) int { return a.CreatedAt.Compare(b.CreatedAt) },
	"updated_at":  func(a, b wire.Port) int { return a.UpdatedAt.Compare(b.UpdatedAt) },
	"uuid":        func(wire.Port, wire.Port) int { return 0 }, // the tie-break is the order
	"address":     func(a, b wire.Port) int { return cmp.Compare(a.Address, b.Address) },
	"name":        func(a, b wire.Port) int { return cmp.Compare(a.Name, b.Name) },
	"node_uuid":   func(a, b wire.Port) int { return cmp.Compare(a.NodeUUID, b.NodeUUID) },
	"pxe_enabled": func(a, b wire.Port) int { return cmp.Compare(boolInt(a.PXEEnable), boolInt(b.PXEEnable)) },
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// sortOrder is the comparison a list sorts by: key (default created_at)
// then the UUID, reversed for desc. An unknown key or direction is
// ErrInvalid (invalid_input).
func sortOrder[T any](keys map[string]func(a, b T) int, key, dir string, uuid func(T) string) (func(a, b T) int, error) {
	if key == "" {
		key = "created_at"
	}
	by, ok := keys[key]
	if !ok {
		return nil, wire.Errorf(wire.CodeInvalidInput, "%w: sort key %q: want one of %s", ErrInvalid, key, strings.Join(slices.Sorted(maps.Keys(keys)), ", "))
	}
	sign := 1
	switch strings.ToLower(dir) {
	case "", "asc":
	case "desc":
		sign = -1
	default:
		return nil, wire.Errorf(wire.CodeInvalidInput, "%w: sort direction %q: want asc or desc", ErrInvalid, dir)
	}
	return func(a, b T) int {
		if c := by(a, b); c != 0 {
			return sign * c
		}
		return sign * cmp.Compare(uuid(a), uuid(b))
	}, nil
}

// Ports returns one page of the cached ports matching q, sorted by
// q.SortKey with the UUID breaking ties.
func (inv *Inventory) Ports(q PortQuery) ([]wire.Port, error) {
	if q.Limit <= 0 || q.Limit > MaxLimit {
		q.Limit = MaxLimit
	}
	if q.Address != "" {
		m, err := NormalizeMAC(q.Address)
		if err != nil {
			return nil, err
		}
		q.Address = m
	}
	order, err := sortOrder(portSortKeys, q.SortKey, q.SortDir, func(p wire.Port) string { return p.UUID })
	if err != nil {
		return nil, err
	}
	inv.cache.mu.RLock()
	var marker *wire.Port
	if q.Marker != "" {
		m, ok := inv.cache.ports[q.Marker]
		if !ok {
			inv.cache.mu.RUnlock()
			return nil, wire.Errorf(wire.CodeInvalidInput, "%w: marker %q is no port", ErrInvalid, q.Marker)
		}
		marker = &m
	}
	var out []wire.Port
	for _, p := range inv.cache.ports {
		if (q.NodeUUID == "" || p.NodeUUID == q.NodeUUID) && (q.Address == "" || p.Address == q.Address) &&
			(q.PortgroupUUID == "" || p.PortgroupUUID == q.PortgroupUUID) && (marker == nil || order(*marker, p) < 0) {
			p.Extra = maps.Clone(p.Extra)
			out = append(out, p)
		}
	}
	inv.cache.mu.RUnlock()
	slices.SortFunc(out, order)
	if len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out, nil
}
