package api

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

var descNodes = prometheus.NewDesc("ironfleet_api_nodes",
	"Nodes in the API's cache, by provision state and maintenance.", []string{"provision_state", "maintenance"}, nil)

// nodeCollector counts the cached nodes per provision state at scrape
// time (the dashboard's node-state panel). It reads the cache only: no
// store round trip per scrape.
type nodeCollector struct{ s *Server }

func (n *nodeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descNodes }

func (n *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	type key struct {
		state       wire.ProvisionState
		maintenance bool
	}
	counts := map[key]int{}
	q := transport.NodeQuery{SortKey: "uuid"}
	for {
		page, err := n.s.deps.Nodes.List(q)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(descNodes, err)
			return
		}
		for _, node := range page {
			counts[key{node.ProvisionState, node.Maintenance}]++
		}
		if len(page) == 0 || len(page) < transport.MaxLimit {
			break
		}
		q.Marker = page[len(page)-1].UUID
	}
	for k, c := range counts {
		m := "false"
		if k.maintenance {
			m = "true"
		}
		ch <- prometheus.MustNewConstMetric(descNodes, prometheus.GaugeValue, float64(c), string(k.state), m)
	}
}
