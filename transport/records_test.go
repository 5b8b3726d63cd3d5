package transport_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/ironfleet/ironfleet/internal/natstest"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

type widget struct {
	UUID  string `json:"uuid"`
	Name  string `json:"name"`
	Count int    `json:"count"`
}

func TestCollectionLifecycle(t *testing.T) {
	srv := natstest.Start(t)
	inv := newInventory(t, srv.Conn(t), transport.InventoryConfig{CASRetries: 1000})
	widgets := transport.NewCollection[widget](inv, "widget")
	others := transport.NewCollection[widget](inv, "other")
	ctx := t.Context()

	if none, err := widgets.List(ctx, nil); err != nil || len(none) != 0 {
		t.Fatalf("List of an empty collection = %v, %v", none, err)
	}
	ids := []string{wire.NewUUID(), wire.NewUUID(), wire.NewUUID()}
	for i, id := range ids {
		if err := widgets.Create(ctx, id, widget{UUID: id, Count: i}); err != nil {
			t.Fatalf("Create: %v", err)
		}
	}
	if err := others.Create(ctx, ids[0], widget{UUID: ids[0]}); err != nil {
		t.Fatalf("another kind may use the same id: %v", err)
	}
	if err := widgets.Create(ctx, ids[0], widget{}); !errors.Is(err, transport.ErrExists) || wire.CodeOf(err) != wire.CodeConflict {
		t.Fatalf("Create twice: %v, want ErrExists (conflict)", err)
	}
	if err := widgets.Create(ctx, "a.b", widget{}); wire.CodeOf(err) != wire.CodeInvalidInput {
		t.Fatalf("Create with a dotted id: %v, want invalid_input", err)
	}

	all, err := widgets.List(ctx, nil)
	if err != nil || len(all) != 3 {
		t.Fatalf("List = %v, %v; want the 3 widgets and not the other kind", all, err)
	}
	odd, err := widgets.List(ctx, func(w widget) bool { return w.Count%2 == 1 })
	if err != nil || len(odd) != 1 || odd[0].Count != 1 {
		t.Fatalf("List(odd) = %v, %v", odd, err)
	}

	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 5 {
				if _, err := widgets.Update(ctx, ids[0], func(w *widget) error { w.Count++; return nil }); err != nil {
					t.Errorf("Update: %v", err)
				}
			}
		})
	}
	wg.Wait()
	if got, err := widgets.Get(ctx, ids[0]); err != nil || got.Count != 20 {
		t.Fatalf("after 20 concurrent increments: %+v, %v", got, err)
	}
	refuse := errors.New("no")
	if _, err := widgets.Update(ctx, ids[0], func(*widget) error { return refuse }); !errors.Is(err, refuse) {
		t.Fatalf("Update's fn error: %v", err)
	}

	if err := widgets.Delete(ctx, ids[1]); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := widgets.Get(ctx, ids[1]); !errors.Is(err, transport.ErrNotFound) || wire.CodeOf(err) != wire.CodeNotFound {
		t.Fatalf("Get after Delete: %v, want not found", err)
	}
	if err := widgets.Delete(ctx, ids[1]); !errors.Is(err, transport.ErrNotFound) {
		t.Fatalf("Delete twice: %v, want not found", err)
	}
	if all, _ := widgets.List(ctx, nil); len(all) != 2 {
		t.Fatalf("List after Delete = %v", all)
	}
}

func TestCollectionUniqueValues(t *testing.T) {
	srv := natstest.Start(t)
	inv := newInventory(t, srv.Conn(t), transport.InventoryConfig{})
	widgets := transport.NewCollection[widget](inv, "widget")
	ctx := t.Context()
	a, b := wire.NewUUID(), wire.NewUUID()

	if err := widgets.Claim(ctx, "name", "rack-1", a); err != nil {
		t.Fatalf("Claim: %v", err)
	}
	if err := widgets.Claim(ctx, "name", "rack-1", a); err != nil {
		t.Fatalf("Claim again by its holder: %v", err)
	}
	if err := widgets.Claim(ctx, "name", "rack-1", b); !errors.Is(err, transport.ErrExists) {
		t.Fatalf("Claim by another: %v, want ErrExists", err)
	}
	if owner, err := widgets.Owner(ctx, "name", "rack-1"); err != nil || owner != a {
		t.Fatalf("Owner = %q, %v; want %s", owner, err, a)
	}
	widgets.Release(ctx, "name", "rack-1", b) // not b's: kept
	if owner, _ := widgets.Owner(ctx, "name", "rack-1"); owner != a {
		t.Fatalf("a release by a non-holder took the value away")
	}
	widgets.Release(ctx, "name", "rack-1", a)
	if _, err := widgets.Owner(ctx, "name", "rack-1"); !errors.Is(err, transport.ErrNotFound) {
		t.Fatalf("Owner after release: %v, want not found", err)
	}
	if err := widgets.Claim(ctx, "name", "rack-1", b); err != nil {
		t.Fatalf("Claim after release: %v", err)
	}
}
