// Package protocol is the agent's command API as it crosses the wire
// between the conductor and the on-node agent, and the conductor's client
// of it.
//
// It owns the bodies of the API (Command, CommandRequest, CommandList,
// WriteImageParams and its Checksum, EraseDiskParams, Inventory and its
// parts, ErrorBody),
// the command names and statuses, the agent's string codes (a failed
// command's Code, an error answer's code) and the sentinels they map to,
// and Client, which calls one agent with its token. The agent (package
// agent) serves this API and the simulated fleet (agent/simagent) runs
// that server; the conductor imports only this package.
//
// It imports nothing of ours. The endpoints and codes are described in
// agent/README.md.
package protocol
