package pxe

import (
	"bytes"
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"text/template"
	"unicode"

	"github.com/ironfleet/ironfleet/transport/wire"
)

//go:embed templates
var templates embed.FS

// Where Configs writes, relative to the TFTP root.
const (
	// BootScript is the static iPXE script machines are pointed at (DHCP
	// option 67 or QEMU's bootfile); it chains to NodeScript of the booting
	// NIC, or exits to the next boot device when there is none.
	BootScript = "boot.ipxe"
	// NodeDir holds per-NIC iPXE scripts: nodes/aa-bb-cc-dd-ee-ff.ipxe.
	NodeDir = "nodes"
	// PXELinuxDir holds per-NIC PXELINUX configs: pxelinux.cfg/01-aa-bb-cc-dd-ee-ff.
	PXELinuxDir = "pxelinux.cfg"
)

// iPXE's first-stage loaders, by the boot mode of the firmware that
// fetches them over TFTP (Config.IPXEDir puts them at the root): a DHCP
// server hands each client the one for its architecture (option 93: 0,
// legacy BIOS, gets BIOSLoader; 7 and 9, x86-64 UEFI, get UEFILoader) and
// iPXE itself (user class "iPXE") BootScript, as Ironic's DHCP options do
// (ipxe_bootfile_name, uefi_ipxe_bootfile_name).
const (
	// BIOSLoader is iPXE for legacy BIOS PXE ROMs, on the ROM's UNDI driver.
	BIOSLoader = "undionly.kpxe"
	// UEFILoader is iPXE's EFI build on the firmware's network driver
	// (SNP), Ironic's default uefi_ipxe_bootfile_name.
	UEFILoader = "snponly.efi"
	// UEFIFullLoader is iPXE's EFI build with its own NIC drivers, for
	// firmware whose SNP is unusable.
	UEFIFullLoader = "ipxe.efi"
)

// ErrInvalidParams is wrapped by every refusal of bad Prepare input.
var ErrInvalidParams = errors.New("pxe: invalid boot parameters")

// Config holds the settings of Configs. Root is required.
type Config struct {
	// Root is the TFTP root the configs are written under.
	Root string
	// IPXETemplate and PXELinuxTemplate replace the built-in text/template
	// sources of the per-NIC configs; empty means built-in. They see
	// TemplateData.
	IPXETemplate     string
	PXELinuxTemplate string
	// IPXEDir is a directory of iPXE's binaries (Debian's ipxe package:
	// /usr/lib/ipxe). NewConfigs copies BIOSLoader, UEFILoader and
	// UEFIFullLoader from it to the root, so that firmware in either boot
	// mode can chain into iPXE over TFTP; it fails when the directory has
	// none of them. Empty means the root's loaders are the operator's
	// business.
	IPXEDir string
	// Logger receives a debug record per config written or removed; nil
	// discards.
	Logger *slog.Logger
}

// TemplateData is what the per-NIC config templates are rendered with.
// Every field has been validated: no spaces, quotes, "$" or line breaks,
// except in Cmdline, which has spaces but no line breaks or "$".
type TemplateData struct {
	Node    string           // node UUID
	Purpose wire.BootPurpose // deploy, clean, inspect
	// BootMode is the node's (wire.NodeBootMode): the firmware that will
	// run the config, through BIOSLoader or UEFILoader.
	BootMode wire.BootMode
	MAC      string // aa:bb:cc:dd:ee:ff
	// Kernel and Ramdisk as given: TFTP paths relative to the root, or URLs.
	Kernel, Ramdisk string
	// IPXEKernel and IPXERamdisk are Kernel and Ramdisk made absolute for
	// iPXE ("/agent/vmlinuz": relative names would resolve against the
	// script's own directory, nodes/).
	IPXEKernel, IPXERamdisk string
	// Cmdline is the kernel command line: the agent's ironfleet.* keys,
	// BOOTIF, then BootParams.ExtraArgs.
	Cmdline string
}

// Configs writes and removes per-node network boot configs under a TFTP
// root: an iPXE script and a PXELINUX config per PXE-enabled MAC. It
// implements the conductor's Boot interface and is safe for concurrent use
// on different nodes (the node lock serialises work on one node).
type Configs struct {
	cfg      Config
	root     *os.Root
	ipxe     *template.Template
	pxelinux *template.Template
}

// NewConfigs opens the root, creates its nodes/ and pxelinux.cfg/
// directories and (re)writes the static boot.ipxe.
func NewConfigs(cfg Config) (*Configs, error) {
	if cfg.Root == "" {
		return nil, errors.New("pxe: Config.Root is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c := &Configs{cfg: cfg}
	var err error
	if c.ipxe, err = parseTemplate("node.ipxe", cfg.IPXETemplate); err != nil {
		return nil, err
	}
	if c.pxelinux, err = parseTemplate("pxelinux.cfg", cfg.PXELinuxTemplate); err != nil {
		return nil, err
	}
	if c.root, err = os.OpenRoot(cfg.Root); err != nil {
		return nil, fmt.Errorf("pxe: open TFTP root: %w", err)
	}
	for _, d := range []string{NodeDir, PXELinuxDir} {
		if err := c.root.MkdirAll(d, 0o755); err != nil {
			_ = c.root.Close()
			return nil, fmt.Errorf("pxe: create %s: %w", d, err)
		}
	}
	boot, err := templates.ReadFile("templates/boot.ipxe")
	if err != nil {
		_ = c.root.Close()
		return nil, fmt.Errorf("pxe: %w", err)
	}
	if err := c.write(BootScript, boot); err != nil {
		_ = c.root.Close()
		return nil, err
	}
	if cfg.IPXEDir != "" {
		if err := c.installLoaders(cfg.IPXEDir); err != nil {
			_ = c.root.Close()
			return nil, err
		}
	}
	return c, nil
}

// installLoaders copies iPXE's first-stage loaders found in dir to the root.
func (c *Configs) installLoaders(dir string) error {
	found := 0
	for _, name := range []string{BIOSLoader, UEFILoader, UEFIFullLoader} {
		b, err := os.ReadFile(filepath.Join(dir, name)) //nolint:gosec // the operator's --ipxe-dir and a fixed loader name
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("pxe: iPXE loader: %w", err)
		}
		if err := c.write(name, b); err != nil {
			return err
		}
		found++
	}
	if found == 0 {
		return fmt.Errorf("pxe: Config.IPXEDir %s has none of %s, %s, %s (Debian: apt-get install ipxe)", dir, BIOSLoader, UEFILoader, UEFIFullLoader)
	}
	return nil
}

func parseTemplate(name, src string) (*template.Template, error) {
	if src == "" {
		b, err := templates.ReadFile("templates/" + name + ".tmpl")
		if err != nil {
			return nil, fmt.Errorf("pxe: %w", err)
		}
		src = string(b)
	}
	t, err := template.New(name).Option("missingkey=error").Parse(src)
	if err != nil {
		return nil, fmt.Errorf("pxe: parse %s template: %w", name, err)
	}
	return t, nil
}

// Close releases the root directory.
func (c *Configs) Close() error { return c.root.Close() }

// NodeScriptPath is the iPXE script path of a MAC under the root.
func NodeScriptPath(mac net.HardwareAddr) string {
	return path.Join(NodeDir, hyphenated(mac)+".ipxe")
}

// PXELinuxPath is the PXELINUX config path of a MAC under the root
// ("01-" is the ARP hardware type of Ethernet).
func PXELinuxPath(mac net.HardwareAddr) string { //nolint:revive // PXELINUX is the bootloader's name
	return path.Join(PXELinuxDir, "01-"+hyphenated(mac))
}

func hyphenated(mac net.HardwareAddr) string {
	return strings.ReplaceAll(mac.String(), ":", "-")
}

// Prepare writes node's iPXE script and PXELINUX config for each MAC,
// replacing any already there. Every input is validated first; nothing is
// written when any of it is bad.
func (c *Configs) Prepare(ctx context.Context, node wire.Node, macs []string, params wire.BootParams) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	hws, err := parseMACs(macs)
	if err != nil {
		return err
	}
	base, err := validateParams(node, params)
	if err != nil {
		return err
	}
	type file struct {
		name string
		data []byte
	}
	var files []file
	for _, hw := range hws {
		d := base
		d.MAC = hw.String()
		d.Cmdline = strings.TrimSpace(fmt.Sprintf("%s=%s %s=%s %s=%s %s=01-%s %s",
			wire.KernelArgAPIURL, params.APIURL, wire.KernelArgNode, node.UUID,
			wire.KernelArgPurpose, params.Purpose, wire.KernelArgBootIF, hyphenated(hw), strings.TrimSpace(params.ExtraArgs)))
		for _, t := range []struct {
			name string
			tmpl *template.Template
		}{{NodeScriptPath(hw), c.ipxe}, {PXELinuxPath(hw), c.pxelinux}} {
			var buf bytes.Buffer
			if err := t.tmpl.Execute(&buf, d); err != nil {
				return fmt.Errorf("pxe: render %s: %w", t.name, err)
			}
			files = append(files, file{t.name, buf.Bytes()})
		}
	}
	for _, f := range files {
		if err := c.write(f.name, f.data); err != nil {
			return err
		}
		c.cfg.Logger.DebugContext(ctx, "boot config written", "node", node.UUID, "file", f.name)
	}
	return nil
}

// Configured reports whether an iPXE script exists for mac: whether a
// machine PXE-booting from that NIC would find a config.
func (c *Configs) Configured(mac string) bool {
	hw, err := net.ParseMAC(strings.TrimSpace(mac))
	if err != nil || len(hw) != 6 {
		return false
	}
	st, err := c.root.Stat(NodeScriptPath(hw))
	return err == nil && st.Mode().IsRegular()
}

// CleanUp removes node's boot configs for each MAC; those already gone are
// skipped.
func (c *Configs) CleanUp(ctx context.Context, node wire.Node, macs []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	hws, err := parseMACs(macs)
	if err != nil {
		return err
	}
	var errs []error
	for _, hw := range hws {
		for _, name := range []string{NodeScriptPath(hw), PXELinuxPath(hw)} {
			err := c.root.Remove(name)
			switch {
			case err == nil:
				c.cfg.Logger.DebugContext(ctx, "boot config removed", "node", node.UUID, "file", name)
			case !errors.Is(err, fs.ErrNotExist):
				errs = append(errs, fmt.Errorf("pxe: remove %s: %w", name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// write replaces name under the root atomically (temp file and rename), so
// a TFTP client never reads half a config.
func (c *Configs) write(name string, data []byte) error {
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := name + ".tmp-" + hex.EncodeToString(rnd[:])
	if err := c.root.WriteFile(tmp, data, 0o644); err != nil { //nolint:gosec // served over TFTP: world-readable by design
		return fmt.Errorf("pxe: write %s: %w", name, err)
	}
	if err := c.root.Rename(tmp, name); err != nil {
		_ = c.root.Remove(tmp)
		return fmt.Errorf("pxe: write %s: %w", name, err)
	}
	return nil
}

func invalid(format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	return wire.Errorf(wire.CodeInvalidInput, "%w: %s", ErrInvalidParams, msg)
}

// parseMACs parses Ethernet MACs in any form net.ParseMAC reads.
func parseMACs(macs []string) ([]net.HardwareAddr, error) {
	if len(macs) == 0 {
		return nil, invalid("no MAC addresses")
	}
	hws := make([]net.HardwareAddr, 0, len(macs))
	for _, m := range macs {
		hw, err := net.ParseMAC(strings.TrimSpace(m))
		if err != nil || len(hw) != 6 {
			return nil, invalid("%q is not an Ethernet MAC address", m)
		}
		hws = append(hws, hw)
	}
	return hws, nil
}

// token reports whether s is non-empty and free of spaces, quotes, control
// characters and "$" (iPXE expands ${…}): safe in a config line unquoted.
func token(s string) bool {
	return s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r) || strings.ContainsRune(`"'\$`, r)
	})
}

func validateParams(node wire.Node, p wire.BootParams) (TemplateData, error) {
	switch p.Purpose {
	case wire.BootForDeploy, wire.BootForClean, wire.BootForInspect:
	default:
		return TemplateData{}, invalid("purpose %q is not deploy, clean or inspect", p.Purpose)
	}
	if !token(node.UUID) {
		return TemplateData{}, invalid("node UUID %q is empty or contains spaces, quotes or control characters", node.UUID)
	}
	mode, err := wire.NodeBootMode(node)
	if err != nil {
		return TemplateData{}, invalid("%v", err)
	}
	d := TemplateData{Node: node.UUID, Purpose: p.Purpose, BootMode: mode, Kernel: p.Kernel, Ramdisk: p.Ramdisk}
	if d.IPXEKernel, err = bootFile("kernel", p.Kernel); err != nil {
		return TemplateData{}, err
	}
	if d.IPXERamdisk, err = bootFile("ramdisk", p.Ramdisk); err != nil {
		return TemplateData{}, err
	}
	u, err := url.Parse(p.APIURL)
	if !token(p.APIURL) || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return TemplateData{}, invalid("API URL %q is not an http(s) URL", p.APIURL)
	}
	if strings.ContainsFunc(p.ExtraArgs, func(r rune) bool { return unicode.IsControl(r) || r == '$' }) {
		return TemplateData{}, invalid("extra kernel arguments contain control characters, line breaks or $")
	}
	return d, nil
}

// bootFile checks a kernel or ramdisk location and returns its iPXE form.
func bootFile(what, loc string) (string, error) {
	if !token(loc) {
		return "", invalid("%s %q is empty or contains spaces, quotes or control characters", what, loc)
	}
	if u, err := url.Parse(loc); err == nil && u.Scheme != "" {
		switch u.Scheme {
		case "http", "https", "tftp":
			return loc, nil
		}
		return "", invalid("%s %q: only http, https and tftp URLs are supported", what, loc)
	}
	clean, err := CleanPath(loc)
	if err != nil {
		return "", invalid("%s %q must be a path relative to the TFTP root: %v", what, loc, err)
	}
	return "/" + clean, nil
}
