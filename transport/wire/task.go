package wire

import (
	"encoding/json"
	"time"
)

// TaskVersion is the version of the task envelope this code writes and reads.
const TaskVersion = 1

// Operation is what a task asks a conductor to do to a node.
type Operation string

// Operations. Continuations (continue_*) carry a lock ticket: the conductor
// that ended the previous phase handed the node's lock to it.
const (
	OpManage         Operation = "manage"          // enroll → verifying → manageable
	OpProvide        Operation = "provide"         // manageable → (cleaning →) available
	OpDeploy         Operation = "deploy"          // available → deploying → …
	OpContinueDeploy Operation = "continue_deploy" // next deploy phase, with a ticket
	OpRebuild        Operation = "rebuild"         // active → deploying
	OpUndeploy       Operation = "undeploy"        // active/failed → deleting → cleaning
	OpClean          Operation = "clean"           // manageable → cleaning (manual)
	OpContinueClean  Operation = "continue_clean"  // next clean phase, with a ticket
	OpInspect        Operation = "inspect"         // manageable → inspecting
	OpAbort          Operation = "abort"           // a wait or hold state → its failed state
	OpAdopt          Operation = "adopt"           // manageable → adopting → active
	OpRescue         Operation = "rescue"          // active → rescuing → rescue; params: RescueParams
	OpUnrescue       Operation = "unrescue"        // rescue → unrescuing → active
	OpService        Operation = "service"         // active → servicing → active; params: ServiceParams
	OpUnhold         Operation = "unhold"          // a hold state → its wait state
	OpPower          Operation = "power"           // params: PowerParams
	OpBootDevice     Operation = "boot_device"     // params: BootDeviceParams
	OpInjectNMI      Operation = "inject_nmi"      // no params
	OpConsole        Operation = "console"         // params: ConsoleParams
	OpHeartbeat      Operation = "heartbeat"       // params: HeartbeatParams
)

// Task is the envelope of one unit of work on the task bus. ID is unique per
// task and is the JetStream message ID, so a republished task is deduplicated
// and a redelivered one can be recognised as done.
type Task struct {
	Version int       `json:"v"`
	ID      string    `json:"id"`
	Node    string    `json:"node"`
	Op      Operation `json:"op"`
	// Group is the conductor group that must run the task ("" is the default group).
	Group string `json:"group"`
	// Ticket, when set, is the lock ticket the previous holder handed the
	// node's lock to; the consumer acquires with it.
	Ticket string `json:"ticket,omitempty"`
	// FirstMove, when set, is the state change the publisher made under the
	// lock it handed to Ticket, before publishing: the operation's first
	// step (Ironic's conductor makes it before its RPC returns, so a client
	// polling right after the 202 sees "deploying"). The consumer finds the
	// node there and goes on; without it, the consumer makes the move.
	FirstMove   *Move           `json:"first_move,omitempty"`
	RequestedBy string          `json:"requested_by,omitempty"`
	CreatedAt   time.Time       `json:"created_at"`
	Params      json.RawMessage `json:"params,omitempty"`
}

// Move is a change of a node's provision state.
type Move struct {
	From   ProvisionState `json:"from"`
	To     ProvisionState `json:"to"`
	Target ProvisionState `json:"target,omitempty"`
}

// Dispatched is a first move as the node records it (Node.Dispatched).
type Dispatched struct {
	// Task is the ID of the task the move was made for.
	Task string    `json:"task"`
	Op   Operation `json:"op"`
	// Move is the provision state change, nil for none (a power action's
	// first move sets only its target).
	Move *Move `json:"move,omitempty"`
}

// PowerParams are the parameters of OpPower.
type PowerParams struct {
	Target PowerState `json:"target"`
	// TimeoutSeconds bounds the power action; 0 means the conductor's default.
	TimeoutSeconds int `json:"timeout,omitempty"`
}

// RescueParams are the parameters of OpRescue, as the API receives them.
type RescueParams struct {
	// RescuePassword is the password to set inside the rescue ramdisk
	// (Ironic keeps it in instance_info, masked).
	RescuePassword string `json:"rescue_password"`
}

// ServiceParams are the parameters of OpService, as the API receives them.
type ServiceParams struct {
	// ServiceSteps are the steps to run, each {interface, step, args,
	// priority} as Ironic's; kept raw until a step runner reads them.
	ServiceSteps []json.RawMessage `json:"service_steps"`
}

// BootDeviceParams are the parameters of OpBootDevice.
type BootDeviceParams struct {
	Device     BootDevice `json:"boot_device"`
	Persistent bool       `json:"persistent"`
}

// ConsoleParams are the parameters of OpConsole: enable or disable the
// node's serial console.
type ConsoleParams struct {
	Enabled bool `json:"enabled"`
}

// HeartbeatParams are the parameters of OpHeartbeat.
type HeartbeatParams struct {
	CallbackURL  string `json:"callback_url"`
	AgentVersion string `json:"agent_version,omitempty"`
	// TokenHash is the SHA-256 (hex) of the agent token the heartbeat was
	// authenticated with (never the token): a heartbeat queued by the agent
	// of an earlier boot is told apart from the current agent's, and dropped.
	TokenHash string `json:"token_hash"`
}
