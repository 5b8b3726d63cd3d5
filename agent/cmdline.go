package agent

import (
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ironfleet/ironfleet/transport/wire"
)

// BootParams are the agent settings a ramdisk receives on the kernel command
// line, as ironfleet.<key>=<value> words (values may be double-quoted):
//
//	ironfleet.api_url=http://10.0.2.2:6385  the API to look up and heartbeat at
//	ironfleet.ip=10.0.2.15/24               static address for the boot NIC
//	ironfleet.gateway=10.0.2.2              default route
//	ironfleet.interface=eth0                NIC to configure (default: first with carrier)
//	ironfleet.listen=:9999                  command API listen address
//	ironfleet.callback_url=http://…:9999    callback URL to advertise (default: derived)
//	ironfleet.lookup_timeout=300            seconds (or a Go duration) before lookup gives up
//	ironfleet.modules=virtio_net,virtio_blk kernel modules to load at init
//	ironfleet.log_level=debug               log level
//
// A zero field means the key was absent.
type BootParams struct {
	APIURL        string
	IP            netip.Prefix
	Gateway       netip.Addr
	Interface     string
	Listen        string
	CallbackURL   string
	LookupTimeout time.Duration
	Modules       []string
	LogLevel      string
	// Node and Purpose are what the conductor's boot config says the boot
	// is for (wire.KernelArgNode, wire.KernelArgPurpose): hints for logs,
	// since lookup is by MAC.
	Node    string
	Purpose wire.BootPurpose
}

// ParseCmdline reads the ironfleet.* words of a kernel command line (the
// contents of /proc/cmdline). Words without the ironfleet. prefix belong to
// the kernel and are ignored; an unknown ironfleet.* key or a malformed value
// is an error, so a typo in a PXE config is reported rather than ignored.
func ParseCmdline(cmdline string) (BootParams, error) {
	var p BootParams
	words, err := splitCmdline(cmdline)
	if err != nil {
		return p, err
	}
	for _, w := range words {
		key, val, hasVal := strings.Cut(w, "=")
		name, ok := strings.CutPrefix(key, "ironfleet.")
		if !ok {
			continue
		}
		if !hasVal || val == "" {
			return p, fmt.Errorf("agent: kernel command line: %s has no value", key)
		}
		if err := p.set(name, val); err != nil {
			return p, fmt.Errorf("agent: kernel command line: %s=%q: %w", key, val, err)
		}
	}
	return p, nil
}

func (p *BootParams) set(name, val string) error {
	switch name {
	case strings.TrimPrefix(wire.KernelArgAPIURL, "ironfleet."):
		if err := checkHTTPURL(val); err != nil {
			return err
		}
		p.APIURL = val
	case "callback_url":
		if err := checkHTTPURL(val); err != nil {
			return err
		}
		p.CallbackURL = val
	case "ip":
		pfx, err := netip.ParsePrefix(val)
		if err != nil {
			return fmt.Errorf("want an address with prefix length like 10.0.2.15/24: %w", err)
		}
		p.IP = pfx
	case "gateway":
		a, err := netip.ParseAddr(val)
		if err != nil {
			return fmt.Errorf("want an IP address: %w", err)
		}
		p.Gateway = a
	case "interface":
		p.Interface = val
	case "listen":
		p.Listen = val
	case "lookup_timeout":
		d, err := parseSecondsOrDuration(val)
		if err != nil {
			return err
		}
		p.LookupTimeout = d
	case "modules":
		for m := range strings.SplitSeq(val, ",") {
			if m = strings.TrimSpace(m); m != "" {
				p.Modules = append(p.Modules, m)
			}
		}
	case "log_level":
		p.LogLevel = val
	case strings.TrimPrefix(wire.KernelArgNode, "ironfleet."):
		p.Node = val
	case strings.TrimPrefix(wire.KernelArgPurpose, "ironfleet."):
		switch bp := wire.BootPurpose(val); bp {
		case wire.BootForDeploy, wire.BootForClean, wire.BootForInspect:
			p.Purpose = bp
		default:
			return fmt.Errorf("unknown boot purpose (want deploy, clean or inspect)")
		}
	default:
		return fmt.Errorf("unknown key %q", name)
	}
	return nil
}

// splitCmdline splits a kernel command line into words the way the kernel
// does: on white space, except inside double quotes, which are removed.
func splitCmdline(s string) ([]string, error) {
	var (
		words   []string
		cur     strings.Builder
		in      bool
		started bool
	)
	for _, r := range s {
		switch {
		case r == '"':
			in = !in
			started = true
		case !in && (r == ' ' || r == '\t' || r == '\n'):
			if started {
				words = append(words, cur.String())
				cur.Reset()
				started = false
			}
		default:
			cur.WriteRune(r)
			started = true
		}
	}
	if in {
		return nil, fmt.Errorf("agent: kernel command line: unterminated quote")
	}
	if started {
		words = append(words, cur.String())
	}
	return words, nil
}

func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("want an http:// or https:// URL with a host")
	}
	return nil
}

func parseSecondsOrDuration(s string) (time.Duration, error) {
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("want a number of seconds or a positive duration like 5m")
	}
	return d, nil
}
