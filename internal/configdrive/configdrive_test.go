package configdrive_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"

	"github.com/ironfleet/ironfleet/internal/configdrive"
)

// readISO opens iso with go-diskfs's reader, as a machine's mount would.
func readISO(t *testing.T, iso []byte) *iso9660.FileSystem {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cd.iso")
	if err := os.WriteFile(p, iso, 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := file.OpenFromPath(p, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	fsys, err := iso9660.Read(b, int64(len(iso)), 0, 2048)
	if err != nil {
		t.Fatalf("reading the ISO back: %v", err)
	}
	return fsys
}

func TestBuild(t *testing.T) {
	tests := []struct {
		name  string
		in    configdrive.Contents
		files map[string]string // openstack/latest/<name> → content; "" absent
	}{
		{
			name: "all parts, user data a string",
			in: configdrive.Contents{
				MetaData:    map[string]any{"uuid": "u1", "public_keys": map[string]any{"k": "ssh-ed25519 AAAA"}},
				NetworkData: map[string]any{"links": []any{}},
				UserData:    "#cloud-config\nmarker: 42\n",
				VendorData:  map[string]any{"v": "x"},
			},
			files: map[string]string{
				"meta_data.json":    `{"public_keys":{"k":"ssh-ed25519 AAAA"},"uuid":"u1"}`,
				"network_data.json": `{"links":[]}`,
				"user_data":         "#cloud-config\nmarker: 42\n",
				"vendor_data.json":  `{"v":"x"}`,
			},
		},
		{
			name:  "user data an object is JSON; empty parts absent",
			in:    configdrive.Contents{UserData: map[string]any{"a": 1}},
			files: map[string]string{"meta_data.json": `{}`, "user_data": `{"a":1}`, "network_data.json": "", "vendor_data.json": ""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iso, err := configdrive.Build(tt.in, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			fsys := readISO(t, iso)
			if got := fsys.Label(); strings.TrimRight(got, " ") != configdrive.Label {
				t.Errorf("label %q, want %q", got, configdrive.Label)
			}
			for name, want := range tt.files {
				got, err := fsys.ReadFile("openstack/latest/" + name)
				if want == "" {
					if err == nil {
						t.Errorf("%s present (%q), want absent", name, got)
					}
					continue
				}
				if err != nil {
					t.Errorf("%s: %v", name, err)
					continue
				}
				if strings.HasSuffix(name, ".json") {
					var g, w any
					if json.Unmarshal(got, &g) != nil || json.Unmarshal([]byte(want), &w) != nil {
						t.Fatalf("%s: %q is not JSON", name, got)
					}
					gb, _ := json.Marshal(g)
					wb, _ := json.Marshal(w)
					if !bytes.Equal(gb, wb) {
						t.Errorf("%s: got %s, want %s", name, gb, wb)
					}
				} else if string(got) != want {
					t.Errorf("%s: got %q, want %q", name, got, want)
				}
			}
		})
	}
}

func TestEncodeDecode(t *testing.T) {
	iso, err := configdrive.Build(configdrive.Contents{UserData: "hi"}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	enc, err := configdrive.Encode(iso)
	if err != nil {
		t.Fatal(err)
	}
	got, err := configdrive.Decode(enc[:10] + "\n" + enc[10:])
	if err != nil {
		t.Fatalf("Decode(Encode(iso)): %v", err)
	}
	if !bytes.Equal(got, iso) {
		t.Errorf("Decode(Encode(iso)) differs from iso (%d bytes, want %d)", len(got), len(iso))
	}
}

func TestDecodeRefuses(t *testing.T) {
	notISO, _ := configdrive.Encode(bytes.Repeat([]byte{1}, 40000))
	tests := map[string]string{
		"not base64": "{not: base64}",
		"not an ISO": notISO,
		"too short":  "aGVsbG8=",
		"bad gzip":   "H4sIAAAA",
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := configdrive.Decode(in); !errors.Is(err, configdrive.ErrInvalid) {
				t.Errorf("Decode: got %v, want ErrInvalid", err)
			}
		})
	}
}

// TestBuildLabelBlkid reads the label as a Linux machine finds the volume
// (blkid, what cloud-init's config drive source asks for LABEL=config-2).
func TestBuildLabelBlkid(t *testing.T) {
	blkid, err := exec.LookPath("blkid")
	if err != nil {
		t.Skip("no blkid on this machine")
	}
	iso, err := configdrive.Build(configdrive.Contents{UserData: "x"}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "cd.iso")
	if err := os.WriteFile(p, iso, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(blkid, "-p", "-o", "export", p).Output()
	if err != nil {
		t.Fatalf("blkid: %v", err)
	}
	for _, want := range []string{"LABEL=" + configdrive.Label, "TYPE=iso9660"} {
		if !slices.Contains(strings.Split(string(out), "\n"), want) {
			t.Errorf("blkid says %q, want a line %q", out, want)
		}
	}
}
