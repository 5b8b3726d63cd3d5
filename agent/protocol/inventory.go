package protocol

// Inventory is the hardware of the machine the agent runs on, as served by
// GET /v1/inventory.
type Inventory struct {
	CPU        CPU    `json:"cpu"`
	Memory     Memory `json:"memory"`
	Disks      []Disk `json:"disks"`
	Interfaces []NIC  `json:"interfaces"`
}

// CPU describes the processors.
type CPU struct {
	Model string `json:"model"`
	// Count is the number of logical CPUs.
	Count int `json:"count"`
}

// Memory describes the RAM.
type Memory struct {
	// TotalBytes is MemTotal from /proc/meminfo.
	TotalBytes uint64 `json:"total_bytes"`
}

// Disk is a block device a deploy can write to. Its attributes are what
// root device hints (properties.root_device) match, in
// ironic-python-agent's BlockDevice terms and formats; an empty one is an
// attribute the disk does not report.
type Disk struct {
	Name string `json:"name"` // sda, vda, nvme0n1
	// Path is where the disk is written: /dev/<name> on a real machine, a
	// file on a simulated one.
	Path      string `json:"path"`
	SizeBytes int64  `json:"size_bytes"`
	Serial    string `json:"serial,omitempty"`
	// WWN is udev's ID_WWN: "0x" and 16 hex digits for a SCSI NAA name,
	// the kernel's wwid (eui.…) for NVMe.
	WWN string `json:"wwn,omitempty"`
	// WWNWithExtension and WWNVendorExtension are udev's
	// ID_WWN_WITH_EXTENSION and ID_WWN_VENDOR_EXTENSION: the whole NAA
	// name and its last 16 hex digits when it has 32.
	WWNWithExtension   string `json:"wwn_with_extension,omitempty"`
	WWNVendorExtension string `json:"wwn_vendor_extension,omitempty"`
	Model              string `json:"model,omitempty"`
	Vendor             string `json:"vendor,omitempty"`
	// HCTL is the SCSI address host:channel:target:lun, for SCSI disks.
	HCTL string `json:"hctl,omitempty"`
	// ByPath is the disk's /dev/disk/by-path name.
	ByPath     string `json:"by_path,omitempty"`
	Rotational bool   `json:"rotational"`
	Removable  bool   `json:"removable,omitempty"`
}

// NIC is a physical network interface.
type NIC struct {
	Name       string `json:"name"`
	MACAddress string `json:"mac_address"`
	HasCarrier bool   `json:"has_carrier"`
	OperState  string `json:"oper_state,omitempty"`
	// SpeedMbps is the link speed; 0 when unknown or down.
	SpeedMbps int `json:"speed_mbps,omitempty"`
}
