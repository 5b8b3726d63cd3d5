package wire

// The agent's side of Ironic's ramdisk protocol, as ironic-python-agent
// speaks it: the agent looks its node up by MAC addresses and then
// heartbeats with the one-time token the lookup handed it.
//
//	GET  /v1/lookup?addresses=<mac>,<mac>   → 200 LookupResponse; 404 not (yet) known; 409 try later
//	POST /v1/heartbeat/<node uuid>          HeartbeatRequest → 202
//
// Both carry the APIVersionHeader with AgentAPIVersion.

// APIVersionHeader is the header carrying the Ironic API microversion.
const APIVersionHeader = "X-OpenStack-Ironic-API-Version"

// AgentAPIVersion is the Ironic API microversion the agent speaks (agent
// tokens and agent_version in heartbeats are below it).
const AgentAPIVersion = "1.82"

// LookupResponse is the body of a successful lookup.
type LookupResponse struct {
	Node   LookupNode   `json:"node"`
	Config LookupConfig `json:"config"`
}

// LookupNode is the part of the node record a lookup reveals to its agent.
type LookupNode struct {
	UUID               string         `json:"uuid"`
	Properties         map[string]any `json:"properties,omitempty"`
	InstanceInfo       map[string]any `json:"instance_info,omitempty"`
	DriverInternalInfo map[string]any `json:"driver_internal_info,omitempty"`
}

// LookupConfig is the agent configuration a lookup returns.
type LookupConfig struct {
	// HeartbeatTimeout is in seconds; the agent beats every 30–60 % of it.
	// A JSON number (fractions are read, so tests can run in milliseconds).
	HeartbeatTimeout float64 `json:"heartbeat_timeout"`
	// AgentToken is the one-time token; the API hands it out once per
	// agent boot and every heartbeat and command must carry it.
	AgentToken         string `json:"agent_token"`
	AgentTokenRequired bool   `json:"agent_token_required"`
}

// HeartbeatRequest is the body of POST /v1/heartbeat/<node uuid>.
type HeartbeatRequest struct {
	// CallbackURL is the agent's command API, e.g. http://10.0.2.15:9999.
	CallbackURL  string `json:"callback_url"`
	AgentToken   string `json:"agent_token"`
	AgentVersion string `json:"agent_version"`
}
