package agentcmd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	cmdline := filepath.Join(dir, "cmdline")
	if err := os.WriteFile(cmdline, []byte("console=ttyS0 ironfleet.api_url=http://10.0.2.2:6385 "+
		"ironfleet.listen=:8888 ironfleet.lookup_timeout=600 ironfleet.log_level=debug\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("ironfleet.api_ulr=http://x"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		check   func(t *testing.T, s settings)
		wantErr string
	}{
		{
			name: "kernel command line fills what flags leave",
			args: []string{"--cmdline", cmdline},
			check: func(t *testing.T, s settings) {
				if s.apiURL != "http://10.0.2.2:6385" || s.listen != ":8888" || s.lookupTimeout != 600*time.Second || s.logLevel != "debug" {
					t.Errorf("settings = %+v", s)
				}
			},
		},
		{
			name: "flags win over the kernel command line",
			args: []string{"--cmdline", cmdline, "--api-url", "http://api:6385", "--listen", ":7777", "--lookup-timeout", "5s", "--log-level", "warn"},
			check: func(t *testing.T, s settings) {
				if s.apiURL != "http://api:6385" || s.listen != ":7777" || s.lookupTimeout != 5*time.Second || s.logLevel != "warn" {
					t.Errorf("settings = %+v", s)
				}
			},
		},
		{
			name: "flags only, default cmdline absent",
			args: []string{"--cmdline", "", "--api-url", "http://api:6385"},
			check: func(t *testing.T, s settings) {
				if s.apiURL != "http://api:6385" || s.listen != ":9999" || s.lookupTimeout != 300*time.Second || s.power != "host" {
					t.Errorf("settings = %+v", s)
				}
			},
		},
		{name: "no API URL", args: []string{"--cmdline", ""}, wantErr: "no API URL"},
		{name: "typo on the kernel command line", args: []string{"--cmdline", bad}, wantErr: "unknown key"},
		{name: "named cmdline missing", args: []string{"--cmdline", filepath.Join(dir, "nope")}, wantErr: "no such file"},
		{name: "bad power", args: []string{"--cmdline", "", "--api-url", "http://a", "--power", "bmc"}, wantErr: "--power"},
		{name: "zero timeout", args: []string{"--cmdline", "", "--api-url", "http://a", "--stall-timeout", "0s"}, wantErr: "positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := New("agent")
			cmd.Flags().String("log-level", "info", "")
			if err := cmd.ParseFlags(tt.args); err != nil {
				t.Fatal(err)
			}
			s, err := resolve(cmd)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("resolve(%v) error = %v, want one containing %q", tt.args, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, s)
		})
	}
}
