package agenttest

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/diskfs/go-diskfs/backend"
	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/diskfs/go-diskfs/partition/mbr"
)

// Partition tables a test image may carry.
const (
	GPT = "gpt"
	MBR = "mbr"
)

// NewDiskImage returns an image of size bytes (a multiple of 1 MiB) that
// is a disk as a cloud image is: a partition table (GPT or MBR) with one
// partition from 1 MiB to the image's end; or, with table "", no table.
func NewDiskImage(t testing.TB, size int64, table string) Image {
	t.Helper()
	p := filepath.Join(t.TempDir(), "image.raw")
	f, err := os.Create(p) //nolint:gosec // a file in the test's own temp dir
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	switch table {
	case GPT:
		tb := &gpt.Table{LogicalSectorSize: 512, PhysicalSectorSize: 512, ProtectiveMBR: true, Partitions: []*gpt.Partition{
			{Index: 1, Start: 2048, End: uint64(size/512) - 34, Type: gpt.LinuxFilesystem, Name: "root"}, //nolint:gosec // a test image's size, far below 2^63
		}}
		err = tb.Write(f, size)
	case MBR:
		tb := &mbr.Table{LogicalSectorSize: 512, PhysicalSectorSize: 512, Partitions: []*mbr.Partition{
			{Bootable: true, Type: mbr.Linux, Start: 2048, Size: uint32(size/512) - 2048}, //nolint:gosec // a test image's size, far below 2 TiB
		}}
		err = tb.Write(f, size)
	}
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(p) //nolint:gosec // the file just created
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(data)
	return Image{Data: data, SHA256: hex.EncodeToString(s[:])}
}

// ConfigDrive is what a disk's config drive partition holds, as a machine
// booting it finds it.
type ConfigDrive struct {
	// Table is the disk's partition table, GPT or MBR.
	Table string
	// Index is the partition's number; Start and End its first and last
	// sectors; Name its GPT name.
	Index      int
	Start, End uint64
	Name       string
	// Label is the ISO 9660 volume label, spaces trimmed.
	Label string
	// Files are the files under openstack/latest.
	Files map[string]string
	// DiskSectors is the disk's size in sectors.
	DiskSectors uint64
}

// ReadConfigDrive reads the last partition of the disk at path as a
// config drive; it fails t when there is none or it holds no ISO 9660.
func ReadConfigDrive(t testing.TB, path string) ConfigDrive {
	t.Helper()
	f, err := os.Open(path) //nolint:gosec // a disk image the test made
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	b := file.New(f, true)
	cd := ConfigDrive{DiskSectors: uint64(fi.Size() / 512)} //nolint:gosec // a file's size, never negative
	if tb, err := gpt.Read(b, 512, 512); err == nil {
		cd.Table = GPT
		for _, p := range tb.Partitions {
			if p.Type != gpt.Unused && p.Index > cd.Index {
				cd.Index, cd.Start, cd.End, cd.Name = p.Index, p.Start, p.End, p.Name
			}
		}
	} else if tb, err := mbr.Read(b, 512, 512); err == nil {
		cd.Table = MBR
		for i, p := range tb.Partitions {
			if p.Type != mbr.Empty && uint64(p.Start) > cd.Start {
				cd.Index, cd.Start, cd.End = i+1, uint64(p.Start), uint64(p.Start)+uint64(p.Size)-1
			}
		}
	} else {
		t.Fatalf("%s has no partition table", path)
	}
	if cd.Index == 0 {
		t.Fatalf("%s has no partitions", path)
	}
	size := int64(cd.End-cd.Start+1) * 512 //nolint:gosec // a partition of a test image
	// The partition as a storage of its own: go-diskfs's ISO reader
	// honours a start offset for the volume descriptors only.
	fsys, err := iso9660.Read(backend.Sub(b, int64(cd.Start)*512, size), size, 0, 2048) //nolint:gosec // a partition of a test image
	if err != nil {
		t.Fatalf("partition %d of %s holds no ISO 9660: %v", cd.Index, path, err)
	}
	label := fsys.Label()
	for len(label) > 0 && (label[len(label)-1] == ' ' || label[len(label)-1] == 0) {
		label = label[:len(label)-1]
	}
	cd.Label = label
	cd.Files = map[string]string{}
	entries, err := fsys.ReadDir("openstack/latest")
	if err != nil {
		t.Fatalf("config drive of %s: %v", path, err)
	}
	for _, e := range entries {
		data, err := fsys.ReadFile("openstack/latest/" + e.Name())
		if err != nil {
			t.Fatalf("config drive of %s: %v", path, err)
		}
		cd.Files[e.Name()] = string(data)
	}
	return cd
}
