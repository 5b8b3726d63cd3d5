package api

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/ironfleet/ironfleet/lock"
)

// holderBatch gathers the lock reads behind the reservation field of
// concurrent requests into pipelines: a request that finds a read in
// flight queues its node, and when that read returns the first queued
// request reads every queued node in one round trip (lock.Snapshots), then
// hands the lead to the next queue. A request alone is read at once, as
// before; under load the API makes one Redis round trip per batch instead
// of one per request, which is most of what a GET node cost beyond a bare
// handler. Every read is sent after its request arrived, so no answer is
// older than the request asking. No goroutine of its own: the requests
// take turns.
type holderBatch struct {
	read    func(ctx context.Context, resources []string) ([]lock.Snapshot, error)
	timeout time.Duration

	mu    sync.Mutex
	busy  bool          // a request is reading a batch
	queue []*holderRead // waiting for the next batch
}

// holderRead is one request's read.
type holderRead struct {
	node string
	done chan struct{} // closed when snap and err are set, or when lead is
	lead bool          // this request reads the next batch (set with mu held)
	snap lock.Snapshot
	err  error
}

// snapshot reads node's lock, batched with the concurrent reads.
func (b *holderBatch) snapshot(ctx context.Context, node string) (lock.Snapshot, error) {
	r := &holderRead{node: node, done: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, r)
	if !b.busy {
		b.busy = true
		b.mu.Unlock()
		b.lead(ctx, r)
		return r.snap, r.err
	}
	b.mu.Unlock()
	select {
	case <-r.done:
	case <-ctx.Done():
		b.mu.Lock()
		if !r.lead {
			// Not handed the lead: leave the queue and go.
			b.queue = slices.DeleteFunc(b.queue, func(q *holderRead) bool { return q == r })
			b.mu.Unlock()
			return lock.Snapshot{}, context.Cause(ctx)
		}
		b.mu.Unlock()
		// Handed the lead already: the queue is waiting on this request.
	}
	if r.lead {
		b.lead(ctx, r)
	}
	return r.snap, r.err
}

// lead reads every queued node (r's among them) in one pipeline, answers
// each request, and hands the lead to the first request queued meanwhile.
func (b *holderBatch) lead(ctx context.Context, r *holderRead) {
	b.mu.Lock()
	batch := b.queue
	b.queue = nil
	b.mu.Unlock()

	// The batch serves other requests too: bounded by the lock view's
	// timeout, not by this request's cancellation.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.timeout)
	defer cancel()
	nodes := make([]string, 0, len(batch))
	for _, q := range batch {
		if !slices.Contains(nodes, q.node) {
			nodes = append(nodes, q.node)
		}
	}
	snaps, err := b.read(ctx, nodes)
	for _, q := range batch {
		if err != nil {
			q.err = err
		} else {
			q.snap = snaps[slices.Index(nodes, q.node)]
		}
		if q != r {
			close(q.done)
		}
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.queue) == 0 {
		b.busy = false
		return
	}
	next := b.queue[0]
	next.lead = true
	close(next.done)
}
