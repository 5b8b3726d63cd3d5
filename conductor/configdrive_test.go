package conductor_test

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/internal/agenttest"
	"github.com/ironfleet/ironfleet/internal/configdrive"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// TestDeployWritesConfigDrive: a deploy's config drive, in each of
// Ironic's forms, reaches the machine's disk through the real agent: the
// conductor stores it in instance_info.configdrive (Ironic's
// _store_configdrive), building a dict into its ISO as Ironic's
// build_configdrive does (meta_data's uuid and name defaulting to the
// node's, network_data to the node's network_data), and hands it to the
// agent with the image; the agent writes it to a config-2 partition at the
// end of the disk. An image the agent cannot add the partition to fails
// the deploy, saying why. A rebuild rewrites it;
// tearing down forgets it.
func TestDeployWritesConfigDrive(t *testing.T) {
	e := newEnv(t)
	e.startConductor(t, "c1", nil, nil)
	img := agenttest.NewDiskImage(t, 8<<20, agenttest.GPT)
	is := agenttest.NewImageServer(t, img)

	iso, err := configdrive.Build(configdrive.Contents{MetaData: map[string]any{"uuid": "given"}, UserData: "nova's\n"}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	encoded, err := configdrive.Encode(iso)
	if err != nil {
		t.Fatal(err)
	}
	cdURL := newImageServer(t, []byte(encoded), func() {}) + "/cd"
	nodeNetwork := map[string]any{"links": []any{map[string]any{"id": "eth0", "type": "phy"}}}

	tests := []struct {
		name       string
		cd         wire.ConfigDrive
		image      string // "": the partitioned image
		wantFiles  map[string]string
		wantFailed string // in last_error when the deploy must fail
	}{
		{name: "gzipped base64 ISO", cd: wire.ConfigDrive{Image: encoded},
			wantFiles: map[string]string{"user_data": "nova's\n", "meta_data.json": `{"uuid":"given"}`}},
		{name: "URL", cd: wire.ConfigDrive{Image: cdURL},
			wantFiles: map[string]string{"user_data": "nova's\n"}},
		{name: "dict", cd: wire.ConfigDrive{MetaData: map[string]any{"hostname": "h1"}, UserData: map[string]any{"marker": "m1"}},
			wantFiles: map[string]string{"user_data": `{"marker":"m1"}`, "meta_data.json": `{"hostname":"h1","name":"cd-dict","uuid":"$UUID"}`,
				"network_data.json": `{"links":[{"id":"eth0","type":"phy"}]}`}},
		{name: "no partition table", cd: wire.ConfigDrive{Image: encoded}, image: "bare", wantFailed: "no partition table"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := "cd-" + strings.ReplaceAll(tt.name, " ", "-")
			if tt.name == "dict" {
				name = "cd-dict"
			}
			n := e.enroll(t, name, "")
			if _, err := e.inv.UpdateNode(t.Context(), n.UUID, 0, func(n *wire.Node) error {
				if tt.image == "" {
					n.InstanceInfo = map[string]any{"image_source": is.URL + "/image", "image_checksum": img.SHA256}
				}
				n.NetworkData = nodeNetwork
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			e.request(t, n.UUID, wire.OpManage, nil)
			e.waitState(t, n.UUID, wire.StateManageable, 20*time.Second)
			nodeNoClean(t, e, n.UUID)
			e.request(t, n.UUID, wire.OpProvide, nil)
			e.waitState(t, n.UUID, wire.StateAvailable, 20*time.Second)
			e.request(t, n.UUID, wire.OpDeploy, wire.StepsParams{ConfigDrive: &tt.cd})
			if tt.wantFailed != "" {
				got := e.waitState(t, n.UUID, wire.StateDeployFailed, 30*time.Second)
				if !strings.Contains(got.LastError, tt.wantFailed) {
					t.Errorf("last_error %q, want %q in it", got.LastError, tt.wantFailed)
				}
				return
			}
			got := e.waitState(t, n.UUID, wire.StateActive, 30*time.Second)
			if s, _ := got.InstanceInfo["configdrive"].(string); s == "" {
				t.Errorf("instance_info.configdrive = %v, want the config drive stored", got.InstanceInfo["configdrive"])
			}
			cd := agenttest.ReadConfigDrive(t, filepath.Join(e.diskDir, name+".img"))
			if cd.Label != configdrive.Label || cd.Name != configdrive.Label {
				t.Errorf("partition %q holding volume %q, want both %q", cd.Name, cd.Label, configdrive.Label)
			}
			for file, want := range tt.wantFiles {
				want = strings.ReplaceAll(want, "$UUID", n.UUID)
				gotFile := cd.Files[file]
				if strings.HasSuffix(file, ".json") {
					gotFile = canonicalJSON(t, gotFile)
					want = canonicalJSON(t, want)
				}
				if gotFile != want {
					t.Errorf("%s = %q, want %q", file, gotFile, want)
				}
			}
			// A rebuild with another config drive rewrites it.
			e.request(t, n.UUID, wire.OpRebuild, wire.StepsParams{ConfigDrive: &wire.ConfigDrive{UserData: "rebuilt"}})
			e.waitState(t, n.UUID, wire.StateActive, 30*time.Second)
			if u := agenttest.ReadConfigDrive(t, filepath.Join(e.diskDir, name+".img")).Files["user_data"]; u != "rebuilt" {
				t.Errorf("after the rebuild user_data = %q, want %q", u, "rebuilt")
			}
			// Tearing down forgets it: the next instance is not this one.
			e.request(t, n.UUID, wire.OpUndeploy, nil)
			got = e.waitState(t, n.UUID, wire.StateAvailable, 30*time.Second)
			if _, ok := got.InstanceInfo["configdrive"]; ok {
				t.Error("instance_info.configdrive survives tear down")
			}
		})
	}
}

func canonicalJSON(t *testing.T, s string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	b, _ := json.Marshal(v)
	return string(b)
}
