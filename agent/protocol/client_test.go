package protocol_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/ironfleet/ironfleet/agent/protocol"
)

func TestNewClientBadInput(t *testing.T) {
	for _, tt := range []struct{ name, url, token string }{
		{"no scheme", "10.0.0.1:9999", "t"},
		{"ftp", "ftp://10.0.0.1", "t"},
		{"no token", "http://10.0.0.1:9999", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := protocol.NewClient(tt.url, tt.token, protocol.ClientConfig{}); err == nil {
				t.Errorf("NewClient(%q, %q) succeeded, want an error", tt.url, tt.token)
			}
		})
	}
}

// TestCodes: the code the agent reports for a failure is the one
// Command.Err maps back to the same sentinel on the conductor's side.
func TestCodes(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		code string
	}{
		{"checksum", protocol.ErrChecksumMismatch, protocol.CodeChecksumMismatch},
		{"too small", protocol.ErrTargetTooSmall, protocol.CodeTargetTooSmall},
		{"stalled", protocol.ErrDownloadStalled, protocol.CodeDownloadStalled},
		{"download", protocol.ErrDownload, protocol.CodeDownload},
		{"truncated", protocol.ErrImageTruncated, protocol.CodeImageTruncated},
		{"invalid image", protocol.ErrInvalidImage, protocol.CodeInvalidImage},
		{"machine", protocol.ErrMachine, protocol.CodeMachine},
		{"canceled", protocol.ErrCanceled, protocol.CodeCanceled},
		{"anything else", errors.New("disk on fire"), protocol.CodeIO},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := fmt.Errorf("%w: details", tt.err)
			code := protocol.CodeOf(err)
			if code != tt.code {
				t.Fatalf("CodeOf(%v) = %q, want %q", err, code, tt.code)
			}
			cmd := protocol.Command{ID: "c1", Name: protocol.CmdWriteImage, Status: protocol.StatusFailed, Code: code, Error: err.Error()}
			got := cmd.Err()
			if got == nil {
				t.Fatal("Err of a failed command is nil")
			}
			if tt.code != protocol.CodeIO && !errors.Is(got, tt.err) {
				t.Errorf("Err() = %v, want it to wrap %v", got, tt.err)
			}
		})
	}
	if err := (protocol.Command{Status: protocol.StatusSucceeded}).Err(); err != nil {
		t.Errorf("Err of a succeeded command = %v, want nil", err)
	}
}
