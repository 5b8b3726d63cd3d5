package conductor_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/agent/protocol"
	"github.com/ironfleet/ironfleet/conductor"
	"github.com/ironfleet/ironfleet/internal/dispatch"
	"github.com/ironfleet/ironfleet/lock"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// lateContinuation is a conductor's task bus around the real one. With
// hold, the first delivery of a continue_clean task waits, unacked on the
// work queue (a backlog), until three heartbeats were handled after it had
// waited OrphanAfter: each of them could have published it again. With
// lose, the first
// continue_clean publish is answered as stored but is not, and is stored
// after all, late, right after the next one (the rescue's). It counts the
// continue_clean tasks the conductor publishes.
type lateContinuation struct {
	conductor.Tasks
	hold, lose  bool
	orphanAfter time.Duration
	release     chan struct{}

	mu        sync.Mutex
	published int
	heldAt    time.Time // when the held delivery began waiting; zero: none yet
	beats     int       // heartbeats handled since it waited orphanAfter
	late      *wire.Task
}

func (l *lateContinuation) Publish(ctx context.Context, t wire.Task) (uint64, error) {
	if t.Op != wire.OpContinueClean {
		return l.Tasks.Publish(ctx, t)
	}
	l.mu.Lock()
	l.published++
	first, late := l.published == 1, l.late
	if first && l.lose {
		l.late = &t
	}
	l.mu.Unlock()
	if first && l.lose {
		return 1, nil
	}
	seq, err := l.Tasks.Publish(ctx, t)
	if late != nil {
		if _, err := l.Tasks.Publish(ctx, *late); err != nil {
			return 0, err
		}
	}
	return seq, err
}

func (l *lateContinuation) Consume(ctx context.Context, group string, h transport.Handler, cfg transport.ConsumeConfig) error {
	return l.Tasks.Consume(ctx, group, func(ctx context.Context, t wire.Task, d transport.Delivery) transport.Outcome {
		l.mu.Lock()
		hold := l.hold && t.Op == wire.OpContinueClean && l.heldAt.IsZero()
		if hold {
			l.heldAt = time.Now()
		}
		l.mu.Unlock()
		if hold {
			select {
			case <-l.release:
			case <-ctx.Done():
			}
		}
		out := h(ctx, t, d)
		if t.Op == wire.OpHeartbeat {
			l.mu.Lock()
			if !l.heldAt.IsZero() && time.Since(l.heldAt) > l.orphanAfter {
				if l.beats++; l.beats == 3 {
					close(l.release)
				}
			}
			l.mu.Unlock()
		}
		return out
	}, cfg)
}

func (l *lateContinuation) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.published
}

// TestLateContinuationRunsOnce: a node sitting in its continuation's step
// past OrphanAfter while its agent beats gets its continuation published
// again only when the one it waits for is not on the work queue — not
// while it is queued behind a backlog (the 10,000-node run published them
// again thousands of times) — and a lost continuation stored late, after
// the rescue's, runs nothing a second time: cleaning erases the disk once.
func TestLateContinuationRunsOnce(t *testing.T) {
	tests := []struct {
		name          string
		hold, lose    bool
		wantPublished int
	}{
		{name: "queued behind a backlog: not published again", hold: true, wantPublished: 1},
		{name: "lost, then stored after the rescue's", lose: true, wantPublished: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			const orphanAfter = 300 * time.Millisecond
			late := &lateContinuation{hold: tt.hold, lose: tt.lose, orphanAfter: orphanAfter, release: make(chan struct{})}
			e.deps = func(_ string, d *conductor.Deps) { late.Tasks = d.Tasks; d.Tasks = late }
			e.startConductor(t, "c1", nil, func(c *conductor.Config) {
				// The held continuation's ticket lapses at once, as a
				// backlog's do: the lock is free for the heartbeats.
				c.OrphanAfter, c.ClaimTimeout = orphanAfter, 100*time.Millisecond
			})
			node := e.enroll(t, "late", "")
			e.request(t, node.UUID, wire.OpManage, nil)
			e.waitState(t, node.UUID, wire.StateManageable, 20*time.Second)
			e.request(t, node.UUID, wire.OpProvide, nil)
			if got := e.waitState(t, node.UUID, wire.StateAvailable, 30*time.Second); got.LastError != "" {
				t.Fatalf("available with last_error %q", got.LastError)
			}
			if n := late.count(); n != tt.wantPublished {
				t.Fatalf("%d continue_clean tasks published, want %d", n, tt.wantPublished)
			}
			e.waitQueueEmpty(t, 30*time.Second)
			// Cleaning erases the metadata first, once per run of it.
			erased := 0
			for _, c := range e.agentCommands(node.UUID) {
				if c == protocol.CmdEraseMetadata {
					erased++
				}
			}
			if erased != 1 {
				t.Fatalf("agent commands %v: cleaning ran %d times, want once", e.agentCommands(node.UUID), erased)
			}
		})
	}
}

// heldDeploy is a conductor's task bus whose first deploy delivery waits,
// unacked on the work queue (a backlog), until three recovery sweeps have
// read the queue after the node's last move had aged past recoverAfter:
// each of them could have failed the node.
type heldDeploy struct {
	conductor.Tasks
	recoverAfter time.Duration
	release      chan struct{}

	mu     sync.Mutex
	heldAt time.Time
	sweeps int
}

func (h *heldDeploy) OldestTask(ctx context.Context, group string, op wire.Operation) (time.Time, bool, error) {
	oldest, queued, err := h.Tasks.OldestTask(ctx, group, op)
	h.mu.Lock()
	defer h.mu.Unlock()
	if op == "" && !h.heldAt.IsZero() && time.Since(h.heldAt) > h.recoverAfter {
		if h.sweeps++; h.sweeps == 3 {
			close(h.release)
		}
	}
	return oldest, queued, err
}

func (h *heldDeploy) Consume(ctx context.Context, group string, handle transport.Handler, cfg transport.ConsumeConfig) error {
	return h.Tasks.Consume(ctx, group, func(ctx context.Context, t wire.Task, d transport.Delivery) transport.Outcome {
		h.mu.Lock()
		hold := t.Op == wire.OpDeploy && h.heldAt.IsZero()
		if hold {
			h.heldAt = time.Now()
		}
		h.mu.Unlock()
		if hold {
			select {
			case <-h.release:
			case <-ctx.Done():
			}
		}
		return handle(ctx, t, d)
	}, cfg)
}

// TestQueuedTaskIsNotSwept: a node whose deploy task waits on the work
// queue past RecoverAfter, its lock free, is not failed by the recovery
// sweep (at 10,000 nodes it failed 70 deploys so): the deploy, once it
// runs, takes the node to active.
func TestQueuedTaskIsNotSwept(t *testing.T) {
	e := newEnv(t)
	const recoverAfter = 200 * time.Millisecond
	held := &heldDeploy{recoverAfter: recoverAfter, release: make(chan struct{})}
	e.deps = func(_ string, d *conductor.Deps) {
		d.Drivers["fake-hardware"] = conductor.FakeHardware()
		held.Tasks = d.Tasks
		d.Tasks = held
	}
	node := e.enrollFake(t, "queued", nil, nil)
	e.setState(t, node.UUID, wire.StateAvailable, wire.StateNone)
	e.startConductor(t, "c1", nil, func(c *conductor.Config) { c.RecoverAfter = recoverAfter })
	// Asked as the API asks, but with a ticket that lapses at once, as a
	// backlog's do: the lock is free for the sweep.
	lk, err := e.locks.WithHolder("api").Acquire(t.Context(), node.UUID, &lock.Options{Purpose: "deploy"})
	if err != nil {
		t.Fatal(err)
	}
	n, err := e.inv.Get(t.Context(), node.UUID)
	if err != nil {
		t.Fatal(err)
	}
	d := dispatch.New(e.bus, e.inv, dispatch.Config{ClaimTimeout: 100 * time.Millisecond})
	if _, err := d.Request(t.Context(), lk, n, wire.OpDeploy, "test", nil); err != nil {
		t.Fatal(err)
	}
	got := e.waitNode(t, node.UUID, "deployed or failed", func(n wire.Node) bool {
		return n.ProvisionState == wire.StateActive || n.ProvisionState == wire.StateDeployFailed
	})
	if got.ProvisionState != wire.StateActive || got.LastError != "" {
		t.Fatalf("node %s, last_error %q; want active with none", got.ProvisionState, got.LastError)
	}
}
