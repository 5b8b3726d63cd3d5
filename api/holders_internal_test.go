package api

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/lock"
)

// fakeSnapshots answers Snapshots with each resource as its own holder,
// recording every batch; while gate is set, a call waits for it to close.
type fakeSnapshots struct {
	mu      sync.Mutex
	batches [][]string
	gate    chan struct{}
	err     error
}

func (f *fakeSnapshots) read(ctx context.Context, resources []string) ([]lock.Snapshot, error) {
	f.mu.Lock()
	f.batches = append(f.batches, slices.Clone(resources))
	gate := f.gate
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if f.err != nil {
		return nil, f.err
	}
	out := make([]lock.Snapshot, len(resources))
	for i, r := range resources {
		out[i] = lock.Snapshot{Resource: r, Held: true, Holder: "holder-of-" + r}
	}
	return out, nil
}

// waitQueued waits until n reads are queued behind the one in flight.
func waitQueued(t *testing.T, b *holderBatch, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b.mu.Lock()
		got := len(b.queue)
		b.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d reads queued, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestHolderBatch checks that reads arriving while one is in flight go
// out together in the next round trip, each request gets its own node's
// answer, a request cancelled in the queue leaves it without stalling the
// others, and an error reaches every request of its batch.
func TestHolderBatch(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		cancel  bool // the first queued request is cancelled before the batch goes
		queued  int
		wantErr bool
	}{
		{name: "batched", queued: 8},
		{name: "duplicates", queued: 4},
		{name: "cancelled in the queue", queued: 5, cancel: true},
		{name: "error", queued: 3, err: errors.New("redis away"), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeSnapshots{gate: make(chan struct{}), err: tt.err}
			b := &holderBatch{read: f.read, timeout: 10 * time.Second}
			node := func(i int) string {
				if tt.name == "duplicates" {
					return fmt.Sprintf("node-%d", i%2)
				}
				return fmt.Sprintf("node-%d", i)
			}
			type answer struct {
				snap lock.Snapshot
				err  error
			}
			answers := make([]answer, tt.queued+1)
			var wg sync.WaitGroup
			start := func(i int, ctx context.Context) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					s, err := b.snapshot(ctx, node(i))
					answers[i] = answer{s, err}
				}()
			}
			start(0, t.Context()) // leads, and blocks in read
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
				f.mu.Lock()
				inFlight := len(f.batches) == 1
				f.mu.Unlock()
				if inFlight {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the first read never went out")
				}
			}
			cctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			for i := 1; i <= tt.queued; i++ {
				ctx := t.Context()
				if i == 1 {
					ctx = cctx
				}
				start(i, ctx)
				waitQueued(t, b, i)
			}
			if tt.cancel {
				cancel()
				waitQueued(t, b, tt.queued-1)
			}
			close(f.gate)
			wg.Wait()

			if len(f.batches) != 2 {
				t.Fatalf("%d round trips %v, want 2: the first read, then every read queued behind it", len(f.batches), f.batches)
			}
			var want []string
			for i := 1; i <= tt.queued; i++ {
				if (i != 1 || !tt.cancel) && !slices.Contains(want, node(i)) {
					want = append(want, node(i))
				}
			}
			if !slices.Equal(f.batches[1], want) {
				t.Errorf("second batch %v, want %v", f.batches[1], want)
			}
			for i, a := range answers {
				switch {
				case i == 1 && tt.cancel:
					if !errors.Is(a.err, context.Canceled) {
						t.Errorf("cancelled request: err %v, want context.Canceled", a.err)
					}
				case tt.wantErr:
					if !errors.Is(a.err, tt.err) {
						t.Errorf("request %d: err %v, want %v", i, a.err, tt.err)
					}
				case a.err != nil || a.snap.Holder != "holder-of-"+node(i):
					t.Errorf("request %d: %+v, %v; want holder-of-%s", i, a.snap, a.err, node(i))
				}
			}
			if b.busy || len(b.queue) != 0 {
				t.Errorf("after the batches: busy %t, %d queued; want idle", b.busy, len(b.queue))
			}
		})
	}
}
