// Package agent is the on-node agent, the conductor's hands on a machine
// booted into the deploy ramdisk, and its simulated twin.
//
// The real agent (Agent, with HostMachine) finds its MACs (MACs), looks its
// node up at the API with backoff, heartbeats with the one-time agent token
// it got, and serves the command API (CommandServer): hardware inventory
// (ReadInventory), write_image, erase_disk, power_off and reboot, one
// command at a time, run asynchronously with a status the conductor polls.
// The command API's bodies, codes and the conductor's client of it are
// package agent/protocol.
//
// The simulated agent (Fleet) is the same code behind one shared listener,
// with files for disks and a Machine for power, cheap enough for hundreds
// of nodes in one process.
//
// The protocols are described in README.md next to this file.
package agent
