package pxe_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ironfleet/ironfleet/conductor/pxe"
	"github.com/ironfleet/ironfleet/transport/wire"
)

var (
	node   = wire.Node{UUID: "3f2a6c1e-0d7b-4a51-9a0e-6f1b2c3d4e5f", Driver: "ipmi"}
	params = wire.BootParams{
		Purpose:   wire.BootForDeploy,
		Kernel:    "agent/vmlinuz",
		Ramdisk:   "agent/initramfs.gz",
		APIURL:    "http://10.0.2.2:6385",
		ExtraArgs: "console=ttyS0,115200n8",
	}
	macs = []string{"52:54:00:12:34:56", "52-54-00-AB-CD-EF"}
)

func newConfigs(t *testing.T, root string, cfg pxe.Config) *pxe.Configs {
	t.Helper()
	cfg.Root = root
	c, err := pxe.NewConfigs(cfg)
	if err != nil {
		t.Fatalf("NewConfigs: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPrepareRendersConfigs(t *testing.T) {
	root := t.TempDir()
	c := newConfigs(t, root, pxe.Config{})
	if err := c.Prepare(t.Context(), node, macs, params); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	wantIPXE := `#!ipxe
# Written by the ironfleet conductor for the deploy of node 3f2a6c1e-0d7b-4a51-9a0e-6f1b2c3d4e5f
# (NIC 52:54:00:12:34:56); removed when the deploy ends. Boot mode uefi:
# the same script serves iPXE's BIOS and EFI builds (initrd= names the
# ramdisk for the EFI stub).
kernel --name kernel /agent/vmlinuz initrd=ramdisk ironfleet.api_url=http://10.0.2.2:6385 ironfleet.node=3f2a6c1e-0d7b-4a51-9a0e-6f1b2c3d4e5f ironfleet.purpose=deploy BOOTIF=01-52-54-00-12-34-56 console=ttyS0,115200n8
initrd --name ramdisk /agent/initramfs.gz
boot
`
	if got := readFile(t, filepath.Join(root, "nodes", "52-54-00-12-34-56.ipxe")); got != wantIPXE {
		t.Errorf("iPXE script:\n%s\nwant:\n%s", got, wantIPXE)
	}
	wantPXELinux := `# Written by the ironfleet conductor for the deploy of node 3f2a6c1e-0d7b-4a51-9a0e-6f1b2c3d4e5f
# (NIC 52:54:00:ab:cd:ef); removed when the deploy ends.
DEFAULT ironfleet
PROMPT 0
LABEL ironfleet
  KERNEL agent/vmlinuz
  APPEND initrd=agent/initramfs.gz ironfleet.api_url=http://10.0.2.2:6385 ironfleet.node=3f2a6c1e-0d7b-4a51-9a0e-6f1b2c3d4e5f ironfleet.purpose=deploy BOOTIF=01-52-54-00-ab-cd-ef console=ttyS0,115200n8
`
	if got := readFile(t, filepath.Join(root, "pxelinux.cfg", "01-52-54-00-ab-cd-ef")); got != wantPXELinux {
		t.Errorf("PXELINUX config:\n%s\nwant:\n%s", got, wantPXELinux)
	}
	if got := readFile(t, filepath.Join(root, "boot.ipxe")); !strings.Contains(got, "chain nodes/${mac:hexhyp}.ipxe || exit") {
		t.Errorf("boot.ipxe does not chain the per-NIC script:\n%s", got)
	}
	entries, _ := os.ReadDir(filepath.Join(root, "nodes"))
	if len(entries) != 2 {
		t.Errorf("nodes/ holds %d files, want 2 (no temp files left)", len(entries))
	}
}

func TestPrepareWithURLsAndNewPurpose(t *testing.T) {
	root := t.TempDir()
	c := newConfigs(t, root, pxe.Config{})
	p := params
	p.Kernel, p.Ramdisk, p.ExtraArgs = "http://10.0.2.2:8080/vmlinuz", "https://images.example/initrd?v=2", ""
	if err := c.Prepare(t.Context(), node, macs[:1], p); err != nil {
		t.Fatal(err)
	}
	p.Purpose = wire.BootForClean // a second Prepare replaces the first
	if err := c.Prepare(t.Context(), node, macs[:1], p); err != nil {
		t.Fatal(err)
	}
	got := readFile(t, filepath.Join(root, pxe.NodeScriptPath(mustMAC(t, macs[0]))))
	for _, want := range []string{"kernel --name kernel http://10.0.2.2:8080/vmlinuz initrd=ramdisk", "initrd --name ramdisk https://images.example/initrd?v=2", "ironfleet.purpose=clean BOOTIF=01-52-54-00-12-34-56\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("script lacks %q:\n%s", want, got)
		}
	}
}

func mustMAC(t *testing.T, s string) net.HardwareAddr {
	t.Helper()
	hw, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return hw
}

func TestCleanUp(t *testing.T) {
	root := t.TempDir()
	c := newConfigs(t, root, pxe.Config{})
	other := wire.Node{UUID: "other-node"}
	otherMAC := []string{"52:54:00:00:00:01"}
	for _, n := range []struct {
		node wire.Node
		macs []string
	}{{node, macs}, {other, otherMAC}} {
		if err := c.Prepare(t.Context(), n.node, n.macs, params); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 { // idempotent
		if err := c.CleanUp(t.Context(), node, macs); err != nil {
			t.Fatalf("CleanUp: %v", err)
		}
	}
	for _, m := range macs {
		hw := mustMAC(t, m)
		for _, name := range []string{pxe.NodeScriptPath(hw), pxe.PXELinuxPath(hw)} {
			if _, err := os.Stat(filepath.Join(root, name)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s still there after CleanUp (stat: %v)", name, err)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(root, pxe.NodeScriptPath(mustMAC(t, otherMAC[0])))); err != nil {
		t.Errorf("another node's config went too: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, pxe.BootScript)); err != nil {
		t.Errorf("boot.ipxe went too: %v", err)
	}
}

func TestPrepareRefusesBadInput(t *testing.T) {
	mod := func(f func(n *wire.Node, m *[]string, p *wire.BootParams)) func() (wire.Node, []string, wire.BootParams) {
		return func() (wire.Node, []string, wire.BootParams) {
			n, m, p := node, append([]string(nil), macs...), params
			f(&n, &m, &p)
			return n, m, p
		}
	}
	tests := map[string]func() (wire.Node, []string, wire.BootParams){
		"no MACs": mod(func(_ *wire.Node, m *[]string, _ *wire.BootParams) { *m = nil }),
		"bad MAC": mod(func(_ *wire.Node, m *[]string, _ *wire.BootParams) { *m = append(*m, "52:54:00:zz:00:01") }),
		"InfiniBand MAC": mod(func(_ *wire.Node, m *[]string, _ *wire.BootParams) {
			*m = []string{"00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01"}
		}),
		"no purpose":           mod(func(_ *wire.Node, _ *[]string, p *wire.BootParams) { p.Purpose = "" }),
		"unknown purpose":      mod(func(_ *wire.Node, _ *[]string, p *wire.BootParams) { p.Purpose = "rescue" }),
		"no node UUID":         mod(func(n *wire.Node, _ *[]string, _ *wire.BootParams) { n.UUID = "" }),
		"UUID with a newline":  mod(func(n *wire.Node, _ *[]string, _ *wire.BootParams) { n.UUID = "x\nboot" }),
		"no kernel":            mod(func(_ *wire.Node, _ *[]string, p *wire.BootParams) { p.Kernel = "" }),
		"kernel with a space":  mod(func(_ *wire.Node, _ *[]string, p *wire.BootParams) { p.Kernel = "agent/vmlinuz quiet" }),
		"kernel escaping":      mod(func(_ *wire.Node, _ *[]string, p *wire.BootParams) { p.Kernel = "../vmlinuz" }),
		"kernel absolute":      mod(func(_ *wire.Node, _ *[]string, p *wire.BootParams) { p.Kernel = "/boot/vmlinuz" }),
		"ramdisk ftp":          mod(func(_ *wire.Node, _ *[]string, p *wire.BootParams) { p.Ramdisk = "ftp://host/initrd" }),
		"ramdisk iPXE var":     mod(func(_ *wire.Node, _ *[]string, p *wire.BootParams) { p.Ramdisk = "agent/${arch}.gz" }),
		"API URL not http":     mod(func(_ *wire.Node, _ *[]string, p *wire.BootParams) { p.APIURL = "file:///etc/passwd" }),
		"API URL relative":     mod(func(_ *wire.Node, _ *[]string, p *wire.BootParams) { p.APIURL = "/v1" }),
		"API URL with a quote": mod(func(_ *wire.Node, _ *[]string, p *wire.BootParams) { p.APIURL = `http://h/"` }),
		"extra args newline":   mod(func(_ *wire.Node, _ *[]string, p *wire.BootParams) { p.ExtraArgs = "quiet\nshell" }),
		"bad boot mode": mod(func(n *wire.Node, _ *[]string, _ *wire.BootParams) {
			n.Properties = map[string]any{"capabilities": "boot_mode:efi"}
		}),
	}
	root := t.TempDir()
	c := newConfigs(t, root, pxe.Config{})
	for name, input := range tests {
		t.Run(name, func(t *testing.T) {
			n, m, p := input()
			err := c.Prepare(t.Context(), n, m, p)
			if !errors.Is(err, pxe.ErrInvalidParams) || wire.CodeOf(err) != wire.CodeInvalidInput {
				t.Errorf("Prepare = %v, want ErrInvalidParams with code %s", err, wire.CodeInvalidInput)
			}
		})
	}
	entries, _ := os.ReadDir(filepath.Join(root, "nodes"))
	if len(entries) != 0 {
		t.Errorf("bad input wrote %d files", len(entries))
	}
	if err := c.CleanUp(t.Context(), node, []string{"nope"}); !errors.Is(err, pxe.ErrInvalidParams) {
		t.Errorf("CleanUp with a bad MAC = %v, want ErrInvalidParams", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := c.Prepare(ctx, node, macs, params); !errors.Is(err, context.Canceled) {
		t.Errorf("Prepare with a cancelled context = %v, want context.Canceled", err)
	}
}

func TestCustomTemplates(t *testing.T) {
	root := t.TempDir()
	c := newConfigs(t, root, pxe.Config{
		IPXETemplate:     "#!ipxe\necho {{.Node}} {{.MAC}}\nsanboot --no-describe --drive 0x80\n",
		PXELinuxTemplate: "DEFAULT local\nLABEL local\n  LOCALBOOT 0\n",
	})
	if err := c.Prepare(t.Context(), node, macs[:1], params); err != nil {
		t.Fatal(err)
	}
	got := readFile(t, filepath.Join(root, pxe.NodeScriptPath(mustMAC(t, macs[0]))))
	if want := "#!ipxe\necho " + node.UUID + " 52:54:00:12:34:56\nsanboot --no-describe --drive 0x80\n"; got != want {
		t.Errorf("custom iPXE script %q, want %q", got, want)
	}
	for name, tmpl := range map[string]string{"unparsable": "{{.Node", "unknown field": "{{.Nope}}"} {
		cfg := pxe.Config{Root: t.TempDir(), IPXETemplate: tmpl}
		c, err := pxe.NewConfigs(cfg)
		if err == nil {
			err = c.Prepare(t.Context(), node, macs[:1], params)
			_ = c.Close()
		}
		if err == nil {
			t.Errorf("%s template: no error", name)
		}
	}
}

// The whole path a PXE-booting machine takes: boot.ipxe, then its own
// script, fetched from the TFTP server by a real client while a deploy is
// prepared, and gone when it is cleaned up.
func TestConfigsServedOverTFTP(t *testing.T) {
	root := t.TempDir()
	c := newConfigs(t, root, pxe.Config{})
	s := serve(t, root, pxe.ServerConfig{})
	hw := mustMAC(t, macs[0])
	if _, err := s.hpaGet(t, pxe.NodeScriptPath(hw)); err == nil {
		t.Fatal("a node script is served before Prepare")
	}
	if err := c.Prepare(t.Context(), node, macs, params); err != nil {
		t.Fatal(err)
	}
	boot, err := s.curlGet(t, pxe.BootScript, "--tftp-blksize", "1432")
	if err != nil || !strings.HasPrefix(string(boot), "#!ipxe") {
		t.Fatalf("boot.ipxe = %q, %v", boot, err)
	}
	script, err := s.hpaGet(t, pxe.NodeScriptPath(hw))
	if err != nil || !strings.Contains(string(script), "ironfleet.api_url=http://10.0.2.2:6385") {
		t.Fatalf("node script = %q, %v", script, err)
	}
	if cfg, err := s.curlGet(t, pxe.PXELinuxPath(hw)); err != nil || !strings.Contains(string(cfg), "BOOTIF=01-52-54-00-12-34-56") {
		t.Fatalf("PXELINUX config = %q, %v", cfg, err)
	}
	if err := c.CleanUp(t.Context(), node, macs); err != nil {
		t.Fatal(err)
	}
	if _, err := s.hpaGet(t, pxe.NodeScriptPath(hw)); err == nil {
		t.Error("the node script is still served after CleanUp")
	}
}

func TestConfigured(t *testing.T) {
	c := newConfigs(t, t.TempDir(), pxe.Config{})
	if c.Configured(macs[0]) {
		t.Error("Configured before Prepare")
	}
	if err := c.Prepare(t.Context(), node, macs, params); err != nil {
		t.Fatal(err)
	}
	for _, m := range append([]string{"52-54-00-12-34-56", "52:54:00:AB:CD:EF"}, macs...) {
		if !c.Configured(m) {
			t.Errorf("Configured(%q) = false after Prepare", m)
		}
	}
	if c.Configured("not-a-mac") || c.Configured("52:54:00:00:00:09") {
		t.Error("Configured is true for a bad or unknown MAC")
	}
	if err := c.CleanUp(t.Context(), node, macs); err != nil {
		t.Fatal(err)
	}
	if c.Configured(macs[0]) {
		t.Error("Configured after CleanUp")
	}
}

// TestIPXELoaders: with Config.IPXEDir, iPXE's BIOS and EFI loaders are
// put at the root, where firmware of either boot mode fetches them over
// TFTP; a directory with none of them is refused.
func TestIPXELoaders(t *testing.T) {
	dir := t.TempDir()
	want := map[string]string{pxe.BIOSLoader: "undi", pxe.UEFILoader: "snp"}
	for name, data := range want {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	root := t.TempDir()
	newConfigs(t, root, pxe.Config{IPXEDir: dir})
	for name, data := range want {
		if got := readFile(t, filepath.Join(root, name)); got != data {
			t.Errorf("%s at the root = %q, want %q", name, got, data)
		}
	}
	if _, err := os.Stat(filepath.Join(root, pxe.UEFIFullLoader)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s absent from IPXEDir but at the root: %v", pxe.UEFIFullLoader, err)
	}
	if _, err := pxe.NewConfigs(pxe.Config{Root: t.TempDir(), IPXEDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "has none of") {
		t.Errorf("NewConfigs with an empty IPXEDir = %v, want an error naming the loaders", err)
	}
}

// TestBootModeInScript: the per-node script names the node's boot mode,
// instance_info's capability winning over the properties'.
func TestBootModeInScript(t *testing.T) {
	root := t.TempDir()
	c := newConfigs(t, root, pxe.Config{})
	n := node
	n.Properties = map[string]any{"capabilities": "boot_mode:bios"}
	for _, tt := range []struct {
		inst map[string]any
		want string
	}{
		{nil, "Boot mode bios"},
		{map[string]any{"capabilities": map[string]any{"boot_mode": "bios"}}, "Boot mode bios"},
	} {
		n.InstanceInfo = tt.inst
		if err := c.Prepare(t.Context(), n, macs[:1], params); err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, filepath.Join(root, "nodes", "52-54-00-12-34-56.ipxe")); !strings.Contains(got, tt.want) {
			t.Errorf("script for instance_info %v lacks %q:\n%s", tt.inst, tt.want, got)
		}
	}
}
