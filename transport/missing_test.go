package transport_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ironfleet/ironfleet/internal/natstest"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// lossyBucket is the real nodes bucket whose Get answers "no such key" for
// the keys in miss, as many times as each says (-1: always), as a JetStream
// direct get does for a message the server fails to load (nats-server
// server/stream.go, getDirectRequest).
type lossyBucket struct {
	jetstream.KeyValue
	mu   sync.Mutex
	miss map[string]int
	// lostAcks are the keys whose next Update is stored but answered with
	// an error: a timeout, as when its acknowledgement is lost, or a wrong
	// last sequence, as when the client sent it again after it was stored.
	lostAcks map[string]error
}

func (b *lossyBucket) Update(ctx context.Context, key string, value []byte, last uint64) (uint64, error) {
	rev, err := b.KeyValue.Update(ctx, key, value, last)
	b.mu.Lock()
	lost := b.lostAcks[key]
	delete(b.lostAcks, key)
	b.mu.Unlock()
	if err == nil && lost != nil {
		return 0, lost
	}
	return rev, err
}

func (b *lossyBucket) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	b.mu.Lock()
	left := b.miss[key]
	if left > 0 {
		b.miss[key]--
	}
	b.mu.Unlock()
	if left != 0 {
		return nil, jetstream.ErrKeyNotFound
	}
	return b.KeyValue.Get(ctx, key)
}

// TestAcknowledgedNodeNeverReadsMissing: a node the store holds is found
// whether the cache lags behind the store (its watch stopped, the node
// written after) or the store fails to read a node the cache holds; only a
// node that exists nowhere is ErrNotFound.
func TestAcknowledgedNodeNeverReadsMissing(t *testing.T) {
	srv := natstest.Start(t)
	nc := srv.Conn(t)
	inv := newInventory(t, nc, transport.InventoryConfig{ConfirmMissingTimeout: 5 * time.Second})
	lossy := &lossyBucket{miss: map[string]int{}, lostAcks: map[string]error{}}
	transport.WrapNodesBucket(inv, func(kv jetstream.KeyValue) jetstream.KeyValue { lossy.KeyValue = kv; return lossy })
	acked := createNode(t, inv, wire.Node{Name: "acked"})
	unreadable := createNode(t, inv, wire.Node{Name: "unreadable"})
	syncCache(t, inv)

	// A cache that lags: a second inventory whose watches are stopped
	// before a node is written by the first.
	lagging := newInventory(t, srv.Conn(t), transport.InventoryConfig{ConfirmMissingTimeout: 200 * time.Millisecond})
	lagging.Close()
	unseen := createNode(t, inv, wire.Node{Name: "unseen"})
	if _, ok := lagging.Node(unseen.UUID); ok {
		t.Fatal("the stopped cache has a node written after it stopped; the test proves nothing")
	}

	tests := []struct {
		name string
		inv  *transport.Inventory
		uuid string
		miss int // store reads of uuid that answer "no such key" (-1: all)
		want string
	}{
		{name: "the store misses once a node the cache holds", inv: inv, uuid: acked.UUID, miss: 1, want: "found"},
		{name: "the store never reads a node the cache holds", inv: inv, uuid: unreadable.UUID, miss: -1, want: "found"},
		{name: "the cache lags behind the store", inv: lagging, uuid: unseen.UUID, want: "found"},
		{name: "a node that exists nowhere", inv: inv, uuid: "6f1a7a6e-0000-4000-8000-000000000404", want: "not found"},
		{name: "a node that exists nowhere, cache lagging", inv: lagging, uuid: "6f1a7a6e-0000-4000-8000-000000000405", want: "unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lossy.mu.Lock()
			lossy.miss[tt.uuid] = tt.miss
			lossy.mu.Unlock()
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			n, err := tt.inv.Get(ctx, tt.uuid)
			switch tt.want {
			case "found":
				if err != nil || n.UUID != tt.uuid {
					t.Fatalf("Get: got %q, %v; want the node", n.UUID, err)
				}
			case "not found":
				if !errors.Is(err, transport.ErrNotFound) {
					t.Fatalf("Get: got %v, want ErrNotFound", err)
				}
			case "unavailable":
				// The stopped cache cannot confirm: the bounded wait ends in
				// unavailable, not in a 404 nothing checked.
				if got := wire.CodeOf(err); got != wire.CodeUnavailable {
					t.Fatalf("Get: got %v (%s), want unavailable", err, got)
				}
			}
		})
	}

	t.Run("update of a node the store misses once", func(t *testing.T) {
		lossy.mu.Lock()
		lossy.miss[acked.UUID] = 1
		lossy.mu.Unlock()
		got, err := inv.UpdateNode(t.Context(), acked.UUID, 0, func(n *wire.Node) error { n.Description = "still here"; return nil })
		if err != nil || got.Description != "still here" {
			t.Fatalf("UpdateNode: got %q, %v; want the update", got.Description, err)
		}
	})
	t.Run("update of a node the store never reads", func(t *testing.T) {
		_, err := inv.UpdateNode(t.Context(), unreadable.UUID, 0, func(*wire.Node) error { return nil })
		if got := wire.CodeOf(err); got != wire.CodeUnavailable {
			t.Fatalf("UpdateNode: got %v (%s), want unavailable, not a 404", err, got)
		}
	})
	for _, lost := range []error{nats.ErrTimeout, jetstream.ErrKeyExists} {
		t.Run(fmt.Sprintf("update stored but answered %v", lost), func(t *testing.T) {
			lossy.mu.Lock()
			lossy.lostAcks[acked.UUID] = lost
			lossy.mu.Unlock()
			calls := 0
			got, err := inv.UpdateNode(t.Context(), acked.UUID, 0, func(n *wire.Node) error { calls++; n.Description = lost.Error(); return nil })
			if err != nil || got.Description != lost.Error() || calls != 1 {
				t.Fatalf("UpdateNode: got %q, %v after %d calls; want the update reported as made once", got.Description, err, calls)
			}
			if n, err := inv.Get(t.Context(), acked.UUID); err != nil || n.Description != lost.Error() {
				t.Fatalf("Get after: %q, %v", n.Description, err)
			}
		})
	}
	t.Run("update of a node that exists nowhere", func(t *testing.T) {
		_, err := inv.UpdateNode(t.Context(), "6f1a7a6e-0000-4000-8000-000000000406", 0, func(*wire.Node) error { return nil })
		if !errors.Is(err, transport.ErrNotFound) {
			t.Fatalf("UpdateNode: got %v, want ErrNotFound", err)
		}
	})
	t.Run("a node written straight to the bucket", func(t *testing.T) {
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		kv, err := js.KeyValue(t.Context(), transport.NodesBucket)
		if err != nil {
			t.Fatal(err)
		}
		raw := wire.Node{UUID: "6f1a7a6e-0000-4000-8000-000000000407", ProvisionState: wire.StateEnroll, CreatedAt: time.Now().UTC()}
		data, _ := json.Marshal(raw)
		if _, err := kv.Put(t.Context(), raw.UUID, data); err != nil {
			t.Fatal(err)
		}
		if n, err := lagging.Get(t.Context(), raw.UUID); err != nil || n.UUID != raw.UUID {
			t.Fatalf("Get through the lagging cache: got %q, %v; want the node", n.UUID, err)
		}
	})
}
