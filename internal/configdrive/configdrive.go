// Package configdrive builds, encodes and checks OpenStack config drives,
// the ISO 9660 volume labelled config-2 that cloud-init reads a machine's
// identity, user data and network configuration from.
//
// Ironic takes a config drive in three forms on a deploy (ironic/api/
// controllers/v1/utils.py check_allow_configdrive): a gzipped, base64 ISO
// (what nova's driver.py _generate_configdrive sends), a URL to one, or
// (1.56) a dict of meta_data, network_data, user_data and vendor_data that
// its conductor builds into the ISO (ironic/conductor/utils.py
// build_configdrive). This package is each of those steps once: Build for
// the dict, Encode for how Ironic stores and hands an ISO on, Decode for
// reading it back, wherever it is read (the API checking it, the agent
// writing it).
package configdrive

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
)

// Label is the volume label cloud-init looks for.
const Label = "config-2"

// MaxSize is the largest config drive ISO accepted: ironic-python-agent's
// partition_utils refuses to write one over 64 MiB.
const MaxSize = 64 << 20

// isoMagic is the standard identifier of an ISO 9660 primary volume
// descriptor, at isoMagicAt (sector 16 of 2 KiB, plus 1).
const (
	isoMagic   = "CD001"
	isoMagicAt = 16*2048 + 1
)

// ErrInvalid is what Decode's errors wrap: the string is not a config drive.
var ErrInvalid = errors.New("configdrive: invalid")

// Contents is a config drive given as a dict (Ironic 1.56; vendor_data
// 1.59): each part optional.
type Contents struct {
	// MetaData is openstack/latest/meta_data.json; Build adds uuid and
	// name from the node where absent, as Ironic does.
	MetaData map[string]any `json:"meta_data,omitempty"`
	// NetworkData is openstack/latest/network_data.json.
	NetworkData map[string]any `json:"network_data,omitempty"`
	// UserData is openstack/latest/user_data: a string as it is, an
	// object or a list as JSON.
	UserData any `json:"user_data,omitempty"`
	// VendorData is openstack/latest/vendor_data.json.
	VendorData map[string]any `json:"vendor_data,omitempty"`
}

// Build makes the ISO 9660 image of c, labelled config-2, in the OpenStack
// layout: openstack/latest/{meta_data.json,network_data.json,user_data,
// vendor_data.json}, each present only when c has it (meta_data always).
// The label is padded with spaces, as ISO 9660 wants and blkid reads it
// (go-diskfs pads with NULs otherwise).
// Rock Ridge and Joliet keep the names whole, as genisoimage -R -J does
// for Ironic. tmp is a directory for the work (os.TempDir when "").
func Build(c Contents, tmp string) ([]byte, error) {
	dir, err := os.MkdirTemp(tmp, "configdrive")
	if err != nil {
		return nil, fmt.Errorf("configdrive: %w", err)
	}
	defer os.RemoveAll(dir)
	files := map[string][]byte{}
	meta := c.MetaData
	if meta == nil {
		meta = map[string]any{}
	}
	if files["meta_data.json"], err = json.Marshal(meta); err != nil {
		return nil, fmt.Errorf("configdrive: meta_data: %w", err)
	}
	if c.NetworkData != nil {
		if files["network_data.json"], err = json.Marshal(c.NetworkData); err != nil {
			return nil, fmt.Errorf("configdrive: network_data: %w", err)
		}
	}
	if c.VendorData != nil {
		if files["vendor_data.json"], err = json.Marshal(c.VendorData); err != nil {
			return nil, fmt.Errorf("configdrive: vendor_data: %w", err)
		}
	}
	switch u := c.UserData.(type) {
	case nil:
	case string:
		if u != "" {
			files["user_data"] = []byte(u)
		}
	default:
		if files["user_data"], err = json.Marshal(u); err != nil {
			return nil, fmt.Errorf("configdrive: user_data: %w", err)
		}
	}

	out := filepath.Join(dir, "config-2.iso")
	f, err := os.OpenFile(out, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600) //nolint:gosec // a file of our own temp dir
	if err != nil {
		return nil, fmt.Errorf("configdrive: %w", err)
	}
	defer f.Close()
	work := filepath.Join(dir, "root")
	if err := os.Mkdir(work, 0o700); err != nil {
		return nil, fmt.Errorf("configdrive: %w", err)
	}
	fsys, err := iso9660.Create(file.New(f, false), 0, 0, 2048, work)
	if err != nil {
		return nil, fmt.Errorf("configdrive: creating the ISO: %w", err)
	}
	if err := fsys.Mkdir("/openstack/latest"); err != nil {
		return nil, fmt.Errorf("configdrive: %w", err)
	}
	for name, data := range files {
		w, err := fsys.OpenFile("/openstack/latest/"+name, os.O_CREATE|os.O_RDWR)
		if err != nil {
			return nil, fmt.Errorf("configdrive: %s: %w", name, err)
		}
		_, err = w.Write(data)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("configdrive: %s: %w", name, err)
		}
	}
	if err := fsys.Finalize(iso9660.FinalizeOptions{RockRidge: true, Joliet: true, VolumeIdentifier: fmt.Sprintf("%-32s", Label)}); err != nil {
		return nil, fmt.Errorf("configdrive: finalizing the ISO: %w", err)
	}
	iso, err := os.ReadFile(out) //nolint:gosec // the file just written
	if err != nil {
		return nil, fmt.Errorf("configdrive: %w", err)
	}
	if len(iso) > MaxSize {
		return nil, fmt.Errorf("%w: the config drive built is %d bytes, more than %d", ErrInvalid, len(iso), MaxSize)
	}
	return iso, nil
}

// Encode is iso as Ironic stores and passes a config drive: gzipped, then
// base64.
func Encode(iso []byte) (string, error) {
	var b bytes.Buffer
	enc := base64.NewEncoder(base64.StdEncoding, &b)
	zw := gzip.NewWriter(enc)
	if _, err := zw.Write(iso); err != nil {
		return "", fmt.Errorf("configdrive: gzip: %w", err)
	}
	if err := zw.Close(); err != nil {
		return "", fmt.Errorf("configdrive: gzip: %w", err)
	}
	if err := enc.Close(); err != nil {
		return "", fmt.Errorf("configdrive: base64: %w", err)
	}
	return b.String(), nil
}

// IsURL reports whether s is the URL form: Ironic's test is "://" in it,
// ':' being no base64 letter.
func IsURL(s string) bool { return strings.Contains(s, "://") }

// Decode reads a config drive as Encode writes it (base64, whitespace
// allowed, as Ironic's check does) and returns the ISO. Like
// ironic-python-agent's partition_utils, it takes the ISO gzipped or not.
// Anything but an ISO 9660 image of at most MaxSize bytes is an error
// wrapping ErrInvalid that says what is wrong.
func Decode(s string) ([]byte, error) {
	clean := strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\n', '\r', '\t':
			return -1
		}
		return r
	}, s)
	raw, err := base64.StdEncoding.DecodeString(clean)
	if err != nil {
		return nil, fmt.Errorf("%w: it is neither a JSON, nor a URL, nor a base64 string: %w", ErrInvalid, err)
	}
	return Read(bytes.NewReader(raw))
}

// Read reads an ISO, gzipped or not, from r (the bytes behind the base64,
// or a download) and checks it as Decode does.
func Read(r io.Reader) ([]byte, error) {
	br := bufio.NewReader(r)
	var src io.Reader = br
	if head, _ := br.Peek(2); len(head) == 2 && head[0] == 0x1f && head[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%w: not gzip: %w", ErrInvalid, err)
		}
		src = zr
	}
	iso, err := io.ReadAll(io.LimitReader(src, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading it: %w", ErrInvalid, err)
	}
	if len(iso) > MaxSize {
		return nil, fmt.Errorf("%w: the image is over %d bytes", ErrInvalid, MaxSize)
	}
	if len(iso) < isoMagicAt+len(isoMagic) || string(iso[isoMagicAt:isoMagicAt+len(isoMagic)]) != isoMagic {
		return nil, fmt.Errorf("%w: not an ISO 9660 image", ErrInvalid)
	}
	return iso, nil
}
