package agent

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ironfleet/ironfleet/agent/protocol"
)

// validWriteImage checks write_image parameters before anything is opened
// or downloaded.
func validWriteImage(p protocol.WriteImageParams) error {
	u, err := url.Parse(p.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: url %q: want an http:// or https:// URL", protocol.ErrInvalidParams, p.URL)
	}
	if err := p.Checksum.Check(); err != nil {
		return fmt.Errorf("%w: checksum: %w", protocol.ErrInvalidParams, err)
	}
	if err := validDiskFormat(p.DiskFormat); err != nil {
		return err
	}
	if err := validTarget(p.Target); err != nil {
		return err
	}
	if p.Size < 0 {
		return fmt.Errorf("%w: size %d is negative", protocol.ErrInvalidParams, p.Size)
	}
	return validConfigDrive(p.ConfigDrive)
}

func validTarget(t string) error {
	if t == "" || !filepath.IsAbs(t) || filepath.Clean(t) != t {
		return fmt.Errorf("%w: target %q: want a clean absolute path", protocol.ErrInvalidParams, t)
	}
	return nil
}

// eraseSpan is how much erase_disk zeroes at each end of a target: enough
// for an MBR, a GPT header and its backup, and most filesystem signatures.
const eraseSpan = 1 << 20

// progress counts bytes done out of a total (0 when unknown).
type progress struct {
	done, total atomic.Int64
}

// imageWriter downloads images and writes them to targets.
type imageWriter struct {
	client *http.Client
	// stall is how long a download may go without receiving a byte
	// (including waiting for the response headers).
	stall time.Duration
	// capacity returns the size of a regular-file target, 0 meaning
	// unbounded. Block devices report their own size.
	capacity func(target string) int64
}

// writeImage streams p.URL onto p.Target, never holding the image in
// memory: a raw image byte for byte, a qcow2 image converted as it
// downloads (writeQcow2), zeros seeked over where the target reads as
// zeros already. Every byte of the file as downloaded goes through the
// checksum's hash, which is verified, and the target synced, before the
// command succeeds; then p.ConfigDrive, if any, is written to a new
// partition at the end of the target (writeConfigDrive). On any failure
// after the target was opened, the target is wiped so it does not look
// like a valid disk.
func (w *imageWriter) writeImage(ctx context.Context, p protocol.WriteImageParams, pr *progress) (err error) {
	// The config drive and the checksum first: either one that cannot be
	// had fails the command before the disk is touched.
	var iso []byte
	if p.ConfigDrive != "" {
		if iso, err = w.configDriveISO(ctx, p.ConfigDrive); err != nil {
			return err
		}
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watchdog := time.AfterFunc(w.stall, func() { cancel(protocol.ErrDownloadStalled) })
	defer watchdog.Stop()

	algo, digest, err := w.expectedChecksum(ctx, p)
	if err != nil {
		return err
	}

	// The target next: a wrong one fails before any download, and from
	// here on every failure wipes it.
	f, capacity, err := w.openTarget(p.Target)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			if werr := wipe(f); werr != nil {
				err = errors.Join(err, fmt.Errorf("wiping %s after the failure: %w", p.Target, werr))
			} else {
				err = fmt.Errorf("%w (target %s wiped)", err, p.Target)
			}
		}
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close %s: %w", p.Target, cerr)
		}
	}()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", p.Target, err)
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL, nil)
	if err != nil {
		return fmt.Errorf("%w: %w", protocol.ErrDownload, err)
	}
	watchdog.Reset(w.stall) // the checksum file's fetch is done
	resp, err := w.client.Do(req)
	if err != nil {
		return downloadErr(ctx, "GET "+redactURL(p.URL), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: GET %s: %s", protocol.ErrDownload, redactURL(p.URL), resp.Status)
	}
	if p.Size > 0 && resp.ContentLength >= 0 && resp.ContentLength != p.Size {
		return fmt.Errorf("%w: GET %s: server sends %d bytes, expected size is %d",
			protocol.ErrDownload, redactURL(p.URL), resp.ContentLength, p.Size)
	}
	fileSize := p.Size
	if fileSize == 0 {
		fileSize = resp.ContentLength // -1: unknown
	}

	h := newHash(algo)
	body := bufio.NewReaderSize(io.TeeReader(&watchedReader{r: resp.Body, watchdog: watchdog, stall: w.stall}, h), headSize)
	head, err := body.Peek(headSize)
	if err != nil && !errors.Is(err, io.EOF) {
		return w.readErr(ctx, p, err, int64(len(head)), fileSize)
	}
	format, err := imageFormat(p.DiskFormat, head)
	if err != nil {
		return err
	}
	dst := newDiskWriter(f, fi.Mode().IsRegular(), capacity, pr)

	var n int64
	switch format {
	case protocol.DiskFormatQcow2:
		src := newStreamReaderAt(body, fileSize, w.rangeFetcher(ctx, p.URL, resp, watchdog))
		if _, err = writeQcow2(src, head, dst); err == nil {
			n, err = src.drain()
		}
		if err != nil {
			return w.copyErr(ctx, p, dst, err, src.pos, fileSize)
		}
	default:
		pr.total.Store(max(fileSize, 0))
		if capacity > 0 && fileSize > capacity {
			return fmt.Errorf("%w: image is %d bytes, %s holds %d", protocol.ErrTargetTooSmall, fileSize, p.Target, capacity)
		}
		if n, err = writeRaw(body, dst); err != nil {
			return w.copyErr(ctx, p, dst, err, n, fileSize)
		}
	}
	if fileSize >= 0 && n < fileSize {
		return fmt.Errorf("%w: GET %s: got %d bytes, expected %d", protocol.ErrImageTruncated, redactURL(p.URL), n, fileSize)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != digest {
		return fmt.Errorf("%w: got %s %s, want %s", protocol.ErrChecksumMismatch, algo, got, digest)
	}
	if err := dst.finish(); err != nil {
		return fmt.Errorf("size %s: %w", p.Target, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", p.Target, err)
	}
	if iso != nil {
		return writeConfigDrive(p.Target, capacity, iso)
	}
	return nil
}

// copyErr names a failed copy: the target's write error, or readErr.
func (w *imageWriter) copyErr(ctx context.Context, p protocol.WriteImageParams, dst *diskWriter, err error, got, size int64) error {
	if dst.err != nil {
		return fmt.Errorf("write %s: %w", p.Target, dst.err)
	}
	return w.readErr(ctx, p, err, got, size)
}

// readErr names a failed read of the image: a body cut short of its
// length is truncated; a stall or a cancellation says so; the agent's own
// errors (a qcow2 image that is not one) pass as they are.
func (w *imageWriter) readErr(ctx context.Context, p protocol.WriteImageParams, err error, got, size int64) error {
	if context.Cause(ctx) != nil {
		return downloadErr(ctx, "read "+redactURL(p.URL), err)
	}
	if protocol.CodeOf(err) != protocol.CodeIO {
		return err
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		if size > 0 {
			return fmt.Errorf("%w: GET %s: the connection ended after %d of %d bytes: %w", protocol.ErrImageTruncated, redactURL(p.URL), got, size, err)
		}
		return fmt.Errorf("%w: GET %s: the connection ended after %d bytes: %w", protocol.ErrImageTruncated, redactURL(p.URL), got, err)
	}
	return downloadErr(ctx, "read "+redactURL(p.URL), err)
}

// downloadErr names a failed download stalled when the watchdog fired and
// cancelled because the command was when the caller's context ended.
func downloadErr(ctx context.Context, what string, err error) error {
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, protocol.ErrDownloadStalled):
		return fmt.Errorf("%w: %s: no data received for the stall timeout", protocol.ErrDownloadStalled, what)
	case cause != nil:
		return fmt.Errorf("%w: %s: %w", protocol.ErrCanceled, what, cause)
	}
	return fmt.Errorf("%w: %s: %w", protocol.ErrDownload, what, err)
}

// openTarget opens a target for writing and returns its capacity (0 when
// unbounded). A regular file is truncated first; a block device is written
// in place.
//
// A missing target is created as a file, except under /dev: a disk that is
// not there must fail, not become a file in RAM that the image fills.
func (w *imageWriter) openTarget(target string) (*os.File, int64, error) {
	flags := os.O_WRONLY | os.O_CREATE
	if strings.HasPrefix(target, "/dev/") {
		flags = os.O_WRONLY
	}
	f, err := os.OpenFile(target, flags, 0o600) //nolint:gosec // the conductor names the target, authenticated by the agent token
	if err != nil {
		return nil, 0, fmt.Errorf("open target: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, 0, fmt.Errorf("stat target: %w", err)
	}
	switch mode := fi.Mode(); {
	case mode&fs.ModeDevice != 0 && mode&fs.ModeCharDevice == 0:
		size, err := f.Seek(0, io.SeekEnd)
		if err == nil {
			_, err = f.Seek(0, io.SeekStart)
		}
		if err != nil {
			_ = f.Close()
			return nil, 0, fmt.Errorf("size of block device %s: %w", target, err)
		}
		return f, size, nil
	case mode.IsRegular():
		if err := f.Truncate(0); err != nil {
			_ = f.Close()
			return nil, 0, fmt.Errorf("truncate target: %w", err)
		}
		var c int64
		if w.capacity != nil {
			c = w.capacity(target)
		}
		return f, c, nil
	default:
		_ = f.Close()
		return nil, 0, fmt.Errorf("%w: target %s is neither a block device nor a regular file", protocol.ErrInvalidParams, target)
	}
}

// wipe makes a target stop looking like a disk with an image: a regular
// file is truncated to nothing, a block device has both ends zeroed.
func wipe(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Mode().IsRegular() {
		if err := f.Truncate(0); err != nil {
			return err
		}
		return f.Sync()
	}
	return zeroEnds(f)
}

// eraseDisk zeroes the first and last MiB of target (all of it when it is
// smaller than 2 MiB), keeping its size, and syncs.
func eraseDisk(target string) error {
	f, err := os.OpenFile(target, os.O_WRONLY, 0) //nolint:gosec // the conductor names the target, authenticated by the agent token
	if err != nil {
		return fmt.Errorf("open target: %w", err)
	}
	if err := zeroEnds(f); err != nil {
		_ = f.Close()
		return fmt.Errorf("erase %s: %w", target, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("erase %s: %w", target, err)
	}
	return nil
}

// metadataSpan is how much of each end of a disk erase_metadata zeroes:
// 36 sectors of 512 bytes, as ironic-lib's destroy_disk_metadata — the MBR
// and primary GPT at the start, the backup GPT and the RAID and volume
// labels kept at the end.
const metadataSpan = 36 * 512

// eraseMetadata zeroes the first and last metadataSpan bytes of target,
// keeping its size and everything between, and syncs.
func eraseMetadata(target string) error {
	f, err := os.OpenFile(target, os.O_WRONLY, 0) //nolint:gosec // the conductor names the target, authenticated by the agent token
	if err != nil {
		return fmt.Errorf("open target: %w", err)
	}
	if err := zeroSpans(f, metadataSpan); err != nil {
		_ = f.Close()
		return fmt.Errorf("erase metadata of %s: %w", target, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("erase metadata of %s: %w", target, err)
	}
	return nil
}

func zeroEnds(f *os.File) error { return zeroSpans(f, eraseSpan) }

// zeroSpans zeroes span bytes at each end of f (all of it when it is
// smaller than two spans) and syncs.
func zeroSpans(f *os.File, span int64) error {
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	zero := make([]byte, min(size, span))
	if _, err := f.WriteAt(zero, 0); err != nil {
		return err
	}
	if tail := size - int64(len(zero)); tail > int64(len(zero)) {
		if _, err := f.WriteAt(zero, tail); err != nil {
			return err
		}
	} else if tail > 0 {
		if _, err := f.WriteAt(make([]byte, tail), int64(len(zero))); err != nil {
			return err
		}
	}
	return f.Sync()
}

// watchedReader runs the stall watchdog only while a read waits on the
// network: the time the agent spends writing, hashing or converting what
// it read is no stalled download (on a loaded machine or a slow disk it
// would pass for one).
type watchedReader struct {
	r        io.Reader
	watchdog *time.Timer
	stall    time.Duration
}

func (r *watchedReader) Read(p []byte) (int, error) {
	r.watchdog.Reset(r.stall)
	n, err := r.r.Read(p)
	r.watchdog.Stop()
	return n, err
}

// redactURL drops the query and user info of an image URL (temporary URLs
// carry signatures there) for errors and logs.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "<unparsable url>"
	}
	u.User = nil
	u.RawQuery = ""
	u.Fragment = ""
	return u.String()
}
