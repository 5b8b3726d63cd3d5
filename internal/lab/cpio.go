package lab

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
)

// CPIOWriter writes a cpio archive in the "newc" format (SVR4 without
// checksums), the one the Linux kernel unpacks as an initramfs. The standard
// library has no cpio; the format is a 110-byte ASCII header per entry, the
// NUL-terminated name and the data, each padded to 4 bytes, and a final
// "TRAILER!!!" entry.
//
// Entries are written as they come: a directory must be added before the
// files in it (the kernel does not create parents).
type CPIOWriter struct {
	w     io.Writer
	ino   uint32
	seen  map[string]bool
	n     int64
	err   error
	close bool
	rdev  [2]uint32
}

// NewCPIOWriter returns a writer of a newc archive to w.
func NewCPIOWriter(w io.Writer) *CPIOWriter {
	return &CPIOWriter{w: w, ino: 300000, seen: map[string]bool{}}
}

// ErrCPIOName is returned for an empty, absolute or ".."-containing entry
// name, or one added twice.
var ErrCPIOName = errors.New("lab: bad cpio entry name")

// Mkdir adds a directory with mode perm.
func (c *CPIOWriter) Mkdir(name string, perm fs.FileMode) error {
	return c.entry(name, 0o040000|uint32(perm.Perm()), nil)
}

// File adds a regular file with mode perm and contents data.
func (c *CPIOWriter) File(name string, perm fs.FileMode, data []byte) error {
	return c.entry(name, 0o100000|uint32(perm.Perm()), data)
}

// Symlink adds a symbolic link name pointing at target.
func (c *CPIOWriter) Symlink(name, target string) error {
	return c.entry(name, 0o120777, []byte(target))
}

// CharDev adds a character device node (e.g. console, 5:1), which an
// initramfs needs so that init has a console before devtmpfs is mounted.
func (c *CPIOWriter) CharDev(name string, perm fs.FileMode, major, minor uint32) error {
	c.rdev = [2]uint32{major, minor}
	defer func() { c.rdev = [2]uint32{} }()
	return c.entry(name, 0o020000|uint32(perm.Perm()), nil)
}

// Close writes the trailer. It does not close the underlying writer.
func (c *CPIOWriter) Close() error {
	if c.close {
		return c.err
	}
	c.close = true
	c.header("TRAILER!!!", 0, 0, 0)
	return c.err
}

func (c *CPIOWriter) entry(name string, mode uint32, data []byte) error {
	if c.close {
		return errors.New("lab: cpio writer is closed")
	}
	clean := path.Clean(name)
	if name == "" || path.IsAbs(name) || clean != name || clean == "." || strings.HasPrefix(clean, "../") || clean == ".." || c.seen[clean] {
		return fmt.Errorf("%w: %q", ErrCPIOName, name)
	}
	if len(data) > 0xffffffff {
		return fmt.Errorf("lab: cpio entry %q is larger than 4 GiB", name)
	}
	c.seen[clean] = true
	c.ino++
	c.header(clean, mode, uint32(len(data)), c.ino) //nolint:gosec // checked against 4 GiB above
	c.write(data)
	c.pad()
	return c.err
}

func (c *CPIOWriter) header(name string, mode, size, ino uint32) {
	nlink := uint32(1)
	if mode&0o170000 == 0o040000 {
		nlink = 2
	}
	// magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
	// devminor, rdevmajor, rdevminor, namesize, check.
	h := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, mode, 0, 0, nlink, 0, size, 0, 0, c.rdev[0], c.rdev[1], len(name)+1, 0)
	c.write([]byte(h))
	c.write([]byte(name))
	c.write([]byte{0})
	c.pad()
}

func (c *CPIOWriter) write(b []byte) {
	if c.err != nil || len(b) == 0 {
		return
	}
	n, err := c.w.Write(b)
	c.n += int64(n)
	c.err = err
}

func (c *CPIOWriter) pad() {
	if r := c.n % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}
