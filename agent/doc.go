// Package agent is the on-node agent, the conductor's hands on a machine
// booted into the deploy ramdisk.
//
// The agent (Agent, with HostMachine) finds its MACs (MACs), looks its
// node up at the API with backoff, heartbeats with the one-time agent token
// it got, and serves the command API (CommandServer): hardware inventory
// (ReadInventory), write_image, erase_disk, power_off and reboot, one
// command at a time, run asynchronously with a status the conductor polls.
// As a ramdisk's /init it first brings the system up from its boot
// parameters (ParseCmdline; BringUp, Linux only).
//
// Two packages stand beside it. agent/protocol owns what crosses the wire
// between conductor and agent — the command API's bodies, command names,
// the agent's string codes and sentinels — and the conductor's client of
// it; the conductor imports that package, never this one.
// agent/simagent runs this same agent, many to a process, for simulated
// machines.
//
// The protocols are described in README.md next to this file.
package agent
