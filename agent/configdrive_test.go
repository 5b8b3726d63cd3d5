package agent

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/agent/protocol"
	"github.com/ironfleet/ironfleet/internal/agenttest"
	"github.com/ironfleet/ironfleet/internal/configdrive"
)

// TestWriteImageWithConfigDrive: after the image, write_image writes the
// config drive to a new 64 MiB partition at the end of the disk, as
// ironic-python-agent's partition_utils.create_config_drive_partition
// does (GPT: named config-2, the backup header moved to the disk's end;
// MBR: a primary partition), from each form the conductor may send; and
// fails, wiping the disk, where it cannot.
func TestWriteImageWithConfigDrive(t *testing.T) {
	iso, err := configdrive.Build(configdrive.Contents{
		MetaData: map[string]any{"uuid": "node-1"}, UserData: "#cloud-config\nmarker: cd-test\n"}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	encoded, err := configdrive.Encode(iso)
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(iso)
	_ = zw.Close()
	cds := newHTTPServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/b64":
			_, _ = w.Write([]byte(encoded))
		case "/iso.gz":
			_, _ = w.Write(gz.Bytes())
		default:
			http.NotFound(w, r)
		}
	}))
	const diskSize = 256 << 20
	gptImg := agenttest.NewDiskImage(t, 8<<20, agenttest.GPT)
	mbrImg := agenttest.NewDiskImage(t, 8<<20, agenttest.MBR)
	bare := agenttest.NewDiskImage(t, 8<<20, "")
	tests := []struct {
		name      string
		img       agenttest.Image
		cd        string
		wantTable string
		wantErr   error  // nil: success
		wantMsg   string // in the failure's error
		capacity  int64  // the disk's; 0: diskSize
	}{
		{name: "GPT, base64", img: gptImg, cd: encoded, wantTable: agenttest.GPT},
		{name: "MBR, base64", img: mbrImg, cd: encoded, wantTable: agenttest.MBR},
		{name: "GPT, URL to base64", img: gptImg, cd: cds + "/b64", wantTable: agenttest.GPT},
		{name: "MBR, URL to a gzipped ISO", img: mbrImg, cd: cds + "/iso.gz", wantTable: agenttest.MBR},
		{name: "URL not found", img: gptImg, cd: cds + "/missing", wantErr: protocol.ErrDownload},
		{name: "GPT, the image's partition in the way", img: gptImg, cd: encoded, capacity: 8<<20 + 63<<20,
			wantErr: protocol.ErrTargetTooSmall, wantMsg: "no room for the config drive"},
		{name: "MBR, the image's partition in the way", img: mbrImg, cd: encoded, capacity: 8<<20 + 63<<20,
			wantErr: protocol.ErrTargetTooSmall, wantMsg: "no room for the config drive"},
		{name: "disk smaller than the partition", img: gptImg, cd: encoded, capacity: 8<<20 + 32<<20,
			wantErr: protocol.ErrTargetTooSmall, wantMsg: "no room for the config drive"},
		{name: "image without a partition table", img: bare, cd: encoded, wantMsg: "no partition table"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := agenttest.NewImageServer(t, tt.img)
			target := filepath.Join(t.TempDir(), "disk.img")
			cfg := diskConfig(target, cmp.Or(tt.capacity, diskSize))
			cfg.StallTimeout = 10 * time.Second // no stall is tested here: a loaded machine must not look like one
			_, c, _ := commandServer(t, nil, cfg)
			cmd, err := c.WriteImage(t.Context(), protocol.WriteImageParams{URL: is.URL + "/image", Checksum: protocol.Checksum{Value: tt.img.SHA256}, Target: target, ConfigDrive: tt.cd})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Wait(t.Context(), cmd.ID, poll)
			if tt.wantErr != nil || tt.wantMsg != "" {
				if err == nil {
					t.Fatal("write_image succeeded, want a failure")
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Errorf("error %v, want %v", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantMsg) {
					t.Errorf("error %q, want %q in it", err, tt.wantMsg)
				}
				if fi, serr := os.Stat(target); serr == nil && fi.Size() != 0 {
					t.Errorf("after the failure the disk holds %d bytes, want it wiped", fi.Size())
				}
				return
			}
			if err != nil {
				t.Fatalf("write_image: %v", err)
			}
			got := agenttest.ReadConfigDrive(t, target)
			if got.Table != tt.wantTable {
				t.Errorf("partition table %s, want %s", got.Table, tt.wantTable)
			}
			if got.Index != 2 {
				t.Errorf("config drive is partition %d, want 2 (after the image's)", got.Index)
			}
			if tt.wantTable == agenttest.GPT && got.Name != configdrive.Label {
				t.Errorf("GPT partition name %q, want %q", got.Name, configdrive.Label)
			}
			if size := (got.End - got.Start + 1) * 512; size != configDrivePartSize {
				t.Errorf("partition of %d bytes, want %d", size, configDrivePartSize)
			}
			// At the end: past it, at most the GPT's backup (33 sectors).
			if tail := got.DiskSectors - 1 - got.End; tail > 33+alignSectors {
				t.Errorf("partition ends %d sectors before the disk's end, want it at the end", tail)
			}
			if got.Label != configdrive.Label {
				t.Errorf("volume label %q, want %q", got.Label, configdrive.Label)
			}
			if u := got.Files["user_data"]; u != "#cloud-config\nmarker: cd-test\n" {
				t.Errorf("user_data %q", u)
			}
			// The image itself is intact.
			disk, err := os.ReadFile(target)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(disk[512:1024], tt.img.Data[512:1024]) && tt.wantTable == agenttest.MBR {
				t.Error("the image's first sectors changed")
			}
			if !bytes.Equal(disk[1<<20:2<<20], tt.img.Data[1<<20:2<<20]) {
				t.Error("the image's partition changed")
			}
		})
	}
}

// TestWriteImageRefusesBadConfigDrive: a config drive the agent could not
// write is refused before anything is opened (400, invalid params).
func TestWriteImageRefusesBadConfigDrive(t *testing.T) {
	img := agenttest.NewDiskImage(t, 8<<20, agenttest.GPT)
	target := filepath.Join(t.TempDir(), "disk.img")
	_, c, _ := commandServer(t, nil, diskConfig(target, 256<<20))
	for name, cd := range map[string]string{"not base64": "{}", "not an ISO": "aGVsbG8=", "ftp URL": "ftp://x/cd.iso"} {
		t.Run(name, func(t *testing.T) {
			_, err := c.WriteImage(t.Context(), protocol.WriteImageParams{URL: "http://x/i", Checksum: protocol.Checksum{Value: img.SHA256}, Target: target, ConfigDrive: cd})
			if !errors.Is(err, protocol.ErrInvalidParams) {
				t.Errorf("error %v, want ErrInvalidParams", err)
			}
		})
	}
	if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("target touched: %v", err)
	}
}
