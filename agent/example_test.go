package agent_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/ironfleet/ironfleet/agent"
)

func ExampleParseCmdline() {
	p, err := agent.ParseCmdline("console=ttyS0 ironfleet.api_url=http://10.0.2.2:6385 ironfleet.ip=10.0.2.15/24 ironfleet.gateway=10.0.2.2")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(p.APIURL, p.IP, p.Gateway)
	// Output: http://10.0.2.2:6385 10.0.2.15/24 10.0.2.2
}

// The conductor's side: a client of one agent's command API, here served
// by a CommandServer whose inventory comes from a fixture tree.
func ExampleClient() {
	cs := agent.NewCommandServer(nil, agent.CommandConfig{
		Inventory: func(context.Context) (agent.Inventory, error) { return agent.ReadInventory("testdata/host1") },
	})
	cs.SetToken("token-from-the-lookup")
	srv := httptest.NewServer(cs)
	defer func() { srv.Close(); cs.Close() }()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := agent.NewClient(srv.URL, "token-from-the-lookup", agent.ClientConfig{HTTPClient: srv.Client()})
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
	// Output:
	// /dev/nvme0n1 894 GiB S4EWNX0R123456
	// /dev/sda 447 GiB naa.55cd2e415123abcd
	// /dev/vda 20 GiB ironfleet-disk0
}
