package protocol_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/ironfleet/ironfleet/agent"
	"github.com/ironfleet/ironfleet/agent/protocol"
)

// The conductor's side: a client of one agent's command API, here served
// by the real agent's CommandServer.
func ExampleClient() {
	cs := agent.NewCommandServer(nil, agent.CommandConfig{
		Inventory: func(context.Context) (protocol.Inventory, error) {
			return protocol.Inventory{Disks: []protocol.Disk{
				{Name: "nvme0n1", Path: "/dev/nvme0n1", SizeBytes: 894 << 30, Serial: "S4EWNX0R123456"},
				{Name: "sda", Path: "/dev/sda", SizeBytes: 447 << 30, Serial: "naa.55cd2e415123abcd", Rotational: true},
			}}, nil
		},
	})
	cs.SetToken("token-from-the-lookup")
	srv := httptest.NewServer(cs)
	defer func() { srv.Close(); cs.Close() }()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := protocol.NewClient(srv.URL, "token-from-the-lookup", protocol.ClientConfig{HTTPClient: srv.Client()})
	if err != nil {
		fmt.Println(err)
		return
	}
	inv, err := c.Inventory(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, d := range inv.Disks {
		fmt.Printf("%s %d GiB %s\n", d.Path, d.SizeBytes>>30, d.Serial)
	}
	// Wrong token: the agent answers 401, the client returns ErrUnauthorized.
	other, _ := protocol.NewClient(srv.URL, "a-stale-token", protocol.ClientConfig{HTTPClient: srv.Client()})
	_, err = other.Inventory(ctx)
	fmt.Println(err)
	// Output:
	// /dev/nvme0n1 894 GiB S4EWNX0R123456
	// /dev/sda 447 GiB naa.55cd2e415123abcd
	// agent: unauthorized: GET /v1/inventory: missing or wrong agent token
}
