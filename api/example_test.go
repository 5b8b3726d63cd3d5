package api_test

import (
	"context"
	"log"
	"net"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"

	"github.com/ironfleet/ironfleet/api"
	"github.com/ironfleet/ironfleet/conductor"
	"github.com/ironfleet/ironfleet/lock"
	"github.com/ironfleet/ironfleet/transport"
)

// ExampleNew wires the API to the real parts: the task bus, the inventory
// and the registry on NATS, the node lock on Redis, and the drivers that
// validate driver_info. (Not run: it needs servers.)
func ExampleNew() {
	ctx := context.Background()
	nc, err := nats.Connect(nats.DefaultURL)
	if err != nil {
		log.Fatal(err)
	}
	bus, err := transport.NewBus(ctx, nc, transport.BusConfig{})
	if err != nil {
		log.Fatal(err)
	}
	inv, err := transport.NewInventory(ctx, bus.JetStream(), transport.InventoryConfig{})
	if err != nil {
		log.Fatal(err)
	}
	defer inv.Close()
	reg, err := transport.NewRegistry(ctx, bus.JetStream(), transport.RegistryConfig{})
	if err != nil {
		log.Fatal(err)
	}
	rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", ContextTimeoutEnabled: true})
	locker, err := lock.New(ctx, rc, lock.Config{Holder: api.LockHolder("host-1")})
	if err != nil {
		log.Fatal(err)
	}
	defer locker.Close()
	var drivers conductor.Drivers // ipmi and sim, as cmd/ironfleet's apiDrivers builds them
	srv, err := api.New(api.Deps{
		Nodes: inv, Ports: inv, Records: inv, Tasks: bus, Locks: locker, Conductors: reg,
		Drivers: drivers, DriverNames: []string{"ipmi", "sim"},
	}, api.Config{Auth: api.AuthHTTPBasic, HTPasswd: "/etc/ironfleet/htpasswd"})
	if err != nil {
		log.Fatal(err)
	}
	l, err := net.Listen("tcp", "0.0.0.0:6385")
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(srv.Serve(ctx, l))
}
