package wire

import "time"

// Allocation states, as Ironic spells them (ironic/common/states.py).
const (
	AllocationAllocating = "allocating"
	AllocationActive     = "active"
	AllocationError      = "error"
)

// Allocation is a request for a node with a resource class, traits and
// (optionally) a list of candidate nodes; once a node is reserved for it,
// NodeUUID names the node and the node's AllocationUUID and InstanceUUID
// name the allocation (Ironic's allocations, API 1.52).
type Allocation struct {
	UUID           string         `json:"uuid"`
	Name           string         `json:"name,omitempty"`
	ResourceClass  string         `json:"resource_class"`
	Traits         []string       `json:"traits,omitempty"`
	CandidateNodes []string       `json:"candidate_nodes,omitempty"`
	Owner          string         `json:"owner,omitempty"`
	Extra          map[string]any `json:"extra,omitempty"`
	NodeUUID       string         `json:"node_uuid,omitempty"`
	// State is AllocationAllocating, AllocationActive or AllocationError.
	State     string    `json:"state"`
	LastError string    `json:"last_error,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// DeployTemplate is a named set of deploy steps, run on deploys of nodes
// whose instance traits include its name (Ironic's deploy templates, API
// 1.55).
type DeployTemplate struct {
	UUID      string         `json:"uuid"`
	Name      string         `json:"name"`
	Steps     []Step         `json:"steps"`
	Extra     map[string]any `json:"extra,omitempty"`
	CreatedAt time.Time      `json:"created_at"`
	UpdatedAt time.Time      `json:"updated_at,omitzero"`
}

// History severities, as Ironic writes them.
const (
	SeverityError = "ERROR"
	SeverityInfo  = "INFO"
)

// HistoryEvent is one entry of a node's history: an error (or a notable
// event) with where the node stood when it happened (Ironic's node
// history, API 1.78).
type HistoryEvent struct {
	UUID      string    `json:"uuid"`
	CreatedAt time.Time `json:"created_at"`
	// Severity is SeverityError or SeverityInfo.
	Severity string `json:"severity"`
	// EventType is the activity the event happened in, in Ironic's words:
	// "deploying", "cleaning", "introspection", "verifying", "conductor", …
	EventType string `json:"event_type"`
	Event     string `json:"event"`
	Conductor string `json:"conductor,omitempty"`
	User      string `json:"user,omitempty"`
	// State and TargetProvisionState are the node's when it happened.
	State                ProvisionState `json:"state,omitempty"`
	TargetProvisionState ProvisionState `json:"target_provision_state,omitempty"`
}

// NodeHistory is a node's history, oldest event first, bounded in length
// by whoever appends to it.
type NodeHistory struct {
	Node   string         `json:"node"`
	Events []HistoryEvent `json:"events"`
}

// Inspection is what the last inspection of a node found, in Ironic's
// shape: the agent's hardware inventory (cpu, memory, disks, interfaces,
// system_vendor, boot, …) and what inspection derived from it
// (plugin_data: root_disk, …). Served by GET /v1/nodes/{node}/inventory.
type Inspection struct {
	Node       string         `json:"node"`
	Inventory  map[string]any `json:"inventory"`
	PluginData map[string]any `json:"plugin_data"`
	CreatedAt  time.Time      `json:"created_at"`
}
