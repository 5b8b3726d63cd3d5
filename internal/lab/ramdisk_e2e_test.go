//go:build e2e

package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/agent/protocol"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// fakeAPI stands in for the API's agent endpoints: lookup by one MAC and
// heartbeats, which it passes on.
func fakeAPI(t *testing.T, mac, token string) (port int, beats <-chan wire.HeartbeatRequest) {
	t.Helper()
	ch := make(chan wire.HeartbeatRequest, 16)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/lookup", func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.URL.Query().Get("addresses"), mac) {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(wire.LookupResponse{
			Node:   wire.LookupNode{UUID: "lab-node"},
			Config: wire.LookupConfig{HeartbeatTimeout: 300, AgentToken: token, AgentTokenRequired: true},
		})
	})
	mux.HandleFunc("POST /v1/heartbeat/lab-node", func(w http.ResponseWriter, r *http.Request) {
		var hb wire.HeartbeatRequest
		_ = json.NewDecoder(r.Body).Decode(&hb)
		select {
		case ch <- hb:
		default:
		}
		w.WriteHeader(http.StatusAccepted)
	})
	l, err := new(net.ListenConfig).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveHTTP(t, l, mux)
	return l.Addr().(*net.TCPAddr).Port, ch
}

// TestRamdiskBootsAgent boots Debian's kernel with the agent ramdisk in
// QEMU: the agent, as /init, loads the virtio modules, configures the NIC
// from the kernel command line, looks its node up at the host, heartbeats,
// and answers the host's inventory request with the VM's virtio disk.
func TestRamdiskBootsAgent(t *testing.T) {
	k, rd := agentRamdisk(t)
	const mac, token = "52:54:00:1a:b0:01", "lab-ramdisk-token"
	port, beats := fakeAPI(t, mac, token)
	agentPort := freeTCPPort(t)
	m := newMachine(t, MachineConfig{
		MAC: mac, AgentPort: agentPort, Kernel: k.Vmlinuz, Initrd: rd,
		Append: fmt.Sprintf("console=ttyS0 quiet ironfleet.api_url=http://10.0.2.2:%d ironfleet.ip=10.0.2.15/24 "+
			"ironfleet.gateway=10.0.2.2 ironfleet.modules=%s ironfleet.callback_url=http://127.0.0.1:%d",
			port, strings.Join(Modules, ","), agentPort),
	})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	if err := m.PowerOn(ctx); err != nil {
		t.Fatal(err)
	}
	var hb wire.HeartbeatRequest
	select {
	case hb = <-beats:
	case <-ctx.Done():
		t.Fatal("no heartbeat from the VM's agent within 2 minutes")
	}
	t.Logf("first heartbeat %.1fs after power on: %+v", time.Since(start).Seconds(), hb.CallbackURL)
	if hb.AgentToken != token {
		t.Errorf("heartbeat token = %q, want %q", hb.AgentToken, token)
	}
	c, err := protocol.NewClient(hb.CallbackURL, token, protocol.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	inv, err := c.Inventory(ctx)
	if err != nil {
		t.Fatalf("inventory through the forwarded port: %v", err)
	}
	var found bool
	for _, d := range inv.Disks {
		if d.Path == "/dev/vda" && d.SizeBytes == 64<<20 {
			found = true
		}
	}
	if !found {
		t.Errorf("inventory disks = %+v, want /dev/vda of 64 MiB", inv.Disks)
	}
	var macOK bool
	for _, nic := range inv.Interfaces {
		macOK = macOK || nic.MACAddress == mac
	}
	if !macOK {
		t.Errorf("inventory interfaces = %+v, want one with MAC %s", inv.Interfaces, mac)
	}
}
