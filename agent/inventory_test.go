package agent

import (
	"reflect"
	"strings"
	"testing"

	"github.com/ironfleet/ironfleet/agent/protocol"
)

func TestReadInventoryFixture(t *testing.T) {
	got, err := ReadInventory("testdata/host1")
	if err != nil {
		t.Fatal(err)
	}
	want := protocol.Inventory{
		CPU:    protocol.CPU{Model: "Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz", Count: 4},
		Memory: protocol.Memory{TotalBytes: 16384000 * 1024},
		Disks: []protocol.Disk{
			{Name: "nvme0n1", Path: "/dev/nvme0n1", SizeBytes: 1875385008 * 512, Serial: "S4EWNX0R123456",
				Model: "Samsung SSD 970 EVO Plus 1TB"},
			// No serial in sysfs nor VPD: a WWN is not a serial.
			{Name: "sda", Path: "/dev/sda", SizeBytes: 937703088 * 512,
				WWN: "0x55cd2e415123abcd", WWNWithExtension: "0x55cd2e415123abcd", Model: "INTEL SSDSC2KB48", Vendor: "ATA"},
			{Name: "vda", Path: "/dev/vda", SizeBytes: 41943040 * 512, Serial: "ironfleet-disk0",
				Vendor: "0x1af4", Rotational: true},
		},
		Interfaces: []protocol.NIC{
			{Name: "eth0", MACAddress: "52:54:00:12:34:56", HasCarrier: true, OperState: "up", SpeedMbps: 10000},
			{Name: "eth1", MACAddress: "52:54:00:ab:cd:ef", OperState: "down"},
		},
	}
	if !reflect.DeepEqual(got.CPU, want.CPU) {
		t.Errorf("CPU = %+v, want %+v", got.CPU, want.CPU)
	}
	if got.Memory != want.Memory {
		t.Errorf("Memory = %+v, want %+v", got.Memory, want.Memory)
	}
	if !reflect.DeepEqual(got.Disks, want.Disks) {
		t.Errorf("Disks (loop0 and sr0 must be skipped)\n got %+v\nwant %+v", got.Disks, want.Disks)
	}
	if !reflect.DeepEqual(got.Interfaces, want.Interfaces) {
		t.Errorf("Interfaces (lo and br0 must be skipped)\n got %+v\nwant %+v", got.Interfaces, want.Interfaces)
	}
}

func TestMACsFixture(t *testing.T) {
	got, err := MACs("testdata/host1")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"52:54:00:12:34:56", "52:54:00:ab:cd:ef"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("MACs = %v, want %v", got, want)
	}
}

func TestReadInventoryBadInput(t *testing.T) {
	tests := []struct {
		name, root, wantErr string
	}{
		{"missing tree", "testdata/does-not-exist", "no such file"},
		{"unparsable disk size", "testdata/badsize", "disk sda"},
		{"no MemTotal", "testdata/nomem", "no MemTotal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadInventory(tt.root)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ReadInventory(%s) error = %v, want one containing %q", tt.root, err, tt.wantErr)
			}
		})
	}
}

// TestReadInventoryThisMachine reads the real /proc and /sys: whatever the
// hardware, the reader must not fail on a live kernel's trees.
func TestReadInventoryThisMachine(t *testing.T) {
	inv, err := ReadInventory("/")
	if err != nil {
		t.Fatal(err)
	}
	if inv.CPU.Count == 0 || inv.Memory.TotalBytes == 0 {
		t.Errorf("inventory of this machine = %+v, want CPUs and memory", inv)
	}
}

// TestReadDisksHintAttributes reads, from a fixture tree of a QEMU-like
// machine (two virtio-blk disks with serial=, a SATA SSD, an NVMe
// namespace), what root device hints match on: serial (sysfs, or VPD page
// 0x80), udev's WWN forms, hctl, by_path (udev's link, or derived where
// no udev runs), model, vendor, rotational and size.
func TestReadDisksHintAttributes(t *testing.T) {
	got, err := readDisks("testdata/disks")
	if err != nil {
		t.Fatal(err)
	}
	want := []protocol.Disk{
		{Name: "nvme0n1", Path: "/dev/nvme0n1", SizeBytes: 1875385008 * 512, Serial: "S4EWNX0R123456",
			WWN: "eui.0025388b91b0a1b2", WWNWithExtension: "eui.0025388b91b0a1b2",
			Model: "Samsung SSD 970 EVO Plus 1TB", ByPath: "/dev/disk/by-path/pci-0000:00:06.0-nvme-1"},
		{Name: "sda", Path: "/dev/sda", SizeBytes: 937703088 * 512, Serial: "BTYF1234567X480BGN",
			WWN: "0x600508b1001c4d5e", WWNWithExtension: "0x600508b1001c4d5e2f3a4b5c6d7e8f90", WWNVendorExtension: "0x2f3a4b5c6d7e8f90",
			Model: "INTEL SSDSC2KB48", Vendor: "ATA", HCTL: "0:0:0:0", ByPath: "/dev/disk/by-path/pci-0000:00:1f.2-ata-1.0"},
		{Name: "vda", Path: "/dev/vda", SizeBytes: 4194304 * 512, Serial: "ironfleet-disk0", Vendor: "0x1af4",
			ByPath: "/dev/disk/by-path/pci-0000:00:04.0", Rotational: true},
		{Name: "vdb", Path: "/dev/vdb", SizeBytes: 6291456 * 512, Serial: "ironfleet-disk1", Vendor: "0x1af4",
			ByPath: "/dev/disk/by-path/pci-0000:00:05.0", Rotational: true},
	}
	if len(got) != len(want) {
		t.Fatalf("disks = %+v, want %d", got, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("disk %d\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
}

func TestWWN(t *testing.T) {
	tests := []struct{ wwid, id, ext, vendor string }{
		{"naa.55cd2e415123abcd", "0x55cd2e415123abcd", "0x55cd2e415123abcd", ""},
		{"NAA.600508B1001C4D5E2F3A4B5C6D7E8F90", "0x600508b1001c4d5e", "0x600508b1001c4d5e2f3a4b5c6d7e8f90", "0x2f3a4b5c6d7e8f90"},
		{"t10.ATA     INTEL SSD", "", "", ""},
		{"eui.0025388b91b0a1b2", "eui.0025388b91b0a1b2", "eui.0025388b91b0a1b2", ""},
		{"", "", "", ""},
	}
	for _, tt := range tests {
		id, ext, vendor := wwn(tt.wwid)
		if id != tt.id || ext != tt.ext || vendor != tt.vendor {
			t.Errorf("wwn(%q) = %q, %q, %q; want %q, %q, %q", tt.wwid, id, ext, vendor, tt.id, tt.ext, tt.vendor)
		}
	}
}
