package wire

import (
	"errors"
	"fmt"
)

// Code is a stable error code: it survives the wire, and callers branch on
// it (the API maps it to an HTTP status) instead of on message text.
type Code string

// Error codes.
const (
	CodeInvalidInput      Code = "invalid_input"      // malformed or out-of-range input
	CodeNotFound          Code = "not_found"          // no such node, port, …
	CodeConflict          Code = "conflict"           // duplicate name/MAC, CAS lost, stale fence
	CodeInvalidTransition Code = "invalid_transition" // provision action not allowed in this state
	CodeNodeLocked        Code = "node_locked"        // the node's lock is held by someone else
	CodeBMC               Code = "bmc_error"          // the BMC failed or timed out
	CodeAgent             Code = "agent_error"        // the agent failed or is unreachable
	CodeTimeout           Code = "timeout"            // a wait state or action timed out
	CodeUnknownVersion    Code = "unknown_version"    // an envelope of a version we do not read
	CodeDecode            Code = "decode_error"       // an envelope that does not decode
	CodeUnavailable       Code = "unavailable"        // a dependency (NATS, Redis) is down
	CodeInternal          Code = "internal"           // a bug
)

// Error is an error with a stable code. It wraps the underlying error so
// errors.Is/As still see it.
type Error struct {
	Code    Code
	Message string
	Err     error
}

// Errorf returns an *Error with code and a formatted message; a %w in format
// is wrapped.
func Errorf(code Code, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	return &Error{Code: code, Message: err.Error(), Err: errors.Unwrap(err)}
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns the wrapped error.
func (e *Error) Unwrap() error { return e.Err }

// CodeOf returns the code of the first *Error in err's chain, or
// CodeInternal when there is none (and "" for a nil error).
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}
