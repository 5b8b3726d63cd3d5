package protocol

import (
	"encoding/json"
	"fmt"
	"time"
)

// Command names.
const (
	CmdWriteImage = "write_image"
	CmdEraseDisk  = "erase_disk"
	// CmdEraseMetadata wipes only what makes a disk look used: partition
	// tables and signatures (Ironic's erase_devices_metadata).
	CmdEraseMetadata = "erase_metadata"
	CmdPowerOff      = "power_off"
	CmdReboot        = "reboot"
)

// CommandStatus is where a command is in its life.
type CommandStatus string

// Command statuses.
const (
	StatusRunning   CommandStatus = "running"
	StatusSucceeded CommandStatus = "succeeded"
	StatusFailed    CommandStatus = "failed"
)

// Command is a command's state as the command API reports it.
type Command struct {
	ID     string        `json:"id"`
	Name   string        `json:"name"`
	Status CommandStatus `json:"status"`
	// DoneBytes and TotalBytes are write_image's progress; TotalBytes is 0
	// while the image size is unknown.
	DoneBytes  int64 `json:"done_bytes,omitempty"`
	TotalBytes int64 `json:"total_bytes,omitempty"`
	// Code and Error say why a failed command failed (Code is one of the
	// failure codes: CodeChecksumMismatch … CodeIO).
	Code       string    `json:"code,omitempty"`
	Error      string    `json:"error,omitempty"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
}

// Err returns nil unless the command failed; then an error that wraps the
// sentinel of its Code (ErrChecksumMismatch, ErrDownloadStalled, …) and
// carries its message.
func (c Command) Err() error {
	if c.Status != StatusFailed {
		return nil
	}
	if s := errOf(c.Code); s != nil {
		return fmt.Errorf("agent: %s %s failed: %w: %s", c.Name, c.ID, s, c.Error)
	}
	return fmt.Errorf("agent: %s %s failed: %s", c.Name, c.ID, c.Error)
}

// CommandRequest is the body of POST /v1/commands.
type CommandRequest struct {
	Name   string          `json:"name"`
	Params json.RawMessage `json:"params,omitempty"`
}

// CommandList is the body of GET /v1/commands.
type CommandList struct {
	Commands []Command `json:"commands"`
}

// WriteImageParams are the parameters of the write_image command.
type WriteImageParams struct {
	// URL is where to download the image: http:// or https://.
	URL string `json:"url"`
	// Checksum is what the image file, as downloaded, hashes to. It is
	// verified before the command succeeds; a mismatch fails it and wipes
	// Target.
	Checksum Checksum `json:"checksum"`
	// DiskFormat is the image file's format: DiskFormatRaw (written as
	// is, never inspected), DiskFormatQcow2 (converted onto Target), or
	// empty to detect it from the image's first bytes (qcow2 by its magic,
	// other known formats refused, anything else raw).
	DiskFormat string `json:"disk_format,omitempty"`
	// Target is the block device (/dev/sda) or file the image is written to.
	Target string `json:"target"`
	// Size is the image file's size in bytes, if known; 0 means unknown.
	// When set, a raw image that does not fit is refused before writing
	// and a body of another length is an error.
	Size int64 `json:"size,omitempty"`
	// ConfigDrive, when set, is the instance's config drive: a gzipped,
	// base64 ISO 9660 image (as Ironic stores one) or an http(s) URL to
	// one (its body the same, or the ISO itself, gzipped or not). After
	// the image, it is written to a new partition at the end of Target,
	// as ironic-python-agent's partition_utils does: GPT partition named
	// config-2, or an MBR primary partition.
	ConfigDrive string `json:"configdrive,omitempty"`
}

// EraseDiskParams are the parameters of the erase_disk command.
type EraseDiskParams struct {
	// Target is the block device or file to erase.
	Target string `json:"target"`
}

// EraseMetadataParams are the parameters of the erase_metadata command.
type EraseMetadataParams struct {
	// Target is the block device or file whose metadata is wiped.
	Target string `json:"target"`
}
