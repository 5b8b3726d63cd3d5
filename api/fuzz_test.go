package api_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzRequestDecoding sends arbitrary bodies to every route that decodes
// one, through the real API over real NATS and Redis: no input panics the
// server or makes it fail with a 5xx, and the records stay readable.
func FuzzRequestDecoding(f *testing.F) {
	e := newEnv(f)
	id := e.createNode("fuzz-1", nil)
	routes := []struct{ method, path string }{
		{http.MethodPost, "/v1/nodes"},
		{http.MethodPatch, "/v1/nodes/" + id},
		{http.MethodPut, "/v1/nodes/" + id + "/states/provision"},
		{http.MethodPut, "/v1/nodes/" + id + "/states/power"},
		{http.MethodPut, "/v1/nodes/" + id + "/management/boot_device"},
		{http.MethodPut, "/v1/nodes/" + id + "/maintenance"},
		{http.MethodPost, "/v1/ports"},
		{http.MethodPost, "/v1/heartbeat/" + id},
	}
	for i, seed := range []string{
		`{"driver":"sim","name":"n-1","driver_info":{"sim_machine":"m"}}`,
		`[{"op":"replace","path":"/extra/a","value":1}]`,
		`{"target":"manage"}`, `{"target":"power on","timeout":5}`, `{"boot_device":"pxe","persistent":true}`,
		`{"reason":"x"}`, `{"node_uuid":"` + id + `","address":"52:54:00:00:00:01"}`,
		`{"callback_url":"http://1.2.3.4:9999","agent_token":"x"}`,
		`{"target":"deploy","configdrive":{"meta_data":{}}}`, `{"driver":"sim","uuid":"not-a-uuid"}`,
		`{"driver":"sim","name":null,"extra":null,"automated_clean":"yes"}`, `nul`, `{"a":1}{"b":2}`, "\x00\xff",
	} {
		f.Add(uint8(i), []byte(seed))
	}
	h := e.srv.Handler()
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		r := routes[int(which)%len(routes)]
		req := httptest.NewRequestWithContext(t.Context(), r.method, r.path, bytes.NewReader(body))
		req.Header.Set("X-OpenStack-Ironic-API-Version", "latest")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s %q: status %d: %s", r.method, r.path, body, rec.Code, rec.Body)
		}
		get := httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/v1/nodes/detail", nil)
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, get)
		if rec.Code != http.StatusOK {
			t.Fatalf("listing after %s %q: %d %s", r.path, body, rec.Code, rec.Body)
		}
	})
}
