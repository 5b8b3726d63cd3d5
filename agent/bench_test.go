package agent

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/agent/protocol"
)

// BenchmarkWriteImage compares, side by side in each iteration, writing
// the same 64 MiB disk (half random data, half zeros) over loopback HTTP
// into a file: a plain io.Copy of the raw bytes and fsync ("copy"), and
// write_image through the command API (download, checksum, progress,
// sparse writes, fsync) of the raw image ("raw"), of qemu-img's qcow2
// ("qcow2") and of its compressed qcow2 ("qcow2-c"). Throughputs are in
// disk bytes per second; the ratios are against the plain copy.
func BenchmarkWriteImage(b *testing.B) {
	const size = 64 << 20
	disk := diskContent(b, size)
	files := map[string][]byte{"disk.raw": disk, "disk.qcow2": qemuImg(b, disk, "qcow2"), "disk-c.qcow2": qemuImg(b, disk, "qcow2", "-c")}
	srv := imageFiles(b, files)
	// The target is in memory where there is a tmpfs: on a disk shared
	// with other work, fsync's wait drowns what the agent itself costs.
	dir := b.TempDir()
	if d, err := os.MkdirTemp("/dev/shm", "bench"); err == nil {
		dir = d
		b.Cleanup(func() { _ = os.RemoveAll(d) })
	}
	target := filepath.Join(dir, "disk.img")
	_, c, _ := commandServer(b, nil, CommandConfig{})
	client := &http.Client{}
	b.Cleanup(client.CloseIdleConnections)

	took := map[string]time.Duration{}
	timed := func(name string, f func() error) {
		start := time.Now()
		if err := f(); err != nil {
			b.Fatalf("%s: %v", name, err)
		}
		took[name] += time.Since(start)
	}
	plainCopy := func() error {
		req, _ := http.NewRequestWithContext(b.Context(), http.MethodGet, srv+"/files/disk.raw", nil)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		f, err := os.Create(target) //nolint:gosec // the benchmark's own temp file
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := io.Copy(f, resp.Body); err != nil {
			return err
		}
		return f.Sync()
	}
	writeImage := func(file string) func() error {
		p := protocol.WriteImageParams{URL: srv + "/files/" + file, Checksum: protocol.Checksum{Value: sumOf("sha256", files[file])}, Target: target}
		return func() error {
			cmd, err := c.WriteImage(b.Context(), p)
			if err != nil {
				return err
			}
			_, err = c.Wait(b.Context(), cmd.ID, time.Millisecond)
			return err
		}
	}
	raw, qcow2, qcow2c := writeImage("disk.raw"), writeImage("disk.qcow2"), writeImage("disk-c.qcow2")
	n := 0
	for b.Loop() {
		timed("copy", plainCopy)
		timed("raw", raw)
		timed("qcow2", qcow2)
		timed("qcow2-c", qcow2c)
		n++
	}
	for _, name := range []string{"copy", "raw", "qcow2", "qcow2-c"} {
		b.ReportMetric(float64(size)*float64(n)/took[name].Seconds()/1e6, name+"-MB/s")
		if name != "copy" {
			b.ReportMetric(took["copy"].Seconds()/took[name].Seconds(), name+"/copy")
		}
	}
}
