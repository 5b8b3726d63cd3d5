//go:build e2e

package lab

import (
	"bytes"
	"context"
	"crypto/md5" //nolint:gosec // Ironic's image_checksum may be md5: the lab sends one
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/internal/wait"
)

// rootSerial is the serial number of the lab machine's second disk, which
// the root device hint names.
const rootSerial = "IRONFLEET-ROOT-1"

// instanceReport is what labinit POSTs after InstanceMarker.
type instanceReport struct {
	Host             string `json:"host"`
	ConfigDrive      string `json:"config_drive"`
	ConfigDriveError string `json:"config_drive_error"`
	UserData         string `json:"user_data"`
	UUID             string `json:"uuid"`
}

func parseReport(t *testing.T, body string) instanceReport {
	t.Helper()
	js, ok := strings.CutPrefix(body, InstanceMarker+" ")
	if !ok {
		t.Fatalf("report %q does not start with %q", body, InstanceMarker)
	}
	var r instanceReport
	if err := json.Unmarshal([]byte(js), &r); err != nil {
		t.Fatalf("report %q: %v", body, err)
	}
	return r
}

// TestLabInstance deploys a cloud image the way operators do, through the
// public API only, on one machine with two disks: the instance image as
// qcow2 with a config drive given as an object (1.56), once in UEFI (OVMF)
// and once in legacy BIOS (SeaBIOS), onto the disk a root device hint
// names by serial number; the instance reads its config drive and reports
// the user data and its node's UUID. Then an image with a wrong checksum:
// the deploy fails, the disk is wiped, and the node can be undeployed.
func TestLabInstance(t *testing.T) {
	requireTools(t, "qemu-img")
	l := startLabMachine(t, MachineConfig{
		MAC: "52:54:00:1a:b0:20", Firmware: FirmwareUEFI,
		DiskSize:   128 << 20,
		ExtraDisks: []DiskConfig{{Size: 128 << 20, Serial: rootSerial}},
	})
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()

	raw := filepath.Join(l.imageDir, "instance.img")
	qcow := filepath.Join(l.imageDir, "instance.qcow2")
	if b, err := exec.CommandContext(ctx, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, qcow).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v\n%s", err, b)
	}
	qcowURL := strings.TrimSuffix(l.imageURL, "instance.img") + "instance.qcow2"
	rawHead := readAt(t, raw, 0, 512)

	var n node
	if err := l.do(ctx, http.MethodPost, "/v1/nodes", map[string]any{
		"name": "lab-instance", "driver": "ipmi", "driver_info": l.bmc.DriverInfo(), "automated_clean": false,
		"properties": map[string]any{"root_device": map[string]any{"serial": rootSerial}},
	}, &n); err != nil {
		t.Fatal(err)
	}
	if err := l.do(ctx, http.MethodPost, "/v1/ports", map[string]any{"node_uuid": n.UUID, "address": l.machine.MAC}, nil); err != nil {
		t.Fatal(err)
	}
	l.provision(ctx, n.UUID, "manage")
	l.waitState(ctx, n.UUID, "manageable")
	l.provision(ctx, n.UUID, "provide")
	l.waitState(ctx, n.UUID, "available")

	setInstance := func(t *testing.T, info map[string]any) {
		t.Helper()
		if err := l.do(ctx, http.MethodPatch, "/v1/nodes/"+n.UUID, []map[string]any{
			{"op": "add", "path": "/instance_info", "value": info},
		}, nil); err != nil {
			t.Fatal(err)
		}
	}
	// undeploy tears the instance down (no cleaning: automated_clean is
	// off), from active or deploy failed.
	undeploy := func(t *testing.T) {
		t.Helper()
		l.provision(ctx, n.UUID, "deleted")
		for {
			var cur node
			if err := l.do(ctx, http.MethodGet, "/v1/nodes/"+n.UUID, nil, &cur); err != nil {
				t.Fatal(err)
			}
			if cur.ProvisionState != "deploy failed" && cur.ProvisionState != "active" {
				break
			}
			if err := wait.Sleep(ctx, 100*time.Millisecond); err != nil {
				t.Fatalf("undeploy did not start: node still %s", cur.ProvisionState)
			}
		}
		l.waitState(ctx, n.UUID, "available")
	}

	for _, tt := range []struct {
		firmware string
		checksum map[string]any // how instance_info gives the qcow2's checksum
	}{
		{FirmwareUEFI, map[string]any{"image_checksum": sum(t, qcow, sha256.New())}},
		{FirmwareBIOS, map[string]any{"image_os_hash_algo": "sha512", "image_os_hash_value": sum(t, qcow, sha512.New())}},
	} {
		t.Run("qcow2 and config drive, boot mode "+tt.firmware, func(t *testing.T) {
			if err := l.machine.SetFirmware(tt.firmware); err != nil {
				t.Fatal(err)
			}
			info := map[string]any{
				"image_source": qcowURL, "image_disk_format": "qcow2",
				"capabilities": map[string]any{"boot_mode": tt.firmware},
			}
			for k, v := range tt.checksum {
				info[k] = v
			}
			setInstance(t, info)
			marker := fmt.Sprintf("lab-user-data-%s-%d", tt.firmware, time.Now().UnixNano())
			body := l.deployWith(ctx, t, n.UUID, "deploy: qcow2, config drive, root device hint, boot mode "+tt.firmware, map[string]any{
				"target": "active",
				"configdrive": map[string]any{
					"user_data": marker,
					"meta_data": map[string]any{"hostname": "lab-instance"},
				},
			}, nil)
			rep := parseReport(t, body)
			if rep.ConfigDriveError != "" {
				t.Errorf("the instance could not read its config drive: %s", rep.ConfigDriveError)
			}
			if rep.UserData != marker {
				t.Errorf("user_data read by the instance = %q, want %q", rep.UserData, marker)
			}
			if rep.UUID != n.UUID {
				t.Errorf("meta_data uuid read by the instance = %q, want the node's %q", rep.UUID, n.UUID)
			}
			// The hint names the second disk: the image and the config
			// drive are there, the first disk is untouched.
			if !strings.HasPrefix(rep.ConfigDrive, "/dev/vdb") {
				t.Errorf("config drive found on %q, want a partition of /dev/vdb (serial %s)", rep.ConfigDrive, rootSerial)
			}
			if got := readAt(t, l.machine.ExtraDisks[0], 0, 446); !bytes.Equal(got, rawHead[:446]) {
				t.Errorf("the hinted disk does not start with the image's boot code (the qcow2 was not converted, or went elsewhere)")
			}
			if !isZero(readAt(t, l.machine.Disk, 0, 1<<20)) {
				t.Errorf("the first disk was written: the root device hint was not honoured")
			}
			undeploy(t)
		})
	}

	t.Run("bad checksum", func(t *testing.T) {
		wrong := md5.Sum([]byte("not the image")) //nolint:gosec // a checksum that does not match, in a form Ironic takes
		setInstance(t, map[string]any{
			"image_source": qcowURL, "image_disk_format": "qcow2", "image_checksum": hex.EncodeToString(wrong[:]),
			"capabilities": map[string]any{"boot_mode": FirmwareBIOS},
		})
		start := time.Now()
		l.provision(ctx, n.UUID, "active")
		var got node
		for {
			if err := l.do(ctx, http.MethodGet, "/v1/nodes/"+n.UUID, nil, &got); err != nil {
				t.Fatal(err)
			}
			if got.ProvisionState == "deploy failed" {
				break
			}
			if got.ProvisionState == "active" {
				t.Fatal("a deploy with a wrong checksum went active")
			}
			if err := wait.Sleep(ctx, 200*time.Millisecond); err != nil {
				t.Fatalf("node still %s, want deploy failed: %v", got.ProvisionState, err)
			}
		}
		t.Logf("deploy failed %.1fs after the request: %s", time.Since(start).Seconds(), deref(got.LastError))
		if !strings.Contains(strings.ToLower(deref(got.LastError)), "checksum") {
			t.Errorf("last_error %q does not say the checksum was wrong", deref(got.LastError))
		}
		// The image was written before it could be verified: the target
		// is wiped (its first and last MiB zeroed), so nothing
		// half-verified can boot.
		checkErased(t, l.machine.ExtraDisks[0])
		undeploy(t)
	})
}

func sum(t *testing.T, path string, h hash.Hash) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func readAt(t *testing.T, path string, off int64, n int) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

func isZero(b []byte) bool { return bytes.Equal(b, make([]byte, len(b))) }
