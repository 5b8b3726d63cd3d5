package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/lima-vm/go-qcow2reader/image/qcow2"

	"github.com/ironfleet/ironfleet/agent/protocol"
)

// streamWindow is how much of a qcow2 image's download is kept behind the
// read position, for the library's reads that look back a little (an L2
// table, a compressed cluster that shares a sector with the last one).
const streamWindow = 8 << 20

// streamReaderAt turns one sequential download into the io.ReaderAt
// go-qcow2reader needs, in bounded memory. Reads ahead of the download
// read on (every byte passes once through the caller's hash, so the
// checksum covers the whole file as downloaded, in one pass); reads in the
// window behind it are served from memory; reads further back — an image
// not laid out in the order qemu-img writes, metadata first — are fetched
// with HTTP Range requests (the image server must still be serving the
// same file: If-Range), or fail clearly when the server serves no ranges.
type streamReaderAt struct {
	mu   sync.Mutex
	body io.Reader // the download, hashed by the caller
	pos  int64     // bytes read from body
	eof  bool      // body ended cleanly at pos
	err  error     // body failed
	size int64     // Content-Length, -1 when unknown
	ring []byte    // byte o (pos-len(ring) <= o < pos) is at ring[o%len(ring)]

	// ranged fetches [off, off+len(p)) with a Range request; nil when the
	// server does not serve ranges.
	ranged func(p []byte, off int64) error
	// ranges counts Range requests (the benchmark and tests report it).
	ranges  int
	block   []byte // the last block fetched by Range
	blockAt int64
}

func newStreamReaderAt(body io.Reader, size int64, ranged func([]byte, int64) error) *streamReaderAt {
	return &streamReaderAt{body: body, size: size, ring: make([]byte, streamWindow), ranged: ranged, blockAt: -1}
}

// ReadAt implements io.ReaderAt.
func (s *streamReaderAt) ReadAt(p []byte, off int64) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	want := len(p)
	if s.size >= 0 && off+int64(want) > s.size {
		if off >= s.size {
			return 0, io.EOF
		}
		want = int(s.size - off)
	}
	end := off + int64(want)
	if end > s.pos && want <= len(s.ring)/2 {
		if err := s.advance(end); err != nil {
			if s.eof && off < s.pos { // an unknown length: serve what there is
				want = int(s.pos - off)
				end = s.pos
			} else {
				return 0, err
			}
		}
	}
	switch {
	case end <= s.pos && off >= s.pos-int64(len(s.ring)):
		i := int(off % int64(len(s.ring)))
		if k := copy(p[:want], s.ring[i:]); k < want {
			copy(p[k:want], s.ring)
		}
	default:
		if err := s.fetch(p[:want], off); err != nil {
			return 0, err
		}
	}
	if want < len(p) {
		return want, io.EOF
	}
	return want, nil
}

// advance reads the download on up to end (or its end).
func (s *streamReaderAt) advance(end int64) error {
	for s.pos < end {
		if s.err != nil {
			return s.err
		}
		if s.eof {
			return fmt.Errorf("%w: the image ends at %d bytes; its qcow2 tables point to %d", protocol.ErrImageTruncated, s.pos, end)
		}
		i := s.pos % int64(len(s.ring))
		n, err := s.body.Read(s.ring[i:min(int64(len(s.ring)), i+end-s.pos+copyBuffer)])
		s.pos += int64(n)
		switch {
		case errors.Is(err, io.EOF):
			s.eof = true
		case err != nil:
			s.err = err
		}
	}
	return nil
}

// drain reads the rest of the download (for the checksum) and returns how
// long it was.
func (s *streamReaderAt) drain() (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for !s.eof {
		if s.err != nil {
			return s.pos, s.err
		}
		_ = s.advance(s.pos + copyBuffer)
	}
	return s.pos, nil
}

// fetch serves a read behind the window from a Range request, one
// copyBuffer-aligned block at a time.
func (s *streamReaderAt) fetch(p []byte, off int64) error {
	if s.ranged == nil {
		return fmt.Errorf("%w: the qcow2 image is not laid out in order (a read at %d, %d bytes behind the download) and the image server does not serve byte ranges; convert it with qemu-img convert -O qcow2",
			protocol.ErrInvalidImage, off, s.pos-off)
	}
	for len(p) > 0 {
		at := off / copyBuffer * copyBuffer
		if s.blockAt != at {
			n := int64(copyBuffer)
			if s.size >= 0 {
				n = min(n, s.size-at)
			}
			if s.block == nil {
				s.block = make([]byte, copyBuffer)
			}
			s.blockAt = -1
			if err := s.ranged(s.block[:n], at); err != nil {
				return err
			}
			s.ranges++
			s.block, s.blockAt = s.block[:n], at
		}
		if off-at >= int64(len(s.block)) {
			return io.ErrUnexpectedEOF
		}
		k := copy(p, s.block[off-at:])
		p, off = p[k:], off+int64(k)
	}
	return nil
}

// rangeFetcher returns a function that reads [off, off+len(p)) of url
// with a Range request, or nil when resp says the server serves none. The
// If-Range validator makes a changed file answer 200 instead, which fails.
func (w *imageWriter) rangeFetcher(ctx context.Context, url string, resp *http.Response, watchdog *time.Timer) func([]byte, int64) error {
	if resp.Header.Get("Accept-Ranges") != "bytes" {
		return nil
	}
	validator := resp.Header.Get("ETag")
	if validator == "" {
		validator = resp.Header.Get("Last-Modified")
	}
	return func(p []byte, off int64) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("%w: %w", protocol.ErrDownload, err)
		}
		req.Header.Set("Range", "bytes="+strconv.FormatInt(off, 10)+"-"+strconv.FormatInt(off+int64(len(p))-1, 10))
		if validator != "" {
			req.Header.Set("If-Range", validator)
		}
		watchdog.Reset(w.stall)
		r, err := w.client.Do(req)
		watchdog.Stop()
		if err != nil {
			return downloadErr(ctx, "GET (range) "+redactURL(url), err)
		}
		defer r.Body.Close()
		if r.StatusCode != http.StatusPartialContent {
			return fmt.Errorf("%w: GET %s bytes %d-%d: %s (the image changed on the server, or it stopped serving ranges)",
				protocol.ErrDownload, redactURL(url), off, off+int64(len(p))-1, r.Status)
		}
		if _, err := io.ReadFull(&watchedReader{r: r.Body, watchdog: watchdog, stall: w.stall}, p); err != nil {
			return downloadErr(ctx, "read (range) "+redactURL(url), err)
		}
		return nil
	}
}

// writeQcow2 converts the qcow2 image src onto d, cluster run by cluster
// run in guest order, with go-qcow2reader: runs that read as zeros
// (unallocated or zero clusters) are d.zeroAt, the others read, inflated
// if compressed, and d.writeAt. It returns the image's virtual size.
func writeQcow2(src *streamReaderAt, head []byte, d *diskWriter) (int64, error) {
	if err := refuseBackingFile(head); err != nil {
		return 0, err
	}
	img, err := qcow2.Open(src, nil)
	if err != nil {
		return 0, qcow2Err("open", err)
	}
	if err := img.Readable(); err != nil {
		return 0, fmt.Errorf("%w: qcow2 image: %w", protocol.ErrInvalidImage, err)
	}
	size := img.Size()
	d.pr.total.Store(size)
	if d.limit > 0 && size > d.limit {
		return 0, fmt.Errorf("%w: the image's virtual size is %d bytes, %s holds %d", protocol.ErrTargetTooSmall, size, d.f.Name(), d.limit)
	}
	buf := make([]byte, copyBuffer)
	for off := int64(0); off < size; {
		// One buffer's span at a time: asking for longer extents would
		// have the library read L2 tables that lie after this span's data
		// in the file, pushing the download past it.
		ext, err := img.Extent(off, min(copyBuffer, size-off))
		if err != nil {
			return 0, qcow2Err("extent", err)
		}
		if ext.Zero {
			if err := d.zeroAt(off, ext.Length); err != nil {
				return 0, err
			}
			off += ext.Length
			continue
		}
		for n := ext.Length; n > 0; {
			k := int(min(n, int64(len(buf))))
			got, err := img.ReadAt(buf[:k], off)
			if got < k && err != nil {
				return 0, qcow2Err("read", err)
			}
			if err := d.writeAt(buf[:k], off); err != nil {
				return 0, err
			}
			off, n = off+int64(k), n-int64(k)
		}
	}
	return size, nil
}

// qcow2Err keeps the agent's own errors (a truncated or stalled download)
// and calls the library's an invalid image.
func qcow2Err(what string, err error) error {
	for _, s := range []error{protocol.ErrTargetTooSmall, protocol.ErrImageTruncated, protocol.ErrDownload, protocol.ErrDownloadStalled, protocol.ErrCanceled, protocol.ErrInvalidImage} {
		if errors.Is(err, s) {
			return err
		}
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: qcow2 %s: %w", protocol.ErrImageTruncated, what, err)
	}
	return fmt.Errorf("%w: qcow2 %s: %w", protocol.ErrInvalidImage, what, err)
}
