package main

import (
	"github.com/spf13/cobra"

	"github.com/ironfleet/ironfleet/cmd/internal/agentcmd"
)

// newAgentCmd is `ironfleet agent`: the on-node agent, also built alone as
// the smaller ironfleet-agent for the ramdisk.
func newAgentCmd() *cobra.Command { return agentcmd.New("agent") }
