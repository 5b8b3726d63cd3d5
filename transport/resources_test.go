package transport_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/ironfleet/ironfleet/internal/natstest"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// TestHistoryIsBounded: a node's history keeps the newest
// HistoryMaxEntries events, oldest first, and cuts an event's text at
// HistoryMaxEventBytes.
func TestHistoryIsBounded(t *testing.T) {
	srv := natstest.Start(t)
	inv := newInventory(t, srv.Conn(t), transport.InventoryConfig{})
	records := transport.NewRecords(inv)
	n := createNode(t, inv, wire.Node{Name: "h"})
	ctx := t.Context()
	total := transport.HistoryMaxEntries + 5
	for i := range total {
		if err := records.AddHistory(ctx, n.UUID, wire.HistoryEvent{Severity: wire.SeverityError, Event: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	long := strings.Repeat("é", transport.HistoryMaxEventBytes)
	if err := records.AddHistory(ctx, n.UUID, wire.HistoryEvent{Event: long}); err != nil {
		t.Fatal(err)
	}
	h, err := records.History.Get(ctx, n.UUID)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Events) != transport.HistoryMaxEntries {
		t.Fatalf("history holds %d events, want %d", len(h.Events), transport.HistoryMaxEntries)
	}
	if first := h.Events[0].Event; first != fmt.Sprint(total+1-transport.HistoryMaxEntries) {
		t.Errorf("oldest event kept is %q, want %d", first, total+1-transport.HistoryMaxEntries)
	}
	last := h.Events[len(h.Events)-1]
	if len(last.Event) > transport.HistoryMaxEventBytes || !strings.HasSuffix(last.Event, "...") || last.UUID == "" || last.CreatedAt.IsZero() {
		t.Errorf("long event stored as %d bytes (uuid %q, created %v), want at most %d ending in ...",
			len(last.Event), last.UUID, last.CreatedAt, transport.HistoryMaxEventBytes)
	}
}

// TestForgetNode: a deleted node's history, inspection data and
// allocations go with it; other nodes' stay.
func TestForgetNode(t *testing.T) {
	srv := natstest.Start(t)
	inv := newInventory(t, srv.Conn(t), transport.InventoryConfig{})
	records := transport.NewRecords(inv)
	ctx := t.Context()
	gone, kept := createNode(t, inv, wire.Node{Name: "gone"}), createNode(t, inv, wire.Node{Name: "kept"})
	for _, n := range []wire.Node{gone, kept} {
		if err := records.AddHistory(ctx, n.UUID, wire.HistoryEvent{Event: "x"}); err != nil {
			t.Fatal(err)
		}
		if err := records.SetInspection(ctx, n.UUID, wire.Inspection{Inventory: map[string]any{"cpu": map[string]any{}}}); err != nil {
			t.Fatal(err)
		}
		a := wire.Allocation{UUID: wire.NewUUID(), Name: "for-" + n.Name, NodeUUID: n.UUID, State: wire.AllocationActive}
		if err := records.Allocations.Claim(ctx, "name", a.Name, a.UUID); err != nil {
			t.Fatal(err)
		}
		if err := records.Allocations.Create(ctx, a.UUID, a); err != nil {
			t.Fatal(err)
		}
	}
	if err := inv.DeleteNode(ctx, gone.UUID, 0); err != nil {
		t.Fatal(err)
	}
	if err := records.ForgetNode(ctx, gone.UUID); err != nil {
		t.Fatal(err)
	}
	if _, err := records.History.Get(ctx, gone.UUID); wire.CodeOf(err) != wire.CodeNotFound {
		t.Errorf("history of a deleted node: %v, want not_found", err)
	}
	if _, err := records.Inspections.Get(ctx, gone.UUID); wire.CodeOf(err) != wire.CodeNotFound {
		t.Errorf("inventory of a deleted node: %v, want not_found", err)
	}
	if _, err := records.Allocations.Owner(ctx, "name", "for-gone"); wire.CodeOf(err) != wire.CodeNotFound {
		t.Errorf("the deleted node's allocation name is still taken: %v", err)
	}
	left, err := records.Allocations.List(ctx, nil)
	if err != nil || len(left) != 1 || left[0].NodeUUID != kept.UUID {
		t.Errorf("allocations left = %+v, %v; want only the kept node's", left, err)
	}
	if _, err := records.History.Get(ctx, kept.UUID); err != nil {
		t.Errorf("the kept node's history: %v", err)
	}
}
