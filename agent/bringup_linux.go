//go:build linux

package agent

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ironfleet/ironfleet/internal/wait"
)

// BringUpConfig tunes BringUp. Zero fields take the defaults.
type BringUpConfig struct {
	// NICWait is how long to wait for a physical NIC to appear after the
	// modules are loaded; zero means 10s.
	NICWait time.Duration
}

// BringUp makes a bare ramdisk fit for the agent when it runs as /init:
// it mounts /proc, /sys, /dev (devtmpfs), /run and /tmp, loads p.Modules
// with their dependencies (finit_module(2), compressed modules included),
// and, when p.IP is set, brings up loopback and p.Interface (or the first
// physical NIC) with that address and a default route via p.Gateway,
// through rtnetlink. Steps already done (mounted, loaded, present) are not
// errors. It needs root in the initial namespaces and is not unit-tested:
// it runs in the QEMU end-to-end test of the ramdisk.
func BringUp(ctx context.Context, log *slog.Logger, p BootParams, cfg BringUpConfig) error {
	if cfg.NICWait <= 0 {
		cfg.NICWait = 10 * time.Second
	}
	if err := mountAll(); err != nil {
		return err
	}
	if err := loadModules(log, p.Modules); err != nil {
		return err
	}
	if !p.IP.IsValid() {
		return nil
	}
	if !p.IP.Addr().Is4() || (p.Gateway.IsValid() && !p.Gateway.Is4()) {
		return fmt.Errorf("agent: bring-up: only IPv4 is supported (ip %s, gateway %s)", p.IP, p.Gateway)
	}
	ifname, err := pickNIC(ctx, p.Interface, cfg.NICWait)
	if err != nil {
		return err
	}
	if err := configureNIC(ifname, p); err != nil {
		return err
	}
	log.Info("network up", "interface", ifname, "ip", p.IP, "gateway", p.Gateway)
	return nil
}

func mountAll() error {
	for _, m := range []struct{ src, dst, fstype, data string }{
		{"proc", "/proc", "proc", ""},
		{"sysfs", "/sys", "sysfs", ""},
		{"devtmpfs", "/dev", "devtmpfs", "mode=0755"},
		{"tmpfs", "/run", "tmpfs", "mode=0755"},
		{"tmpfs", "/tmp", "tmpfs", "mode=1777"},
	} {
		if err := os.MkdirAll(m.dst, 0o755); err != nil { //nolint:gosec // mount points are world-readable
			return fmt.Errorf("agent: bring-up: %w", err)
		}
		err := unix.Mount(m.src, m.dst, m.fstype, unix.MS_NOSUID, m.data)
		if err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("agent: bring-up: mount %s on %s: %w", m.fstype, m.dst, err)
		}
	}
	return nil
}

func loadModules(log *slog.Logger, names []string) error {
	if len(names) == 0 {
		return nil
	}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return fmt.Errorf("agent: bring-up: uname: %w", err)
	}
	dir := filepath.Join("/lib/modules", unix.ByteSliceToString(uts.Release[:]))
	dep, err := os.Open(filepath.Join(dir, "modules.dep")) //nolint:gosec // fixed path under /lib/modules
	if err != nil {
		return fmt.Errorf("agent: bring-up: %w", err)
	}
	order, err := moduleLoadOrder(dep, names)
	_ = dep.Close()
	if err != nil {
		return fmt.Errorf("agent: bring-up: %w", err)
	}
	for _, rel := range order {
		if err := finitModule(filepath.Join(dir, rel)); err != nil {
			return fmt.Errorf("agent: bring-up: load %s: %w", rel, err)
		}
		log.Debug("module loaded", "module", moduleName(rel))
	}
	return nil
}

func finitModule(path string) error {
	f, err := os.Open(path) //nolint:gosec // a module listed in modules.dep
	if err != nil {
		return err
	}
	defer f.Close()
	flags := 0
	if !strings.HasSuffix(path, ".ko") {
		flags = unix.MODULE_INIT_COMPRESSED_FILE // .ko.xz, .ko.zst, .ko.gz: the kernel decompresses
	}
	err = unix.FinitModule(int(f.Fd()), "", flags) //nolint:gosec // fds fit in an int
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	return err
}

// pickNIC returns want, or the first physical NIC, waiting up to within
// for it to appear (drivers probe asynchronously after their module loads).
func pickNIC(ctx context.Context, want string, within time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	for {
		if want != "" {
			if _, err := net.InterfaceByName(want); err == nil {
				return want, nil
			}
		} else if nics, err := readNICs("/"); err == nil && len(nics) > 0 {
			return nics[0].Name, nil
		}
		if wait.Sleep(ctx, 50*time.Millisecond) != nil {
			if want == "" {
				want = "any physical NIC"
			}
			return "", fmt.Errorf("agent: bring-up: %s did not appear within %s", want, within)
		}
	}
}

func configureNIC(ifname string, p BootParams) error {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		return fmt.Errorf("agent: bring-up: %w", err)
	}
	nic, err := net.InterfaceByName(ifname)
	if err != nil {
		return fmt.Errorf("agent: bring-up: %w", err)
	}
	nl, err := dialRtnetlink()
	if err != nil {
		return err
	}
	defer nl.close()
	for _, idx := range []int{lo.Index, nic.Index} {
		if err := nl.do(unix.RTM_NEWLINK, 0, linkUp(idx)); err != nil {
			return fmt.Errorf("agent: bring-up: set link %d up: %w", idx, err)
		}
	}
	addr := p.IP.Addr().As4()
	if err := nl.do(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_EXCL,
		ifAddr(nic.Index, uint8(p.IP.Bits()), addr)); err != nil && !errors.Is(err, unix.EEXIST) { //nolint:gosec // an IPv4 prefix length is 0–32
		return fmt.Errorf("agent: bring-up: add %s to %s: %w", p.IP, ifname, err)
	}
	if p.Gateway.IsValid() {
		if err := nl.do(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_EXCL,
			defaultRoute(nic.Index, p.Gateway.As4())); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("agent: bring-up: default route via %s: %w", p.Gateway, err)
		}
	}
	return nil
}

// rtnetlink is a NETLINK_ROUTE socket sending one request at a time and
// reading its acknowledgement.
type rtnetlink struct {
	fd  int
	seq uint32
}

func dialRtnetlink() (*rtnetlink, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("agent: bring-up: netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("agent: bring-up: netlink bind: %w", err)
	}
	return &rtnetlink{fd: fd}, nil
}

func (n *rtnetlink) close() { _ = unix.Close(n.fd) }

// do sends one request with body and waits for its ack.
func (n *rtnetlink) do(typ uint16, flags uint16, body []byte) error {
	n.seq++
	msg := make([]byte, unix.SizeofNlMsghdr, unix.SizeofNlMsghdr+len(body))
	msg = append(msg, body...)
	ne := binary.NativeEndian
	ne.PutUint32(msg[0:], uint32(len(msg))) //nolint:gosec // a few dozen bytes
	ne.PutUint16(msg[4:], typ)
	ne.PutUint16(msg[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK|flags)
	ne.PutUint32(msg[8:], n.seq)
	if err := unix.Sendto(n.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 8192)
	for {
		k, _, err := unix.Recvfrom(n.fd, buf, 0)
		if err != nil {
			return err
		}
		for b := buf[:k]; len(b) >= unix.SizeofNlMsghdr; {
			l := int(ne.Uint32(b[0:]))
			if l < unix.SizeofNlMsghdr || l > len(b) {
				return errors.New("malformed netlink answer")
			}
			if ne.Uint16(b[4:]) == unix.NLMSG_ERROR && ne.Uint32(b[8:]) == n.seq && l >= unix.SizeofNlMsghdr+4 {
				if errno := int32(ne.Uint32(b[unix.SizeofNlMsghdr:])); errno != 0 { //nolint:gosec // errno is a signed int32 on the wire
					return unix.Errno(-errno) //nolint:gosec // the kernel sends a negative errno
				}
				return nil
			}
			b = b[(l+3)&^3:]
		}
	}
}

func linkUp(index int) []byte {
	b := make([]byte, unix.SizeofIfInfomsg)
	b[0] = unix.AF_UNSPEC
	ne := binary.NativeEndian
	ne.PutUint32(b[4:], uint32(index)) //nolint:gosec // interface indexes are small
	ne.PutUint32(b[8:], unix.IFF_UP)
	ne.PutUint32(b[12:], unix.IFF_UP)
	return b
}

func ifAddr(index int, bits uint8, addr [4]byte) []byte {
	b := make([]byte, unix.SizeofIfAddrmsg)
	b[0], b[1], b[3] = unix.AF_INET, bits, unix.RT_SCOPE_UNIVERSE
	binary.NativeEndian.PutUint32(b[4:], uint32(index)) //nolint:gosec // interface indexes are small
	b = rtattr(b, unix.IFA_LOCAL, addr[:])
	return rtattr(b, unix.IFA_ADDRESS, addr[:])
}

func defaultRoute(index int, gw [4]byte) []byte {
	b := make([]byte, unix.SizeofRtMsg)
	b[0] = unix.AF_INET
	b[4], b[5], b[6], b[7] = unix.RT_TABLE_MAIN, unix.RTPROT_BOOT, unix.RT_SCOPE_UNIVERSE, unix.RTN_UNICAST
	b = rtattr(b, unix.RTA_GATEWAY, gw[:])
	oif := make([]byte, 4)
	binary.NativeEndian.PutUint32(oif, uint32(index)) //nolint:gosec // interface indexes are small
	return rtattr(b, unix.RTA_OIF, oif)
}

// rtattr appends a route attribute, padded to 4 bytes.
func rtattr(b []byte, typ uint16, data []byte) []byte {
	h := make([]byte, 4)
	binary.NativeEndian.PutUint16(h[0:], uint16(4+len(data))) //nolint:gosec // attributes are a few bytes
	binary.NativeEndian.PutUint16(h[2:], typ)
	b = append(b, h...)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}
