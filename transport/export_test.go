package transport

import "github.com/nats-io/nats.go/jetstream"

// WrapNodesBucket replaces the nodes bucket the inventory reads and writes
// (not the one its cache watches) with wrap's result: fault injection
// around the real bucket. Call it before using the inventory.
func WrapNodesBucket(inv *Inventory, wrap func(jetstream.KeyValue) jetstream.KeyValue) {
	inv.nodes = wrap(inv.nodes)
}
