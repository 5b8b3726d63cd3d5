package ipmi

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/bougou/go-ipmi/pkg/types"

	"github.com/ironfleet/ironfleet/transport/wire"
)

// ipmi_sim passes only the device to its chassis program and does not keep
// the persistent bit, so the bits sent are checked here, against IPMI 2.0
// table 28-14 (boot option parameter 5, data bytes 1 and 2).
func TestBootFlagsBits(t *testing.T) {
	tests := []struct {
		dev        wire.BootDevice
		persistent bool
		uefi       bool
		byte1      byte // bit 7 valid, bit 6 persistent, bit 5 EFI
		byte2      byte // bits 5:2 device selector
	}{
		{wire.BootPXE, false, false, 0x80, 0x04},
		{wire.BootPXE, true, false, 0xc0, 0x04},
		{wire.BootDisk, false, false, 0x80, 0x08},
		{wire.BootDisk, true, false, 0xc0, 0x08},
		{wire.BootPXE, false, true, 0xa0, 0x04},
		{wire.BootDisk, true, true, 0xe0, 0x08},
	}
	for _, tt := range tests {
		f, err := bootFlags(tt.dev, tt.persistent, tt.uefi)
		if err != nil {
			t.Fatalf("bootFlags(%s, %v): %v", tt.dev, tt.persistent, err)
		}
		got := f.Pack()
		if got[0] != tt.byte1 || got[1] != tt.byte2 {
			t.Errorf("bootFlags(%s, %v) = % x, want %02x %02x …", tt.dev, tt.persistent, got, tt.byte1, tt.byte2)
		}
	}
	if _, err := bootFlags("floppy", false, false); wire.CodeOf(err) != wire.CodeInvalidInput {
		t.Errorf("bootFlags(floppy) = %v, want code %s", err, wire.CodeInvalidInput)
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		kind      error
		retryable bool
	}{
		{"unauthorized name", types.NewRmcpStatusError(0x0d), ErrAuth, false},
		{"flattened integrity check", errors.New("rakp1 failed: RMCP+ status 0x0f: Invalid integrity check value"), ErrAuth, false},
		{"no cipher suite match", errors.New("open session: RMCP+ status 0x11: No Cipher Suite match"), ErrBMC, false},
		{"no session slots", types.NewRmcpStatusError(0x01), ErrBMC, true},
		{"RAKP mismatch", errors.New("RAKP2 authentication code mismatch: RAKP authentication failed"), ErrAuth, false},
		{"unspecified error", types.NewResponseError(0xff, "unspecified"), ErrBMC, true},
		{"node busy", types.NewResponseError(0xc0, "busy"), ErrBMC, true},
		{"invalid command", types.NewResponseError(0xc1, "invalid"), ErrBMC, false},
		{"insufficient privilege", types.NewResponseError(0xd4, "privilege"), ErrAuth, false},
		{"no datagram", errors.New("udp exchange: no datagram matched before deadline"), ErrNoAnswer, true},
		{"context deadline", fmt.Errorf("exchange: %w", context.DeadlineExceeded), ErrNoAnswer, true},
		{"connection refused", errors.New("read udp: connection refused"), ErrBMC, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, kind := classify(tt.err); !errors.Is(kind, tt.kind) {
				t.Errorf("classify = %v, want %v", kind, tt.kind)
			}
			if got := retryable(tt.err); got != tt.retryable {
				t.Errorf("retryable = %v, want %v", got, tt.retryable)
			}
		})
	}
}
