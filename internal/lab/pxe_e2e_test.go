//go:build e2e

package lab

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/conductor/ipmi"
	"github.com/ironfleet/ironfleet/conductor/pxe"
	"github.com/ironfleet/ironfleet/internal/ipmitest"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// TestIPMIBootsMachineOverPXE: the ipmi driver tells ipmi_sim to PXE-boot
// and power on; ipmi_sim's chassis program starts the QEMU machine, whose
// iPXE fetches boot.ipxe, the node's script, the kernel and the agent
// ramdisk from our TFTP server; the agent looks up and heartbeats. Then the
// driver powers it off.
func TestIPMIBootsMachineOverPXE(t *testing.T) {
	k, rd := agentRamdisk(t)
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "agent"), 0o755); err != nil {
		t.Fatal(err)
	}
	for src, dst := range map[string]string{k.Vmlinuz: "agent/vmlinuz", rd: "agent/initramfs"} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, dst), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	configs, err := pxe.NewConfigs(pxe.Config{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = configs.Close() })
	srv, err := pxe.NewServer(pxe.ServerConfig{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := new(net.ListenConfig).ListenPacket(t.Context(), "udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sctx, pc) }()
	t.Cleanup(func() {
		stop()
		if err := <-served; err != nil {
			t.Errorf("TFTP server: %v", err)
		}
		_ = srv.Close()
	})

	const mac, token = "52:54:00:1a:b0:02", "lab-pxe-token"
	port, beats := fakeAPI(t, mac, token)
	agentPort := freeTCPPort(t)
	m := newMachine(t, MachineConfig{MAC: mac, AgentPort: agentPort, TFTP: pc.LocalAddr().String()})
	bmc := ipmitest.Start(t, ipmitest.WithChassisProgram(m.Program))

	node := wire.Node{UUID: "lab-node", Driver: "ipmi", DriverInfo: bmc.DriverInfo()}
	err = configs.Prepare(t.Context(), node, []string{mac}, wire.BootParams{
		Purpose: wire.BootForDeploy, Kernel: "agent/vmlinuz", Ramdisk: "agent/initramfs",
		APIURL: fmt.Sprintf("http://10.0.2.2:%d", port),
		ExtraArgs: fmt.Sprintf("console=ttyS0 quiet ironfleet.ip=10.0.2.15/24 ironfleet.gateway=10.0.2.2 "+
			"ironfleet.modules=%s ironfleet.callback_url=http://127.0.0.1:%d", strings.Join(Modules, ","), agentPort),
	})
	if err != nil {
		t.Fatal(err)
	}
	drv, err := ipmi.New(ipmi.Config{PollInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	power, err := drv.NodePower(node)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if err := power.SetBootDevice(ctx, wire.BootPXE, false); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := power.SetPower(ctx, wire.PowerRebooting); err != nil {
		t.Fatal(err)
	}
	select {
	case hb := <-beats:
		t.Logf("heartbeat %.1fs after power on, callback %s", time.Since(start).Seconds(), hb.CallbackURL)
	case <-ctx.Done():
		t.Fatal("no heartbeat from the PXE-booted agent within 2 minutes")
	}
	if err := power.SetPower(ctx, wire.PowerOff); err != nil {
		t.Fatal(err)
	}
	if on, err := m.Running(ctx); err != nil || on {
		t.Errorf("after power off: running = %v (%v), want false", on, err)
	}
	log, err := m.ChassisLog()
	if err != nil {
		t.Fatal(err)
	}
	var what []string
	for _, ev := range log {
		what = append(what, ev.What)
	}
	for _, want := range []string{"set boot pxe", "started once=n,order=c", "set power 0"} {
		if !slices.Contains(what, want) {
			t.Errorf("chassis log %q lacks %q", what, want)
		}
	}
}
