package conductor

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	tasks       *prometheus.CounterVec
	taskSeconds *prometheus.HistogramVec
	handoffs    prometheus.Counter
	// powerSync is the last power sync's duration and nodes read, so an
	// operator sees it fit its period (Config.PowerSync).
	powerSyncSeconds, powerSyncNodes prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		tasks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ironfleet_conductor_tasks_total",
			Help: "Tasks handled, by operation and outcome.",
		}, []string{"op", "outcome"}),
		taskSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ironfleet_conductor_task_seconds",
			Help:    "Time a task's handler ran, by operation.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"op"}),
		handoffs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ironfleet_conductor_handoffs_total",
			Help: "Continuations dispatched: published, and the node's lock handed to them.",
		}),
		powerSyncSeconds: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ironfleet_conductor_power_sync_seconds",
			Help: "How long the last power sync took, over every node it read.",
		}),
		powerSyncNodes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ironfleet_conductor_power_sync_nodes",
			Help: "Nodes the last power sync read.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.tasks, m.taskSeconds, m.handoffs, m.powerSyncSeconds, m.powerSyncNodes} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("conductor: register metrics: %w", err)
			}
		}
	}
	return m, nil
}
