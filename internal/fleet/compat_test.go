package fleet_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/internal/fleet"
	"github.com/ironfleet/ironfleet/internal/redistest"
)

// TestCompatClients runs the real clients' scripts against a dev fleet:
// scripts/compat-baremetal-cli.sh (the `baremetal` CLI of Debian's
// python3-ironicclient) and scripts/compat-openstacksdk-nova.py (nova's
// ironic driver's calls through Debian's python3-openstacksdk). Each script
// exits non-zero on any difference from Ironic; its output is the test's
// log. `make test` installs both clients (scripts/ensure-deps.sh); under
// CI=true a missing one fails the test instead of skipping it.
func TestCompatClients(t *testing.T) {
	if testing.Short() {
		t.Skip("the whole fleet and the Python clients; skipped in -short")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	// The CLI script's sim node is the fleet's machine sim-0001, which
	// NoEnroll leaves for it to enroll with its MAC.
	dev := startDev(t, fleet.DevConfig{Nodes: 1, NoEnroll: true})
	image := fetchImage(t, dev.ImageURL())
	// Empty OS_USERNAME: the dev fleet is noauth, whatever the caller's shell says.
	env := []string{"IRONIC_URL=" + dev.APIURL(), "OS_USERNAME=", "OS_PASSWORD="}

	scripts := []struct {
		name string
		// needs are the programs the script runs, and the command that
		// proves each is installed.
		needs [][]string
		args  []string
		env   []string
	}{
		{
			name:  "baremetal CLI",
			needs: [][]string{{"baremetal", "--version"}},
			args:  []string{"bash", filepath.Join(root, "scripts", "compat-baremetal-cli.sh")},
			env: []string{
				"SIM_MACHINE=sim-0001", "PORT_MAC=52:54:00:00:00:00",
				"IMAGE_SOURCE=" + image.url, "IMAGE_CHECKSUM=" + image.sha256,
				"WAIT=90", "FAKE_WAIT=30",
			},
		},
		{
			name:  "openstacksdk as nova",
			needs: [][]string{{"/usr/bin/python3", "-c", "import openstack"}},
			args:  []string{"/usr/bin/python3", filepath.Join(root, "scripts", "compat-openstacksdk-nova.py")},
			env:   []string{"WAIT=60"},
		},
	}
	for _, s := range scripts {
		t.Run(s.name, func(t *testing.T) {
			for _, need := range s.needs {
				if err := exec.CommandContext(t.Context(), need[0], need[1:]...).Run(); err != nil {
					redistest.Unavailable(t, errors.New(need[0]+" (run scripts/ensure-deps.sh test): "+err.Error()))
				}
			}
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, s.args[0], s.args[1:]...)
			cmd.Dir = root
			cmd.Env = append(append(os.Environ(), env...), s.env...)
			cmd.Stdout, cmd.Stderr = t.Output(), t.Output()
			if err := cmd.Run(); err != nil {
				t.Fatalf("%s: %v (its output is above)", s.name, err)
			}
		})
	}
}
