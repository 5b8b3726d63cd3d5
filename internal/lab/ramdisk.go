package lab

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
)

// Modules are the kernel modules a QEMU machine (virtio-net NIC,
// virtio-blk disk) needs under Debian's kernel, which builds virtio as
// modules. Their dependencies are added by ResolveModules.
var Modules = []string{"virtio_pci", "virtio_net", "virtio_blk"}

// Ramdisk describes an initramfs: a static /init, kernel modules with a
// modules.dep made for them, and any extra files.
type Ramdisk struct {
	// Init is the path of the static binary that becomes /init.
	Init string
	// Kernel and Modules: the modules (with a modules.dep) are put under
	// /lib/modules/<release>/. An empty set adds none.
	Kernel  Kernel
	Modules ModuleSet
	// Files are extra regular files by archive path ("etc/marker").
	Files map[string][]byte
}

// Build writes the ramdisk as a gzip-compressed newc cpio archive to out.
func (r Ramdisk) Build(out string) error {
	init, err := os.ReadFile(r.Init)
	if err != nil {
		return fmt.Errorf("lab: ramdisk init: %w", err)
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	cw := NewCPIOWriter(zw)
	dirs := map[string]bool{}
	mkdirs := func(p string) error {
		var chain []string
		for d := p; d != "." && d != "/" && !dirs[d]; d = path.Dir(d) {
			chain = append([]string{d}, chain...)
		}
		for _, d := range chain {
			if err := cw.Mkdir(d, 0o755); err != nil {
				return err
			}
			dirs[d] = true
		}
		return nil
	}
	for _, d := range []string{"dev", "proc", "sys", "run", "tmp"} {
		if err := mkdirs(d); err != nil {
			return err
		}
	}
	if err := cw.CharDev("dev/console", 0o600, 5, 1); err != nil {
		return err
	}
	if err := cw.File("init", 0o755, init); err != nil {
		return err
	}
	if len(r.Modules.Paths) > 0 {
		base := path.Join("lib/modules", r.Kernel.Release)
		if err := mkdirs(base); err != nil {
			return err
		}
		if err := cw.File(path.Join(base, "modules.dep"), 0o644, r.Modules.ModulesDep()); err != nil {
			return err
		}
		for _, rel := range r.Modules.Paths {
			data, err := os.ReadFile(filepath.Join(r.Kernel.Modules, filepath.FromSlash(rel)))
			if err != nil {
				return fmt.Errorf("lab: ramdisk module: %w", err)
			}
			p := path.Join(base, rel)
			if err := mkdirs(path.Dir(p)); err != nil {
				return err
			}
			if err := cw.File(p, 0o644, data); err != nil {
				return err
			}
		}
	}
	for name, data := range r.Files {
		if err := mkdirs(path.Dir(name)); err != nil {
			return err
		}
		if err := cw.File(name, 0o644, data); err != nil {
			return err
		}
	}
	if err := cw.Close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(out, buf.Bytes(), 0o644) //nolint:gosec // served over TFTP: world-readable by design
}

// BuildStatic builds the Go main package pkg (an import path of this
// module) as a static binary at out, as `make build-agent` does.
func BuildStatic(ctx context.Context, pkg, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("lab: go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}
