// Package pxe network-boots machines: a read-only TFTP server of one
// directory tree (Server, on github.com/pin/tftp/v3), and the per-node boot
// configs written into that tree while a deploy, clean or inspection is
// under way (Configs, which implements the conductor's Boot interface).
//
// Layout of the TFTP root:
//
//	boot.ipxe                          static; chains nodes/${mac:hexhyp}.ipxe, else exits to the disk
//	nodes/aa-bb-cc-dd-ee-ff.ipxe       per NIC, while the node is being deployed or cleaned
//	pxelinux.cfg/01-aa-bb-cc-dd-ee-ff  the same for PXELINUX firmware
//	agent/…                            kernel and ramdisk, put there by the operator
//	undionly.kpxe, snponly.efi, ipxe.efi  iPXE for BIOS and UEFI firmware (Config.IPXEDir)
//
// The chain, per boot mode: the firmware's PXE fetches iPXE over TFTP as
// the DHCP server names it by client architecture (legacy BIOS:
// undionly.kpxe; UEFI: snponly.efi, iPXE's EFI build), iPXE fetches
// boot.ipxe, which chains the NIC's script; that script is the same for
// both builds, and names the node's boot mode (wire.NodeBootMode). NICs
// whose option ROM is iPXE already (QEMU's) skip the first step.
//
// Machines are told apart by MAC, never by source address: behind QEMU's
// user networking, every guest arrives from 127.0.0.1. The kernel command
// line carries what the agent needs (wire.KernelArgAPIURL, …, BOOTIF).
//
// The server sets the transfer size (tsize) for every file and offers
// blocks of up to 1468 bytes; a client that vanishes mid-transfer costs one
// goroutine for Retries×(Timeout+Backoff) and nothing else.
package pxe
