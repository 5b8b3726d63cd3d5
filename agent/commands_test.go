package agent

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/agent/protocol"
	"github.com/ironfleet/ironfleet/internal/agenttest"
)

const poll = time.Millisecond

// diskConfig declares one file-backed disk of capacity bytes at path.
func diskConfig(path string, capacity int64) CommandConfig {
	return CommandConfig{
		StallTimeout: 100 * time.Millisecond,
		PowerDelay:   time.Millisecond,
		Inventory: func(context.Context) (protocol.Inventory, error) {
			return protocol.Inventory{Disks: []protocol.Disk{{Name: "vda", Path: path, SizeBytes: capacity}}}, nil
		},
	}
}

func TestWriteImage(t *testing.T) {
	img := agenttest.NewImage(t, 3<<20+123) // a few buffers and an odd tail
	is := agenttest.NewImageServer(t, img)
	size := int64(len(img.Data))
	const old = "OLD IMAGE THAT MUST NOT SURVIVE A FAILED WRITE"
	tests := []struct {
		name      string
		path      string
		sha       string
		size      int64
		capacity  int64 // 0: unbounded
		wantCode  string
		wantErr   error
		wantTotal int64
	}{
		{name: "good", path: "/image", wantTotal: size},
		{name: "good without content length", path: "/chunked"},
		{name: "good, size given", path: "/chunked", size: size, wantTotal: size},
		{name: "good, exactly fits", path: "/image", capacity: size, wantTotal: size},
		{name: "checksum mismatch", path: "/image", sha: strings.Repeat("ab", 32),
			wantCode: protocol.CodeChecksumMismatch, wantErr: protocol.ErrChecksumMismatch},
		{name: "connection cut mid-body", path: "/truncated", wantCode: protocol.CodeImageTruncated, wantErr: protocol.ErrImageTruncated},
		{name: "download stalls", path: "/stall", wantCode: protocol.CodeDownloadStalled, wantErr: protocol.ErrDownloadStalled},
		{name: "404", path: "/missing", wantCode: protocol.CodeDownload, wantErr: protocol.ErrDownload},
		{name: "wrong size given", path: "/image", size: size + 1, wantCode: protocol.CodeDownload, wantErr: protocol.ErrDownload},
		{name: "short body for size given", path: "/chunked", size: size + 1, wantCode: protocol.CodeImageTruncated, wantErr: protocol.ErrImageTruncated},
		{name: "target too small, known up front", path: "/image", capacity: size - 1,
			wantCode: protocol.CodeTargetTooSmall, wantErr: protocol.ErrTargetTooSmall},
		{name: "target too small, found while writing", path: "/chunked", capacity: 1 << 20,
			wantCode: protocol.CodeTargetTooSmall, wantErr: protocol.ErrTargetTooSmall},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := filepath.Join(t.TempDir(), "disk.img")
			if err := os.WriteFile(target, []byte(old), 0o600); err != nil {
				t.Fatal(err)
			}
			_, c, _ := commandServer(t, nil, diskConfig(target, tt.capacity))
			sha := tt.sha
			if sha == "" {
				sha = img.SHA256
			}
			cmd, err := c.WriteImage(t.Context(), protocol.WriteImageParams{URL: is.URL + tt.path, Checksum: protocol.Checksum{Value: sha}, Target: target, Size: tt.size})
			if err != nil {
				t.Fatal(err)
			}
			if cmd.Status != protocol.StatusRunning || cmd.Name != protocol.CmdWriteImage || cmd.ID == "" {
				t.Errorf("accepted command = %+v, want a running write_image with an id", cmd)
			}
			got, err := c.Wait(t.Context(), cmd.ID, poll)
			content, rerr := os.ReadFile(target)
			if rerr != nil {
				t.Fatal(rerr)
			}
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("write_image failed: %v", err)
				}
				if got.Status != protocol.StatusSucceeded {
					t.Fatalf("status = %s, want succeeded", got.Status)
				}
				if !bytes.Equal(content, img.Data) {
					t.Errorf("target holds %d bytes that are not the image (%d bytes)", len(content), len(img.Data))
				}
				if got.DoneBytes != size || got.TotalBytes != tt.wantTotal {
					t.Errorf("progress = %d/%d, want %d/%d", got.DoneBytes, got.TotalBytes, size, tt.wantTotal)
				}
				return
			}
			if got.Status != protocol.StatusFailed || got.Code != tt.wantCode {
				t.Fatalf("command = %s (code %q, %s), want failed with code %q", got.Status, got.Code, got.Error, tt.wantCode)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("Wait error = %v, want %v", err, tt.wantErr)
			}
			if len(content) != 0 {
				t.Errorf("after a failed write the target holds %d bytes, want it wiped", len(content))
			}
		})
	}
}

// TestWriteImageRetryAfterStall: a failed download leaves the agent ready
// for the conductor to try again.
func TestWriteImageRetryAfterStall(t *testing.T) {
	img := agenttest.NewImage(t, 64<<10)
	is := agenttest.NewImageServer(t, img)
	target := filepath.Join(t.TempDir(), "disk.img")
	_, c, _ := commandServer(t, nil, diskConfig(target, 0))
	p := protocol.WriteImageParams{URL: is.URL + "/stall", Checksum: protocol.Checksum{Value: img.SHA256}, Target: target}
	cmd, err := c.WriteImage(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Wait(t.Context(), cmd.ID, poll); !errors.Is(err, protocol.ErrDownloadStalled) {
		t.Fatalf("first try: %v, want %v", err, protocol.ErrDownloadStalled)
	}
	p.URL = is.URL + "/image"
	cmd, err = c.WriteImage(t.Context(), p)
	if err != nil {
		t.Fatalf("retry refused: %v", err)
	}
	if _, err := c.Wait(t.Context(), cmd.ID, poll); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if got, _ := os.ReadFile(target); !bytes.Equal(got, img.Data) {
		t.Error("target does not hold the image after the retry")
	}
}

// TestSecondCommandRefusedWhileWriting: one command at a time; others are
// refused with 409, not queued.
func TestSecondCommandRefusedWhileWriting(t *testing.T) {
	img := agenttest.NewImage(t, 1<<10)
	is := agenttest.NewImageServer(t, img)
	target := filepath.Join(t.TempDir(), "disk.img")
	m := &recordingMachine{}
	_, c, _ := commandServer(t, m, diskConfig(target, 0))
	p := protocol.WriteImageParams{URL: is.URL + "/gated", Checksum: protocol.Checksum{Value: img.SHA256}, Target: target}
	first, err := c.WriteImage(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteImage(t.Context(), p); !errors.Is(err, protocol.ErrBusy) {
		t.Errorf("second write_image: %v, want %v", err, protocol.ErrBusy)
	}
	if _, err := c.EraseDisk(t.Context(), target); !errors.Is(err, protocol.ErrBusy) {
		t.Errorf("erase_disk during write_image: %v, want %v", err, protocol.ErrBusy)
	}
	if _, err := c.Reboot(t.Context()); !errors.Is(err, protocol.ErrBusy) {
		t.Errorf("reboot during write_image: %v, want %v", err, protocol.ErrBusy)
	}
	close(is.Gate)
	if _, err := c.Wait(t.Context(), first.ID, poll); err != nil {
		t.Fatal(err)
	}
	if r, _ := m.counts(); r != 0 {
		t.Errorf("machine rebooted %d times, want 0", r)
	}
	// Once it is done the next one runs.
	next, err := c.WriteImage(t.Context(), p)
	if err != nil {
		t.Fatalf("write_image after the first finished: %v", err)
	}
	if _, err := c.Wait(t.Context(), next.ID, poll); err != nil {
		t.Fatal(err)
	}
	list, err := c.Commands(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != first.ID || list[1].ID != next.ID {
		t.Errorf("commands = %+v, want the two write_images in order", list)
	}
}

func TestAuth(t *testing.T) {
	cs := NewCommandServer(&recordingMachine{}, CommandConfig{})
	t.Cleanup(cs.Close)
	srvNoToken := newHTTPServer(t, cs)
	cs2, _, url := commandServer(t, &recordingMachine{}, CommandConfig{})
	_ = cs2
	tests := []struct {
		name, url, token string
	}{
		{"wrong token", url, "not-the-token"},
		{"token prefix", url, testToken[:5]},
		{"token before lookup", srvNoToken, testToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := protocol.NewClient(tt.url, tt.token, protocol.ClientConfig{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Inventory(t.Context()); !errors.Is(err, protocol.ErrUnauthorized) {
				t.Errorf("Inventory: %v, want %v", err, protocol.ErrUnauthorized)
			}
			if _, err := c.Reboot(t.Context()); !errors.Is(err, protocol.ErrUnauthorized) {
				t.Errorf("Reboot: %v, want %v", err, protocol.ErrUnauthorized)
			}
			if _, err := c.Command(t.Context(), "x"); !errors.Is(err, protocol.ErrUnauthorized) {
				t.Errorf("Command: %v, want %v", err, protocol.ErrUnauthorized)
			}
		})
	}
	t.Run("no Authorization header", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url+"/v1/inventory", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("status = %d, want 401", resp.StatusCode)
		}
	})
}

func TestInvalidCommands(t *testing.T) {
	_, _, url := commandServer(t, &recordingMachine{}, CommandConfig{})
	sum := strings.Repeat("0", 64)
	tests := []struct {
		name, body string
	}{
		{"not json", `write_image please`},
		{"unknown command", `{"name": "format_c"}`},
		{"unknown field", `{"name": "reboot", "force": true}`},
		{"unknown param", `{"name": "reboot", "params": {"force": true}}`},
		{"ftp url", `{"name": "write_image", "params": {"url": "ftp://x/i", "sha256": "` + sum + `", "target": "/dev/sda"}}`},
		{"short sha", `{"name": "write_image", "params": {"url": "http://x/i", "sha256": "abc", "target": "/dev/sda"}}`},
		{"relative target", `{"name": "write_image", "params": {"url": "http://x/i", "sha256": "` + sum + `", "target": "sda"}}`},
		{"unclean target", `{"name": "write_image", "params": {"url": "http://x/i", "sha256": "` + sum + `", "target": "/dev/../etc/passwd"}}`},
		{"negative size", `{"name": "write_image", "params": {"url": "http://x/i", "sha256": "` + sum + `", "target": "/dev/sda", "size": -1}}`},
		{"erase without target", `{"name": "erase_disk"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url+"/v1/commands", strings.NewReader(tt.body))
			req.Header.Set("Authorization", "Bearer "+testToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("status = %d, want 400", resp.StatusCode)
			}
		})
	}
}

func TestCommandNotFound(t *testing.T) {
	_, c, _ := commandServer(t, &recordingMachine{}, CommandConfig{})
	if _, err := c.Command(t.Context(), "nope"); !errors.Is(err, protocol.ErrCommandNotFound) {
		t.Errorf("Command(nope) = %v, want %v", err, protocol.ErrCommandNotFound)
	}
}

func TestEraseDisk(t *testing.T) {
	tests := []struct {
		name string
		size int
	}{
		{"large", 3<<20 + 17},
		{"between one and two MiB", 1<<20 + 100},
		{"smaller than a MiB", 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := filepath.Join(t.TempDir(), "disk.img")
			if err := os.WriteFile(target, bytes.Repeat([]byte{0xff}, tt.size), 0o600); err != nil {
				t.Fatal(err)
			}
			_, c, _ := commandServer(t, nil, diskConfig(target, 0))
			cmd, err := c.EraseDisk(t.Context(), target)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Wait(t.Context(), cmd.ID, poll); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(target)
			if len(got) != tt.size {
				t.Fatalf("size after erase = %d, want %d", len(got), tt.size)
			}
			for i, b := range got {
				zeroed := i < eraseSpan || i >= tt.size-eraseSpan
				if zeroed != (b == 0) {
					t.Fatalf("byte %d = %#x after erase, want zeroed=%v", i, b, zeroed)
				}
			}
		})
	}
	t.Run("missing target", func(t *testing.T) {
		_, c, _ := commandServer(t, nil, CommandConfig{})
		cmd, err := c.EraseDisk(t.Context(), filepath.Join(t.TempDir(), "nope"))
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Wait(t.Context(), cmd.ID, poll)
		if err == nil || got.Code != protocol.CodeIO {
			t.Errorf("erase of a missing target = %+v, %v; want failed with %s", got, err, protocol.CodeIO)
		}
	})
}

// TestEraseMetadata: erase_metadata zeroes only the first and last 18 KiB
// (ironic-lib's destroy_disk_metadata), never the data between.
func TestEraseMetadata(t *testing.T) {
	tests := []struct {
		name string
		size int
	}{
		{"large", 3<<20 + 17},
		{"smaller than two spans", metadataSpan + 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := filepath.Join(t.TempDir(), "disk.img")
			if err := os.WriteFile(target, bytes.Repeat([]byte{0xff}, tt.size), 0o600); err != nil {
				t.Fatal(err)
			}
			_, c, _ := commandServer(t, nil, diskConfig(target, 0))
			cmd, err := c.EraseMetadata(t.Context(), target)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Wait(t.Context(), cmd.ID, poll); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(target)
			if len(got) != tt.size {
				t.Fatalf("size after erase = %d, want %d", len(got), tt.size)
			}
			for i, b := range got {
				zeroed := i < metadataSpan || i >= tt.size-metadataSpan
				if zeroed != (b == 0) {
					t.Fatalf("byte %d = %#x after erase_metadata, want zeroed=%v", i, b, zeroed)
				}
			}
		})
	}
}

func TestPowerCommands(t *testing.T) {
	tests := []struct {
		name       string
		machineErr error
		call       func(*protocol.Client, context.Context) (protocol.Command, error)
		wantReboot int
		wantOff    int
	}{
		{"reboot", nil, (*protocol.Client).Reboot, 1, 0},
		{"power off", nil, (*protocol.Client).PowerOff, 0, 1},
		{"reboot fails", errors.New("BMC says no"), (*protocol.Client).Reboot, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &recordingMachine{err: tt.machineErr}
			_, c, _ := commandServer(t, m, CommandConfig{PowerDelay: time.Millisecond})
			cmd, err := tt.call(c, t.Context())
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.Wait(t.Context(), cmd.ID, poll)
			if tt.machineErr != nil {
				if got.Code != protocol.CodeMachine || !errors.Is(err, protocol.ErrMachine) || !strings.Contains(got.Error, "BMC says no") {
					t.Errorf("command = %+v, %v; want failed with %s and the machine's error", got, err, protocol.CodeMachine)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if r, o := m.counts(); r != tt.wantReboot || o != tt.wantOff {
				t.Errorf("machine reboots, power-offs = %d, %d; want %d, %d", r, o, tt.wantReboot, tt.wantOff)
			}
		})
	}
}

// TestCloseCancelsRunningCommand: stopping the agent ends its command,
// which reports why, and later commands are refused.
func TestCloseCancelsRunningCommand(t *testing.T) {
	img := agenttest.NewImage(t, 1<<10)
	is := agenttest.NewImageServer(t, img)
	target := filepath.Join(t.TempDir(), "disk.img")
	cs, c, _ := commandServer(t, &recordingMachine{}, diskConfig(target, 0))
	cmd, err := c.WriteImage(t.Context(), protocol.WriteImageParams{URL: is.URL + "/gated", Checksum: protocol.Checksum{Value: img.SHA256}, Target: target})
	if err != nil {
		t.Fatal(err)
	}
	cs.Close()
	got, err := c.Command(t.Context(), cmd.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != protocol.StatusFailed || got.Code != protocol.CodeCanceled {
		t.Errorf("command after Close = %+v, want failed with %s", got, protocol.CodeCanceled)
	}
	if _, err := c.Reboot(t.Context()); !errors.Is(err, protocol.ErrBusy) {
		t.Errorf("command after Close: %v, want %v", err, protocol.ErrBusy)
	}
}

func TestInventoryEndpoint(t *testing.T) {
	want, err := ReadInventory("testdata/host1")
	if err != nil {
		t.Fatal(err)
	}
	_, c, _ := commandServer(t, nil, CommandConfig{
		Inventory: func(context.Context) (protocol.Inventory, error) { return ReadInventory("testdata/host1") },
	})
	got, err := c.Inventory(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Disks) != len(want.Disks) || got.Disks[1] != want.Disks[1] || got.CPU != want.CPU ||
		len(got.Interfaces) != 2 || got.Interfaces[0] != want.Interfaces[0] {
		t.Errorf("inventory over HTTP\n got %+v\nwant %+v", got, want)
	}
}

// TestWriteImageMissingDevice: a block device that is not there is an
// error, never a file created in /dev.
func TestWriteImageMissingDevice(t *testing.T) {
	img := agenttest.NewImage(t, 1<<10)
	is := agenttest.NewImageServer(t, img)
	target := "/dev/ironfleet-test-no-such-disk"
	_, c, _ := commandServer(t, &recordingMachine{}, CommandConfig{})
	cmd, err := c.WriteImage(t.Context(), protocol.WriteImageParams{URL: is.URL + "/image", Checksum: protocol.Checksum{Value: img.SHA256}, Target: target})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Wait(t.Context(), cmd.ID, poll)
	if err == nil || got.Code != protocol.CodeIO {
		t.Errorf("write_image to a missing device = %+v, %v; want failed with %s", got, err, protocol.CodeIO)
	}
	if _, err := os.Stat(target); err == nil {
		_ = os.Remove(target)
		t.Errorf("write_image created %s", target)
	}
}
