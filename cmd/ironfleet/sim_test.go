package main

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/conductor/ipmi"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// TestSimCommand: `ironfleet sim` prints its machines, each of whose BMCs
// the ipmi driver can drive, and stops cleanly when cancelled.
func TestSimCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	cmd := newRootCmd()
	cmd.SetArgs([]string{"sim", "--nodes", "2", "--first", "3", "--disk-dir", t.TempDir(),
		"--bmc-password", "pw", "--log-level", "warn"})
	pr, pw := io.Pipe()
	cmd.SetOut(pw)
	var stderr strings.Builder
	cmd.SetErr(&stderr)
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx); _ = pw.Close() }()

	dec := json.NewDecoder(pr)
	drv, err := ipmi.New(ipmi.Config{RequestTimeout: time.Second, PollInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"sim-0003", "sim-0004"} {
		var m simMachine
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("machine %d: %v\n%s", i, err, stderr.String())
		}
		if m.Name != want || len(m.MACs) != 1 || m.DriverInfo["ipmi_password"] != "pw" {
			t.Fatalf("machine %d: %+v, want %s with one MAC and the password given", i, m, want)
		}
		if src, _ := m.InstanceInfo["image_source"].(string); !strings.HasSuffix(src, "/image.raw") || m.InstanceInfo["image_checksum"] == "" {
			t.Fatalf("machine %d: instance_info %v, want the image sim serves and its checksum", i, m.InstanceInfo)
		}
		info, err := ipmi.ParseInfo(m.DriverInfo)
		if err != nil {
			t.Fatal(err)
		}
		if err := drv.BMC(m.Name, info).SetPower(t.Context(), wire.PowerOn); err != nil {
			t.Fatalf("%s: power on through its BMC: %v", m.Name, err)
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("sim exited with %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("sim did not stop within 30s of cancellation")
	}
}

func TestSimCommandBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"sim", "--timings", "slow"},
		{"sim", "--nodes", "0"},
	} {
		cmd := newRootCmd()
		cmd.SetArgs(args)
		cmd.SetOut(io.Discard)
		cmd.SetErr(io.Discard)
		if err := cmd.ExecuteContext(t.Context()); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
