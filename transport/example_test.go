package transport_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// A task published by the API and run by a conductor of the default group.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir, _ := os.MkdirTemp("", "example-")
	defer os.RemoveAll(dir)
	srv, err := transport.StartEmbedded(ctx, transport.EmbeddedConfig{StoreDir: dir})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Shutdown()
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()
	bus, err := transport.NewBus(ctx, nc, transport.BusConfig{})
	if err != nil {
		fmt.Println(err)
		return
	}

	seq, err := bus.Publish(ctx, wire.Task{Version: wire.TaskVersion, ID: "task-1", Node: "node-1", Op: wire.OpPower, Params: []byte(`{"target":"power on"}`)})
	fmt.Println("api: published at sequence", seq, err)
	again, _ := bus.Publish(ctx, wire.Task{Version: wire.TaskVersion, ID: "task-1", Node: "node-1", Op: wire.OpPower})
	fmt.Println("api: republished, deduplicated to sequence", again)

	done := make(chan struct{})
	cctx, stop := context.WithCancel(ctx)
	stopped := make(chan error, 1)
	go func() {
		stopped <- bus.Consume(cctx, "", func(_ context.Context, t wire.Task, d transport.Delivery) transport.Outcome {
			fmt.Printf("conductor: op=%s node=%s delivery=%d\n", t.Op, t.Node, d.NumDelivered)
			close(done)
			return transport.Done()
		}, transport.ConsumeConfig{})
	}()

	<-done
	stop()
	fmt.Println("conductor stopped:", <-stopped)
	// Output:
	// api: published at sequence 1 <nil>
	// api: republished, deduplicated to sequence 1
	// conductor: op=power node=node-1 delivery=1
	// conductor stopped: <nil>
}
