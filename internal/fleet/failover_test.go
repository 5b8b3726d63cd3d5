package fleet_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ironfleet/ironfleet/internal/apiclient"
	"github.com/ironfleet/ironfleet/internal/fleet"
	"github.com/ironfleet/ironfleet/internal/natstest"
	"github.com/ironfleet/ironfleet/internal/redistest"
	"github.com/ironfleet/ironfleet/internal/wait"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// TestDeploysThroughRedisFailover: a dev fleet — API, two conductors,
// simulated machines and agents — on real NATS and on a Redis master
// watched by a Sentinel (--redis redis+sentinel://…). Half the nodes are
// deploying when the master is killed with SIGKILL; the other half are
// asked to deploy while the Sentinel promotes the replica. Every node
// reaches active, none sticks, and the node inventory, which rejects stale
// fencing tokens, sees each node's token only go up.
func TestDeploysThroughRedisFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("deploys a fleet through a Redis failover; skipped by -short (make test-unit)")
	}
	const nodes = 12
	f := redistest.StartFailover(t)
	dev := startDev(t, fleet.DevConfig{
		Nodes: nodes, Provide: true, ManualClean: true, EnrollWorkers: nodes,
		LockTTL: 3 * time.Second, RedisURL: f.URL(),
	})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Second)
	defer cancel()
	c := &apiclient.Client{Base: dev.APIURL(), LockedRetry: 50 * time.Millisecond, Poll: 50 * time.Millisecond}

	var names []string
	waitFor(t, "the fleet to enroll and provide its nodes", func() bool {
		ns, err := apiclient.ListNodes[struct {
			Name  string `json:"name"`
			State string `json:"provision_state"`
		}](ctx, c, "/v1/nodes")
		names = names[:0]
		for _, n := range ns {
			if n.State == "available" {
				names = append(names, n.Name)
			}
		}
		return err == nil && len(names) == nodes
	})
	fences := watchFences(t, ctx, dev.NATSURL())

	deploy := func(name string) {
		t.Helper()
		// 503 while the lock's Redis is failing over: ask again, as an
		// operator would.
		for {
			_, err := c.SetProvisionState(ctx, name, "active")
			if !apiclient.IsStatus(err, http.StatusServiceUnavailable) {
				if err != nil {
					t.Fatalf("deploy %s: %v", name, err)
				}
				return
			}
			if wait.Sleep(ctx, 100*time.Millisecond) != nil {
				t.Fatalf("deploy %s: %v", name, err)
			}
		}
	}
	for _, n := range names[:nodes/2] {
		deploy(n)
	}
	killedAt := time.Now()
	old := f.KillMaster(t)
	fences.mark()
	for _, n := range names[nodes/2:] {
		deploy(n)
	}
	f.WaitFailover(t, old)
	failedOver := time.Since(killedAt)

	var wg sync.WaitGroup
	errs := make(chan error, nodes)
	for _, n := range names {
		wg.Go(func() {
			if err := c.WaitState(ctx, n, "active"); err != nil {
				errs <- fmt.Errorf("%s: %w", n, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("node not active: %v", err)
	}
	allActive := time.Since(killedAt)
	seen, after := fences.check(t)
	if after == 0 {
		t.Error("no fenced write after the kill: the failover crossed no lock work")
	}
	t.Logf("Sentinel agreed on the new master %s after the kill; all %d nodes active %s after it; %d fenced node writes seen, %d after the kill, tokens never went down",
		failedOver.Round(time.Millisecond), nodes, allActive.Round(time.Millisecond), seen, after)
}

// fenceWatch records every node write's fencing token as the inventory's
// KV bucket delivers them.
type fenceWatch struct {
	mu     sync.Mutex
	tokens map[string][]uint64 // node uuid → the Fence of each write, in order
	marked map[string]int      // node uuid → how many writes were seen before mark
	done   chan struct{}
}

func watchFences(t *testing.T, ctx context.Context, natsURL string) *fenceWatch {
	t.Helper()
	js, err := jetstream.New(natstest.Connect(t, natsURL))
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, transport.NodesBucket)
	if err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	w, err := kv.WatchAll(wctx)
	if err != nil {
		t.Fatal(err)
	}
	fw := &fenceWatch{tokens: map[string][]uint64{}, done: make(chan struct{})}
	go func() {
		defer close(fw.done)
		for e := range w.Updates() {
			var n wire.Node
			if e == nil || e.Operation() != jetstream.KeyValuePut || json.Unmarshal(e.Value(), &n) != nil || n.Fence == 0 {
				continue
			}
			fw.mu.Lock()
			fw.tokens[n.UUID] = append(fw.tokens[n.UUID], n.Fence)
			fw.mu.Unlock()
		}
	}()
	t.Cleanup(func() { stop(); _ = w.Stop(); <-fw.done })
	return fw
}

// mark notes how many writes of each node came before now.
func (fw *fenceWatch) mark() {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	fw.marked = map[string]int{}
	for id, ts := range fw.tokens {
		fw.marked[id] = len(ts)
	}
}

// check fails t if any node's token went down from one write to the next,
// and says how many fenced writes it saw, in all and after mark.
func (fw *fenceWatch) check(t *testing.T) (seen, after int) {
	t.Helper()
	fw.mu.Lock()
	defer fw.mu.Unlock()
	for id, ts := range fw.tokens {
		for i := 1; i < len(ts); i++ {
			if ts[i] < ts[i-1] {
				t.Errorf("node %s: token %d written after %d", id, ts[i], ts[i-1])
			}
		}
		seen += len(ts)
		after += len(ts) - fw.marked[id]
	}
	return seen, after
}
