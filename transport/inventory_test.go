package transport_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ironfleet/ironfleet/internal/natstest"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

func newInventory(t *testing.T, nc *nats.Conn, cfg transport.InventoryConfig) *transport.Inventory {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.StallCheckEvery == 0 {
		cfg.StallCheckEvery = 50 * time.Millisecond
	}
	if cfg.WatchRestartDelay == 0 {
		cfg.WatchRestartDelay = 10 * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	inv, err := transport.NewInventory(ctx, js, cfg)
	if err != nil {
		t.Fatalf("NewInventory: %v", err)
	}
	t.Cleanup(inv.Close)
	return inv
}

func createNode(t *testing.T, inv *transport.Inventory, n wire.Node) wire.Node {
	t.Helper()
	got, err := inv.CreateNode(t.Context(), n)
	if err != nil {
		t.Fatalf("CreateNode %+v: %v", n, err)
	}
	return got
}

func syncCache(t *testing.T, inv *transport.Inventory) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := inv.Sync(ctx); err != nil {
		t.Fatalf("Sync: %v", err)
	}
}

func TestCreateNodeAndNames(t *testing.T) {
	srv := natstest.Start(t)
	inv := newInventory(t, srv.Conn(t), transport.InventoryConfig{})
	ctx := t.Context()
	n := createNode(t, inv, wire.Node{Name: "rack1-u07", Driver: "ipmi"})
	if n.UUID == "" || n.ProvisionState != wire.StateEnroll || n.CreatedAt.IsZero() {
		t.Errorf("created node = %+v, want a UUID, state enroll and created_at", n)
	}
	got, err := inv.Get(ctx, n.UUID)
	if err != nil || got.Name != "rack1-u07" {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	if byName, err := inv.NodeByName(ctx, "rack1-u07"); err != nil || byName.UUID != n.UUID {
		t.Errorf("NodeByName = %+v, %v; want %s", byName, err, n.UUID)
	}
	tests := []struct {
		name string
		n    wire.Node
		is   error
		code wire.Code
	}{
		{"duplicate name", wire.Node{Name: "rack1-u07"}, transport.ErrExists, wire.CodeConflict},
		{"duplicate uuid", wire.Node{UUID: n.UUID}, transport.ErrExists, wire.CodeConflict},
		{"uuid not a key", wire.Node{UUID: "a b"}, transport.ErrInvalid, wire.CodeInvalidInput},
		{"uuid with a dot", wire.Node{UUID: "a.b"}, transport.ErrInvalid, wire.CodeInvalidInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := inv.CreateNode(ctx, tt.n)
			if !errors.Is(err, tt.is) || wire.CodeOf(err) != tt.code {
				t.Errorf("err = %v (code %s), want %v with code %s", err, wire.CodeOf(err), tt.is, tt.code)
			}
		})
	}
	if _, err := inv.Get(ctx, "nope"); !errors.Is(err, transport.ErrNotFound) || wire.CodeOf(err) != wire.CodeNotFound {
		t.Errorf("Get missing: %v, want ErrNotFound", err)
	}
	// A rename frees the old name and takes the new one.
	if _, err := inv.UpdateNode(ctx, n.UUID, 0, func(n *wire.Node) error { n.Name = "rack1-u08"; return nil }); err != nil {
		t.Fatalf("rename: %v", err)
	}
	if _, err := inv.NodeByName(ctx, "rack1-u07"); !errors.Is(err, transport.ErrNotFound) {
		t.Errorf("old name still resolves: %v", err)
	}
	createNode(t, inv, wire.Node{Name: "rack1-u07"})
	other := createNode(t, inv, wire.Node{Name: "other"})
	if _, err := inv.UpdateNode(ctx, other.UUID, 0, func(n *wire.Node) error { n.Name = "rack1-u08"; return nil }); !errors.Is(err, transport.ErrExists) {
		t.Errorf("rename onto a taken name: %v, want ErrExists", err)
	}
}

func TestFencing(t *testing.T) {
	srv := natstest.Start(t)
	inv := newInventory(t, srv.Conn(t), transport.InventoryConfig{})
	ctx := t.Context()
	n := createNode(t, inv, wire.Node{Driver: "ipmi"})
	setState := func(s wire.ProvisionState) func(*wire.Node) error {
		return func(n *wire.Node) error { n.ProvisionState = s; return nil }
	}
	setMaint := func(n *wire.Node) error { n.Maintenance = !n.Maintenance; return nil }
	// Steps run in order against the same node.
	steps := []struct {
		name      string
		fence     uint64
		fn        func(*wire.Node) error
		is        error
		wantFence uint64
	}{
		{"first lock holder writes", 5, setState(wire.StateVerifying), nil, 5},
		{"same token again", 5, setState(wire.StateManageable), nil, 5},
		{"lock-free write keeps the fence", 0, setMaint, nil, 5},
		{"lock-free write of a lock-owned field", 0, setState(wire.StateAvailable), transport.ErrFenceRequired, 5},
		{"lock-free write of the fence", 0, func(n *wire.Node) error { n.Fence = 1; return nil }, transport.ErrFenceRequired, 5},
		{"newer holder raises the fence", 9, setState(wire.StateCleaning), nil, 9},
		{"stale holder is rejected", 5, setState(wire.StateAvailable), transport.ErrStaleFence, 9},
		{"fn error writes nothing", 9, func(*wire.Node) error { return errors.New("nope") }, nil, 9},
		{"uuid cannot change", 9, func(n *wire.Node) error { n.UUID = "x"; return nil }, transport.ErrInvalid, 9},
	}
	for _, st := range steps {
		_, err := inv.UpdateNode(ctx, n.UUID, st.fence, st.fn)
		switch {
		case st.is != nil && !errors.Is(err, st.is):
			t.Errorf("%s: err = %v, want %v", st.name, err, st.is)
		case st.is == nil && st.name == "fn error writes nothing" && err == nil:
			t.Errorf("%s: err = nil, want fn's error", st.name)
		case st.is == nil && st.name != "fn error writes nothing" && err != nil:
			t.Errorf("%s: err = %v, want nil", st.name, err)
		}
		if errors.Is(err, transport.ErrStaleFence) && wire.CodeOf(err) != wire.CodeConflict {
			t.Errorf("%s: code %s, want conflict", st.name, wire.CodeOf(err))
		}
		got, _ := inv.Get(ctx, n.UUID)
		if got.Fence != st.wantFence {
			t.Errorf("%s: stored fence = %d, want %d", st.name, got.Fence, st.wantFence)
		}
	}
	got, _ := inv.Get(ctx, n.UUID)
	if got.ProvisionState != wire.StateCleaning || !got.Maintenance {
		t.Errorf("final node: state %q maintenance %v, want cleaning and true", got.ProvisionState, got.Maintenance)
	}
	if err := inv.DeleteNode(ctx, n.UUID, 3); !errors.Is(err, transport.ErrStaleFence) {
		t.Errorf("DeleteNode with a stale fence: %v, want ErrStaleFence", err)
	}
}

// TestConcurrentUpdatesLoseNothing: writers racing on one node each
// increment a counter; compare-and-set with re-read must keep every increment.
func TestConcurrentUpdatesLoseNothing(t *testing.T) {
	srv := natstest.Start(t)
	inv := newInventory(t, srv.Conn(t), transport.InventoryConfig{CASRetries: 1000})
	n := createNode(t, inv, wire.Node{Extra: map[string]any{"count": 0.0}})
	const writers, each = 4, 10
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for range each {
				_, err := inv.UpdateNode(t.Context(), n.UUID, uint64(w%2), func(n *wire.Node) error { //nolint:gosec // tiny
					n.Extra["count"] = n.Extra["count"].(float64) + 1
					return nil
				})
				if err != nil {
					t.Errorf("UpdateNode: %v", err)
				}
			}
		})
	}
	wg.Wait()
	got, _ := inv.Get(t.Context(), n.UUID)
	if c := got.Extra["count"]; c != float64(writers*each) {
		t.Errorf("count = %v, want %d", c, writers*each)
	}
}

func TestPortsAndMACIndex(t *testing.T) {
	srv := natstest.Start(t)
	inv := newInventory(t, srv.Conn(t), transport.InventoryConfig{})
	ctx := t.Context()
	n := createNode(t, inv, wire.Node{Name: "n1"})
	p, err := inv.CreatePort(ctx, wire.Port{NodeUUID: n.UUID, Address: "52-54-00-AB-CD-EF", PXEEnable: true})
	if err != nil {
		t.Fatalf("CreatePort: %v", err)
	}
	if p.Address != "52:54:00:ab:cd:ef" {
		t.Errorf("stored MAC %q, want 52:54:00:ab:cd:ef", p.Address)
	}
	if got, err := inv.NodeByMAC(ctx, "52:54:00:AB:CD:EF"); err != nil || got.UUID != n.UUID {
		t.Errorf("NodeByMAC = %v, %v; want %s", got.UUID, err, n.UUID)
	}
	tests := []struct {
		name string
		p    wire.Port
		is   error
	}{
		{"duplicate MAC", wire.Port{NodeUUID: n.UUID, Address: "52:54:00:ab:cd:ef"}, transport.ErrExists},
		{"bad MAC", wire.Port{NodeUUID: n.UUID, Address: "52:54:00"}, transport.ErrInvalid},
		{"EUI-64 is not a NIC MAC", wire.Port{NodeUUID: n.UUID, Address: "02:00:5e:10:00:00:00:01"}, transport.ErrInvalid},
		{"no such node", wire.Port{NodeUUID: "ghost", Address: "52:54:00:00:00:01"}, transport.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := inv.CreatePort(ctx, tt.p); !errors.Is(err, tt.is) {
				t.Errorf("err = %v, want %v", err, tt.is)
			}
		})
	}
	// Moving the port to a new MAC frees the old one.
	if _, err := inv.UpdatePort(ctx, p.UUID, func(p *wire.Port) error { p.Address = "52:54:00:00:00:02"; return nil }); err != nil {
		t.Fatalf("UpdatePort: %v", err)
	}
	if _, err := inv.NodeByMAC(ctx, "52:54:00:ab:cd:ef"); !errors.Is(err, transport.ErrNotFound) {
		t.Errorf("old MAC still resolves: %v", err)
	}
	if _, err := inv.CreatePort(ctx, wire.Port{NodeUUID: n.UUID, Address: "52:54:00:ab:cd:ef"}); err != nil {
		t.Errorf("reusing a freed MAC: %v", err)
	}
	syncCache(t, inv)
	if ps, _ := inv.Ports(transport.PortQuery{NodeUUID: n.UUID}); len(ps) != 2 {
		t.Errorf("cached ports of the node: %d, want 2", len(ps))
	}
	// Deleting the node takes its ports and their MACs along.
	if err := inv.DeleteNode(ctx, n.UUID, 0); err != nil {
		t.Fatalf("DeleteNode: %v", err)
	}
	if _, err := inv.NodeByMAC(ctx, "52:54:00:00:00:02"); !errors.Is(err, transport.ErrNotFound) {
		t.Errorf("MAC of a deleted node resolves: %v", err)
	}
	if _, err := inv.NodeByName(ctx, "n1"); !errors.Is(err, transport.ErrNotFound) {
		t.Errorf("name of a deleted node resolves: %v", err)
	}
	syncCache(t, inv)
	if ps, _ := inv.Ports(transport.PortQuery{}); len(ps) != 0 {
		t.Errorf("%d ports left after deleting their node", len(ps))
	}
	if _, ok := inv.Node(n.UUID); ok {
		t.Errorf("deleted node still cached")
	}
}

func ptr[T any](v T) *T { return &v }

func TestListFiltersSortsAndPages(t *testing.T) {
	srv := natstest.Start(t)
	inv := newInventory(t, srv.Conn(t), transport.InventoryConfig{})
	ctx := t.Context()
	var uuids []string
	for i := range 7 {
		n := wire.Node{
			UUID:           fmt.Sprintf("node-%d", i),
			Name:           fmt.Sprintf("n%d", 6-i),
			Driver:         []string{"ipmi", "fake"}[i%2],
			ConductorGroup: []string{"", "rack2"}[i/4],
			Maintenance:    i == 3,
		}
		if i == 5 {
			n.InstanceUUID = "inst-5"
		}
		uuids = append(uuids, createNode(t, inv, n).UUID)
	}
	if _, err := inv.UpdateNode(ctx, uuids[2], 1, func(n *wire.Node) error { n.ProvisionState = wire.StateAvailable; return nil }); err != nil {
		t.Fatal(err)
	}
	syncCache(t, inv)
	ids := func(ns []wire.Node) string {
		var s []string
		for _, n := range ns {
			s = append(s, n.UUID[5:])
		}
		return fmt.Sprint(s)
	}
	tests := []struct {
		name string
		q    transport.NodeQuery
		want string
		is   error
	}{
		{"all by creation", transport.NodeQuery{}, "[0 1 2 3 4 5 6]", nil},
		{"by name desc", transport.NodeQuery{SortKey: "name", SortDir: "desc"}, "[0 1 2 3 4 5 6]", nil},
		{"by name asc", transport.NodeQuery{SortKey: "name"}, "[6 5 4 3 2 1 0]", nil},
		{"driver", transport.NodeQuery{Driver: "fake"}, "[1 3 5]", nil},
		{"state", transport.NodeQuery{ProvisionState: wire.StateAvailable}, "[2]", nil},
		{"default group", transport.NodeQuery{ConductorGroup: ptr("")}, "[0 1 2 3]", nil},
		{"rack2", transport.NodeQuery{ConductorGroup: ptr("rack2")}, "[4 5 6]", nil},
		{"maintenance", transport.NodeQuery{Maintenance: ptr(true)}, "[3]", nil},
		{"associated", transport.NodeQuery{Associated: ptr(true)}, "[5]", nil},
		{"unassociated ipmi", transport.NodeQuery{Associated: ptr(false), Driver: "ipmi"}, "[0 2 4 6]", nil},
		{"first page", transport.NodeQuery{Limit: 3}, "[0 1 2]", nil},
		{"second page", transport.NodeQuery{Limit: 3, Marker: "node-2"}, "[3 4 5]", nil},
		{"last page", transport.NodeQuery{Limit: 3, Marker: "node-5"}, "[6]", nil},
		{"page by name", transport.NodeQuery{Limit: 2, SortKey: "name", Marker: "node-5"}, "[4 3]", nil},
		{"marker outside the filter", transport.NodeQuery{Driver: "fake", Marker: "node-2"}, "[3 5]", nil},
		{"bad marker", transport.NodeQuery{Marker: "ghost"}, "", transport.ErrInvalid},
		{"bad sort key", transport.NodeQuery{SortKey: "driver_info"}, "", transport.ErrInvalid},
		{"bad sort dir", transport.NodeQuery{SortDir: "up"}, "", transport.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := inv.List(tt.q)
			if tt.is != nil {
				if !errors.Is(err, tt.is) || wire.CodeOf(err) != wire.CodeInvalidInput {
					t.Errorf("err = %v, want %v (invalid_input)", err, tt.is)
				}
				return
			}
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			if ids(got) != tt.want {
				t.Errorf("got %s, want %s", ids(got), tt.want)
			}
		})
	}
	// Callers may change what List returns without touching the cache.
	got, _ := inv.List(transport.NodeQuery{Limit: 1})
	got[0].Extra = map[string]any{"x": 1}
	if n, _ := inv.Node(got[0].UUID); n.Extra != nil {
		t.Errorf("List result shares maps with the cache")
	}
}

func TestCacheReadYourWritesAcrossInstances(t *testing.T) {
	srv := natstest.Start(t)
	writer := newInventory(t, srv.Conn(t), transport.InventoryConfig{})
	reader := newInventory(t, srv.Conn(t), transport.InventoryConfig{})
	for i := range 20 {
		n := createNode(t, writer, wire.Node{Name: fmt.Sprintf("rw-%d", i)})
		syncCache(t, reader)
		if _, ok := reader.Node(n.UUID); !ok {
			t.Fatalf("reader cache lacks node %d right after Sync", i)
		}
	}
}

func TestCacheConvergesAfterServerRestart(t *testing.T) {
	srv := natstest.Start(t)
	inv := newInventory(t, srv.Conn(t), transport.InventoryConfig{})
	before := createNode(t, inv, wire.Node{Name: "before"})
	syncCache(t, inv)
	srv.Restart(t)
	// A second client writes right after the restart, racing the watch's
	// reconnect; the cache must still end up with every change.
	other := newInventory(t, srv.Conn(t), transport.InventoryConfig{})
	after := createNode(t, other, wire.Node{Name: "after"})
	if _, err := other.UpdateNode(t.Context(), before.UUID, 0, func(n *wire.Node) error { n.Description = "changed"; return nil }); err != nil {
		t.Fatal(err)
	}
	syncCache(t, inv)
	if _, ok := inv.Node(after.UUID); !ok {
		t.Errorf("cache lacks the node written after the restart")
	}
	if n, _ := inv.Node(before.UUID); n.Description != "changed" {
		t.Errorf("cache has the old record of %s", before.UUID)
	}
}

// TestCacheConvergesAfterWatchLoss deletes the watch's consumers on the
// server, so the watch stops hearing about changes, and writes meanwhile.
func TestCacheConvergesAfterWatchLoss(t *testing.T) {
	srv := natstest.Start(t)
	nc := srv.Conn(t)
	inv := newInventory(t, nc, transport.InventoryConfig{})
	other := newInventory(t, srv.Conn(t), transport.InventoryConfig{})
	js, _ := jetstream.New(nc)
	s, err := js.Stream(t.Context(), "KV_"+transport.NodesBucket)
	if err != nil {
		t.Fatal(err)
	}
	names := s.ConsumerNames(t.Context())
	for name := range names.Name() {
		if err := s.DeleteConsumer(t.Context(), name); err != nil {
			t.Fatalf("delete consumer %s: %v", name, err)
		}
	}
	var created []string
	for i := range 10 {
		created = append(created, createNode(t, other, wire.Node{Name: fmt.Sprintf("lost-%d", i)}).UUID)
	}
	syncCache(t, inv)
	for _, id := range created {
		if _, ok := inv.Node(id); !ok {
			t.Errorf("cache lacks %s after the watch was lost", id)
		}
	}
}

func TestRegistry(t *testing.T) {
	srv := natstest.Start(t)
	js, _ := jetstream.New(srv.Conn(t))
	ctx := t.Context()
	reg, err := transport.NewRegistry(ctx, js, transport.RegistryConfig{KeepAlive: 10 * time.Millisecond, OfflineAfter: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- reg.Register(rctx, transport.ConductorInfo{Host: "cond-1.example", Groups: []string{"", "rack2"}, Drivers: []string{"ipmi"}})
	}()
	var first time.Time
	waitFor(t, "the conductor to register", func() bool {
		cs, err := reg.Conductors(ctx)
		if err == nil && len(cs) == 1 && cs[0].Alive {
			first = cs[0].LastSeen
			return true
		}
		return false
	})
	waitFor(t, "a keepalive", func() bool {
		cs, _ := reg.Conductors(ctx)
		return len(cs) == 1 && cs[0].LastSeen.After(first)
	})
	// A viewer with a tiny OfflineAfter sees the same record as offline.
	strict, err := transport.NewRegistry(ctx, js, transport.RegistryConfig{KeepAlive: time.Millisecond, OfflineAfter: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the record to look offline to a strict viewer", func() bool {
		cs, _ := strict.Conductors(ctx)
		return len(cs) == 1 && !cs[0].Alive
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Register: %v", err)
	}
	if cs, _ := reg.Conductors(ctx); len(cs) != 0 {
		t.Errorf("conductor still listed after a clean leave: %+v", cs)
	}
	if err := reg.Register(ctx, transport.ConductorInfo{Host: "bad host"}); !errors.Is(err, transport.ErrInvalid) {
		t.Errorf("bad host: %v, want ErrInvalid", err)
	}
	if _, err := transport.NewRegistry(ctx, js, transport.RegistryConfig{KeepAlive: time.Minute, OfflineAfter: time.Second}); err == nil {
		t.Errorf("OfflineAfter below KeepAlive accepted")
	}
}

func TestConnectUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err := transport.Connect(ctx, transport.ConnectConfig{
		URLs: []string{"nats://127.0.0.1:1"}, Attempts: 3, Backoff: time.Millisecond,
	})
	if !errors.Is(err, transport.ErrUnreachable) {
		t.Errorf("err = %v, want ErrUnreachable", err)
	}
	if _, err := transport.Connect(ctx, transport.ConnectConfig{}); err == nil {
		t.Errorf("no URLs accepted")
	}
	srv := natstest.Start(t)
	nc, err := transport.Connect(ctx, transport.ConnectConfig{URLs: []string{srv.URL()}})
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	nc.Close()
}

// TestRecordSizeLimit: a node or port record larger than MaxRecordBytes is
// refused before anything is written, with ErrTooLarge (invalid_input)
// naming its size and the limit, and claims nothing (name, MAC). The limit
// defaults to what the server carries and never exceeds it.
func TestRecordSizeLimit(t *testing.T) {
	srv := natstest.Start(t)
	nc := srv.Conn(t)
	if got, want := newInventory(t, nc, transport.InventoryConfig{}).MaxRecordBytes(), int(nc.MaxPayload())-transport.RecordHeadroom; got != want {
		t.Errorf("default MaxRecordBytes %d, want the server's max payload less the headroom, %d", got, want)
	}
	if got, want := newInventory(t, nc, transport.InventoryConfig{MaxRecordBytes: 1 << 30}).MaxRecordBytes(), int(nc.MaxPayload())-transport.RecordHeadroom; got != want {
		t.Errorf("MaxRecordBytes above the server's: %d, want %d", got, want)
	}
	inv := newInventory(t, nc, transport.InventoryConfig{MaxRecordBytes: 4096})
	if got := inv.MaxRecordBytes(); got != 4096 {
		t.Fatalf("MaxRecordBytes %d, want 4096", got)
	}
	ctx := t.Context()
	big := map[string]any{"big": strings.Repeat("x", 8192)}
	tooLarge := func(t *testing.T, err error) {
		t.Helper()
		if !errors.Is(err, transport.ErrTooLarge) || wire.CodeOf(err) != wire.CodeInvalidInput || !strings.Contains(err.Error(), "4096") {
			t.Fatalf("err = %v (code %s), want ErrTooLarge, invalid_input, naming the limit", err, wire.CodeOf(err))
		}
	}
	_, err := inv.CreateNode(ctx, wire.Node{Name: "big", Extra: big})
	tooLarge(t, err)
	n := createNode(t, inv, wire.Node{Name: "big"}) // the name was not kept
	_, err = inv.UpdateNode(ctx, n.UUID, 0, func(n *wire.Node) error { n.Extra = big; return nil })
	tooLarge(t, err)
	if got, _ := inv.Get(ctx, n.UUID); len(got.Extra) != 0 {
		t.Errorf("a refused update was written: %v", got.Extra)
	}
	_, err = inv.CreatePort(ctx, wire.Port{NodeUUID: n.UUID, Address: "52:54:00:00:00:01", Extra: big})
	tooLarge(t, err)
	p, err := inv.CreatePort(ctx, wire.Port{NodeUUID: n.UUID, Address: "52:54:00:00:00:01"}) // the MAC was not kept
	if err != nil {
		t.Fatal(err)
	}
	_, err = inv.UpdatePort(ctx, p.UUID, func(p *wire.Port) error { p.Extra = big; return nil })
	tooLarge(t, err)
}

func TestNodeQueryFilters(t *testing.T) {
	srv := natstest.Start(t)
	inv := newInventory(t, srv.Conn(t), transport.InventoryConfig{})
	for _, n := range []wire.Node{
		{UUID: "node-0", Owner: "p1", ResourceClass: "gpu", Description: "rack 4"},
		{UUID: "node-1", Owner: "p2", Lessee: "p1", InstanceUUID: "inst-1", Conductor: "c1", Fault: "power failure"},
		{UUID: "node-2", Owner: "p1", ParentNode: "node-0"},
	} {
		createNode(t, inv, n)
	}
	syncCache(t, inv)
	tests := []struct {
		name string
		q    transport.NodeQuery
		want []string
	}{
		{"any, children included", transport.NodeQuery{}, []string{"node-0", "node-1", "node-2"}},
		{"top level only", transport.NodeQuery{ParentNode: ptr("")}, []string{"node-0", "node-1"}},
		{"children of node-0", transport.NodeQuery{ParentNode: ptr("node-0")}, []string{"node-2"}},
		{"instance", transport.NodeQuery{InstanceUUID: "inst-1"}, []string{"node-1"}},
		{"resource class", transport.NodeQuery{ResourceClass: "gpu"}, []string{"node-0"}},
		{"owner", transport.NodeQuery{Owner: "p1"}, []string{"node-0", "node-2"}},
		{"lessee", transport.NodeQuery{Lessee: "p1"}, []string{"node-1"}},
		{"project: owner or lessee", transport.NodeQuery{Project: "p1"}, []string{"node-0", "node-1", "node-2"}},
		{"conductor", transport.NodeQuery{Conductor: "c1"}, []string{"node-1"}},
		{"fault", transport.NodeQuery{Fault: "power failure"}, []string{"node-1"}},
		{"description", transport.NodeQuery{DescriptionContains: "ack"}, []string{"node-0"}},
		{"retired", transport.NodeQuery{Retired: ptr(true)}, nil},
		{"unretired", transport.NodeQuery{Retired: ptr(false)}, []string{"node-0", "node-1", "node-2"}},
		{"sharded", transport.NodeQuery{Sharded: ptr(true)}, nil},
		{"in a shard", transport.NodeQuery{Shards: []string{"s1"}}, nil},
		{"by id, Ironic's default key", transport.NodeQuery{SortKey: "id", SortDir: "desc"}, []string{"node-2", "node-1", "node-0"}},
		{"by owner", transport.NodeQuery{SortKey: "owner", SortDir: "desc"}, []string{"node-1", "node-2", "node-0"}}, // ties reversed too
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := inv.List(tt.q)
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			var ids []string
			for _, n := range got {
				ids = append(ids, n.UUID)
			}
			if fmt.Sprint(ids) != fmt.Sprint(tt.want) {
				t.Errorf("got %v, want %v", ids, tt.want)
			}
		})
	}
}

func TestPortNamesAndSort(t *testing.T) {
	srv := natstest.Start(t)
	inv := newInventory(t, srv.Conn(t), transport.InventoryConfig{})
	ctx := t.Context()
	n := createNode(t, inv, wire.Node{})
	a, err := inv.CreatePort(ctx, wire.Port{NodeUUID: n.UUID, Address: "52:54:00:00:00:0b", Name: "eth0"})
	if err != nil {
		t.Fatalf("CreatePort: %v", err)
	}
	b, err := inv.CreatePort(ctx, wire.Port{NodeUUID: n.UUID, Address: "52:54:00:00:00:0a"})
	if err != nil {
		t.Fatalf("CreatePort: %v", err)
	}
	if _, err := inv.CreatePort(ctx, wire.Port{NodeUUID: n.UUID, Address: "52:54:00:00:00:0c", Name: "eth0"}); !errors.Is(err, transport.ErrExists) || errors.Is(err, transport.ErrMACTaken) {
		t.Errorf("a taken name: %v, want ErrExists and not ErrMACTaken", err)
	}
	if _, err := inv.CreatePort(ctx, wire.Port{NodeUUID: n.UUID, Address: "52:54:00:00:00:0a", Name: "eth9"}); !errors.Is(err, transport.ErrMACTaken) {
		t.Errorf("a taken MAC: %v, want ErrMACTaken", err)
	}
	// The failed create with eth9 left no claim behind.
	if _, err := inv.UpdatePort(ctx, b.UUID, func(p *wire.Port) error { p.Name = "eth9"; return nil }); err != nil {
		t.Errorf("naming a port eth9: %v", err)
	}
	if got, err := inv.PortByName(ctx, "eth0"); err != nil || got.UUID != a.UUID {
		t.Errorf("PortByName(eth0) = %v, %v", got.UUID, err)
	}
	if got, err := inv.PortByMAC(ctx, "52-54-00-00-00-0A"); err != nil || got.UUID != b.UUID {
		t.Errorf("PortByMAC = %v, %v", got.UUID, err)
	}
	// A rename frees the old name; a delete frees the new one.
	if _, err := inv.UpdatePort(ctx, a.UUID, func(p *wire.Port) error { p.Name = "eth1"; return nil }); err != nil {
		t.Fatalf("rename: %v", err)
	}
	if _, err := inv.PortByName(ctx, "eth0"); !errors.Is(err, transport.ErrNotFound) {
		t.Errorf("old name still resolves: %v", err)
	}
	if err := inv.DeletePort(ctx, a.UUID); err != nil {
		t.Fatal(err)
	}
	if _, err := inv.CreatePort(ctx, wire.Port{NodeUUID: n.UUID, Address: "52:54:00:00:00:0d", Name: "eth1"}); err != nil {
		t.Errorf("reusing a deleted port's name: %v", err)
	}
	syncCache(t, inv)
	got, err := inv.Ports(transport.PortQuery{SortKey: "address", SortDir: "desc"})
	if err != nil {
		t.Fatal(err)
	}
	var macs []string
	for _, p := range got {
		macs = append(macs, p.Address)
	}
	if want := "[52:54:00:00:00:0d 52:54:00:00:00:0a]"; fmt.Sprint(macs) != want {
		t.Errorf("sorted %v, want %s", macs, want)
	}
	if _, err := inv.Ports(transport.PortQuery{SortKey: "extra"}); !errors.Is(err, transport.ErrInvalid) {
		t.Errorf("sort by extra: %v, want ErrInvalid", err)
	}
}
