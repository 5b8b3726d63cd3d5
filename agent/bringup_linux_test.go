//go:build linux

package agent

import (
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/ironfleet/ironfleet/internal/redistest"
)

// TestConfigureNICInNetns configures a real veth interface through
// rtnetlink, as BringUp does under QEMU, inside a private network (and
// user) namespace so the machine's own network is never touched: the test
// binary re-runs itself under unshare(1).
func TestConfigureNICInNetns(t *testing.T) {
	if os.Getenv("IRONFLEET_NETNS_CHILD") == "1" {
		configureInNetns(t)
		return
	}
	for _, bin := range []string{"unshare", "ip"} {
		if _, err := exec.LookPath(bin); err != nil {
			redistest.Unavailable(t, err)
		}
	}
	cmd := exec.CommandContext(t.Context(), "unshare", "--user", "--map-root-user", "--net",
		os.Args[0], "-test.run", "^TestConfigureNICInNetns$", "-test.v")
	cmd.Env = append(os.Environ(), "IRONFLEET_NETNS_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestConfigureNICInNetns") {
		t.Fatalf("in a new network namespace: %v\n%s", err, out)
	}
}

func configureInNetns(t *testing.T) {
	if out, err := exec.CommandContext(t.Context(), "ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1").CombinedOutput(); err != nil {
		t.Fatalf("ip link add: %v\n%s", err, out)
	}
	p := BootParams{IP: netip.MustParsePrefix("10.0.2.15/24"), Gateway: netip.MustParseAddr("10.0.2.2")}
	for range 2 { // the second time finds everything done and must not fail
		if err := configureNIC("v0", p); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"lo", "v0"} {
		ifc, err := net.InterfaceByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if ifc.Flags&net.FlagUp == 0 {
			t.Errorf("%s is not up", name)
		}
	}
	ifc, _ := net.InterfaceByName("v0")
	addrs, err := ifc.Addrs()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range addrs {
		got = append(got, a.String())
	}
	if !slices.Contains(got, "10.0.2.15/24") {
		t.Errorf("v0 addresses = %v, want 10.0.2.15/24", got)
	}
	routes, err := os.ReadFile("/proc/net/route")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for line := range strings.SplitSeq(string(routes), "\n") {
		f := strings.Fields(line)
		// Iface Destination Gateway …, little-endian hex: 10.0.2.2 is 0202000A.
		if len(f) > 2 && f[0] == "v0" && f[1] == "00000000" && f[2] == "0202000A" {
			found = true
		}
	}
	if !found {
		t.Errorf("no default route via 10.0.2.2 on v0:\n%s", routes)
	}
}
