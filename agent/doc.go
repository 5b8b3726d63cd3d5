// Package agent is the on-node agent: it looks itself up at the API by its
// MACs, heartbeats, and serves the command API the conductor drives
// (inventory, write_image, power_off, reboot).
package agent
