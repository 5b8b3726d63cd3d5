package transport

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// busMetrics are the bus's Prometheus metrics; with a nil Registerer they
// are still counted but never exported.
type busMetrics struct {
	published     prometheus.Counter
	publishErrors prometheus.Counter
	duplicates    prometheus.Counter
	outcomes      *prometheus.CounterVec
	dead          prometheus.Counter
	events        *prometheus.CounterVec
	eventsLost    prometheus.Counter
	handle        prometheus.Histogram
}

func newBusMetrics(reg prometheus.Registerer) (*busMetrics, error) {
	m := &busMetrics{
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ironfleet", Subsystem: "bus", Name: "tasks_published_total",
			Help: "Tasks published and stored by JetStream (duplicates included).",
		}),
		publishErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ironfleet", Subsystem: "bus", Name: "publish_errors_total",
			Help: "Task publishes that failed.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ironfleet", Subsystem: "bus", Name: "tasks_duplicate_total",
			Help: "Task publishes JetStream deduplicated by task ID.",
		}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ironfleet", Subsystem: "bus", Name: "task_outcomes_total",
			Help: "Delivered tasks by how they were settled: ack, nak, term, skip.",
		}, []string{"group", "outcome"}),
		dead: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ironfleet", Subsystem: "bus", Name: "tasks_dead_total",
			Help: "Tasks terminated with a task.dead event.",
		}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ironfleet", Subsystem: "bus", Name: "events_published_total",
			Help: "Events published, by type.",
		}, []string{"type"}),
		eventsLost: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ironfleet", Subsystem: "bus", Name: "events_lost_total",
			Help: "Events emitted without waiting (EmitEvent) that JetStream refused or did not confirm in time; each is logged.",
		}),
		handle: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "ironfleet", Subsystem: "bus", Name: "handler_seconds",
			Help:    "Time task handlers ran.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.published, m.publishErrors, m.duplicates, m.outcomes, m.dead, m.events, m.eventsLost, m.handle} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				continue
			}
			return nil, fmt.Errorf("transport: register metrics: %w", err)
		}
	}
	return m, nil
}
