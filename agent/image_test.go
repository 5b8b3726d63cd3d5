package agent

import (
	"bytes"
	"crypto/md5" //nolint:gosec // the md5 checksum Ironic may pass is one of the cases
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/agent/protocol"
	"github.com/ironfleet/ironfleet/internal/redistest"
)

// sumOf returns the hex digest of b with algo.
func sumOf(algo string, b []byte) string {
	h := map[string]func() hash.Hash{"md5": md5.New, "sha256": sha256.New, "sha512": sha512.New}[algo]()
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// diskContent is a disk's bytes: a quarter random, a run of zeros, a
// quarter of text (which a compressed qcow2 stores compressed), so that
// sparse writes, qcow2's unallocated clusters and compressed clusters all
// show.
func diskContent(t testing.TB, size int) []byte {
	t.Helper()
	b := make([]byte, size)
	_, _ = rand.Read(b[:size/4])
	copy(b[size/2:], "a marker in the middle of the zeros")
	for off, i := size*3/4, 0; off < size; i++ {
		off += copy(b[off:], fmt.Sprintf("line %d of a text file that compresses well\n", i))
	}
	return b
}

// qemuImg converts raw bytes to format with Debian's qemu-img (args are
// added to its convert options) and returns the converted file's bytes.
func qemuImg(t testing.TB, raw []byte, format string, args ...string) []byte {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		redistest.Unavailable(t, err)
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.raw"), filepath.Join(dir, "out."+format)
	if err := os.WriteFile(in, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := append([]string{"convert", "-q", "-f", "raw", "-O", format}, args...)
	if b, err := exec.CommandContext(t.Context(), "qemu-img", append(cmd, in, out)...).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img %v: %v\n%s", cmd, err, b)
	}
	b, err := os.ReadFile(out) //nolint:gosec // the test's own temp file
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// imageFiles serves files from a directory with Go's http.FileServer (as
// ironfleet's image servers do: Range, Last-Modified) under /files/, and
// the same files badly: /plain/ without ranges or length, /cut/ cut off
// halfway after a full Content-Length, /short/ ending cleanly halfway
// without a length.
func imageFiles(t testing.TB, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/files/", http.StripPrefix("/files/", http.FileServer(http.Dir(dir))))
	serve := func(w http.ResponseWriter, r *http.Request, name string) []byte {
		b, ok := files[name]
		if !ok {
			http.NotFound(w, r)
		}
		return b
	}
	mux.HandleFunc("/plain/{name}", func(w http.ResponseWriter, r *http.Request) {
		if b := serve(w, r, r.PathValue("name")); b != nil {
			_, _ = w.Write(b[:len(b)/2])
			w.(http.Flusher).Flush() // no Content-Length from here
			_, _ = w.Write(b[len(b)/2:])
		}
	})
	mux.HandleFunc("/cut/{name}", func(w http.ResponseWriter, r *http.Request) {
		if b := serve(w, r, r.PathValue("name")); b != nil {
			w.Header().Set("Content-Length", strconv.Itoa(len(b)))
			_, _ = w.Write(b[:len(b)/2])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
	})
	mux.HandleFunc("/short/{name}", func(w http.ResponseWriter, r *http.Request) {
		if b := serve(w, r, r.PathValue("name")); b != nil {
			_, _ = w.Write(b[:len(b)/2])
			w.(http.Flusher).Flush()
		}
	})
	return newHTTPServer(t, mux)
}

// TestWriteImageFormatsAndChecksums: raw and qcow2 images (plain and
// compressed, their format declared or detected) land on the disk as the
// guest sees them, verified with each checksum form Ironic passes; a wrong
// checksum or a truncated image fails saying which and wipes the disk; a
// format the agent does not write is refused before anything is written.
func TestWriteImageFormatsAndChecksums(t *testing.T) {
	const size = 8 << 20
	disk := diskContent(t, size)
	q := qemuImg(t, disk, "qcow2")
	qc := qemuImg(t, disk, "qcow2", "-c")
	vmdk := qemuImg(t, disk, "vmdk")
	files := map[string][]byte{"disk.raw": disk, "disk.qcow2": q, "disk-c.qcow2": qc, "disk.vmdk": vmdk}
	srv := imageFiles(t, files)
	sums := "# made by sha256sum\n" +
		sumOf("sha256", vmdk) + "  disk.vmdk\n" +
		sumOf("sha256", q) + " *disk.qcow2\n" +
		"SHA512 (disk.raw) = " + sumOf("sha512", disk) + "\n"
	sumSrv := newHTTPServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/SHA256SUMS":
			_, _ = w.Write([]byte(sums))
		case "/bare":
			_, _ = w.Write([]byte(sumOf("md5", qc) + "\n"))
		default:
			http.NotFound(w, r)
		}
	}))
	const old = "OLD IMAGE THAT MUST NOT SURVIVE A FAILED WRITE"
	tests := []struct {
		name     string
		path     string // on srv
		checksum protocol.Checksum
		format   string
		want     []byte // on the disk after success
		wantErr  error  // nil: success
		wantMsg  string
		wantOld  bool // the target was never touched
	}{
		{name: "raw, declared, sha256", path: "/files/disk.raw", checksum: protocol.Checksum{Value: sumOf("sha256", disk)}, format: "raw", want: disk},
		{name: "raw, detected, md5", path: "/files/disk.raw", checksum: protocol.Checksum{Value: sumOf("md5", disk)}, want: disk},
		{name: "raw, sha512 upper-case", path: "/files/disk.raw", checksum: protocol.Checksum{Value: strings.ToUpper(sumOf("sha512", disk))}, want: disk},
		{name: "raw, os_hash sha512", path: "/files/disk.raw", checksum: protocol.Checksum{Algo: "sha512", Value: sumOf("sha512", disk)}, want: disk},
		{name: "raw, checksum URL, BSD line", path: "/files/disk.raw", checksum: protocol.Checksum{Value: sumSrv + "/SHA256SUMS"}, want: disk},
		{name: "qcow2, detected, sha256", path: "/files/disk.qcow2", checksum: protocol.Checksum{Value: sumOf("sha256", q)}, want: disk},
		{name: "qcow2, declared, checksum URL, *name line", path: "/files/disk.qcow2", checksum: protocol.Checksum{Value: sumSrv + "/SHA256SUMS"}, format: "qcow2", want: disk},
		{name: "qcow2 without ranges or length", path: "/plain/disk.qcow2", checksum: protocol.Checksum{Value: sumOf("sha256", q)}, want: disk},
		{name: "compressed qcow2, bare checksum file, md5", path: "/files/disk-c.qcow2", checksum: protocol.Checksum{Value: sumSrv + "/bare"}, want: disk},
		{name: "compressed qcow2, os_hash sha512", path: "/files/disk-c.qcow2", checksum: protocol.Checksum{Algo: "sha512", Value: sumOf("sha512", qc)}, want: disk},

		{name: "raw, wrong checksum", path: "/files/disk.raw", checksum: protocol.Checksum{Value: sumOf("sha256", q)},
			wantErr: protocol.ErrChecksumMismatch, wantMsg: "checksum mismatch: got sha256 " + sumOf("sha256", disk)},
		{name: "qcow2, wrong checksum", path: "/files/disk.qcow2", checksum: protocol.Checksum{Value: sumOf("md5", disk)},
			wantErr: protocol.ErrChecksumMismatch, wantMsg: "checksum mismatch: got md5 " + sumOf("md5", q)},
		{name: "raw, truncated", path: "/cut/disk.raw", checksum: protocol.Checksum{Value: sumOf("sha256", disk)},
			wantErr: protocol.ErrImageTruncated, wantMsg: "image truncated"},
		{name: "qcow2, truncated", path: "/cut/disk.qcow2", checksum: protocol.Checksum{Value: sumOf("sha256", q)},
			wantErr: protocol.ErrImageTruncated, wantMsg: "image truncated"},
		{name: "qcow2, ends early without a length", path: "/short/disk.qcow2", checksum: protocol.Checksum{Value: sumOf("sha256", q)},
			wantErr: protocol.ErrImageTruncated, wantMsg: "qcow2 tables point to"},
		{name: "checksum file without the image's name", path: "/files/disk-c.qcow2", checksum: protocol.Checksum{Value: sumSrv + "/SHA256SUMS"},
			wantErr: protocol.ErrDownload, wantMsg: `no line gives the checksum of "disk-c.qcow2"`, wantOld: true},
		{name: "checksum file missing", path: "/files/disk.raw", checksum: protocol.Checksum{Value: sumSrv + "/nope"},
			wantErr: protocol.ErrDownload, wantMsg: "404", wantOld: true},
		{name: "vmdk detected", path: "/files/disk.vmdk", checksum: protocol.Checksum{Value: sumOf("sha256", vmdk)},
			wantErr: protocol.ErrInvalidImage, wantMsg: "the image is vmdk; only raw and qcow2"},
		{name: "declared qcow2, is raw", path: "/files/disk.raw", checksum: protocol.Checksum{Value: sumOf("sha256", disk)}, format: "qcow2",
			wantErr: protocol.ErrInvalidImage, wantMsg: "image_disk_format is qcow2 but the image is raw"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := filepath.Join(t.TempDir(), "disk.img")
			if err := os.WriteFile(target, []byte(old), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := diskConfig(target, 64<<20)
			cfg.StallTimeout = 10 * time.Second // no stalls here: a loaded machine under -race is slow to answer
			_, c, _ := commandServer(t, nil, cfg)
			cmd, err := c.WriteImage(t.Context(), protocol.WriteImageParams{URL: srv + tt.path, Checksum: tt.checksum, DiskFormat: tt.format, Target: target})
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.Wait(t.Context(), cmd.ID, poll)
			content, rerr := os.ReadFile(target) //nolint:gosec // the test's own temp file
			if rerr != nil {
				t.Fatal(rerr)
			}
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("write_image failed: %v", err)
				}
				if !bytes.Equal(content, tt.want) {
					t.Errorf("the target holds %d bytes that are not the disk (%d bytes)", len(content), len(tt.want))
				}
				if got.DoneBytes != int64(len(tt.want)) {
					t.Errorf("done bytes = %d, want %d", got.DoneBytes, len(tt.want))
				}
				return
			}
			if !errors.Is(err, tt.wantErr) || !strings.Contains(got.Error, tt.wantMsg) {
				t.Fatalf("write_image = %v (%s), want %v saying %q", err, got.Error, tt.wantErr, tt.wantMsg)
			}
			if tt.wantOld {
				if string(content) != old {
					t.Errorf("the target holds %q, want it untouched (the failure comes before opening it)", content)
				}
				return
			}
			if len(content) != 0 || !strings.Contains(got.Error, "wiped") {
				t.Errorf("after the failure the target holds %d bytes (error %q), want it wiped and the error to say so", len(content), got.Error)
			}
		})
	}
}

// TestWriteImageRefusedParams: what the agent cannot write is refused when
// the command is posted, before any download or any write.
func TestWriteImageRefusedParams(t *testing.T) {
	target := filepath.Join(t.TempDir(), "disk.img")
	_, c, _ := commandServer(t, nil, diskConfig(target, 0))
	sha := strings.Repeat("ab", 32)
	for _, tt := range []struct {
		name string
		p    protocol.WriteImageParams
		want string
	}{
		{"vmdk declared", protocol.WriteImageParams{Checksum: protocol.Checksum{Value: sha}, DiskFormat: "vmdk"}, `disk_format "vmdk"`},
		{"iso declared", protocol.WriteImageParams{Checksum: protocol.Checksum{Value: sha}, DiskFormat: "iso"}, `disk_format "iso"`},
		{"sha1 digest", protocol.WriteImageParams{Checksum: protocol.Checksum{Value: strings.Repeat("ab", 20)}}, "40 characters is the digest of no supported algorithm"},
		{"unknown algorithm", protocol.WriteImageParams{Checksum: protocol.Checksum{Algo: "sha3_256", Value: sha}}, `algorithm "sha3_256" is not supported`},
		{"digest of another algorithm", protocol.WriteImageParams{Checksum: protocol.Checksum{Algo: "sha512", Value: sha}}, "want 128 hex digits for sha512"},
		{"not hex", protocol.WriteImageParams{Checksum: protocol.Checksum{Value: strings.Repeat("zz", 32)}}, "want 64 hex digits"},
		{"no checksum", protocol.WriteImageParams{}, "checksum"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.p.URL, tt.p.Target = "http://127.0.0.1:1/disk", target
			_, err := c.WriteImage(t.Context(), tt.p)
			if !errors.Is(err, protocol.ErrInvalidParams) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("WriteImage = %v, want %v saying %q", err, protocol.ErrInvalidParams, tt.want)
			}
		})
	}
	if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the target exists after refused commands (%v), want it never opened", err)
	}
}

// TestQcow2BackingFileRefused: a qcow2 image with a backing file is refused
// naming it, without the agent opening a file of its own by that name.
func TestQcow2BackingFileRefused(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		redistest.Unavailable(t, err)
	}
	dir := t.TempDir()
	base, top := filepath.Join(dir, "base.raw"), filepath.Join(dir, "top.qcow2")
	if err := os.WriteFile(base, diskContent(t, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.CommandContext(t.Context(), "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", base, top).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v\n%s", err, b)
	}
	img, err := os.ReadFile(top) //nolint:gosec // the test's own temp file
	if err != nil {
		t.Fatal(err)
	}
	srv := imageFiles(t, map[string][]byte{"top.qcow2": img})
	target := filepath.Join(t.TempDir(), "disk.img")
	_, c, _ := commandServer(t, nil, diskConfig(target, 0))
	cmd, err := c.WriteImage(t.Context(), protocol.WriteImageParams{URL: srv + "/files/top.qcow2", Checksum: protocol.Checksum{Value: sumOf("sha256", img)}, Target: target})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Wait(t.Context(), cmd.ID, poll)
	if !errors.Is(err, protocol.ErrInvalidImage) || got.Code != protocol.CodeInvalidImage || !strings.Contains(got.Error, "backing file ("+strconv.Quote(base)+")") {
		t.Fatalf("write_image = %v (code %s), want %s naming the backing file %s", err, got.Code, protocol.CodeInvalidImage, base)
	}
}

// TestDiskWriterZeros: on a target that reads as zeros (a file the agent
// truncated) zero blocks are seeked over and the file still ends up the
// image's length; on one that does not (a block device: here a file full
// of 0xff opened as one) the zeros are written.
func TestDiskWriterZeros(t *testing.T) {
	img := diskContent(t, 4<<20)
	for _, zeroed := range []bool{true, false} {
		t.Run(fmt.Sprintf("zeroed=%v", zeroed), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "disk")
			if err := os.WriteFile(path, bytes.Repeat([]byte{0xff}, len(img)), 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(path, os.O_RDWR, 0) //nolint:gosec // the test's own temp file
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if zeroed {
				_ = f.Truncate(0)
			}
			d := newDiskWriter(f, zeroed, 0, &progress{})
			if _, err := writeRaw(bytes.NewReader(img), d); err != nil {
				t.Fatal(err)
			}
			if err := d.finish(); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(path) //nolint:gosec // the test's own temp file
			if !bytes.Equal(got, img) {
				t.Errorf("the target is not the image (%d bytes, want %d)", len(got), len(img))
			}
			if zeroed {
				if fi, _ := f.Stat(); blocks(fi) >= int64(len(img))/512 {
					t.Errorf("the zeroed target uses %d blocks of 512, want fewer than %d: its zeros are holes", blocks(fi), len(img)/512)
				}
			}
		})
	}
}

// TestStreamReaderAtRanges: reads behind the window are fetched with Range
// requests from a real http.FileServer, which If-Range keeps to the file
// the download started on; without ranges they fail saying why.
func TestStreamReaderAtRanges(t *testing.T) {
	data := make([]byte, 3*streamWindow)
	_, _ = rand.Read(data)
	dir := t.TempDir()
	path := filepath.Join(dir, "img")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	w := &imageWriter{client: srv.Client(), stall: time.Hour}
	open := func(t *testing.T, ranges bool) *streamReaderAt {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/img", nil)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = resp.Body.Close() })
		var fetch func([]byte, int64) error
		if ranges {
			fetch = w.rangeFetcher(t.Context(), srv.URL+"/img", resp, time.NewTimer(time.Hour))
		}
		return newStreamReaderAt(resp.Body, resp.ContentLength, fetch)
	}
	p := make([]byte, 4096)
	s := open(t, true)
	if _, err := s.ReadAt(p, int64(len(data))-4096); err != nil || !bytes.Equal(p, data[len(data)-4096:]) {
		t.Fatalf("read at the end = %v, want the file's last bytes", err)
	}
	if _, err := s.ReadAt(p, 100); err != nil || !bytes.Equal(p, data[100:4196]) {
		t.Fatalf("read behind the window = %v, want the file's bytes", err)
	}
	if s.ranges != 1 {
		t.Errorf("Range requests = %d, want 1", s.ranges)
	}

	s = open(t, false)
	_, _ = s.ReadAt(p, int64(len(data))-4096)
	if _, err := s.ReadAt(p, 100); !errors.Is(err, protocol.ErrInvalidImage) || !strings.Contains(err.Error(), "does not serve byte ranges") {
		t.Errorf("read behind the window without ranges = %v, want %v saying the server does not serve ranges", err, protocol.ErrInvalidImage)
	}

	s = open(t, true)
	_, _ = s.ReadAt(p, int64(len(data))-4096)
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadAt(p, 100); !errors.Is(err, protocol.ErrDownload) || !strings.Contains(err.Error(), "the image changed on the server") {
		t.Errorf("read behind the window after the file changed = %v, want %v saying it changed", err, protocol.ErrDownload)
	}
}

// TestQcow2ConversionMemory: converting a 256 MiB qcow2 image (half of it
// data) allocates a small, fixed amount however large the image is: the
// image is never held. TotalAlloc bounds the peak heap from above. It is
// served without ranges: qemu-img's layout converts in one pass through
// the download, far larger than the window kept behind it.
func TestQcow2ConversionMemory(t *testing.T) {
	const size = 256 << 20
	disk := make([]byte, size)
	for off := 0; off < size; off += 8 << 20 {
		_, _ = rand.Read(disk[off : off+4<<20])
	}
	q := qemuImg(t, disk, "qcow2")
	srv := imageFiles(t, map[string][]byte{"big.qcow2": q})
	sum := sumOf("sha256", q)
	want := sha256.Sum256(disk)
	disk = nil // the test's own copy is not the agent's to count (the server keeps q)
	target := filepath.Join(t.TempDir(), "disk.img")
	cfg := diskConfig(target, 0)
	cfg.StallTimeout = time.Minute // a loaded machine may take its time writing
	_, c, _ := commandServer(t, nil, cfg)

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cmd, err := c.WriteImage(t.Context(), protocol.WriteImageParams{URL: srv + "/plain/big.qcow2", Checksum: protocol.Checksum{Value: sum}, Target: target})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Wait(t.Context(), cmd.ID, 10*poll); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("converting a %d MiB qcow2 image allocated %.1f MiB", size>>20, float64(allocated)/(1<<20))
	if allocated > 48<<20 {
		t.Errorf("converting allocated %d MiB, want under 48 MiB for a %d MiB image", allocated>>20, size>>20)
	}
	got, err := fileSHA256(target)
	if err != nil {
		t.Fatal(err)
	}
	if got != hex.EncodeToString(want[:]) {
		t.Errorf("the target is not the image's disk")
	}
}

// blocks is how many 512-byte blocks a file uses on disk.
func blocks(fi os.FileInfo) int64 { return fi.Sys().(*syscall.Stat_t).Blocks }

// fileSHA256 hashes a file without holding it.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path) //nolint:gosec // the test's own temp file
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

// TestChecksumFor: a checksum file is read as ironic-python-agent's
// standby._fetch_checksum reads one.
func TestChecksumFor(t *testing.T) {
	md5d, sha := strings.Repeat("a", 32), strings.Repeat("b", 64)
	for _, tt := range []struct {
		name, text, want, wantErr string
	}{
		{name: "bare digest", text: "\n" + sha + "\n\n", want: sha},
		{name: "sha256sum", text: md5d + "  other.img\n" + sha + "  disk.img\n", want: sha},
		{name: "binary mode", text: sha + " *disk.img\n", want: sha},
		{name: "BSD", text: "SHA256 (disk.img) = " + sha + "\n", want: sha},
		{name: "comment naming the image", text: "# " + md5d + " disk.img\n" + sha + "  disk.img\n", want: sha},
		{name: "a longer name is another file", text: sha + "  disk.img.old\n" + md5d + "  x\n", wantErr: `no line gives the checksum of "disk.img"`},
		{name: "empty", text: "\n \n", wantErr: "empty"},
		{name: "bare non-digest", text: "deadbeef\n", wantErr: "not an md5, sha256 or sha512 digest"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := checksumFor(tt.text, "disk.img")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("checksumFor = %q, %v; want an error saying %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("checksumFor = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
