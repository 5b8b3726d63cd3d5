//go:build linux

package agent

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ironfleet/ironfleet/agent/protocol"
	"github.com/ironfleet/ironfleet/internal/agenttest"
	"github.com/ironfleet/ironfleet/internal/redistest"
)

// loopDevice attaches a size-byte file to a free loop device and returns
// the device, detached when t ends. It needs root and losetup.
func loopDevice(t *testing.T, size int64) string {
	t.Helper()
	if _, err := exec.LookPath("losetup"); err != nil {
		redistest.Unavailable(t, err)
	}
	if os.Geteuid() != 0 {
		redistest.Unavailable(t, errors.New("loop devices need root"))
	}
	backing := filepath.Join(t.TempDir(), "backing.img")
	if err := os.WriteFile(backing, bytes.Repeat([]byte{0xee}, int(size)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), "losetup", "--find", "--show", backing).CombinedOutput()
	if err != nil {
		redistest.Unavailable(t, errors.New("losetup: "+strings.TrimSpace(string(out))))
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { _ = exec.Command("losetup", "--detach", dev).Run() })
	return dev
}

func readDevice(t *testing.T, dev string) []byte {
	t.Helper()
	f, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWriteImageBlockDevice writes to a real block device (a loop device):
// in place, capacity from the device, and a failure zeroes both ends.
func TestWriteImageBlockDevice(t *testing.T) {
	const size = 4 << 20
	img := agenttest.NewImage(t, 3<<20+512)
	big := agenttest.NewImage(t, 5<<20)
	is := agenttest.NewImageServer(t, img)
	bigs := agenttest.NewImageServer(t, big)
	tests := []struct {
		name     string
		url, sha string
		wantCode string
	}{
		{name: "good", url: is.URL + "/image", sha: img.SHA256},
		{name: "checksum mismatch", url: is.URL + "/image", sha: big.SHA256, wantCode: protocol.CodeChecksumMismatch},
		{name: "too large, known up front", url: bigs.URL + "/image", sha: big.SHA256, wantCode: protocol.CodeTargetTooSmall},
		{name: "too large, found while writing", url: bigs.URL + "/chunked", sha: big.SHA256, wantCode: protocol.CodeTargetTooSmall},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dev := loopDevice(t, size)
			_, c, _ := commandServer(t, &recordingMachine{}, CommandConfig{})
			cmd, err := c.WriteImage(t.Context(), protocol.WriteImageParams{URL: tt.url, Checksum: protocol.Checksum{Value: tt.sha}, Target: dev})
			if err != nil {
				t.Fatal(err)
			}
			got, _ := c.Wait(t.Context(), cmd.ID, poll)
			content := readDevice(t, dev)
			if len(content) != size {
				t.Fatalf("device is %d bytes after the write, want %d", len(content), size)
			}
			if tt.wantCode == "" {
				if got.Status != protocol.StatusSucceeded {
					t.Fatalf("command = %+v, want succeeded", got)
				}
				if !bytes.Equal(content[:len(img.Data)], img.Data) {
					t.Error("device does not start with the image")
				}
				if content[len(content)-1] != 0xee {
					t.Error("bytes past the image were touched")
				}
				return
			}
			if got.Status != protocol.StatusFailed || got.Code != tt.wantCode {
				t.Fatalf("command = %s (code %q, %s), want failed with %q", got.Status, got.Code, got.Error, tt.wantCode)
			}
			zero := make([]byte, eraseSpan)
			if !bytes.Equal(content[:eraseSpan], zero) || !bytes.Equal(content[size-eraseSpan:], zero) {
				t.Error("after a failed write the device's first and last MiB are not zeroed")
			}
		})
	}
}

// TestWriteImageBlockDeviceZeros: on a block device, which keeps its old
// bytes wherever nothing is written, the image's zeros — raw zero runs and
// qcow2's unallocated clusters — are really written; a qcow2 image whose
// virtual size exceeds the device is refused before anything is.
func TestWriteImageBlockDeviceZeros(t *testing.T) {
	const size = 9 << 20
	disk := diskContent(t, 8<<20)
	files := map[string][]byte{"disk.raw": disk, "disk.qcow2": qemuImg(t, disk, "qcow2"), "big.qcow2": qemuImg(t, diskContent(t, 16<<20), "qcow2")}
	srv := imageFiles(t, files)
	for _, tt := range []struct {
		file     string
		wantCode string
	}{
		{file: "disk.raw"},
		{file: "disk.qcow2"},
		{file: "big.qcow2", wantCode: protocol.CodeTargetTooSmall},
	} {
		t.Run(tt.file, func(t *testing.T) {
			dev := loopDevice(t, size)
			_, c, _ := commandServer(t, &recordingMachine{}, CommandConfig{})
			cmd, err := c.WriteImage(t.Context(), protocol.WriteImageParams{URL: srv + "/files/" + tt.file, Checksum: protocol.Checksum{Value: sumOf("sha512", files[tt.file])}, Target: dev})
			if err != nil {
				t.Fatal(err)
			}
			got, _ := c.Wait(t.Context(), cmd.ID, poll)
			content := readDevice(t, dev)
			if tt.wantCode != "" {
				if got.Code != tt.wantCode || !strings.Contains(got.Error, "virtual size") {
					t.Fatalf("command = %s (code %q, %s), want failed with %q naming the virtual size", got.Status, got.Code, got.Error, tt.wantCode)
				}
				return
			}
			if got.Status != protocol.StatusSucceeded {
				t.Fatalf("command = %+v, want succeeded", got)
			}
			if !bytes.Equal(content[:len(disk)], disk) {
				t.Error("the device does not start with the disk: its zeros were not written")
			}
			if content[len(content)-1] != 0xee {
				t.Error("bytes past the image were touched")
			}
		})
	}
}
