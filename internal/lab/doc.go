// Package lab is ironfleet's hardware lab: the parts that let a test deploy
// a real, emulated machine over IPMI and PXE on one host (design notes and
// every quirk: ../shared/design/lab.md; run it with `make e2e`).
//
//   - FetchKernel: Debian's kernel package downloaded (apt-get download) and
//     unpacked (dpkg-deb -x), never installed, into a cache reused across
//     runs; ResolveModules finds the virtio modules and what they depend on
//     from their .modinfo and renders the modules.dep the package lacks.
//   - Ramdisk: an initramfs written by our own newc cpio writer (CPIOWriter)
//     and gzip — a static /init (the agent, cmd/ironfleet-agent), a console
//     node, the modules. The agent brings the machine up itself
//     (agent.BringUp) from ironfleet.* kernel arguments.
//   - Image: the instance image a deploy writes, bootable by BIOS and UEFI
//     alike: an MBR (SYSLINUX's mbr.bin) with one active EFI system
//     partition holding SYSLINUX (BIOS), EFI/BOOT/BOOTX64.EFI (SYSLINUX's
//     EFI build), the kernel and an initramfs whose /init (./labinit)
//     mounts the config drive (the ISO 9660 volume labelled config-2),
//     prints InstanceMarker on the serial console and reports the user
//     data and meta_data's uuid to the host. Built with mkfs.vfat,
//     syslinux --install, mmd and mcopy: no loop mounts, no root.
//   - Machine: a QEMU VM (TCG) with a blank virtio disk (and more, with
//     serial numbers, on request), SeaBIOS or OVMF (UEFI; SetFirmware
//     switches between power-ons) and a virtio NIC whose iPXE ROM (BIOS
//     or EFI build) PXE-boots on QEMU's user network (the host is
//     10.0.2.2 to the guest), started and
//     stopped by a chassis_control program for ipmi_sim
//     (ipmitest.WithChassisProgram). The program answers at once and starts
//     QEMU daemonized with a pidfile, as single-threaded ipmi_sim needs; it
//     honours IPMI's next-boot semantics (a "pxe" boot device is used once,
//     then the disk) and logs what it was told with timestamps.
//   - Timeline: the milestones of a run, printed relative to power-on.
//
// The end-to-end tests (build tag e2e) use these with the real API,
// `ironfleet conductor`, NATS, Redis and ipmi_sim; they skip when a tool is
// missing only outside CI (CI=true fails), and kill every VM they started.
package lab
