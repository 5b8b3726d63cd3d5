// Package transport owns everything that crosses the network between the
// api, the conductors and event subscribers: the NATS JetStream task bus,
// the event stream and the node inventory, plus the embedded NATS server
// that `ironfleet dev` runs in-process.
package transport
