package e2e

import (
	"net/http"
	"strings"
	"testing"
)

// TestCORS covers the HTTPRoute CORS filter through the real binary: the
// gateway answers preflights itself (allowed or not, never forwarded), adds
// the CORS headers to upstream responses for allowed origins (exact and
// subdomain wildcard, credentials, expose headers, Vary) and none for other
// origins, whose requests are still forwarded.
func TestCORS(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	port := freePort(t, ip)
	be := newBackend(t, "cors")
	cfg := gatewayYAML(ip, listener{name: "http", port: port}) + be.yaml() + `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: cors
  namespace: default
spec:
  parentRefs:
  - name: gw
  hostnames: ["cors.test"]
  rules:
  - matches: [{path: {type: PathPrefix, value: /app}}]
    filters:
    - type: CORS
      cors:
        allowOrigins: ["https://www.foo.com", "https://*.bar.com"]
        allowMethods: [GET, OPTIONS]
        allowHeaders: [x-header-1, x-header-2]
        exposeHeaders: [x-header-3, x-header-4]
        allowCredentials: true
        maxAge: 3600
    backendRefs: [` + ref("cors") + `]
  - matches: [{path: {type: PathPrefix, value: /public}}]
    filters:
    - type: CORS
      cors:
        allowOrigins: ["*"]
        allowMethods: ["*"]
        allowHeaders: ["*"]
    backendRefs: [` + ref("cors") + `]
`
	g := startGateway(t, ip, cfg)

	send := func(t *testing.T, method, path string, h map[string]string) result {
		t.Helper()
		hdr := http.Header{}
		for k, v := range h {
			hdr.Set(k, v)
		}
		return do(t, defaultClient, request{method: method, url: g.url(port, path), host: "cors.test", header: hdr})
	}
	want := func(t *testing.T, r result, exact map[string]string, absent ...string) {
		t.Helper()
		for k, v := range exact {
			if got := strings.Join(r.header.Values(k), ", "); got != v {
				t.Errorf("%s: %q, want %q", k, got, v)
			}
		}
		for _, k := range absent {
			if got := r.header.Values(k); len(got) > 0 {
				t.Errorf("%s: %q, want none", k, got)
			}
		}
	}
	allCORS := []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Access-Control-Allow-Methods",
		"Access-Control-Allow-Headers", "Access-Control-Expose-Headers", "Access-Control-Max-Age"}

	t.Run("preflight exact origin", func(t *testing.T) {
		r := send(t, http.MethodOptions, "/app/preflight-exact", map[string]string{
			"Origin": "https://www.foo.com", "Access-Control-Request-Method": "GET",
			"Access-Control-Request-Headers": "x-header-1, x-header-2",
		})
		if r.status != http.StatusNoContent || r.echo != nil {
			t.Fatalf("preflight: %v, want 204 from the gateway", r)
		}
		want(t, r, map[string]string{
			"Access-Control-Allow-Origin":      "https://www.foo.com",
			"Access-Control-Allow-Methods":     "GET, OPTIONS",
			"Access-Control-Allow-Headers":     "x-header-1, x-header-2",
			"Access-Control-Expose-Headers":    "x-header-3, x-header-4",
			"Access-Control-Max-Age":           "3600",
			"Access-Control-Allow-Credentials": "true",
			"Vary":                             "Origin",
		})
		if be.sawPath("/app/preflight-exact") {
			t.Error("the preflight was forwarded")
		}
	})

	t.Run("preflight wildcard subdomain", func(t *testing.T) {
		r := send(t, http.MethodOptions, "/app", map[string]string{"Origin": "https://xpto.www.bar.com", "Access-Control-Request-Method": "GET"})
		if r.status != http.StatusNoContent {
			t.Fatalf("preflight: %v", r)
		}
		want(t, r, map[string]string{"Access-Control-Allow-Origin": "https://xpto.www.bar.com", "Access-Control-Allow-Credentials": "true"})
	})

	t.Run("preflight denied origin", func(t *testing.T) {
		r := send(t, http.MethodOptions, "/app/preflight-denied", map[string]string{"Origin": "https://foobar.com", "Access-Control-Request-Method": "GET"})
		if r.status != http.StatusNoContent || r.echo != nil {
			t.Fatalf("preflight: %v, want 204 from the gateway", r)
		}
		want(t, r, nil, allCORS...)
		if be.sawPath("/app/preflight-denied") {
			t.Error("the denied preflight was forwarded")
		}
	})

	t.Run("actual request allowed", func(t *testing.T) {
		r := send(t, http.MethodGet, "/app/get", map[string]string{"Origin": "https://www.bar.com"})
		if r.status != http.StatusOK || r.echo == nil {
			t.Fatalf("GET: %v", r)
		}
		if got := r.echo.Header.Get("Origin"); got != "https://www.bar.com" {
			t.Errorf("backend saw Origin %q", got)
		}
		want(t, r, map[string]string{
			"Access-Control-Allow-Origin":      "https://www.bar.com",
			"Access-Control-Allow-Credentials": "true",
			"Access-Control-Expose-Headers":    "x-header-3, x-header-4",
			"Vary":                             "Origin",
		}, "Access-Control-Allow-Methods", "Access-Control-Max-Age")
	})

	t.Run("actual request denied is forwarded without CORS headers", func(t *testing.T) {
		r := send(t, http.MethodGet, "/app/denied", map[string]string{"Origin": "https://foobar.com"})
		if r.status != http.StatusOK || r.echo == nil {
			t.Fatalf("GET: %v", r)
		}
		want(t, r, map[string]string{"Vary": "Origin"}, allCORS...)
	})

	t.Run("no Origin", func(t *testing.T) {
		r := send(t, http.MethodGet, "/app/plain", nil)
		if r.status != http.StatusOK || r.echo == nil {
			t.Fatalf("GET: %v", r)
		}
		want(t, r, nil, append(allCORS, "Vary")...)
	})

	t.Run("OPTIONS that is not a preflight is forwarded", func(t *testing.T) {
		r := send(t, http.MethodOptions, "/app/options", map[string]string{"Origin": "https://www.foo.com"})
		if r.status != http.StatusOK || r.echo == nil || r.echo.Method != http.MethodOptions {
			t.Fatalf("OPTIONS: %v", r)
		}
		want(t, r, map[string]string{"Access-Control-Allow-Origin": "https://www.foo.com"})
	})

	t.Run("star without credentials", func(t *testing.T) {
		r := send(t, http.MethodOptions, "/public", map[string]string{
			"Origin": "https://foobar.com:12345", "Access-Control-Request-Method": "PUT",
			"Access-Control-Request-Headers": "x-a, x-b",
		})
		if r.status != http.StatusNoContent || r.echo != nil {
			t.Fatalf("preflight: %v", r)
		}
		want(t, r, map[string]string{
			"Access-Control-Allow-Origin":  "*",
			"Access-Control-Allow-Methods": "PUT",
			"Access-Control-Allow-Headers": "x-a, x-b",
			"Access-Control-Max-Age":       "5",
		}, "Access-Control-Allow-Credentials")
		r = send(t, http.MethodPut, "/public", map[string]string{"Origin": "https://foobar.com"})
		if r.status != http.StatusOK || r.echo == nil {
			t.Fatalf("PUT: %v", r)
		}
		want(t, r, map[string]string{"Access-Control-Allow-Origin": "*"}, "Access-Control-Allow-Credentials")
	})
}
