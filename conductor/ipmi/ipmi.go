// Package ipmi drives a node's power and boot device through its BMC over
// IPMI 2.0 lanplus (github.com/bougou/go-ipmi).
//
// A Driver turns a node's driver_info (Ironic's keys: ipmi_address,
// ipmi_port, ipmi_username, ipmi_password, ipmi_cipher_suite, …) into a BMC,
// which implements the conductor's Power interface. Every operation opens its
// own session and closes it, so a BMC value holds no connection and needs no
// closing; BMCs drop idle sessions anyway.
//
// Failed operations are retried with jittered exponential backoff, except
// when retrying cannot help (refused credentials, a command the BMC does not
// support) or the caller's context ends. What finally fails is a
// *wire.Error with wire.CodeBMC whose message is fit for the node's
// last_error: what was attempted, at which BMC, how many times, and why. The
// password never appears in errors, logs or metrics.
package ipmi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/command/chassis"
	"github.com/bougou/go-ipmi/pkg/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ironfleet/ironfleet/internal/wait"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// Errors callers can branch on (all wrapped in a *wire.Error with CodeBMC).
var (
	// ErrAuth: the BMC refused the user name, password or privilege level.
	ErrAuth = errors.New("ipmi: BMC refused the credentials")
	// ErrNoAnswer: the BMC did not answer in time.
	ErrNoAnswer = errors.New("ipmi: BMC did not answer")
	// ErrBMC: the BMC answered with an error, or the exchange failed.
	ErrBMC = errors.New("ipmi: BMC error")
	// ErrPowerTimeout: the machine did not reach the requested power state
	// within Config.PowerTimeout.
	ErrPowerTimeout = errors.New("ipmi: power state not reached in time")
)

var privLevels = map[string]types.PrivilegeLevel{
	"ADMINISTRATOR": types.PrivilegeLevelAdministrator,
	"OPERATOR":      types.PrivilegeLevelOperator,
	"USER":          types.PrivilegeLevelUser,
	"CALLBACK":      types.PrivilegeLevelCallback,
}

// DefaultRequestTimeout is how long the driver waits for one reply from a
// BMC when Config and driver_info say nothing.
const DefaultRequestTimeout = 2 * time.Second

// Config holds the driver's optional settings; every zero value is a
// documented default. driver_info's ipmi_timeout and ipmi_retries override
// RequestTimeout and Attempts per node.
type Config struct {
	// RequestTimeout is how long to wait for one reply from the BMC before
	// resending; zero means DefaultRequestTimeout.
	RequestTimeout time.Duration
	// Retransmits is how many times one request is resent before the
	// attempt fails; zero means 1, negative means none.
	Retransmits int
	// Attempts is how many times an operation is tried in all; zero means 3.
	Attempts int
	// Backoff is the wait before the second attempt, doubling (with
	// ±25 % jitter) up to MaxBackoff; zero means 1s.
	Backoff time.Duration
	// MaxBackoff caps the backoff; zero means 10s.
	MaxBackoff time.Duration
	// PowerTimeout bounds how long SetPower waits for the machine to reach
	// the target state after the BMC accepted the command; zero means 60s
	// (Ironic's power_state_change_timeout).
	PowerTimeout time.Duration
	// PollInterval is how often SetPower reads the power state while
	// waiting; zero means 1s.
	PollInterval time.Duration
	// OperationTimeout is the deadline applied to an operation whose
	// context has none; zero means 2 minutes.
	OperationTimeout time.Duration
	// Logger receives retries (debug) and final failures (warn); nil
	// discards. Passwords are never logged.
	Logger *slog.Logger
	// Registerer registers the driver's metrics; nil means none.
	Registerer prometheus.Registerer
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.RequestTimeout, DefaultRequestTimeout)
	def(&c.Backoff, time.Second)
	def(&c.MaxBackoff, 10*time.Second)
	def(&c.PowerTimeout, 60*time.Second)
	def(&c.PollInterval, time.Second)
	def(&c.OperationTimeout, 2*time.Minute)
	switch {
	case c.Retransmits == 0:
		c.Retransmits = 1
	case c.Retransmits < 0:
		c.Retransmits = 0
	}
	if c.Attempts <= 0 {
		c.Attempts = 3
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c
}

// Driver builds the BMC of a node from its driver_info. It is safe for
// concurrent use.
type Driver struct {
	cfg Config
	ops *prometheus.CounterVec
	try *prometheus.CounterVec
}

// New returns a Driver. It fails only if cfg.Registerer refuses its metrics.
func New(cfg Config) (*Driver, error) {
	d := &Driver{
		cfg: cfg.withDefaults(),
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ironfleet_ipmi_operations_total",
			Help: "IPMI operations by operation and outcome (ok, auth, no_answer, error).",
		}, []string{"op", "outcome"}),
		try: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ironfleet_ipmi_retries_total",
			Help: "IPMI operation attempts that failed and were retried, by operation.",
		}, []string{"op"}),
	}
	if r := cfg.Registerer; r != nil {
		for _, c := range []prometheus.Collector{d.ops, d.try} {
			if err := r.Register(c); err != nil {
				return nil, fmt.Errorf("ipmi: register metrics: %w", err)
			}
		}
	}
	return d, nil
}

// ValidateDriverInfo is Validate.
func (d *Driver) ValidateDriverInfo(driverInfo map[string]any) error { return Validate(driverInfo) }

// NodePower returns the BMC of node, from its driver_info and its boot mode
// (BootModeUEFI). It does not contact the BMC.
func (d *Driver) NodePower(node wire.Node) (*BMC, error) {
	info, err := ParseInfo(node.DriverInfo)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", node.UUID, err)
	}
	if info.UEFI, err = BootModeUEFI(node); err != nil {
		return nil, fmt.Errorf("node %s: %w", node.UUID, err)
	}
	return d.BMC(node.UUID, info), nil
}

// BMC returns the BMC described by info; node names it in logs.
func (d *Driver) BMC(node string, info Info) *BMC {
	b := &BMC{d: d, node: node, info: info, timeout: d.cfg.RequestTimeout, attempts: d.cfg.Attempts}
	if info.Timeout > 0 {
		b.timeout = info.Timeout
	}
	if info.Retries >= 0 {
		b.attempts = info.Retries + 1
	}
	return b
}

// BMC is one node's baseboard management controller. It implements the
// conductor's Power interface and is safe for concurrent use (each
// operation has its own session).
type BMC struct {
	d        *Driver
	node     string
	info     Info
	timeout  time.Duration
	attempts int
}

// String names the BMC by address, never by credentials.
func (b *BMC) String() string { return "BMC " + b.info.Addr() }

// PowerState reads the chassis power state.
func (b *BMC) PowerState(ctx context.Context) (wire.PowerState, error) {
	ctx, cancel := b.deadline(ctx)
	defer cancel()
	var on bool
	err := b.do(ctx, "power status", func(ctx context.Context, c *client.Client) error {
		st, err := c.GetChassisStatus(ctx)
		if err != nil {
			return err
		}
		on = st.PowerIsOn
		return nil
	})
	if err != nil {
		return wire.PowerUnknown, err
	}
	if on {
		return wire.PowerOn, nil
	}
	return wire.PowerOff, nil
}

// SetPower drives the machine to target and waits until the BMC reports it
// there. It reads the state first, so a machine already there is left alone
// (a retried or redelivered power action does not cycle it twice). Rebooting
// is power off, then power on (as Ironic does: a reset is ignored by a
// machine that is off); rebooting a machine that is off powers it on.
func (b *BMC) SetPower(ctx context.Context, target wire.PowerState) error {
	switch target {
	case wire.PowerOn, wire.PowerOff, wire.PowerRebooting:
	default:
		return wire.Errorf(wire.CodeInvalidInput, "ipmi: unsupported power target %q", target)
	}
	ctx, cancel := b.deadline(ctx)
	defer cancel()
	cur, err := b.PowerState(ctx)
	if err != nil {
		return err
	}
	if target == wire.PowerRebooting {
		if cur == wire.PowerOn {
			if err := b.switchPower(ctx, wire.PowerOff); err != nil {
				return err
			}
		}
		return b.switchPower(ctx, wire.PowerOn)
	}
	if cur == target {
		return nil
	}
	return b.switchPower(ctx, target)
}

// switchPower sends the chassis control command for target and waits for
// the state to follow.
func (b *BMC) switchPower(ctx context.Context, target wire.PowerState) error {
	op, ctl := "power on", chassis.ChassisControlPowerUp
	if target == wire.PowerOff {
		op, ctl = "power off", chassis.ChassisControlPowerDown
	}
	err := b.do(ctx, op, func(ctx context.Context, c *client.Client) error {
		_, err := c.ChassisControl(ctx, ctl)
		return err
	})
	if err != nil {
		return err
	}
	deadline := time.Now().Add(b.d.cfg.PowerTimeout)
	for {
		cur, err := b.PowerState(ctx)
		if err != nil {
			return err
		}
		if cur == target {
			return nil
		}
		if time.Now().After(deadline) {
			return wire.Errorf(wire.CodeBMC, "%w: %s at %s: machine still %s after %s", ErrPowerTimeout, op, b.info.Addr(), cur, b.d.cfg.PowerTimeout)
		}
		if err := wait.Sleep(ctx, b.d.cfg.PollInterval); err != nil {
			return b.canceled(ctx, op)
		}
	}
}

// SetBootDevice sets the boot device for the next boot, or every boot when
// persistent. Unless driver_info disables it, it first asks the BMC to keep
// the boot flags past the IPMI spec's 60 s timeout (a BMC that does not
// support this is not an error).
func (b *BMC) SetBootDevice(ctx context.Context, dev wire.BootDevice, persistent bool) error {
	flags, err := bootFlags(dev, persistent, b.info.UEFI)
	if err != nil {
		return err
	}
	ctx, cancel := b.deadline(ctx)
	defer cancel()
	return b.do(ctx, "set boot device "+string(dev), func(ctx context.Context, c *client.Client) error {
		if b.info.DisableBootTimeout {
			p := &types.BootOptionParam_BMCBootFlagValidBitClear{DontClearOnCommandReceivedTimeout: true}
			if err := c.SetSystemBootOptionsParamFor(ctx, p); err != nil {
				if _, ok := types.IsResponseError(err); !ok {
					return err // the exchange failed: worth a retry
				}
				b.d.cfg.Logger.DebugContext(ctx, "BMC does not keep boot flags past 60s",
					"node", b.node, "bmc", b.info.Addr(), "err", b.scrub(err.Error()))
			}
		}
		return c.SetSystemBootOptionsParamFor(ctx, flags)
	})
}

// bootFlags is the IPMI boot flags parameter (5) for dev.
func bootFlags(dev wire.BootDevice, persistent, uefi bool) (*types.BootOptionParam_BootFlags, error) {
	var sel types.BootDeviceSelector
	switch dev {
	case wire.BootPXE:
		sel = types.BootDeviceSelectorForcePXE
	case wire.BootDisk:
		sel = types.BootDeviceSelectorForceHardDrive
	default:
		return nil, wire.Errorf(wire.CodeInvalidInput, "ipmi: unsupported boot device %q", dev)
	}
	return &types.BootOptionParam_BootFlags{
		BootFlagsValid:     true,
		Persist:            persistent,
		BIOSBootType:       types.BIOSBootType(uefi),
		BootDeviceSelector: sel,
	}, nil
}

func (b *BMC) deadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, b.d.cfg.OperationTimeout)
}

// do runs fn in a fresh session, retrying with backoff.
func (b *BMC) do(ctx context.Context, op string, fn func(context.Context, *client.Client) error) error {
	var err error
	attempt := 0
	for attempt < b.attempts {
		attempt++
		err = b.session(ctx, fn)
		if err == nil {
			b.d.ops.WithLabelValues(op, "ok").Inc()
			return nil
		}
		if ctx.Err() != nil {
			break
		}
		if !retryable(err) || attempt == b.attempts {
			break
		}
		b.d.try.WithLabelValues(op).Inc()
		delay := b.backoff(attempt)
		b.d.cfg.Logger.DebugContext(ctx, "IPMI operation failed, retrying",
			"node", b.node, "bmc", b.info.Addr(), "op", op, "attempt", attempt, "in", delay, "err", b.scrub(err.Error()))
		if wait.Sleep(ctx, delay) != nil {
			break
		}
	}
	if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return b.canceled(ctx, op)
	}
	outcome, kind := classify(err)
	b.d.ops.WithLabelValues(op, outcome).Inc()
	failed := wire.Errorf(wire.CodeBMC, "%w: %s at %s failed (%d attempt%s): %s", kind, op, b.info.Addr(), attempt, plural(attempt), b.scrub(err.Error()))
	b.d.cfg.Logger.WarnContext(ctx, "IPMI operation failed", "node", b.node, "bmc", b.info.Addr(), "op", op, "attempts", attempt, "err", failed.Error())
	return failed
}

func (b *BMC) canceled(ctx context.Context, op string) error {
	return fmt.Errorf("ipmi: %s at %s: %w", op, b.info.Addr(), context.Cause(ctx))
}

// session opens a lanplus session, runs fn and closes the session.
func (b *BMC) session(ctx context.Context, fn func(context.Context, *client.Client) error) error {
	c, err := client.NewClient(b.info.Address, b.info.Port, b.info.Username, string(b.info.Password))
	if err != nil {
		return err
	}
	suite := types.CipherSuiteID(b.info.CipherSuite) //nolint:gosec // ParseInfo bounds it to 0–17
	c.WithCipherSuiteID(suite).
		WithTimeout(b.timeout).
		WithRetry(b.d.cfg.Retransmits).
		WithMaxPrivilegeLevel(privLevels[b.info.PrivLevel])
	if err := c.Connect(ctx); err != nil {
		return err
	}
	defer func() {
		// Close even when ctx has ended, but do not wait long for it.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.timeout)
		defer cancel()
		_ = c.Close(cctx)
	}()
	return fn(ctx, c)
}

func (b *BMC) backoff(attempt int) time.Duration {
	d := b.d.cfg.Backoff << (attempt - 1)
	if d <= 0 || d > b.d.cfg.MaxBackoff {
		d = b.d.cfg.MaxBackoff
	}
	return time.Duration(float64(d) * (0.75 + rand.Float64()/2)) //nolint:gosec // jitter, not security
}

// scrub makes a library's error message fit for last_error: on one line,
// and without the password, should a library ever put it in one.
func (b *BMC) scrub(msg string) string {
	if p := string(b.info.Password); p != "" {
		msg = strings.ReplaceAll(msg, p, "***")
	}
	return strings.Join(strings.Fields(msg), " ")
}

// Completion codes that no retry will change.
var permanentCodes = map[uint8]bool{
	0xc1: true, // invalid command
	0xc2: true, // invalid for this LUN
	0xc7: true, // request data length invalid
	0xc9: true, // parameter out of range
	0xcc: true, // invalid data field
	0xd4: true, // insufficient privilege
	0x80: true, // (boot options) parameter not supported
}

// RMCP+ session setup statuses (IPMI 2.0 table 13-15) no retry will change:
// true for refused credentials, false for a cipher suite the BMC lacks.
var permanentStatuses = map[uint8]bool{
	0x04: false, 0x05: false, 0x06: false, 0x07: false, 0x10: false, 0x11: false,
	0x09: true, 0x0a: true, 0x0c: true, 0x0d: true, 0x0e: true, 0x0f: true,
}

// go-ipmi v0.9.1 flattens session setup errors into strings.
var statusRE = regexp.MustCompile(`RMCP\+ status 0x([0-9a-f]{2})`)

// rmcpStatus finds the RMCP+ status of a failed session setup.
func rmcpStatus(err error) (uint8, bool) {
	var st *types.RmcpStatusError
	if errors.As(err, &st) {
		return uint8(st.StatusCode()), true
	}
	m := statusRE.FindStringSubmatch(err.Error())
	if m == nil {
		return 0, false
	}
	v, perr := strconv.ParseUint(m[1], 16, 8)
	return uint8(v), perr == nil
}

// classify sorts a go-ipmi error into a metric outcome and one of our
// sentinels.
func classify(err error) (outcome string, kind error) {
	if code, ok := rmcpStatus(err); ok && permanentStatuses[code] {
		return "auth", ErrAuth
	}
	if rerr, ok := types.IsResponseError(err); ok {
		if rerr.CompletionCode() == 0xd4 {
			return "auth", ErrAuth
		}
		return "error", ErrBMC
	}
	msg := err.Error()
	switch {
	case errors.Is(err, client.ErrRAKPAuthentication) || strings.Contains(msg, "RAKP"):
		return "auth", ErrAuth
	case errors.Is(err, context.DeadlineExceeded) || strings.Contains(msg, "deadline") || strings.Contains(msg, "timeout"):
		return "no_answer", ErrNoAnswer
	}
	return "error", ErrBMC
}

// retryable reports whether another attempt may succeed.
func retryable(err error) bool {
	if _, kind := classify(err); errors.Is(kind, ErrAuth) {
		return false
	}
	if code, ok := rmcpStatus(err); ok {
		if _, permanent := permanentStatuses[code]; permanent {
			return false
		}
	}
	if rerr, ok := types.IsResponseError(err); ok {
		return !permanentCodes[uint8(rerr.CompletionCode())]
	}
	return true
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
