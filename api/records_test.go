package api_test

import (
	"net/http"
	"testing"
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
