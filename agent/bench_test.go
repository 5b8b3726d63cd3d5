package agent

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/agent/protocol"
	"github.com/ironfleet/ironfleet/internal/agenttest"
)

// BenchmarkWriteImage compares write_image (download, sha256, progress,
// sync, through the command API) with a plain HTTP-to-file copy and sync,
// for a 64 MiB image over loopback into a file.
func BenchmarkWriteImage(b *testing.B) {
	img := agenttest.NewImage(b, 64<<20)
	is := agenttest.NewImageServer(b, img)
	b.Run("write_image", func(b *testing.B) {
		target := filepath.Join(b.TempDir(), "disk.img")
		_, c, _ := commandServer(b, nil, CommandConfig{})
		p := protocol.WriteImageParams{URL: is.URL + "/image", Checksum: protocol.Checksum{Value: img.SHA256}, Target: target}
		b.SetBytes(int64(len(img.Data)))
		for b.Loop() {
			cmd, err := c.WriteImage(b.Context(), p)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.Wait(b.Context(), cmd.ID, time.Millisecond); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("plain-copy", func(b *testing.B) {
		target := filepath.Join(b.TempDir(), "disk.img")
		b.SetBytes(int64(len(img.Data)))
		for b.Loop() {
			req, _ := http.NewRequestWithContext(b.Context(), http.MethodGet, is.URL+"/image", nil)
			resp, err := is.Client().Do(req)
			if err != nil {
				b.Fatal(err)
			}
			f, err := os.Create(target)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(f, resp.Body); err != nil {
				b.Fatal(err)
			}
			_ = resp.Body.Close()
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
			_ = f.Close()
		}
	})
}
