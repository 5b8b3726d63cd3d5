package agent

import (
	"reflect"
	"strings"
	"testing"
)

const modulesDep = `kernel/drivers/net/virtio_net.ko.xz: kernel/drivers/net/net_failover.ko.xz kernel/net/core/failover.ko.xz
kernel/drivers/net/net_failover.ko.xz: kernel/net/core/failover.ko.xz
kernel/net/core/failover.ko.xz:
kernel/drivers/block/virtio_blk.ko.xz:
kernel/drivers/net/ethernet/intel/e1000/e1000.ko:
`

func TestModuleLoadOrder(t *testing.T) {
	tests := []struct {
		name    string
		modules []string
		want    []string
		wantErr string
	}{
		{
			name:    "dependencies first, deepest first",
			modules: []string{"virtio_net"},
			want: []string{"kernel/net/core/failover.ko.xz", "kernel/drivers/net/net_failover.ko.xz",
				"kernel/drivers/net/virtio_net.ko.xz"},
		},
		{
			name:    "shared dependencies once, dashes as underscores",
			modules: []string{"net-failover", "virtio_net", "virtio_blk"},
			want: []string{"kernel/net/core/failover.ko.xz", "kernel/drivers/net/net_failover.ko.xz",
				"kernel/drivers/net/virtio_net.ko.xz", "kernel/drivers/block/virtio_blk.ko.xz"},
		},
		{name: "uncompressed", modules: []string{"e1000"}, want: []string{"kernel/drivers/net/ethernet/intel/e1000/e1000.ko"}},
		{name: "none", modules: nil, want: nil},
		{name: "unknown", modules: []string{"virtio_nett"}, wantErr: `"virtio_nett" is not in modules.dep`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := moduleLoadOrder(strings.NewReader(modulesDep), tt.modules)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("order\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}
