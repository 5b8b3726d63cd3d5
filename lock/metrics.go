package lock

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the lock's Prometheus instruments. They exist whether or not a
// Registerer was given, so the code never checks for nil.
type metrics struct {
	wait     *prometheus.HistogramVec
	grants   *prometheus.CounterVec
	handoffs *prometheus.CounterVec
	claims   *prometheus.CounterVec
	expired  *prometheus.CounterVec
	locked   prometheus.Counter
	lost     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ironfleet_lock_wait_seconds",
			Help:    "Time from Acquire to grant, by mode.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 12),
		}, []string{"mode"}),
		grants: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ironfleet_lock_grants_total",
			Help: "Locks granted to this process, by mode.",
		}, []string{"mode"}),
		handoffs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ironfleet_lock_handoffs_total",
			Help: "Ownership passed on by this process: to the head of the line on release (line) or to a task's ticket (ticket).",
		}, []string{"kind"}),
		claims: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ironfleet_lock_claims_total",
			Help: "Claims of handed-off or reserved tickets, by result (granted, duplicate: claimed by another still holding or waiting, used: spent by a claimer that let go).",
		}, []string{"result"}),
		expired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ironfleet_lock_expired_total",
			Help: "Dead holders, waiters and unclaimed tickets evicted after their lease, by kind.",
		}, []string{"kind"}),
		locked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ironfleet_lock_locked_errors_total",
			Help: "Standard-mode acquisitions that gave up with ErrLocked.",
		}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ironfleet_lock_leases_lost_total",
			Help: "Held locks whose lease could not be kept (work cancelled with ErrLost).",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.wait, m.grants, m.handoffs, m.claims, m.expired, m.locked, m.lost} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("lock: register metrics: %w", err)
			}
		}
	}
	return m, nil
}

func (m *metrics) observeExpiries(r reply) {
	if r.expWaiters > 0 {
		m.expired.WithLabelValues("waiter").Add(float64(r.expWaiters))
	}
	if r.expHolders > 0 {
		m.expired.WithLabelValues("holder").Add(float64(r.expHolders))
	}
	if r.expTickets > 0 {
		m.expired.WithLabelValues("ticket").Add(float64(r.expTickets))
	}
}
