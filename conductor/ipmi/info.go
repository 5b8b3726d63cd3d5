package ipmi

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/ironfleet/ironfleet/transport/wire"
)

// driver_info keys, spelled as Ironic spells them (plus ipmi_timeout and
// ipmi_retries, ironfleet's per-node overrides of Config).
const (
	KeyAddress     = "ipmi_address"      // host name or IP of the BMC; required
	KeyPort        = "ipmi_port"         // UDP port; default 623
	KeyUsername    = "ipmi_username"     // default "" (anonymous)
	KeyPassword    = "ipmi_password"     // default ""; never logged or echoed
	KeyCipherSuite = "ipmi_cipher_suite" // lanplus cipher suite 0–17; default 3
	KeyPrivLevel   = "ipmi_priv_level"   // ADMINISTRATOR (default), OPERATOR, USER, CALLBACK
	// KeyDisableBootTimeout: when true (the default, as in Ironic) setting
	// the boot device also tells the BMC not to drop the boot flags after
	// the 60 s the IPMI spec allows between setting them and the reboot.
	KeyDisableBootTimeout = "ipmi_disable_boot_timeout"
	KeyTimeout            = "ipmi_timeout" // seconds to wait for one BMC reply; default Config.RequestTimeout
	KeyRetries            = "ipmi_retries" // retries of a failed operation; default Config.Attempts-1
)

// Properties describe the driver_info keys the ipmi hardware type reads,
// as GET /v1/drivers/ipmi/properties lists them (Ironic's ipmitool
// COMMON_PROPERTIES, less the keys ironfleet does not read, plus its
// per-node overrides ipmi_timeout and ipmi_retries).
var Properties = map[string]string{
	KeyAddress:            "IP address or hostname of the node's BMC. Required.",
	KeyPort:               "remote IPMI RMCP port; default is 623. Optional.",
	KeyUsername:           "username; default is the NULL user. Optional.",
	KeyPassword:           "password. Optional.",
	KeyCipherSuite:        "the number of the IPMI 2.0 cipher suite to use, 0 to 17; default is 3. Optional.",
	KeyPrivLevel:          "privilege level; default is ADMINISTRATOR. One of ADMINISTRATOR, CALLBACK, OPERATOR, USER. Optional.",
	KeyDisableBootTimeout: "whether setting the boot device also disables the BMC's 60 second boot flag timeout; default is true. Optional.",
	KeyTimeout:            "seconds to wait for one reply of the BMC; default is the conductor's. Optional.",
	KeyRetries:            "retries of a failed IPMI operation; default is the conductor's. Optional.",
	KeyTerminalPort:       "node's UDP port to connect to. Only required for console access.",
}

// DefaultPort is IPMI's RMCP port.
const DefaultPort = 623

// DefaultCipherSuite is used when driver_info names none. Suite 3
// (RAKP-HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128) is what every BMC and ipmi_sim
// support; BMCs that prefer 17 should say so in driver_info. Cipher suite
// discovery is not attempted: ipmi_sim does not answer it, and on real BMCs it
// costs a round trip per operation.
const DefaultCipherSuite = 3

// Limits of IPMI 2.0 (RAKP): 16-byte user names, 20-byte passwords.
const (
	maxUsername = 16
	maxPassword = 20
)

// ErrInvalidInfo is wrapped by every driver_info validation error.
var ErrInvalidInfo = errors.New("ipmi: invalid driver_info")

// Secret is a credential: it prints, logs and marshals as "***".
type Secret string

// String hides the secret.
func (Secret) String() string { return "***" }

// GoString hides the secret from %#v.
func (Secret) GoString() string { return `"***"` }

// LogValue hides the secret from slog.
func (Secret) LogValue() slog.Value { return slog.StringValue("***") }

// MarshalJSON hides the secret from encoding/json.
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"***"`), nil }

// Info is a node's parsed and validated IPMI driver_info.
type Info struct {
	Address     string
	Port        int
	Username    string
	Password    Secret
	CipherSuite int
	// PrivLevel is the session privilege: "ADMINISTRATOR", "OPERATOR", ….
	PrivLevel          string
	DisableBootTimeout bool
	// Timeout and Retries are zero / -1 when driver_info does not set them.
	Timeout time.Duration
	Retries int
	// TerminalPort is the node's own console port; 0 when driver_info
	// names none (the conductor's console port range applies).
	TerminalPort int
	// UEFI makes boot device requests ask for an EFI boot (else legacy
	// BIOS). NodePower sets it from the node's boot mode (BootModeUEFI).
	UEFI bool
}

// BootModeUEFI says whether node boots UEFI, by wire.NodeBootMode (its
// instance_info's boot_mode capability, else its properties', else
// wire.DefaultBootMode). A bad capability wraps ErrInvalidInfo.
func BootModeUEFI(node wire.Node) (bool, error) {
	mode, err := wire.NodeBootMode(node)
	if err != nil {
		return false, wire.Errorf(wire.CodeOf(err), "%w: %w", ErrInvalidInfo, err)
	}
	return mode == wire.BootModeUEFI, nil
}

// Addr is the BMC's host:port.
func (i Info) Addr() string { return net.JoinHostPort(i.Address, strconv.Itoa(i.Port)) }

// Validate checks an IPMI driver_info without contacting the BMC. Its errors
// wrap ErrInvalidInfo, carry wire.CodeInvalidInput, name the offending key,
// and never echo the password.
func Validate(driverInfo map[string]any) error {
	_, err := ParseInfo(driverInfo)
	return err
}

// ParseInfo validates an IPMI driver_info and returns it parsed.
func ParseInfo(driverInfo map[string]any) (Info, error) {
	p := infoParser{m: driverInfo}
	info := Info{
		Address:            p.str(KeyAddress, true),
		Port:               p.integer(KeyPort, DefaultPort, 1, 65535),
		Username:           p.str(KeyUsername, false),
		Password:           Secret(p.secret(KeyPassword)),
		CipherSuite:        p.integer(KeyCipherSuite, DefaultCipherSuite, 0, 17),
		PrivLevel:          strings.ToUpper(p.str(KeyPrivLevel, false)),
		DisableBootTimeout: p.boolean(KeyDisableBootTimeout, true),
		Timeout:            p.seconds(KeyTimeout),
		Retries:            p.integer(KeyRetries, -1, 0, 100),
		TerminalPort:       p.integer(KeyTerminalPort, 0, 1, 65535),
	}
	if p.err != nil {
		return Info{}, p.err
	}
	switch {
	case strings.ContainsAny(info.Address, " \t\r\n/"):
		p.fail(KeyAddress, "must be a host name or IP address")
	case len(info.Username) > maxUsername:
		p.fail(KeyUsername, fmt.Sprintf("is longer than IPMI's %d bytes", maxUsername))
	case len(info.Password) > maxPassword:
		p.fail(KeyPassword, fmt.Sprintf("is longer than IPMI's %d bytes", maxPassword))
	}
	if info.PrivLevel == "" {
		info.PrivLevel = "ADMINISTRATOR"
	}
	if _, ok := privLevels[info.PrivLevel]; !ok {
		p.fail(KeyPrivLevel, "must be ADMINISTRATOR, OPERATOR, USER or CALLBACK")
	}
	if p.err != nil {
		return Info{}, p.err
	}
	return info, nil
}

// infoParser collects the first error met while reading keys.
type infoParser struct {
	m   map[string]any
	err error
}

func (p *infoParser) fail(key, why string) {
	if p.err != nil {
		return
	}
	p.err = wire.Errorf(wire.CodeInvalidInput, "%w: %s %s", ErrInvalidInfo, key, why)
}

func (p *infoParser) str(key string, required bool) string {
	v, ok := p.m[key]
	if !ok || v == nil {
		if required {
			p.fail(key, "is required")
		}
		return ""
	}
	s, ok := v.(string)
	if !ok {
		p.fail(key, fmt.Sprintf("must be a string, got %T", v))
		return ""
	}
	s = strings.TrimSpace(s)
	if required && s == "" {
		p.fail(key, "is required")
	}
	return s
}

// secret is str without trimming and without ever quoting the value.
func (p *infoParser) secret(key string) string {
	v, ok := p.m[key]
	if !ok || v == nil {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		p.fail(key, "must be a string")
		return ""
	}
	return s
}

// number accepts JSON numbers (float64, json.Number), Go integers, and
// numeric strings (Ironic's API stores driver_info values as given).
func number(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case int32:
		return float64(n), true
	case uint16:
		return float64(n), true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(n), 64)
		return f, err == nil
	}
	return 0, false
}

func (p *infoParser) integer(key string, def, lo, hi int) int {
	v, ok := p.m[key]
	if !ok || v == nil {
		return def
	}
	f, ok := number(v)
	if !ok || f != math.Trunc(f) {
		p.fail(key, fmt.Sprintf("must be an integer, got %v", v))
		return def
	}
	if f < float64(lo) || f > float64(hi) {
		p.fail(key, fmt.Sprintf("must be between %d and %d, got %v", lo, hi, v))
		return def
	}
	return int(f)
}

func (p *infoParser) seconds(key string) time.Duration {
	v, ok := p.m[key]
	if !ok || v == nil {
		return 0
	}
	f, ok := number(v)
	if !ok || math.IsNaN(f) || f <= 0 || f > 3600 {
		p.fail(key, fmt.Sprintf("must be a number of seconds in (0, 3600], got %v", v))
		return 0
	}
	return time.Duration(f * float64(time.Second))
}

func (p *infoParser) boolean(key string, def bool) bool {
	v, ok := p.m[key]
	if !ok || v == nil {
		return def
	}
	switch b := v.(type) {
	case bool:
		return b
	case string:
		if r, err := strconv.ParseBool(strings.TrimSpace(b)); err == nil {
			return r
		}
	}
	p.fail(key, fmt.Sprintf("must be true or false, got %v", v))
	return def
}
