package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/ironfleet/ironfleet/internal/provision"
	"github.com/ironfleet/ironfleet/lock"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// Errors the API's handlers return for what has no wire.Code.
var (
	// ErrUnauthorized: no or bad credentials (401).
	ErrUnauthorized = errors.New("api: authentication required")
	// ErrForbidden: credentials fine, action not allowed (403).
	ErrForbidden = errors.New("api: forbidden")
	// ErrNotAcceptable: a microversion out of range or a field the
	// requested microversion does not have (406).
	ErrNotAcceptable = errors.New("api: request not acceptable")
)

// badRequest returns an invalid_input error whose message is what the
// client reads.
func badRequest(format string, args ...any) error {
	return wire.Errorf(wire.CodeInvalidInput, format, args...)
}

// notAcceptable is ErrNotAcceptable with Ironic's faultstring.
func notAcceptable() error { return fmt.Errorf("%w", ErrNotAcceptable) }

// notAcceptableBefore is ErrNotAcceptable for a query parameter that
// needs 1.minor, in the words Ironic's check_allow_filter_by_* use
// (ironic/api/controllers/v1/utils.py).
func notAcceptableBefore(minor int) error { return &versionError{minor: minor} }

type versionError struct{ minor int }

func (e *versionError) Error() string {
	return fmt.Sprintf("Request not acceptable. The minimal required API version should be 1.%d", e.minor)
}

func (e *versionError) Is(target error) bool { return target == ErrNotAcceptable }

// notAcceptableError is ErrNotAcceptable with the faultstring Ironic gives
// for one parameter ("disable_ramdisk is not acceptable in this API
// version").
type notAcceptableError struct{ msg string }

func (e *notAcceptableError) Error() string        { return e.msg }
func (e *notAcceptableError) Is(target error) bool { return target == ErrNotAcceptable }

// unavailable marks err (a dependency failing) as a 503.
func unavailable(what string, err error) error {
	return wire.Errorf(wire.CodeUnavailable, "%s unavailable: %w", what, err)
}

// httpStatus is the one place that maps errors to HTTP: it returns the
// status and the faultstring the client reads. Server-side faults (5xx)
// never reveal the underlying error.
func httpStatus(err error) (int, string) {
	var (
		locked  *lock.LockedError
		invalid *provision.InvalidTransitionError
		tooBig  *http.MaxBytesError
		syntax  *json.SyntaxError
		typ     *json.UnmarshalTypeError
		netErr  net.Error
		limit   *LimitError
		since   *versionError
	)
	switch {
	case errors.As(err, &tooBig):
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("Request body larger than %d bytes.", tooBig.Limit)
	case errors.Is(err, transport.ErrTooLarge):
		// A record (or task) the store cannot hold: the client's to fix,
		// never a dependency being down.
		return http.StatusRequestEntityTooLarge, err.Error()
	case errors.Is(err, ErrUnauthorized):
		return http.StatusUnauthorized, err.Error()
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden, err.Error()
	case errors.As(err, &since):
		return http.StatusNotAcceptable, since.Error()
	case errors.Is(err, ErrNotAcceptable):
		if na := (*notAcceptableError)(nil); errors.As(err, &na) {
			return http.StatusNotAcceptable, na.msg
		}
		return http.StatusNotAcceptable, "Request not acceptable."
	case errors.As(err, &limit):
		return http.StatusServiceUnavailable, limit.Error()
	case errors.As(err, &locked):
		holder := locked.Holder
		if holder == "" {
			holder = "(a task waiting in line)"
		}
		return http.StatusConflict, fmt.Sprintf("Node %s is locked by host %s, please retry after the current operation is completed.", locked.Resource, holder)
	case errors.As(err, &invalid):
		return http.StatusBadRequest, invalid.Error()
	case errors.As(err, &syntax), errors.As(err, &typ):
		return http.StatusBadRequest, "Invalid JSON in request body: " + err.Error()
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, "A dependency did not answer in time; retry."
	}
	switch wire.CodeOf(err) {
	case wire.CodeInvalidInput, wire.CodeInvalidTransition, wire.CodeDecode, wire.CodeUnknownVersion:
		return http.StatusBadRequest, err.Error()
	case wire.CodeNotFound:
		return http.StatusNotFound, err.Error()
	case wire.CodeConflict, wire.CodeNodeLocked:
		return http.StatusConflict, err.Error()
	case wire.CodeUnavailable, wire.CodeTimeout:
		return http.StatusServiceUnavailable, "Service temporarily unavailable: a dependency (NATS or Redis) is down; retry."
	}
	if errors.As(err, &netErr) || errors.Is(err, lock.ErrClosed) {
		return http.StatusServiceUnavailable, "Service temporarily unavailable: a dependency (NATS or Redis) is down; retry."
	}
	return http.StatusInternalServerError, "Internal server error."
}

// LimitError says a node's conductor group is at its deploy or clean limit
// (503), in the words of Ironic's ConcurrentActionLimit: like Ironic, it
// names the kind of action, never the limit's value.
type LimitError struct {
	// Kind is Ironic's name of the action: provisioning, cleaning or
	// unprovisioning.
	Kind string
}

func (e *LimitError) Error() string {
	return "Unable to process request at this time. The concurrent action limit for " + e.Kind +
		" has been reached. Please contact your administrator and try again later."
}

// Code makes the error carry wire.CodeUnavailable.
func (e *LimitError) Code() wire.Code { return wire.CodeUnavailable }

// fault is the inner object of Ironic's error body.
type fault struct {
	FaultCode   string  `json:"faultcode"`
	FaultString string  `json:"faultstring"`
	DebugInfo   *string `json:"debuginfo"`
}

// errorBody encodes Ironic's error document: error_message holds the
// fault object JSON-encoded a second time.
func errorBody(status int, msg string) gin.H {
	code := "Client"
	if status >= 500 {
		code = "Server"
	}
	inner, _ := json.Marshal(fault{FaultCode: code, FaultString: msg}) // cannot fail
	return gin.H{"error_message": string(inner)}
}

// fail answers c with err in Ironic's format and logs what the client is not
// told.
func (s *Server) fail(c *gin.Context, err error) {
	status, msg := httpStatus(err)
	if status >= 500 {
		s.log.ErrorContext(c.Request.Context(), "request failed", "request_id", c.GetString(ctxRequestID),
			"method", c.Request.Method, "path", c.FullPath(), "status", status, "err", err)
	}
	c.Abort()
	c.JSON(status, errorBody(status, msg))
}
