package agent_test

import (
	"fmt"

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
