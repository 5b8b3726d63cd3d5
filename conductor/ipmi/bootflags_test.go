package ipmi

import (
	"testing"

	"github.com/ironfleet/ironfleet/transport/wire"
)

// ipmi_sim passes only the device to its chassis program and does not keep
// the persistent bit, so the bits sent are checked here, against IPMI 2.0
// table 28-14 (boot option parameter 5, data bytes 1 and 2).
func TestBootFlagsBits(t *testing.T) {
	tests := []struct {
		dev        wire.BootDevice
		persistent bool
		byte1      byte // bit 7 valid, bit 6 persistent, bit 5 EFI
		byte2      byte // bits 5:2 device selector
	}{
		{wire.BootPXE, false, 0x80, 0x04},
		{wire.BootPXE, true, 0xc0, 0x04},
		{wire.BootDisk, false, 0x80, 0x08},
		{wire.BootDisk, true, 0xc0, 0x08},
	}
	for _, tt := range tests {
		f, err := bootFlags(tt.dev, tt.persistent)
		if err != nil {
			t.Fatalf("bootFlags(%s, %v): %v", tt.dev, tt.persistent, err)
		}
		got := f.Pack()
		if got[0] != tt.byte1 || got[1] != tt.byte2 {
			t.Errorf("bootFlags(%s, %v) = % x, want %02x %02x …", tt.dev, tt.persistent, got, tt.byte1, tt.byte2)
		}
	}
	if _, err := bootFlags("floppy", false); wire.CodeOf(err) != wire.CodeInvalidInput {
		t.Errorf("bootFlags(floppy) = %v, want code %s", err, wire.CodeInvalidInput)
	}
}
