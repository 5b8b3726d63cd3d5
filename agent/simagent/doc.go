// Package simagent runs simulated agents in this process, so that
// `ironfleet dev`, `ironfleet sim`, the labs and the benchmarks drive
// hundreds of simulated machines as the conductor drives real ones.
//
// A Fleet boots one agent per Node that PXE-booted its ramdisk. Each is the
// real agent of package agent, with its lookup, heartbeats and command
// server, behind one HTTP listener shared by the fleet that routes
// /agents/<name>/… to the command API of node <name>; its disk is a file
// <Dir>/<name>.img and its power is the node's agent.Machine. The agents
// speak package agent/protocol to the conductor, as real ones do.
//
// Booting a node again replaces its agent, which gets a new token. A
// Machine is called from an agent goroutine and must not wait for that
// agent to stop: Agent.Shutdown only cancels, Done says when it is over.
package simagent
