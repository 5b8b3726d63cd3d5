package ipmi_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/conductor/ipmi"
	"github.com/ironfleet/ironfleet/transport/wire"
)

const secret = "Tr0ub4dor&3"

func TestParseInfo(t *testing.T) {
	base := func(kv ...any) map[string]any {
		m := map[string]any{"ipmi_address": "10.0.0.5", "ipmi_username": "root", "ipmi_password": secret}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name    string
		info    map[string]any
		wantErr string // substring; "" means valid
		check   func(t *testing.T, i ipmi.Info)
	}{
		{name: "defaults", info: base(), check: func(t *testing.T, i ipmi.Info) {
			if i.Port != 623 || i.CipherSuite != 3 || i.PrivLevel != "ADMINISTRATOR" || !i.DisableBootTimeout || i.Retries != -1 || i.Timeout != 0 {
				t.Errorf("got %+v, want port 623, suite 3, ADMINISTRATOR, boot timeout disabled, no overrides", i)
			}
		}},
		{name: "JSON numbers and strings", info: base("ipmi_port", float64(6230), "ipmi_cipher_suite", "17",
			"ipmi_timeout", json.Number("0.5"), "ipmi_retries", 0, "ipmi_priv_level", "operator", "ipmi_disable_boot_timeout", "false"),
			check: func(t *testing.T, i ipmi.Info) {
				if i.Port != 6230 || i.CipherSuite != 17 || i.Timeout != 500*time.Millisecond || i.Retries != 0 || i.PrivLevel != "OPERATOR" || i.DisableBootTimeout {
					t.Errorf("got %+v", i)
				}
				if i.Addr() != "10.0.0.5:6230" {
					t.Errorf("Addr %q, want 10.0.0.5:6230", i.Addr())
				}
			}},
		{name: "IPv6 address", info: base("ipmi_address", "fd00::5"), check: func(t *testing.T, i ipmi.Info) {
			if i.Addr() != "[fd00::5]:623" {
				t.Errorf("Addr %q, want [fd00::5]:623", i.Addr())
			}
		}},
		{name: "no address", info: map[string]any{"ipmi_password": secret}, wantErr: "ipmi_address is required"},
		{name: "blank address", info: base("ipmi_address", "  "), wantErr: "ipmi_address is required"},
		{name: "address not a string", info: base("ipmi_address", 10), wantErr: "ipmi_address must be a string"},
		{name: "address with a path", info: base("ipmi_address", "http://x/"), wantErr: "ipmi_address must be a host name"},
		{name: "port zero", info: base("ipmi_port", 0), wantErr: "ipmi_port must be between 1 and 65535"},
		{name: "port too big", info: base("ipmi_port", 70000), wantErr: "ipmi_port must be between"},
		{name: "port fractional", info: base("ipmi_port", 623.5), wantErr: "ipmi_port must be an integer"},
		{name: "port garbage", info: base("ipmi_port", "six"), wantErr: "ipmi_port must be an integer"},
		{name: "password not a string", info: base("ipmi_password", 12345), wantErr: "ipmi_password must be a string"},
		{name: "password too long", info: base("ipmi_password", strings.Repeat(secret, 3)), wantErr: "ipmi_password is longer than IPMI's 20 bytes"},
		{name: "username too long", info: base("ipmi_username", strings.Repeat("u", 17)), wantErr: "ipmi_username is longer"},
		{name: "cipher suite out of range", info: base("ipmi_cipher_suite", 18), wantErr: "ipmi_cipher_suite must be between 0 and 17"},
		{name: "privilege unknown", info: base("ipmi_priv_level", "god"), wantErr: "ipmi_priv_level must be"},
		{name: "timeout negative", info: base("ipmi_timeout", -1), wantErr: "ipmi_timeout must be a number of seconds"},
		{name: "retries too many", info: base("ipmi_retries", 1000), wantErr: "ipmi_retries must be between 0 and 100"},
		{name: "boot timeout not a bool", info: base("ipmi_disable_boot_timeout", "maybe"), wantErr: "ipmi_disable_boot_timeout must be true or false"},
		{name: "nil map", info: nil, wantErr: "ipmi_address is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := ipmi.ParseInfo(tt.info)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseInfo: %v", err)
				}
				if tt.check != nil {
					tt.check(t, info)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseInfo succeeded, want error containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q, want it to contain %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q contains the password", err)
			}
			if !errors.Is(err, ipmi.ErrInvalidInfo) || wire.CodeOf(err) != wire.CodeInvalidInput {
				t.Errorf("error %v: want ErrInvalidInfo with code %s, got code %s", err, wire.CodeInvalidInput, wire.CodeOf(err))
			}
			if ipmi.Validate(tt.info) == nil {
				t.Error("Validate accepted what ParseInfo refused")
			}
		})
	}
}

func TestInfoNeverShowsThePassword(t *testing.T) {
	info, err := ipmi.ParseInfo(map[string]any{"ipmi_address": "10.0.0.5", "ipmi_password": secret})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("info", "info", info, "password", info.Password)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("info", "info", info, "password", info.Password)
	js, err := json.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	renderings := map[string]string{
		"%v": fmt.Sprintf("%v", info), "%+v": fmt.Sprintf("%+v", info), "%#v": fmt.Sprintf("%#v", info),
		"%s": fmt.Sprintf("%s!", info.Password), "%q": fmt.Sprintf("%q", info.Password),
		"json": string(js), "slog": buf.String(),
	}
	for how, s := range renderings {
		if strings.Contains(s, secret) {
			t.Errorf("%s rendering shows the password: %s", how, s)
		}
	}
}

func TestBootModeUEFI(t *testing.T) {
	tests := []struct {
		name    string
		props   map[string]any
		inst    map[string]any
		want    bool
		wantErr bool
	}{
		{"no properties: the default, UEFI", nil, nil, true, false},
		{"no boot mode", map[string]any{"capabilities": "secure_boot:true"}, nil, true, false},
		{"uefi string", map[string]any{"capabilities": "secure_boot:true, boot_mode:uefi"}, nil, true, false},
		{"bios string", map[string]any{"capabilities": "boot_mode:bios"}, nil, false, false},
		{"uefi object", map[string]any{"capabilities": map[string]any{"boot_mode": "uefi"}}, nil, true, false},
		{"instance_info bios", nil, map[string]any{"capabilities": map[string]any{"boot_mode": "bios"}}, false, false},
		{"unknown mode", map[string]any{"capabilities": "boot_mode:coreboot"}, nil, false, true},
		{"capabilities a number", map[string]any{"capabilities": 1}, nil, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ipmi.BootModeUEFI(wire.Node{UUID: "n", Properties: tt.props, InstanceInfo: tt.inst})
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("BootModeUEFI = %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
			if err != nil && (!errors.Is(err, ipmi.ErrInvalidInfo) || wire.CodeOf(err) != wire.CodeInvalidInput) {
				t.Errorf("error %v: want ErrInvalidInfo with code %s", err, wire.CodeInvalidInput)
			}
		})
	}
}
