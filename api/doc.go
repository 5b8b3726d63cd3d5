// Package api is ironfleet's HTTP surface: the Ironic-compatible REST API on
// Gin, the agent endpoints, health and metrics. No other package serves HTTP
// for operators.
package api
