package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/diskfs/go-diskfs/partition/mbr"

	"github.com/ironfleet/ironfleet/agent/protocol"
	"github.com/ironfleet/ironfleet/internal/configdrive"
)

// The config drive partition, as ironic-python-agent's
// partition_utils.create_config_drive_partition makes it: 64 MiB (the
// largest config drive it takes) at the end of the disk, aligned to 1 MiB;
// in a GPT a partition named config-2, in an MBR a primary partition.
const (
	configDrivePartSize = configdrive.MaxSize
	sectorSize          = 512
	alignSectors        = (1 << 20) / sectorSize
	// mbrMaxSectors is the most an MBR addresses (32-bit sectors): 2 TiB.
	mbrMaxSectors = 1 << 32
)

// validConfigDrive checks write_image's configdrive before anything is
// written: a URL must be http(s); anything else must decode to an ISO.
func validConfigDrive(s string) error {
	if s == "" {
		return nil
	}
	if configdrive.IsURL(s) {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%w: configdrive: want an http:// or https:// URL or a base64 image", protocol.ErrInvalidParams)
		}
		return nil
	}
	if _, err := configdrive.Decode(s); err != nil {
		return fmt.Errorf("%w: configdrive: %w", protocol.ErrInvalidParams, err)
	}
	return nil
}

// configDriveISO returns the ISO that s is or points to. A download's body
// may be the base64 text or the ISO itself, gzipped or not, as
// ironic-python-agent takes it.
func (w *imageWriter) configDriveISO(ctx context.Context, s string) ([]byte, error) {
	if !configdrive.IsURL(s) {
		return configdrive.Decode(s)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watchdog := time.AfterFunc(w.stall, func() { cancel(protocol.ErrDownloadStalled) })
	defer watchdog.Stop()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: config drive: %w", protocol.ErrDownload, err)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return nil, downloadErr(ctx, "config drive GET "+redactURL(s), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: config drive GET %s: %s", protocol.ErrDownload, redactURL(s), resp.Status)
	}
	// base64 of MaxSize bytes is 4/3 as long, plus line breaks.
	body, err := io.ReadAll(io.LimitReader(&watchedReader{r: resp.Body, watchdog: watchdog, stall: w.stall}, 2*configdrive.MaxSize))
	if err != nil {
		return nil, downloadErr(ctx, "config drive read "+redactURL(s), err)
	}
	if iso, err := configdrive.Read(bytes.NewReader(body)); err == nil {
		return iso, nil
	}
	return configdrive.Decode(string(body))
}

// writeConfigDrive adds a partition for iso at the end of target, a disk
// of size bytes the image was just written to, and writes iso into it. It
// refuses, naming why, a disk whose image has no partition table, an MBR
// with its four primary partitions taken, or a last partition reaching
// into the config drive's 64 MiB.
func writeConfigDrive(target string, size int64, iso []byte) error {
	if size <= 0 {
		return fmt.Errorf("config drive: the size of %s is unknown: no end to put it at", target)
	}
	f, err := os.OpenFile(target, os.O_RDWR, 0) //nolint:gosec // the conductor names the target
	if err != nil {
		return fmt.Errorf("config drive: %w", err)
	}
	defer f.Close()
	// A file standing for a disk (the simulated agent's) is as long as
	// the disk, as a device is.
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() < size {
		if err := f.Truncate(size); err != nil {
			return fmt.Errorf("config drive: %w", err)
		}
	}
	b := file.New(f, false)
	var start int64
	if t, gerr := gpt.Read(b, sectorSize, sectorSize); gerr == nil {
		start, err = addGPTPartition(t, size)
		if err == nil {
			err = t.Write(f, size)
		}
	} else if t, merr := mbr.Read(b, sectorSize, sectorSize); merr == nil {
		start, err = addMBRPartition(t, size)
		if err == nil {
			err = t.Write(f, size)
		}
	} else {
		return fmt.Errorf("config drive: the image on %s has no partition table (neither GPT nor MBR) to add its partition to: %w", target, errors.Join(gerr, merr))
	}
	if err != nil {
		return fmt.Errorf("config drive: %w", err)
	}
	if _, err := f.WriteAt(iso, start*sectorSize); err != nil {
		return fmt.Errorf("config drive: writing it to %s: %w", target, err)
	}
	return f.Sync()
}

// errNoRoom is the refusal when a partition reaches into the space the
// config drive needs.
var errNoRoom = fmt.Errorf("%w: no room for the config drive's %d MiB at the end of the disk", protocol.ErrTargetTooSmall, configDrivePartSize>>20)

// addGPTPartition moves t's backup header to the end of a disk of size
// bytes (the image was made for a smaller one, as sgdisk -e does) and adds
// the config-2 partition in its last 64 MiB; it returns its first sector.
func addGPTPartition(t *gpt.Table, size int64) (int64, error) {
	t.Resize(uint64(size) / sectorSize * sectorSize) //nolint:gosec // size is a disk's size, never negative
	last := t.LastDataSector()
	if last+1 < configDrivePartSize/sectorSize {
		return 0, fmt.Errorf("%w (the disk has %d sectors)", errNoRoom, size/sectorSize)
	}
	start := (last + 1 - configDrivePartSize/sectorSize) / alignSectors * alignSectors
	index := 0
	for _, p := range t.Partitions {
		if p.Type == gpt.Unused {
			continue
		}
		if p.End >= start {
			return 0, fmt.Errorf("%w (partition %d ends at sector %d, past %d)", errNoRoom, p.Index, p.End, start)
		}
		index = max(index, p.Index)
	}
	t.Partitions = append(t.Partitions, &gpt.Partition{
		Index: index + 1, Start: start, End: start + configDrivePartSize/sectorSize - 1,
		Size: configDrivePartSize, Type: gpt.LinuxFilesystem, Name: configdrive.Label,
	})
	return int64(start), nil //nolint:gosec // a sector of the disk: below its size / 512
}

// addMBRPartition adds a primary partition in the last 64 MiB of a disk
// of size bytes (of its first 2 TiB: what an MBR addresses); it returns
// its first sector.
func addMBRPartition(t *mbr.Table, size int64) (int64, error) {
	end := min(size/sectorSize, mbrMaxSectors)
	if end < alignSectors+configDrivePartSize/sectorSize {
		return 0, fmt.Errorf("%w (the disk has %d sectors)", errNoRoom, size/sectorSize)
	}
	start := (end - configDrivePartSize/sectorSize) / alignSectors * alignSectors
	free := -1
	for i, p := range t.Partitions {
		if p.Type == mbr.Empty {
			if free < 0 {
				free = i
			}
			continue
		}
		if p.Type == mbr.GPTProtective {
			return 0, errors.New("the disk has a protective MBR but no valid GPT")
		}
		if int64(p.Start)+int64(p.Size) > start {
			return 0, fmt.Errorf("%w (partition %d ends at sector %d, past %d)", errNoRoom, i+1, int64(p.Start)+int64(p.Size), start)
		}
	}
	if free < 0 {
		return 0, fmt.Errorf("%w: the MBR's four primary partitions are all taken", protocol.ErrTargetTooSmall)
	}
	t.Partitions[free] = &mbr.Partition{Type: mbr.Linux, Start: uint32(start), Size: configDrivePartSize / sectorSize}
	return start, nil
}
