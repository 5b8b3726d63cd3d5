package agent

import "errors"

// ErrLookupTimeout: the agent could not look itself up within its lookup
// timeout. The errors of the command API are package protocol's.
var ErrLookupTimeout = errors.New("agent: lookup timed out")
