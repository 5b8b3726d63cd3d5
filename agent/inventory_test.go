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
			{Name: "sda", Path: "/dev/sda", SizeBytes: 937703088 * 512, Serial: "naa.55cd2e415123abcd",
				WWN: "naa.55cd2e415123abcd", Model: "INTEL SSDSC2KB48", Vendor: "ATA"},
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
