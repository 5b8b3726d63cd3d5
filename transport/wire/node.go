package wire

import "time"

// ProvisionState is a node's provisioning state, spelled as Ironic spells it
// on the API ("wait call-back", with spaces).
type ProvisionState string

// Provision states. Which are stable, transient, wait or failed states, and
// the transitions between them, are the conductor's state machine.
const (
	StateEnroll        ProvisionState = "enroll"
	StateVerifying     ProvisionState = "verifying"
	StateManageable    ProvisionState = "manageable"
	StateInspecting    ProvisionState = "inspecting"
	StateInspectWait   ProvisionState = "inspect wait"
	StateInspectFailed ProvisionState = "inspect failed"
	StateCleaning      ProvisionState = "cleaning"
	StateCleanWait     ProvisionState = "clean wait"
	StateCleanFailed   ProvisionState = "clean failed"
	StateAvailable     ProvisionState = "available"
	StateDeploying     ProvisionState = "deploying"
	StateWaitCallback  ProvisionState = "wait call-back"
	StateDeployFailed  ProvisionState = "deploy failed"
	StateActive        ProvisionState = "active"
	StateDeleting      ProvisionState = "deleting"
	StateError         ProvisionState = "error"
	// Hold states: a deploy, clean or service step named "hold" parks the
	// node until a user unholds it (1.85) or aborts.
	StateDeployHold  ProvisionState = "deploy hold"
	StateCleanHold   ProvisionState = "clean hold"
	StateServiceHold ProvisionState = "service hold"
	// Adoption: an active node taken over without deploying (1.17).
	StateAdopting    ProvisionState = "adopting"
	StateAdoptFailed ProvisionState = "adopt failed"
	// Rescue: an active node booted into a rescue ramdisk (1.38).
	StateRescuing       ProvisionState = "rescuing"
	StateRescueWait     ProvisionState = "rescue wait"
	StateRescueFailed   ProvisionState = "rescue failed"
	StateRescue         ProvisionState = "rescue"
	StateUnrescuing     ProvisionState = "unrescuing"
	StateUnrescueFailed ProvisionState = "unrescue failed"
	// Servicing: service steps run on an active node (1.87).
	StateServicing     ProvisionState = "servicing"
	StateServiceWait   ProvisionState = "service wait"
	StateServiceFailed ProvisionState = "service failed"
	// StateNone is the empty target: no provisioning action under way.
	StateNone ProvisionState = ""
)

// PowerState is a node's power state as Ironic spells it.
type PowerState string

// Power states and power targets. PowerRebooting and the soft targets are
// only ever targets: a soft power off asks the operating system to shut
// down (ACPI), a soft reboot does that and then powers on (API 1.27).
const (
	PowerOn            PowerState = "power on"
	PowerOff           PowerState = "power off"
	PowerRebooting     PowerState = "rebooting"
	PowerSoftOff       PowerState = "soft power off"
	PowerSoftRebooting PowerState = "soft rebooting"
	// PowerUnknown is a state not read yet (JSON null on the API).
	PowerUnknown PowerState = ""
)

// BootDevice is where a machine boots from.
type BootDevice string

// Boot devices ironfleet drives.
const (
	BootPXE  BootDevice = "pxe"
	BootDisk BootDevice = "disk"
)

// Node is the inventory record of one machine. It is stored as JSON in the
// node inventory and owned by whoever holds the node's lock; the API renders
// it in Ironic's shape (and masks secrets) rather than exposing it as is.
type Node struct {
	UUID   string `json:"uuid"`
	Name   string `json:"name,omitempty"`
	Driver string `json:"driver"`
	// Interfaces holds the driver interface implementations the node chose,
	// by kind ("boot": "ipxe"); a kind not in it runs its hardware type's
	// default (internal/hardware).
	Interfaces  map[string]string `json:"interfaces,omitempty"`
	Description string            `json:"description,omitempty"`
	// DriverInfo holds the BMC's address and credentials (ipmi_address,
	// ipmi_port, ipmi_username, ipmi_password, ipmi_cipher_suite, …).
	// Secrets in it never appear in events, logs or API output.
	DriverInfo map[string]any `json:"driver_info,omitempty"`
	// InstanceInfo holds what to deploy (image_source, image_checksum, …).
	InstanceInfo map[string]any `json:"instance_info,omitempty"`
	Properties   map[string]any `json:"properties,omitempty"`
	// NetworkData is the node's network configuration for its config
	// drive (Ironic's network_data, 1.66: OpenStack network_data.json).
	NetworkData  map[string]any `json:"network_data,omitempty"`
	Extra        map[string]any `json:"extra,omitempty"`
	InstanceUUID string         `json:"instance_uuid,omitempty"`

	ProvisionState       ProvisionState `json:"provision_state"`
	TargetProvisionState ProvisionState `json:"target_provision_state,omitempty"`
	ProvisionUpdatedAt   time.Time      `json:"provision_updated_at,omitzero"`
	PowerState           PowerState     `json:"power_state,omitempty"`
	TargetPowerState     PowerState     `json:"target_power_state,omitempty"`
	BootDevice           BootDevice     `json:"boot_device,omitempty"`
	BootDevicePersistent bool           `json:"boot_device_persistent,omitempty"`

	// ConsoleEnabled says the node's console is enabled.
	ConsoleEnabled bool `json:"console_enabled,omitempty"`
	// Console is where the enabled console of a console interface that
	// runs one (ipmitool-socat, sim) is served, and by which conductor;
	// nil while disabled, and for the fake console.
	Console *Console `json:"console,omitempty"`

	Maintenance       bool   `json:"maintenance"`
	MaintenanceReason string `json:"maintenance_reason,omitempty"`
	// Fault is why ironfleet put the node in maintenance by itself
	// ("power failure", …); cleared when maintenance is turned off.
	Fault     string `json:"fault,omitempty"`
	LastError string `json:"last_error,omitempty"`
	// PowerFailures counts consecutive failed power-state syncs.
	PowerFailures int `json:"power_failures,omitempty"`

	ConductorGroup string `json:"conductor_group"`
	// Conductor is the host of the conductor that last worked on the node.
	Conductor string `json:"conductor,omitempty"`
	// Reservation is the host holding the node's lock, as the lock reports it
	// (filled in by readers from the lock view, not stored).
	Reservation string `json:"reservation,omitempty"`

	ResourceClass  string `json:"resource_class,omitempty"`
	Owner          string `json:"owner,omitempty"`
	Lessee         string `json:"lessee,omitempty"`
	AutomatedClean *bool  `json:"automated_clean,omitempty"`
	Protected      bool   `json:"protected,omitempty"`
	// Traits are the node's scheduling traits (os-traits names or
	// CUSTOM_*), sorted, at most 50: Ironic's node traits (1.37).
	Traits []string `json:"traits,omitempty"`
	// ChassisUUID is the chassis the node is in, "" for none.
	ChassisUUID string `json:"chassis_uuid,omitempty"`
	// AllocationUUID names the allocation the node is reserved for; set
	// and cleared with InstanceUUID by the allocation's owner.
	AllocationUUID string `json:"allocation_uuid,omitempty"`

	// Bios and Firmware are what the node's bios and firmware interfaces
	// last reported (Ironic's bios_settings and firmware_information
	// tables), cached by the conductor under the node's lock.
	Bios     []BiosSetting       `json:"bios,omitempty"`
	Firmware []FirmwareComponent `json:"firmware,omitempty"`
	// ParentNode is the UUID of the node this one is a part of (Ironic's
	// parent_node, 1.83: a DPU in a server, say); "" for none. Nodes
	// with a parent are left out of node lists unless asked for.
	ParentNode string `json:"parent_node,omitempty"`

	// Agent is what the node's agent told us; nil until its first lookup.
	Agent *AgentInfo `json:"agent,omitempty"`
	// Step is the conductor's progress inside a multi-phase flow (deploy,
	// clean), so that a redelivered or recovered task resumes, not restarts.
	Step string `json:"step,omitempty"`
	// Steps are the clean or deploy steps of the flow under way, in the
	// order they run (Ironic's driver_internal_info clean_steps or
	// deploy_steps), and StepIndex is the one running or next to run: a
	// redelivered or resumed task goes on from it. Empty outside a flow.
	Steps     []Step `json:"steps,omitempty"`
	StepIndex int    `json:"step_index,omitempty"`

	// TargetRAIDConfig is the RAID configuration a raid
	// create_configuration step builds; RAIDConfig the one it built.
	TargetRAIDConfig map[string]any `json:"target_raid_config,omitempty"`
	RAIDConfig       map[string]any `json:"raid_config,omitempty"`

	// Dispatched is the first move (internal/dispatch) that last changed
	// the node, with the task it was made for, written in the same write:
	// a first move whose write's answer was lost is recognised by it, a
	// retried request finds the move its lost answer made, and a task's
	// consumer goes on from a first move only if it is its own. Not
	// rendered.
	Dispatched *Dispatched `json:"dispatched,omitempty"`

	// Fence is the highest lock fencing token the inventory accepted a write
	// with; writes carrying a lower token are rejected.
	Fence uint64 `json:"fence,omitempty"`

	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// AgentInfo is the agent's side of a node: where it listens and how to prove
// it is the agent the API handed a token to.
type AgentInfo struct {
	// URL is the agent's command API callback address.
	URL string `json:"url,omitempty"`
	// TokenHash is the SHA-256 (hex) of the one-time agent token; the token
	// itself is never stored.
	TokenHash string `json:"token_hash,omitempty"`
	// Token is the agent token itself, kept so the conductor can call the
	// agent's command API. It never appears in API output, events or logs.
	Token         string    `json:"token,omitempty"`
	Version       string    `json:"version,omitempty"`
	LastHeartbeat time.Time `json:"last_heartbeat,omitzero"`
}

// Port is a NIC of a node, identified by its MAC address; the agent looks
// its node up by these.
type Port struct {
	UUID     string `json:"uuid"`
	NodeUUID string `json:"node_uuid"`
	// Name is the port's optional name (Ironic 1.88), unique among ports.
	Name      string         `json:"name,omitempty"`
	Address   string         `json:"address"` // MAC, lower case, colon-separated
	PXEEnable bool           `json:"pxe_enabled"`
	Extra     map[string]any `json:"extra,omitempty"`
	// VIF is the tenant virtual interface attached to the port (Ironic's
	// internal_info.tenant_vif_port_id), "" when the port is free.
	VIF string `json:"vif,omitempty"`
	// PortgroupUUID is the portgroup (bond) the port belongs to, "" for
	// none; it is one of the port's node's.
	PortgroupUUID string    `json:"portgroup_uuid,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at,omitzero"`
}

// Console is a running serial console: what GET …/states/console shows as
// console_info (Type, URL; Ironic's {"type": "socat", "url": "tcp://…"})
// and the conductor that serves it, which restores it when it restarts;
// the other conductors of the node's group take it over when that one
// dies.
type Console struct {
	Type      string `json:"type"`
	URL       string `json:"url"`
	Conductor string `json:"conductor"`
}
