package e2e

import (
	"net/http"
	"testing"
)

// TestPathNormalization checks that the path a route matches is the path
// the upstream gets: dot segments (plain, percent-encoded, or hidden behind
// ";" parameters) cannot climb out of a route's prefix, "//" is merged,
// ambiguous encodings are refused with 400, header names with "_" are
// dropped, and a plain CONNECT is refused.
func TestPathNormalization(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	p := freePort(t, ip)
	public := newBackend(t, "public")
	cfg := gatewayYAML(ip, listener{name: "http", port: p}) + public.yaml() + `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: public, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /public}}]
    backendRefs: [` + ref("public") + `]
`
	g := startGateway(t, ip, cfg)
	for _, tc := range []struct {
		target   string
		status   int
		sawPath  string // what the backend must see, when forwarded
		sawQuery string
	}{
		{"/public/a", 200, "/public/a", ""},
		{"/public/../admin", 404, "", ""},
		{"/public/%2e%2e/admin", 404, "", ""},
		{"/public/%2E%2E/%2e%2e/admin", 404, "", ""},
		{"/public/..;/admin", 400, "", ""},
		{"/public%2F..%2Fadmin", 400, "", ""},
		{"/public/a%5Cb", 400, "", ""},
		{"/public//a///b", 200, "/public/a/b", ""},
		{"/public/./x/../y?q=%2F", 200, "/public/y", "q=%2F"},
		{"/public/%7Euser", 200, "/public/~user", ""},
		{"/x/../public/ok", 200, "/public/ok", ""},
	} {
		t.Run(tc.target, func(t *testing.T) {
			res := rawExchange(t, g.addr(p), "GET "+tc.target+" HTTP/1.1\r\nHost: n.test\r\nConnection: close\r\n\r\n", true)
			if res.resp.StatusCode != tc.status {
				t.Fatalf("GET %s: status %d, want %d (body %q)", tc.target, res.resp.StatusCode, tc.status, res.body)
			}
			if tc.sawPath == "" {
				return
			}
			reqs := public.requests()
			e := reqs[len(reqs)-1]
			if e.Path != tc.sawPath || e.RawQuery != tc.sawQuery {
				t.Fatalf("backend saw %q ? %q, want %q ? %q", e.Path, e.RawQuery, tc.sawPath, tc.sawQuery)
			}
		})
	}
	t.Run("underscore header names are dropped", func(t *testing.T) {
		res := rawExchange(t, g.addr(p), "GET /public/h HTTP/1.1\r\nHost: n.test\r\nX_Forwarded_For: 6.6.6.6\r\nX-Ok: 1\r\nConnection: close\r\n\r\n", true)
		if res.resp.StatusCode != 200 {
			t.Fatalf("status %d", res.resp.StatusCode)
		}
		reqs := public.requests()
		e := reqs[len(reqs)-1]
		if e.Header.Get("X_forwarded_for") != "" || e.Header.Get("X-Ok") != "1" {
			t.Fatalf("backend headers %v", e.Header)
		}
	})
	t.Run("only WebSocket upgrades are tunnelled", func(t *testing.T) {
		for _, up := range []string{"h2c", "foo/1"} {
			res := rawExchange(t, g.addr(p), "GET /public/up HTTP/1.1\r\nHost: n.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: "+up+
				"\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n", false)
			if res.resp.StatusCode != 200 {
				t.Fatalf("Upgrade %s: status %d, want the request served as plain HTTP/1.1", up, res.resp.StatusCode)
			}
			reqs := public.requests()
			e := reqs[len(reqs)-1]
			if e.Header.Get("Upgrade") != "" || e.Header.Get("Http2-Settings") != "" {
				t.Fatalf("Upgrade %s reached the backend: %v", up, e.Header)
			}
		}
	})
	t.Run("plain CONNECT is refused", func(t *testing.T) {
		res := rawExchange(t, g.addr(p), "CONNECT internal.example:22 HTTP/1.1\r\nHost: internal.example:22\r\n\r\n", true)
		if res.resp.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("CONNECT: status %d, want 405", res.resp.StatusCode)
		}
	})
}
