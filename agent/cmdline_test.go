package agent

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseCmdline(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    BootParams
		wantErr string
	}{
		{
			name: "qemu slirp boot",
			in: "initrd=ramdisk.img console=ttyS0 ironfleet.api_url=http://10.0.2.2:6385 ironfleet.ip=10.0.2.15/24 " +
				"ironfleet.gateway=10.0.2.2 ironfleet.modules=virtio_net,virtio_blk quiet\n",
			want: BootParams{
				APIURL:  "http://10.0.2.2:6385",
				IP:      netip.MustParsePrefix("10.0.2.15/24"),
				Gateway: netip.MustParseAddr("10.0.2.2"),
				Modules: []string{"virtio_net", "virtio_blk"},
			},
		},
		{
			// What conductor/pxe renders into a node's boot config.
			name: "conductor boot config",
			in:   "ironfleet.api_url=http://10.0.2.2:6385 ironfleet.node=3f2a ironfleet.purpose=deploy BOOTIF=01-52-54-00-12-34-56 console=ttyS0",
			want: BootParams{APIURL: "http://10.0.2.2:6385", Node: "3f2a", Purpose: "deploy"},
		},
		{
			name:    "unknown boot purpose",
			in:      "ironfleet.purpose=rescue",
			wantErr: "unknown boot purpose",
		},
		{
			name: "every key, quoted value, duration timeout",
			in: `ironfleet.api_url="https://api.example:6385" ironfleet.interface=eth1 ironfleet.listen=:9999 ` +
				`ironfleet.callback_url=http://192.0.2.7:9999 ironfleet.lookup_timeout=5m ironfleet.log_level=debug`,
			want: BootParams{
				APIURL:        "https://api.example:6385",
				Interface:     "eth1",
				Listen:        ":9999",
				CallbackURL:   "http://192.0.2.7:9999",
				LookupTimeout: 5 * time.Minute,
				LogLevel:      "debug",
			},
		},
		{name: "timeout in seconds", in: "ironfleet.lookup_timeout=120", want: BootParams{LookupTimeout: 120 * time.Second}},
		{name: "no ironfleet words", in: "root=/dev/sda1 ro quiet ironfleetx=1", want: BootParams{}},
		{name: "empty", in: "", want: BootParams{}},
		{name: "unknown key", in: "ironfleet.api_ulr=http://x", wantErr: `unknown key "api_ulr"`},
		{name: "no value", in: "ironfleet.api_url", wantErr: "has no value"},
		{name: "empty value", in: "ironfleet.ip=", wantErr: "has no value"},
		{name: "bad url", in: "ironfleet.api_url=ftp://x", wantErr: "want an http:// or https:// URL"},
		{name: "ip without prefix", in: "ironfleet.ip=10.0.2.15", wantErr: "prefix length"},
		{name: "bad gateway", in: "ironfleet.gateway=10.0.2", wantErr: "want an IP address"},
		{name: "bad timeout", in: "ironfleet.lookup_timeout=-3s", wantErr: "positive duration"},
		{name: "unterminated quote", in: `ironfleet.api_url="http://x`, wantErr: "unterminated quote"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCmdline(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseCmdline(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseCmdline(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseCmdline(%q)\n got %+v\nwant %+v", tt.in, got, tt.want)
			}
		})
	}
}
