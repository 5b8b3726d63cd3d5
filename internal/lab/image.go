package lab

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// InstanceMarker is what the instance image prints on the serial console
// when it has booted (labinit.Marker).
const InstanceMarker = "IRONFLEET-LAB-INSTANCE-UP"

// Image is the instance image a deploy writes, bootable by legacy BIOS and
// by UEFI firmware alike, as a cloud image is: an MBR with one active
// partition of type EF (EFI system partition), holding a FAT file system
// with
//
//   - SYSLINUX in its boot sector and ldlinux.sys (BIOS: SYSLINUX's mbr.bin
//     in the MBR boots the active partition),
//   - EFI/BOOT/BOOTX64.EFI, SYSLINUX's EFI build, the path UEFI firmware
//     boots from a disk without boot entries (OVMF),
//   - one syslinux.cfg (beside each loader) naming Debian's kernel and a
//     small initramfs whose /init (labinit) prints InstanceMarker and
//     reports to the host.
//
// The partition table leaves the rest of the target disk free for the
// config drive partition the agent adds after the image's.
type Image struct {
	// Kernel boots the image; its virtio modules go into the initramfs.
	Kernel  Kernel
	Modules ModuleSet
	// Init is the static labinit binary.
	Init string
	// Append is the kernel command line (console=ttyS0, ironfleet.ip=…,
	// lab.report=<url>).
	Append string
	// SizeMiB is the image size; zero means 24.
	SizeMiB int
}

// Where Debian's syslinux, syslinux-common and syslinux-efi put the loaders
// Image.Build uses.
const (
	syslinuxMBR        = "/usr/lib/syslinux/mbr/mbr.bin"
	syslinuxEFI        = "/usr/lib/SYSLINUX.EFI/efi64/syslinux.efi"
	syslinuxEFILdlinux = "/usr/lib/syslinux/modules/efi64/ldlinux.e64"
)

// imagePartStart is the partition's first sector: 1 MiB, as partitioning
// tools align.
const imagePartStart = 2048

// Build writes the image to out with mkfs.vfat, syslinux --install, mmd and
// mcopy on a file (no loop mounts, no root) and returns its sha256 in hex.
func (im Image) Build(ctx context.Context, out string) (string, error) {
	if im.SizeMiB <= 0 {
		im.SizeMiB = 24
	}
	if strings.ContainsAny(im.Append, "\n") {
		return "", fmt.Errorf("lab: image kernel command line has a line break")
	}
	mbrCode, err := os.ReadFile(syslinuxMBR)
	if err != nil {
		return "", fmt.Errorf("lab: SYSLINUX's MBR (Debian: syslinux-common): %w", err)
	}
	if len(mbrCode) > 440 {
		return "", fmt.Errorf("lab: %s is %d bytes, more than an MBR's 440 of boot code", syslinuxMBR, len(mbrCode))
	}
	for _, f := range []string{syslinuxEFI, syslinuxEFILdlinux} {
		if _, err := os.Stat(f); err != nil {
			return "", fmt.Errorf("lab: SYSLINUX's EFI loader (Debian: syslinux-efi): %w", err)
		}
	}
	dir, err := os.MkdirTemp(filepath.Dir(out), ".image-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	initrd := filepath.Join(dir, "initrd.gz")
	if err := (Ramdisk{Init: im.Init, Kernel: im.Kernel, Modules: im.Modules}).Build(initrd); err != nil {
		return "", err
	}
	// Absolute paths: SYSLINUX's EFI build resolves relative ones against
	// its own directory, EFI/BOOT.
	cfg := filepath.Join(dir, "syslinux.cfg")
	if err := os.WriteFile(cfg, []byte("SERIAL 0 115200\nDEFAULT instance\nPROMPT 0\nTIMEOUT 0\nLABEL instance\n  KERNEL /vmlinuz\n  APPEND initrd=/initrd.gz "+im.Append+"\n"), 0o600); err != nil {
		return "", err
	}
	run := func(name string, args ...string) error {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("lab: %s %s: %w\n%s", name, strings.Join(args, " "), err, b)
		}
		return nil
	}
	// The file system alone, then put in place after the MBR: its boot
	// sector counts the sectors before it (hidden sectors), as SYSLINUX's
	// boot sector needs to find ldlinux.sys on the disk.
	part := filepath.Join(dir, "part.img")
	partSectors := int64(im.SizeMiB)<<11 - imagePartStart
	if err := run("mkfs.vfat", "-n", "IRONFLEET", "-h", fmt.Sprint(imagePartStart), "-C", part, fmt.Sprint(partSectors/2)); err != nil {
		return "", err
	}
	if err := run("syslinux", "--install", part); err != nil {
		return "", err
	}
	if err := run("mmd", "-i", part, "::EFI", "::EFI/BOOT"); err != nil {
		return "", err
	}
	for _, c := range [][2]string{
		{im.Kernel.Vmlinuz, "::vmlinuz"}, {initrd, "::initrd.gz"}, {cfg, "::syslinux.cfg"},
		{syslinuxEFI, "::EFI/BOOT/BOOTX64.EFI"}, {syslinuxEFILdlinux, "::EFI/BOOT/ldlinux.e64"}, {cfg, "::EFI/BOOT/syslinux.cfg"},
	} {
		if err := run("mcopy", "-i", part, c[0], c[1]); err != nil {
			return "", err
		}
	}
	fs, err := os.ReadFile(part) //nolint:gosec // our own build output
	if err != nil {
		return "", err
	}
	img := make([]byte, int64(im.SizeMiB)<<20)
	copy(img, mbrCode)
	// The one partition entry (offset 446): active, CHS unused (0xfeffff,
	// as for LBA-only disks), type EF (EFI system), LBA start and length.
	e := img[446:462]
	copy(e, []byte{0x80, 0xfe, 0xff, 0xff, 0xef, 0xfe, 0xff, 0xff})
	binary.LittleEndian.PutUint32(e[8:], imagePartStart)
	binary.LittleEndian.PutUint32(e[12:], uint32(partSectors)) //nolint:gosec // a lab image is far below 2 TiB
	img[510], img[511] = 0x55, 0xaa
	copy(img[imagePartStart*512:], fs)
	if err := os.WriteFile(out, img, 0o644); err != nil { //nolint:gosec // served over HTTP: world-readable by design
		return "", err
	}
	return fileSHA256(out)
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path) //nolint:gosec // our own build output
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
