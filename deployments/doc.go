// Package deployments holds how ironfleet runs for real — NATS cluster and
// Redis configs, systemd units, container and Kubernetes manifests,
// Prometheus and Grafana, and the local multi-process fleet of `make up`
// (local/fleet.sh) — and the tests that check them: every manifest is
// parsed, the NATS configs are loaded the way `nats-server -t` does, Redis
// is started on its config, the flags the manifests pass are checked
// against the binary, the dashboard's queries against the metrics the code
// exports, and `make up` is run with a conductor killed mid-deploy.
//
// It has no Go code of its own; see README.md.
package deployments
