package api_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// TestDiscoveryListsResources: GET /v1 advertises chassis always,
// portgroups from 1.23 and volume from 1.32, as Ironic's v1 root does.
func TestDiscoveryListsResources(t *testing.T) {
	e := newEnv(t)
	for _, tt := range []struct {
		version string
		want    map[string]bool
	}{
		{"1.22", map[string]bool{"chassis": true, "portgroups": false, "volume": false}},
		{"1.31", map[string]bool{"chassis": true, "portgroups": true, "volume": false}},
		{"latest", map[string]bool{"chassis": true, "portgroups": true, "volume": true}},
	} {
		t.Run(tt.version, func(t *testing.T) {
			r := e.do(http.MethodGet, "/v1", nil, "X-OpenStack-Ironic-API-Version", tt.version)
			mustStatus(t, r, http.StatusOK)
			doc := r.json(t)
			for k, want := range tt.want {
				if _, got := doc[k]; got != want {
					t.Errorf("%s listed: %v, want %v", k, got, want)
				}
			}
		})
	}
}

// TestLeftoversOfADeletedNodeCanBeDeleted: records whose node is gone (a
// node delete that failed half way leaves them) are deleted through the
// API, not stuck behind the missing node's 404.
func TestLeftoversOfADeletedNodeCanBeDeleted(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	gone := wire.NewUUID()
	pg := wire.Portgroup{UUID: wire.NewUUID(), NodeUUID: gone, Mode: "active-backup", CreatedAt: time.Now()}
	if err := transport.NewCollection[wire.Portgroup](e.inv, "portgroup").Create(ctx, pg.UUID, pg); err != nil {
		t.Fatal(err)
	}
	vt := wire.VolumeTarget{UUID: wire.NewUUID(), NodeUUID: gone, VolumeType: "iscsi", VolumeID: "v", CreatedAt: time.Now()}
	if err := transport.NewCollection[wire.VolumeTarget](e.inv, "volume_target").Create(ctx, vt.UUID, vt); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/v1/portgroups/" + pg.UUID, "/v1/volume/targets/" + vt.UUID} {
		mustStatus(t, e.do(http.MethodDelete, path, nil), http.StatusNoContent)
		mustStatus(t, e.do(http.MethodGet, path, nil), http.StatusNotFound)
	}
}
