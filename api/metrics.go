package api

import (
	"cmp"
	"context"
	"slices"
	"strconv"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ironfleet/ironfleet/lock"
)

func itoa(n int) string { return strconv.Itoa(n) }

// metrics are the API's own metrics; the lock-queue gauges are computed at
// scrape time by lockCollector.
type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	tasks    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, s *Server) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ironfleet", Subsystem: "api", Name: "requests_total",
			Help: "HTTP requests answered, by method, route and status.",
		}, []string{"method", "route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "ironfleet", Subsystem: "api", Name: "request_duration_seconds",
			Help:    "Time to answer HTTP requests, by method and route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"method", "route"}),
		tasks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ironfleet", Subsystem: "api", Name: "tasks_published_total",
			Help: "Tasks the API published, by operation.",
		}, []string{"op"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.latency, m.tasks, &lockCollector{s: s}, &nodeCollector{s: s}} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (s *Server) serveMetrics(c *gin.Context) {
	promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{ErrorLog: nil}).ServeHTTP(c.Writer, c.Request)
}

var (
	descLineLength = prometheus.NewDesc("ironfleet_lock_line_length",
		"Waiters in line for a node's lock, for the busiest nodes.", []string{"node"}, nil)
	descLongestWait = prometheus.NewDesc("ironfleet_lock_longest_wait_seconds",
		"How long the first waiter in a node's line has waited, for the busiest nodes.", []string{"node"}, nil)
	descWaiters = prometheus.NewDesc("ironfleet_lock_waiters",
		"Waiters in every node lock's line.", nil, nil)
	descHeld = prometheus.NewDesc("ironfleet_lock_held",
		"Node locks held.", nil, nil)
	descUp = prometheus.NewDesc("ironfleet_lock_view_up",
		"1 when the lock view could be read at this scrape, 0 when Redis did not answer.", nil, nil)
)

// lockCollector computes the lock-queue gauges from one lock Summary at
// scrape time, bounded by Config.LockViewTimeout.
type lockCollector struct{ s *Server }

func (l *lockCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLineLength, descLongestWait, descWaiters, descHeld, descUp} {
		ch <- d
	}
}

func (l *lockCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), l.s.cfg.LockViewTimeout)
	defer cancel()
	snaps, err := l.s.deps.Locks.Summary(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 1)
	waiters, held := 0, 0
	for _, sn := range snaps {
		waiters += len(sn.Line)
		if sn.Held {
			held++
		}
	}
	ch <- prometheus.MustNewConstMetric(descWaiters, prometheus.GaugeValue, float64(waiters))
	ch <- prometheus.MustNewConstMetric(descHeld, prometheus.GaugeValue, float64(held))
	slices.SortStableFunc(snaps, func(a, b lock.Snapshot) int {
		if d := len(b.Line) - len(a.Line); d != 0 {
			return d
		}
		return cmp.Compare(b.LongestWait(), a.LongestWait())
	})
	for _, sn := range snaps[:min(len(snaps), l.s.cfg.BusiestLocks)] {
		ch <- prometheus.MustNewConstMetric(descLineLength, prometheus.GaugeValue, float64(len(sn.Line)), sn.Resource)
		ch <- prometheus.MustNewConstMetric(descLongestWait, prometheus.GaugeValue, sn.LongestWait().Seconds(), sn.Resource)
	}
}
