package transport_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ironfleet/ironfleet/internal/natstest"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// TestReplicatedReadsSeeAcknowledgedWrites: in a three-server cluster, a
// process connected to one server writes a node and another process,
// connected to another server, reads it right after the write is
// acknowledged — as a conductor reads the node an API process just moved.
// The read must never be older than the write (a follower answering a
// direct get can be: a conductor then dropped the task of a node it read
// from before the task's first move).
func TestReplicatedReadsSeeAcknowledgedWrites(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	cfg := transport.InventoryConfig{Replicas: 3}
	writer := newInventory(t, natstest.Connect(t, c.Nodes[0].URL()), cfg)
	readers := []*transport.Inventory{
		newInventory(t, natstest.Connect(t, c.Nodes[1].URL()), cfg),
		newInventory(t, natstest.Connect(t, c.Nodes[2].URL()), cfg),
	}
	// Every read of a replicated bucket goes to its leader: a follower
	// serves direct gets once 90 % caught up, so no load this test can
	// make shows the stale read reliably; never asking one prevents it.
	// A plain subscriber sees every direct get request sent.
	nc := natstest.Connect(t, c.Nodes[1].URL())
	direct, err := nc.SubscribeSync("$JS.API.DIRECT.GET.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if n, _, _ := direct.Pending(); n > 0 {
			m, _ := direct.NextMsg(0)
			t.Errorf("%d direct get requests of a replicated bucket, the first on %s: a follower may answer with a record older than an acknowledged write", n, m.Subject)
		}
	}()
	// Eight nodes written at once, so that a follower falls behind as one
	// does under a fleet's load.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for k := range 8 {
		n := createNode(t, writer, wire.Node{Name: fmt.Sprintf("replicated-%d", k), Driver: "fake-hardware"})
		wg.Go(func() {
			for i := range 150 {
				want := fmt.Sprintf("write %d", i)
				if _, err := writer.UpdateNode(t.Context(), n.UUID, 0, func(n *wire.Node) error {
					n.Description = want
					return nil
				}); err != nil {
					errs <- err
					return
				}
				for j, r := range readers {
					got, err := r.Get(t.Context(), n.UUID)
					if err != nil {
						errs <- err
						return
					}
					if got.Description != want {
						errs <- fmt.Errorf("node %d: reader %d after %q read %q: a read older than an acknowledged write", k, j+1, want, got.Description)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// A deleted node reads as missing through the leader too.
	gone := createNode(t, writer, wire.Node{Name: "deleted", Driver: "fake-hardware"})
	if err := writer.DeleteNode(t.Context(), gone.UUID, 0); err != nil {
		t.Fatal(err)
	}
	syncCache(t, readers[0])
	if _, err := readers[0].Get(t.Context(), gone.UUID); !errors.Is(err, transport.ErrNotFound) {
		t.Errorf("a deleted node read from another server: %v, want not found", err)
	}
}

// TestLeaderReadWithoutADeadline: a conductor reads under its node lock's
// context, which has no deadline; a replicated bucket's read still
// answers (and is bounded).
func TestLeaderReadWithoutADeadline(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	inv := newInventory(t, natstest.Connect(t, c.Nodes[2].URL()), transport.InventoryConfig{Replicas: 3})
	n := createNode(t, inv, wire.Node{Name: "no-deadline", Driver: "fake-hardware"})
	got, err := inv.Get(context.WithoutCancel(t.Context()), n.UUID)
	if err != nil || got.UUID != n.UUID {
		t.Fatalf("Get without a deadline: %+v, %v", got.UUID, err)
	}
}

// TestReplicatedRegistryReadsFromTheLeader: a replicated registry reads
// its records from the bucket's leader, as the inventory does: a process
// connected to another server lists a conductor that registered and then
// left without one direct get (which a follower may answer with a record
// older than the keepalive it acknowledged).
func TestReplicatedRegistryReadsFromTheLeader(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	ctx := t.Context()
	registry := func(i int) *transport.Registry {
		js, err := jetstream.New(natstest.Connect(t, c.Nodes[i].URL()))
		if err != nil {
			t.Fatal(err)
		}
		r, err := transport.NewRegistry(ctx, js, transport.RegistryConfig{Replicas: 3, KeepAlive: 20 * time.Millisecond, OfflineAfter: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	writer, reader := registry(0), registry(1)
	nc := natstest.Connect(t, c.Nodes[2].URL())
	direct, err := nc.SubscribeSync("$JS.API.DIRECT.GET.KV_" + transport.ConductorsBucket + ".>")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- writer.Register(rctx, transport.ConductorInfo{Host: "cond-replicated.example"}) }()
	waitFor(t, "the conductor to be listed from another server", func() bool {
		cs, err := reader.Conductors(ctx)
		return err == nil && len(cs) == 1 && cs[0].Host == "cond-replicated.example" && cs[0].Alive
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Register: %v", err)
	}
	waitFor(t, "the conductor's clean leave to be seen from another server", func() bool {
		cs, err := reader.Conductors(ctx)
		return err == nil && len(cs) == 0
	})
	if n, _, _ := direct.Pending(); n > 0 {
		m, _ := direct.NextMsg(0)
		t.Errorf("%d direct get requests of the replicated registry, the first on %s", n, m.Subject)
	}
}
