package conductor_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/agent/protocol"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// TestRootDeviceHints: on a machine with two disks, properties.root_device
// chooses the disk the image is written to and the one cleaning erases; a
// hint no disk satisfies fails the deploy before write_image is ever sent,
// with a last_error naming root_device, the hints and the disks seen; and
// the node leaves deploy failed by a redeploy with hints that match, then
// an undeploy.
func TestRootDeviceHints(t *testing.T) {
	e := newEnv(t)
	e.secondDisk = true
	e.startConductor(t, "c1", nil, nil)

	readHead := func(t *testing.T, path string) []byte {
		t.Helper()
		f, err := os.Open(path) //nolint:gosec // the test's own disk file
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		b := make([]byte, len(e.image))
		if _, err := f.ReadAt(b, 0); err != nil {
			t.Fatal(err)
		}
		return b
	}
	zeros := make([]byte, len(e.image))
	setHints := func(t *testing.T, node string, hints map[string]any) {
		t.Helper()
		if _, err := e.inv.UpdateNode(t.Context(), node, 0, func(n *wire.Node) error {
			n.Properties = map[string]any{"root_device": hints}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	available := func(t *testing.T, name string) wire.Node {
		t.Helper()
		n := e.enroll(t, name, "")
		e.request(t, n.UUID, wire.OpManage, nil)
		e.waitState(t, n.UUID, wire.StateManageable, 20*time.Second)
		e.request(t, n.UUID, wire.OpProvide, nil)
		e.waitState(t, n.UUID, wire.StateAvailable, 20*time.Second)
		return n
	}

	t.Run("a serial hint picks the second disk", func(t *testing.T) {
		n := available(t, "rd-pick")
		vda, vdb := filepath.Join(e.diskDir, "rd-pick.img"), filepath.Join(e.diskDir, "rd-pick-vdb.img")
		setHints(t, n.UUID, map[string]any{"serial": "DISK1-rd-pick", "size": ">= 2"})
		e.request(t, n.UUID, wire.OpDeploy, nil)
		e.waitState(t, n.UUID, wire.StateActive, 30*time.Second)
		if !bytes.Equal(readHead(t, vdb), e.image) {
			t.Error("vdb, which the hints name, does not hold the image")
		}
		if !bytes.Equal(readHead(t, vda), zeros) {
			t.Error("vda, which the hints do not name, was written")
		}
		// Cleaning erases every disk, as IPA's erase_devices_metadata,
		// and so the one the deploy wrote.
		asked := len(e.agentCommands(n.UUID))
		e.request(t, n.UUID, wire.OpUndeploy, nil)
		e.waitState(t, n.UUID, wire.StateAvailable, 30*time.Second)
		if !bytes.Equal(readHead(t, vdb), zeros) {
			t.Error("after cleaning vdb still holds the image")
		}
		count := map[string]int{}
		for _, c := range e.agentCommands(n.UUID)[asked:] {
			count[c]++
		}
		if count[protocol.CmdEraseMetadata] != 2 {
			t.Errorf("cleaning asked the agent %v, want erase_metadata once per disk", count)
		}
		if n := count[protocol.CmdEraseDisk]; n != 0 && n != 2 {
			t.Errorf("cleaning asked the agent %v, want erase_disk once per disk if at all", count)
		}
	})

	t.Run("no match fails before anything is written", func(t *testing.T) {
		n := available(t, "rd-none")
		asked := len(e.agentCommands(n.UUID))
		setHints(t, n.UUID, map[string]any{"serial": "s== no-such-disk"})
		e.request(t, n.UUID, wire.OpDeploy, nil)
		got := e.waitState(t, n.UUID, wire.StateDeployFailed, 30*time.Second)
		for _, want := range []string{"root device hints (root_device)", `{"serial":"s== no-such-disk"}`,
			`name=/dev/vda size=1GiB rotational=false serial="disk0-rd-none"`, `name=/dev/vdb size=2GiB rotational=false serial="disk1-rd-none"`} {
			if !strings.Contains(got.LastError, want) {
				t.Errorf("last_error %q, want %q in it", got.LastError, want)
			}
		}
		if cmds := e.agentCommands(n.UUID)[asked:]; slices.Contains(cmds, protocol.CmdWriteImage) {
			t.Errorf("the agent was asked %v: write_image sent although no disk matched", cmds)
		}
		for _, d := range []string{"rd-none.img", "rd-none-vdb.img"} {
			if !bytes.Equal(readHead(t, filepath.Join(e.diskDir, d)), zeros) {
				t.Errorf("%s was written", d)
			}
		}

		// Hints that match: the node redeploys from deploy failed.
		setHints(t, n.UUID, map[string]any{"name": "/dev/vdb"})
		e.request(t, n.UUID, wire.OpDeploy, nil)
		got = e.waitState(t, n.UUID, wire.StateActive, 30*time.Second)
		if got.LastError != "" {
			t.Errorf("active with last_error %q", got.LastError)
		}
		if !bytes.Equal(readHead(t, filepath.Join(e.diskDir, "rd-none-vdb.img")), e.image) {
			t.Error("the redeploy did not write vdb")
		}
		e.request(t, n.UUID, wire.OpUndeploy, nil)
		e.waitState(t, n.UUID, wire.StateAvailable, 30*time.Second)
	})

	t.Run("invalid hints fail before the agent boots", func(t *testing.T) {
		n := available(t, "rd-bad")
		asked := len(e.agentCommands(n.UUID))
		// The API refuses these with 400; a PATCH racing the request
		// leaves them for the conductor's own check.
		setHints(t, n.UUID, map[string]any{"size": "huge"})
		e.request(t, n.UUID, wire.OpDeploy, nil)
		got := e.waitState(t, n.UUID, wire.StateDeployFailed, 30*time.Second)
		if want := `(from the node's properties.root_device) for node ` + n.UUID + `: Root device hint "size" is not an integer value`; !strings.Contains(got.LastError, want) {
			t.Errorf("last_error %q, want %q in it", got.LastError, want)
		}
		if cmds := e.agentCommands(n.UUID)[asked:]; len(cmds) != 0 {
			t.Errorf("the agent was asked %v, want nothing", cmds)
		}
		// Undeploying from deploy failed cleans the default disk.
		e.request(t, n.UUID, wire.OpUndeploy, nil)
		e.waitState(t, n.UUID, wire.StateAvailable, 30*time.Second)
	})
}

// TestInspectionRootDeviceHints: inspection picks its root disk (local_gb,
// plugin_data.root_disk) by properties.root_device, and fails when no disk
// satisfies them, as Ironic's root_device inspection hook
// (ironic/drivers/modules/inspector/hooks/root_device.py).
func TestInspectionRootDeviceHints(t *testing.T) {
	e := newEnv(t)
	e.secondDisk = true
	e.startConductor(t, "c1", nil, nil)
	records := transport.NewRecords(e.inv)
	tests := []struct {
		name       string
		hints      map[string]any
		wantState  wire.ProvisionState
		wantRoot   string
		wantGB     float64
		wantFailed string
	}{
		{"no hints: the first disk", nil, wire.StateManageable, "/dev/vda", 1, ""},
		{"a hint picks the second", map[string]any{"size": "<range-in> (1 3]"}, wire.StateManageable, "/dev/vdb", 2, ""},
		{"no match fails", map[string]any{"model": "<in> nvme"}, wire.StateInspectFailed, "", 0,
			`No disks satisfied root device hints for node`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := e.enroll(t, fmt.Sprintf("rd-inspect-%d", i), "")
			e.request(t, n.UUID, wire.OpManage, nil)
			e.waitState(t, n.UUID, wire.StateManageable, 20*time.Second)
			if _, err := e.inv.UpdateNode(t.Context(), n.UUID, 0, func(n *wire.Node) error {
				n.Properties = map[string]any{"root_device": tt.hints}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			e.request(t, n.UUID, wire.OpInspect, nil)
			got := e.waitState(t, n.UUID, tt.wantState, 20*time.Second)
			if tt.wantFailed != "" {
				if !strings.Contains(got.LastError, tt.wantFailed) || !strings.Contains(got.LastError, "root_device") {
					t.Errorf("last_error %q, want %q and root_device in it", got.LastError, tt.wantFailed)
				}
				return
			}
			if gb, _ := got.Properties["local_gb"].(float64); gb != tt.wantGB {
				t.Errorf("local_gb = %v, want %v", got.Properties["local_gb"], tt.wantGB)
			}
			in, err := records.Inspections.Get(t.Context(), n.UUID)
			if err != nil {
				t.Fatal(err)
			}
			if root, _ := in.PluginData["root_disk"].(map[string]any); root["name"] != tt.wantRoot {
				t.Errorf("plugin_data.root_disk = %v, want %s", root, tt.wantRoot)
			}
		})
	}
}
