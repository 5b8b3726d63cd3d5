package conductor_test

import (
	"bytes"
	"crypto/md5" //nolint:gosec // the md5 checksum Ironic may pass is one of the cases
	"crypto/sha512"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/internal/agenttest"
	"github.com/ironfleet/ironfleet/internal/redistest"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// TestDeployImageFields: the image fields of instance_info reach the real
// agent as Ironic's AgentDeploy.write_image passes them
// (ironic/drivers/modules/agent.py): a qcow2 image verified by
// image_os_hash_algo/_value lands on the disk converted; image_checksum as
// md5, "sha256:…" or a checksum file's URL with image_disk_format raw
// lands as it is; a wrong checksum fails the deploy saying so and wipes the
// disk; a field the agent cannot honour fails it naming the field, before
// the disk is touched.
func TestDeployImageFields(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		redistest.Unavailable(t, err)
	}
	e := newEnv(t)
	e.startConductor(t, "c1", nil, nil)
	raw := agenttest.NewDiskImage(t, 8<<20, agenttest.GPT)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "disk.raw"), raw.Data, 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.CommandContext(t.Context(), "qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2",
		filepath.Join(dir, "disk.raw"), filepath.Join(dir, "disk.qcow2")).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v\n%s", err, b)
	}
	qcow, err := os.ReadFile(filepath.Join(dir, "disk.qcow2")) //nolint:gosec // the test's own temp file
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(raw.SHA256+"  disk.raw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	s512 := sha512.Sum512(qcow)
	m5 := md5.Sum(raw.Data) //nolint:gosec // see the import

	tests := []struct {
		name       string
		ii         map[string]any
		wantFailed string // in last_error when the deploy must fail
		wantWiped  bool
	}{
		{name: "qcow2 os_hash", ii: map[string]any{"image_source": srv.URL + "/disk.qcow2", "image_disk_format": "qcow2",
			"image_os_hash_algo": "sha512", "image_os_hash_value": hex.EncodeToString(s512[:]), "image_checksum": "ignored-when-os-hash-is-given"}},
		{name: "raw md5", ii: map[string]any{"image_source": srv.URL + "/disk.raw", "image_disk_format": "raw", "image_checksum": hex.EncodeToString(m5[:])}},
		{name: "raw algo prefix", ii: map[string]any{"image_source": srv.URL + "/disk.raw", "image_checksum": "sha256:" + raw.SHA256}},
		{name: "raw checksum URL", ii: map[string]any{"image_source": srv.URL + "/disk.raw", "image_checksum": srv.URL + "/SHA256SUMS"}},
		{name: "wrong checksum", ii: map[string]any{"image_source": srv.URL + "/disk.qcow2", "image_checksum": raw.SHA256},
			wantFailed: "checksum mismatch", wantWiped: true},
		{name: "unknown os_hash_algo", ii: map[string]any{"image_source": srv.URL + "/disk.raw", "image_os_hash_algo": "sha3_256", "image_os_hash_value": raw.SHA256},
			wantFailed: `instance_info image_os_hash_algo: algorithm "sha3_256" is not supported`},
		{name: "os_hash_value alone", ii: map[string]any{"image_source": srv.URL + "/disk.raw", "image_os_hash_value": raw.SHA256},
			wantFailed: "image_os_hash_value is set without image_os_hash_algo"},
		{name: "sha1 image_checksum", ii: map[string]any{"image_source": srv.URL + "/disk.raw", "image_checksum": raw.SHA256[:40]},
			wantFailed: "instance_info image_checksum: checksum"},
		{name: "vmdk", ii: map[string]any{"image_source": srv.URL + "/disk.raw", "image_checksum": raw.SHA256, "image_disk_format": "vmdk"},
			wantFailed: `instance_info image_disk_format "vmdk"`},
	}
	const old = "THE DISK BEFORE THE DEPLOY"
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := "img-" + strings.ReplaceAll(tt.name, " ", "-")
			n := e.enroll(t, name, "")
			e.request(t, n.UUID, wire.OpManage, nil)
			e.waitState(t, n.UUID, wire.StateManageable, 20*time.Second)
			nodeNoClean(t, e, n.UUID)
			e.request(t, n.UUID, wire.OpProvide, nil)
			e.waitState(t, n.UUID, wire.StateAvailable, 20*time.Second)
			disk := filepath.Join(e.diskDir, name+".img")
			if err := os.WriteFile(disk, []byte(old), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := e.inv.UpdateNode(t.Context(), n.UUID, 0, func(n *wire.Node) error { n.InstanceInfo = tt.ii; return nil }); err != nil {
				t.Fatal(err)
			}
			e.request(t, n.UUID, wire.OpDeploy, nil)
			content := func() []byte {
				b, err := os.ReadFile(disk) //nolint:gosec // the test's own temp file
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			if tt.wantFailed != "" {
				got := e.waitState(t, n.UUID, wire.StateDeployFailed, 30*time.Second)
				if !strings.Contains(got.LastError, tt.wantFailed) {
					t.Errorf("last_error %q, want %q in it", got.LastError, tt.wantFailed)
				}
				if c := content(); tt.wantWiped && len(c) != 0 {
					t.Errorf("the disk holds %d bytes after a failed write, want it wiped", len(c))
				} else if !tt.wantWiped && string(c) != old {
					t.Errorf("the disk holds %q, want it untouched by a refused deploy", c)
				}
				return
			}
			e.waitState(t, n.UUID, wire.StateActive, 30*time.Second)
			if !bytes.Equal(content(), raw.Data) {
				t.Errorf("the disk is not the image's disk")
			}
		})
	}
}
