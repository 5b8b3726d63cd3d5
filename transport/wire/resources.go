package wire

import "time"

// VolumeConnector is a node's initiator for remote volumes (an iSCSI IQN, a
// FC WWPN, …): Ironic's volume connector (API 1.32). The storage interface
// ironfleet offers, noop, only stores it, as Ironic's noop storage does.
type VolumeConnector struct {
	UUID     string `json:"uuid"`
	NodeUUID string `json:"node_uuid"`
	// Type is the kind of ConnectorID (Ironic documents iqn, ip, mac,
	// wwnn, wwpn, port, portgroup); (Type, ConnectorID) is unique.
	Type        string         `json:"type"`
	ConnectorID string         `json:"connector_id"`
	Extra       map[string]any `json:"extra,omitempty"`
	CreatedAt   time.Time      `json:"created_at"`
	UpdatedAt   time.Time      `json:"updated_at,omitzero"`
}

// VolumeTarget is a remote volume a node boots from or attaches: Ironic's
// volume target (API 1.32). BootIndex is unique per node.
type VolumeTarget struct {
	UUID       string `json:"uuid"`
	NodeUUID   string `json:"node_uuid"`
	VolumeType string `json:"volume_type"`
	VolumeID   string `json:"volume_id"`
	BootIndex  int    `json:"boot_index"`
	// Properties are the volume's connection details; secrets in them
	// (auth_password, …) are masked in API output.
	Properties map[string]any `json:"properties,omitempty"`
	Extra      map[string]any `json:"extra,omitempty"`
	CreatedAt  time.Time      `json:"created_at"`
	UpdatedAt  time.Time      `json:"updated_at,omitzero"`
}

// Portgroup is a bond of a node's ports: Ironic's portgroup (API 1.23).
// Name and Address are unique among portgroups when set.
type Portgroup struct {
	UUID     string `json:"uuid"`
	NodeUUID string `json:"node_uuid"`
	Name     string `json:"name,omitempty"`
	Address  string `json:"address,omitempty"` // MAC, lower case, colon-separated
	// Mode is the bonding mode (Linux bonding names: active-backup, 802.3ad,
	// …); Properties tune it (miimon, xmit_hash_policy, …).
	Mode       string         `json:"mode"`
	Properties map[string]any `json:"properties,omitempty"`
	// StandalonePortsSupported says whether the portgroup's ports may also
	// be used on their own.
	StandalonePortsSupported bool           `json:"standalone_ports_supported"`
	Extra                    map[string]any `json:"extra,omitempty"`
	// VIF is the tenant virtual interface attached to the portgroup, as on
	// Port.
	VIF       string    `json:"vif,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// Chassis groups nodes (a rack, an enclosure): Ironic's chassis. A chassis
// with nodes in it is not deleted.
type Chassis struct {
	UUID        string         `json:"uuid"`
	Description string         `json:"description,omitempty"`
	Extra       map[string]any `json:"extra,omitempty"`
	CreatedAt   time.Time      `json:"created_at"`
	UpdatedAt   time.Time      `json:"updated_at,omitzero"`
}
