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

// Disk is a block device a deploy can write to.
type Disk struct {
	Name string `json:"name"` // sda, vda, nvme0n1
	// Path is where the disk is written: /dev/<name> on a real machine, a
	// file on a simulated one.
	Path       string `json:"path"`
	SizeBytes  int64  `json:"size_bytes"`
	Serial     string `json:"serial,omitempty"`
	WWN        string `json:"wwn,omitempty"`
	Model      string `json:"model,omitempty"`
	Vendor     string `json:"vendor,omitempty"`
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
