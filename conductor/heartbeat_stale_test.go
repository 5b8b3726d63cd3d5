package conductor_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ironfleet/ironfleet/conductor"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// agentOnRead is the conductor's inventory with Get showing the node an
// agent the store no longer has: what a read older than the write that
// forgot the agent returns (a follower behind its leader did so, and a
// heartbeat then wrote Agent.URL on a nil Agent and panicked).
type agentOnRead struct {
	conductor.Nodes
	tokenHash string
}

func (a agentOnRead) Get(ctx context.Context, uuid string) (wire.Node, error) {
	n, err := a.Nodes.Get(ctx, uuid)
	if err == nil && n.Agent == nil {
		n.Agent = &wire.AgentInfo{TokenHash: a.tokenHash}
	}
	return n, err
}

// TestHeartbeatChecksItsAgentOnTheRecordItWrites: a heartbeat whose agent
// the node had when it was read, but no longer has as stored, ends as a
// stale beat: no panic, no write, the node's agent still gone.
func TestHeartbeatChecksItsAgentOnTheRecordItWrites(t *testing.T) {
	e := newEnv(t)
	const hash = "0123456789abcdef"
	e.deps = func(_ string, d *conductor.Deps) {
		d.Drivers["fake-hardware"] = conductor.FakeHardware()
		d.Nodes = agentOnRead{Nodes: d.Nodes, tokenHash: hash}
	}
	node := e.enrollFake(t, "forgotten-agent", nil, nil)
	reg := prometheus.NewRegistry()
	e.startConductor(t, "c1", nil, func(c *conductor.Config) { c.Registerer = reg })
	params, _ := json.Marshal(wire.HeartbeatParams{CallbackURL: "http://127.0.0.1:9/", AgentVersion: "test", TokenHash: hash})
	if _, err := e.bus.Publish(t.Context(), wire.NewTask(wire.OpHeartbeat, wire.Node{UUID: node.UUID}, "agent", params)); err != nil {
		t.Fatal(err)
	}
	stale := func() float64 {
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() != "ironfleet_conductor_tasks_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				if labels["op"] == string(wire.OpHeartbeat) && labels["outcome"] == "stale" {
					return m.GetCounter().GetValue()
				}
			}
		}
		return 0
	}
	for deadline := time.Now().Add(20 * time.Second); stale() < 1; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the heartbeat never ended as stale")
		}
	}
	got, err := e.inv.Get(t.Context(), node.UUID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Agent != nil {
		t.Errorf("the node's agent is %+v after a stale beat, want none", got.Agent)
	}
}
