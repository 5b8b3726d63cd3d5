package agent

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/ironfleet/ironfleet/agent/protocol"
)

// headSize is how much of an image is looked at to tell its format: far
// enough for an ISO 9660 volume descriptor (at 32 KiB).
const headSize = 64 << 10

// qcow2Magic starts every qcow2 image ("QFI\xfb").
const qcow2Magic = "QFI\xfb"

// signatures of image formats the agent refuses, as qemu's block drivers
// and ironic-python-agent's format_inspector recognise them.
var signatures = []struct {
	format string
	off    int
	magic  string
}{
	{"vmdk", 0, "KDMV"},
	{"vmdk", 0, "# Disk DescriptorFile"},
	{"vhdx", 0, "vhdxfile"},
	{"vhd", 0, "conectix"},
	{"vdi", 0x40, "\x7f\x10\xda\xbe"},
	{"ploop", 0, "WithoutFreeSpace"},
	{"ploop", 0, "WithouFreSpacExt"},
	{"luks", 0, "LUKS\xba\xbe"},
	{"iso", 0x8001, "CD001"},
}

// detectFormat names the format of an image from its first bytes: qcow2,
// one of signatures, or raw.
func detectFormat(head []byte) string {
	if bytes.HasPrefix(head, []byte(qcow2Magic)) {
		return protocol.DiskFormatQcow2
	}
	for _, s := range signatures {
		if len(head) >= s.off+len(s.magic) && string(head[s.off:s.off+len(s.magic)]) == s.magic {
			return s.format
		}
	}
	return protocol.DiskFormatRaw
}

// imageFormat decides how to write an image declared as declared (an
// instance_info image_disk_format, "" when absent) whose first bytes are
// head, as ironic-python-agent's disk_utils.get_and_validate_image_format:
// an image declared raw is written as it is, uninspected (never converting
// what claims to be raw keeps a raw image's guest from smuggling a qcow2
// header that points at the agent's files); otherwise the detected format
// must be raw or qcow2 and agree with the declared one.
func imageFormat(declared string, head []byte) (string, error) {
	if declared == protocol.DiskFormatRaw {
		return declared, nil
	}
	got := detectFormat(head)
	switch {
	case got != protocol.DiskFormatRaw && got != protocol.DiskFormatQcow2:
		return "", fmt.Errorf("%w: the image is %s; only raw and qcow2 images can be written", protocol.ErrInvalidImage, got)
	case declared != "" && declared != got:
		return "", fmt.Errorf("%w: image_disk_format is %s but the image is %s", protocol.ErrInvalidImage, declared, got)
	}
	return got, nil
}

// validDiskFormat checks a declared format before anything is downloaded.
func validDiskFormat(f string) error {
	switch f {
	case "", protocol.DiskFormatRaw, protocol.DiskFormatQcow2:
		return nil
	}
	return fmt.Errorf("%w: disk_format %q: only raw and qcow2 images can be written", protocol.ErrInvalidParams, f)
}

// diskWriter writes an image's bytes to its target, skipping zeros where
// the target already reads as zeros.
type diskWriter struct {
	f *os.File
	// zeroed: the target reads as zeros wherever nothing was written (a
	// regular file truncated to nothing): zero blocks are seeked over, and
	// finish sets the file's length. A block device keeps its old data
	// wherever nothing is written, so its zeros are written.
	zeroed bool
	// limit is the target's capacity; 0 means unbounded.
	limit int64
	pr    *progress
	end   int64 // the end of what was written or skipped
	zero  []byte
	err   error // the target's write error, if any
}

func newDiskWriter(f *os.File, zeroed bool, limit int64, pr *progress) *diskWriter {
	return &diskWriter{f: f, zeroed: zeroed, limit: limit, pr: pr, zero: make([]byte, copyBuffer)}
}

// copyBuffer is the size of the agent's image copy buffers.
const copyBuffer = 1 << 20

// writeAt writes p at off (sequentially: off is where the last call ended).
func (d *diskWriter) writeAt(p []byte, off int64) error {
	if err := d.fits(off + int64(len(p))); err != nil {
		return err
	}
	if !d.zeroed || !isZero(p, d.zero) {
		if _, err := d.f.WriteAt(p, off); err != nil {
			d.err = err
			return err
		}
	}
	d.advance(off + int64(len(p)))
	return nil
}

// zeroAt makes n bytes at off read as zeros.
func (d *diskWriter) zeroAt(off, n int64) error {
	if err := d.fits(off + n); err != nil {
		return err
	}
	if d.zeroed {
		d.advance(off + n)
		return nil
	}
	for n > 0 {
		k := min(n, int64(len(d.zero)))
		if _, err := d.f.WriteAt(d.zero[:k], off); err != nil {
			d.err = err
			return err
		}
		off, n = off+k, n-k
		d.advance(off)
	}
	return nil
}

func (d *diskWriter) fits(end int64) error {
	if d.limit > 0 && end > d.limit {
		return fmt.Errorf("%w: %s holds %d bytes, the image is larger", protocol.ErrTargetTooSmall, d.f.Name(), d.limit)
	}
	return nil
}

func (d *diskWriter) advance(end int64) {
	d.end = max(d.end, end)
	d.pr.done.Store(d.end)
}

// finish gives a zeroed file target its length (a trailing run of zeros
// was only seeked over).
func (d *diskWriter) finish() error {
	if !d.zeroed {
		return nil
	}
	if fi, err := d.f.Stat(); err != nil {
		return err
	} else if fi.Size() < d.end {
		return d.f.Truncate(d.end)
	}
	return nil
}

// isZero reports whether p is all zeros; zero is at least as long as p.
func isZero(p, zero []byte) bool { return bytes.Equal(p, zero[:len(p)]) }

// writeRaw copies a raw image from r to d until r ends with io.EOF; any
// other error of r's (net/http's io.ErrUnexpectedEOF for a body cut short)
// is returned as it is.
func writeRaw(r io.Reader, d *diskWriter) (int64, error) {
	buf := make([]byte, copyBuffer)
	var off int64
	for {
		n, err := fill(r, buf)
		if n > 0 {
			if werr := d.writeAt(buf[:n], off); werr != nil {
				return off, werr
			}
			off += int64(n)
		}
		if errors.Is(err, io.EOF) {
			return off, nil
		}
		if err != nil {
			return off, err
		}
	}
}

// fill reads into buf until it is full or r fails; unlike io.ReadFull it
// keeps r's own error, so that a clean end is told from a cut one.
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		k, err := r.Read(buf[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// qcow2Header is the start of a qcow2 header: enough to refuse a backing
// file before the library sees the image.
type qcow2Header struct {
	Magic             [4]byte
	Version           uint32
	BackingFileOffset uint64
	BackingFileSize   uint32
}

// refuseBackingFile fails a qcow2 image that names a backing file: the
// agent has nothing to read it from, and go-qcow2reader would open it
// as a path on the agent's own filesystem.
func refuseBackingFile(head []byte) error {
	var h qcow2Header
	if err := binary.Read(bytes.NewReader(head), binary.BigEndian, &h); err != nil {
		return fmt.Errorf("%w: qcow2 header: %w", protocol.ErrInvalidImage, err)
	}
	if h.BackingFileOffset == 0 {
		return nil
	}
	name := "?"
	if end := h.BackingFileOffset + uint64(h.BackingFileSize); h.BackingFileSize <= 1023 && end <= uint64(len(head)) {
		name = string(head[h.BackingFileOffset:end])
	}
	return fmt.Errorf("%w: the qcow2 image has a backing file (%q); only self-contained images can be written", protocol.ErrInvalidImage, name)
}
