package lab

import (
	"context"
	"crypto/sha256"
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

// Image is the instance image a deploy writes: a FAT "superfloppy" (no
// partition table) with SYSLINUX in its boot sector, Debian's kernel and a
// small initramfs whose /init (labinit) prints InstanceMarker and reports
// to the host.
type Image struct {
	// Kernel boots the image; its virtio modules go into the initramfs.
	Kernel  Kernel
	Modules ModuleSet
	// Init is the static labinit binary.
	Init string
	// Append is the kernel command line (console=ttyS0, ironfleet.ip=…,
	// lab.report=<url>).
	Append string
	// SizeMiB is the image size; zero means 16.
	SizeMiB int
}

// Build writes the image to out with mkfs.vfat, syslinux --install and
// mcopy (no loop mounts, no root) and returns its sha256 in hex.
func (im Image) Build(ctx context.Context, out string) (string, error) {
	if im.SizeMiB <= 0 {
		im.SizeMiB = 16
	}
	if strings.ContainsAny(im.Append, "\n") {
		return "", fmt.Errorf("lab: image kernel command line has a line break")
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
	cfg := filepath.Join(dir, "syslinux.cfg")
	if err := os.WriteFile(cfg, []byte("SERIAL 0 115200\nDEFAULT instance\nPROMPT 0\nTIMEOUT 0\nLABEL instance\n  KERNEL vmlinuz\n  APPEND initrd=initrd.gz "+im.Append+"\n"), 0o600); err != nil {
		return "", err
	}
	_ = os.Remove(out)
	run := func(name string, args ...string) error {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("lab: %s %s: %w\n%s", name, strings.Join(args, " "), err, b)
		}
		return nil
	}
	if err := run("mkfs.vfat", "-n", "IRONFLEET", "-C", out, fmt.Sprint(im.SizeMiB*1024)); err != nil {
		return "", err
	}
	if err := run("syslinux", "--install", out); err != nil {
		return "", err
	}
	for src, dst := range map[string]string{im.Kernel.Vmlinuz: "::vmlinuz", initrd: "::initrd.gz", cfg: "::syslinux.cfg"} {
		if err := run("mcopy", "-i", out, src, dst); err != nil {
			return "", err
		}
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
