package fleet_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/conductor"
	"github.com/ironfleet/ironfleet/internal/apiclient"
	"github.com/ironfleet/ironfleet/internal/fleet"
	"github.com/ironfleet/ironfleet/internal/redistest"
)

// TestBurstAdmission: more deploys at once than the group's limit, through
// the real API path (HTTP, the API's lock and dispatch, two conductors,
// simulated machines and agents). Every deploy is answered 202 or 503 up
// front; every 202 reaches active; a 503 leaves its node where it was
// (available, never in a transient state), and asking again later gets it
// deployed. The dev fleet's own provides ran into the clean limit and were
// retried the same way.
func TestBurstAdmission(t *testing.T) {
	const nodes, limit = 6, 2
	dev, err := fleet.StartDev(t.Context(), fleet.DevConfig{
		DataDir: t.TempDir(), APIAddr: "127.0.0.1:0", Nodes: nodes, Conductors: 2, Provide: true,
		HeartbeatTimeout: 2 * time.Second,
		Conductor:        conductor.Config{MaxDeploys: limit, MaxCleans: limit},
	})
	if err != nil {
		if isNotInstalled(err) {
			redistest.Unavailable(t, err)
		}
		t.Fatal(err)
	}
	t.Cleanup(dev.Stop)
	c := &apiclient.Client{Base: dev.APIURL(), LockedRetry: 100 * time.Millisecond, Poll: 50 * time.Millisecond}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var all []nodeView
	for len(all) < nodes || !allIn(all, "available") {
		var err error
		if all, err = apiclient.ListNodes[nodeView](ctx, c, "/v1/nodes?fields=uuid,provision_state"); err != nil {
			t.Fatal(err)
		}
		if ctx.Err() != nil {
			t.Fatalf("the dev fleet's nodes never all reached available: %+v", all)
		}
		time.Sleep(50 * time.Millisecond) // polling the API, not synchronising
	}

	var mu sync.Mutex
	accepted, refused := []string{}, []string{}
	var wg sync.WaitGroup
	for _, n := range all {
		wg.Go(func() {
			err := c.Do(ctx, http.MethodPut, "/v1/nodes/"+n.UUID+"/states/provision", map[string]any{"target": "active"}, nil)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				accepted = append(accepted, n.UUID)
			case apiclient.IsStatus(err, http.StatusServiceUnavailable), apiclient.IsStatus(err, http.StatusConflict):
				refused = append(refused, n.UUID)
			default:
				t.Errorf("deploy %s: %v", n.UUID, err)
			}
		})
	}
	wg.Wait()
	if len(accepted) == 0 || len(accepted) > limit {
		t.Fatalf("%d deploys accepted at once, want 1 to %d (the limit): one API process admits them one at a time", len(accepted), limit)
	}
	for _, id := range refused {
		var n nodeView
		if err := c.Do(ctx, http.MethodGet, "/v1/nodes/"+id, nil, &n); err != nil {
			t.Fatal(err)
		}
		if n.State != "available" {
			t.Errorf("refused node %s is %s, want available as it was", id, n.State)
		}
	}
	for _, id := range accepted {
		if err := c.WaitState(ctx, id, "active"); err != nil {
			t.Fatalf("accepted node: %v", err)
		}
	}
	for _, id := range refused {
		if _, err := c.SetProvisionState(ctx, id, "active"); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitState(ctx, id, "active"); err != nil {
			t.Fatalf("node refused, then asked again: %v", err)
		}
	}
	t.Logf("%d deploys accepted at once, %d refused up front and deployed later (limit %d)", len(accepted), len(refused), limit)
}

// nodeView is what the test reads of a node.
type nodeView struct {
	UUID  string `json:"uuid"`
	State string `json:"provision_state"`
}

func allIn(vs []nodeView, state string) bool {
	for _, v := range vs {
		if v.State != state {
			return false
		}
	}
	return true
}
