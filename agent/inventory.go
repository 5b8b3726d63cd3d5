package agent

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/ironfleet/ironfleet/agent/protocol"
)

// ReadInventory reads the hardware inventory from the /proc and /sys trees
// under root ("/" on a real machine, a fixture tree in tests).
func ReadInventory(root string) (protocol.Inventory, error) {
	var inv protocol.Inventory
	var err error
	if inv.CPU, err = readCPU(filepath.Join(root, "proc", "cpuinfo")); err != nil {
		return inv, err
	}
	if inv.Memory, err = readMemory(filepath.Join(root, "proc", "meminfo")); err != nil {
		return inv, err
	}
	if inv.Disks, err = readDisks(root); err != nil {
		return inv, err
	}
	if inv.Interfaces, err = readNICs(root); err != nil {
		return inv, err
	}
	return inv, nil
}

// MACs returns the MAC addresses of the physical NICs under root's
// /sys/class/net (lower case, sorted by interface name): what the agent
// looks itself up by. Loopback and virtual interfaces (those without a
// device link: bridges, bonds, veths, ifb) are skipped.
func MACs(root string) ([]string, error) {
	nics, err := readNICs(root)
	if err != nil {
		return nil, err
	}
	macs := make([]string, 0, len(nics))
	for _, n := range nics {
		macs = append(macs, n.MACAddress)
	}
	return macs, nil
}

func readCPU(path string) (protocol.CPU, error) {
	var c protocol.CPU
	f, err := os.Open(path) //nolint:gosec // path is root + a fixed name
	if err != nil {
		return c, fmt.Errorf("agent: inventory: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024) // flags lines are long
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "processor":
			c.Count++
		case "model name", "Model", "cpu model":
			if c.Model == "" {
				c.Model = v
			}
		}
	}
	if err := sc.Err(); err != nil {
		return c, fmt.Errorf("agent: inventory: %s: %w", path, err)
	}
	if c.Count == 0 {
		return c, fmt.Errorf("agent: inventory: %s: no processor entries", path)
	}
	return c, nil
}

func readMemory(path string) (protocol.Memory, error) {
	var m protocol.Memory
	b, err := os.ReadFile(path) //nolint:gosec // path is root + a fixed name
	if err != nil {
		return m, fmt.Errorf("agent: inventory: %w", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "MemTotal:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return m, fmt.Errorf("agent: inventory: %s: malformed MemTotal line %q", path, line)
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return m, fmt.Errorf("agent: inventory: %s: MemTotal: %w", path, err)
		}
		m.TotalBytes = kb * 1024
		return m, nil
	}
	return m, fmt.Errorf("agent: inventory: %s: no MemTotal line", path)
}

func readDisks(root string) ([]protocol.Disk, error) {
	dir := filepath.Join(root, "sys", "block")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("agent: inventory: %w", err)
	}
	byPath := byPathLinks(filepath.Join(root, "dev", "disk", "by-path"))
	var disks []protocol.Disk
	for _, e := range entries {
		name := e.Name()
		d := filepath.Join(dir, name)
		// Virtual devices (loop, ram, zram, dm-, md) have no device link.
		if !exists(filepath.Join(d, "device")) {
			continue
		}
		// CD-ROMs are not deploy targets.
		if strings.HasPrefix(name, "sr") {
			continue
		}
		sectors, err := readInt(filepath.Join(d, "size"))
		if err != nil {
			return nil, fmt.Errorf("agent: inventory: disk %s: %w", name, err)
		}
		disk := protocol.Disk{
			Name:       name,
			Path:       "/dev/" + name,
			SizeBytes:  sectors * 512, // /sys/block/*/size is always in 512-byte sectors
			Serial:     firstAttr(d, "device/serial", "serial"),
			Model:      firstAttr(d, "device/model"),
			Vendor:     firstAttr(d, "device/vendor"),
			HCTL:       hctl(d),
			ByPath:     byPath[name],
			Rotational: firstAttr(d, "queue/rotational") == "1",
			Removable:  firstAttr(d, "removable") == "1",
		}
		if disk.Serial == "" {
			disk.Serial = vpdSerial(filepath.Join(d, "device", "vpd_pg80"))
		}
		disk.WWN, disk.WWNWithExtension, disk.WWNVendorExtension = wwn(firstAttr(d, "device/wwid", "wwid"))
		if disk.ByPath == "" {
			disk.ByPath = derivedByPath(d)
		}
		disks = append(disks, disk)
	}
	return disks, nil
}

// hctl is the disk's SCSI address, the name of its one
// device/scsi_device entry (as ironic-python-agent reads it); "" for a
// disk that is not SCSI (virtio-blk, NVMe).
func hctl(disk string) string {
	entries, err := os.ReadDir(filepath.Join(disk, "device", "scsi_device"))
	if err != nil || len(entries) == 0 {
		return ""
	}
	return entries[0].Name()
}

// vpdSerial reads the unit serial number from a SCSI disk's VPD page 0x80
// (SPC: page code in byte 1, length in bytes 2-3, the serial from byte
// 4): what udev's ID_SERIAL_SHORT and lsblk's SERIAL report for disks whose
// sysfs has no serial attribute.
func vpdSerial(path string) string {
	b, err := os.ReadFile(path) //nolint:gosec // sysfs attribute under root
	if err != nil || len(b) < 4 || b[1] != 0x80 {
		return ""
	}
	n := int(b[2])<<8 | int(b[3])
	b = b[4:]
	if n < len(b) {
		b = b[:n]
	}
	return string(bytes.TrimSpace(bytes.TrimRight(b, "\x00")))
}

// wwn turns the kernel's wwid into udev's ID_WWN, ID_WWN_WITH_EXTENSION and
// ID_WWN_VENDOR_EXTENSION, the form root device hints are written in: a
// SCSI NAA name "naa.<hex>" is "0x<hex>", split after 16 hex digits when
// it has 32 (NAA 6's vendor extension); a T10 vendor ID is no WWN; any
// other (NVMe's eui., nguid.) is kept as the kernel gives it.
func wwn(wwid string) (id, withExt, vendorExt string) {
	wwid = strings.ToLower(wwid)
	switch {
	case wwid == "" || strings.HasPrefix(wwid, "t10."):
		return "", "", ""
	case strings.HasPrefix(wwid, "naa."):
		hex := wwid[len("naa."):]
		if len(hex) == 32 {
			return "0x" + hex[:16], "0x" + hex, "0x" + hex[16:]
		}
		return "0x" + hex, "0x" + hex, ""
	}
	return wwid, wwid, ""
}

// byPathLinks maps each disk's kernel name to its link in dir
// (/dev/disk/by-path, which udev maintains), by the first link in name
// order that points at the disk itself (not a partition): udev's ID_PATH
// "pci-…" before its legacy "virtio-pci-…" for a virtio disk.
func byPathLinks(dir string) map[string]string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil // no udev: derivedByPath names what it can
	}
	m := map[string]string{}
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		name := filepath.Base(target)
		if _, seen := m[name]; !seen {
			m[name] = "/dev/disk/by-path/" + e.Name()
		}
	}
	return m
}

// pciAddress matches a PCI device's sysfs name, domain:bus:device.function.
var pciAddress = regexp.MustCompile(`^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$`)

// derivedByPath names a disk as udev's path_id builtin names it (its
// ID_PATH, systemd's src/udev/udev-builtin-path_id.c) where no udev runs
// (the agent's ramdisk has none): a virtio-blk disk on PCI is
// pci-<address> (path_id skips the virtio bus; the virtio-pci-<address>
// link is udev's deprecated legacy one), an NVMe namespace
// pci-<address>-nvme-<nsid>. Other buses (SCSI, ATA, USB), whose names
// need their host's details, are "" here and named only by udev's links.
func derivedByPath(disk string) string {
	dev, err := filepath.EvalSymlinks(filepath.Join(disk, "device"))
	if err != nil {
		return ""
	}
	parent := filepath.Base(filepath.Dir(dev))
	switch base := filepath.Base(dev); {
	case strings.HasPrefix(base, "virtio") && pciAddress.MatchString(parent):
		return "/dev/disk/by-path/pci-" + parent
	case strings.HasPrefix(base, "nvme"):
		// device is …/<pci>/nvme/nvme0: the controller's PCI device is two up.
		pci := filepath.Base(filepath.Dir(filepath.Dir(dev)))
		if nsid := firstAttr(disk, "nsid"); pciAddress.MatchString(pci) && nsid != "" {
			return "/dev/disk/by-path/pci-" + pci + "-nvme-" + nsid
		}
	}
	return ""
}

func readNICs(root string) ([]protocol.NIC, error) {
	dir := filepath.Join(root, "sys", "class", "net")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("agent: inventory: %w", err)
	}
	var nics []protocol.NIC
	for _, e := range entries {
		name := e.Name()
		d := filepath.Join(dir, name)
		if name == "lo" || !exists(filepath.Join(d, "device")) {
			continue
		}
		mac := strings.ToLower(firstAttr(d, "address"))
		if mac == "" || mac == "00:00:00:00:00:00" {
			continue
		}
		n := protocol.NIC{
			Name:       name,
			MACAddress: mac,
			HasCarrier: firstAttr(d, "carrier") == "1", // reading carrier of a down link fails: no carrier
			OperState:  firstAttr(d, "operstate"),
		}
		if s, err := strconv.Atoi(firstAttr(d, "speed")); err == nil && s > 0 {
			n.SpeedMbps = s
		}
		nics = append(nics, n)
	}
	slices.SortFunc(nics, func(a, b protocol.NIC) int { return strings.Compare(a.Name, b.Name) })
	return nics, nil
}

// firstAttr returns the trimmed contents of the first readable, non-empty
// sysfs attribute among names under dir, or "".
func firstAttr(dir string, names ...string) string {
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n)) //nolint:gosec // sysfs attribute under root
		if err != nil {
			continue
		}
		if s := string(bytes.TrimSpace(b)); s != "" {
			return s
		}
	}
	return ""
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path) //nolint:gosec // sysfs attribute under root
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	if n < 0 {
		return 0, fmt.Errorf("%s: negative value %d", path, n)
	}
	return n, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil || !errors.Is(err, fs.ErrNotExist)
}
