package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestFilters covers RequestRedirect (scheme, hostname, port, full and
// prefix path, status codes), URLRewrite (hostname, full path, prefix) and
// the request and response header modifiers.
func TestFilters(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	port := freePort(t, ip)
	be := newBackend(t, "filtered")
	cfg := gatewayYAML(ip, listener{name: "http", port: port}) + be.yaml() + `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: filters
  namespace: default
spec:
  parentRefs:
  - name: gw
  hostnames: ["filters.test"]
  rules:
  - matches: [{path: {type: PathPrefix, value: /scheme}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {scheme: https, statusCode: 301}
  - matches: [{path: {type: PathPrefix, value: /hostname}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {hostname: other.test}
  - matches: [{path: {type: PathPrefix, value: /port}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {port: 8081, statusCode: 308}
  - matches: [{path: {type: PathPrefix, value: /https-port}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {scheme: https, port: 8443, statusCode: 302}
  - matches: [{path: {type: PathPrefix, value: /full}}]
    filters:
    - type: RequestRedirect
      requestRedirect:
        path: {type: ReplaceFullPath, replaceFullPath: /replaced}
        statusCode: 302
  - matches: [{path: {type: PathPrefix, value: /old}}]
    filters:
    - type: RequestRedirect
      requestRedirect:
        path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}
        statusCode: 301
  - matches: [{path: {type: PathPrefix, value: /rw-host}}]
    filters:
    - type: URLRewrite
      urlRewrite: {hostname: backend.internal}
    backendRefs: [` + ref("filtered") + `]
  - matches: [{path: {type: PathPrefix, value: /rw-full}}]
    filters:
    - type: URLRewrite
      urlRewrite:
        path: {type: ReplaceFullPath, replaceFullPath: /full-replaced}
    backendRefs: [` + ref("filtered") + `]
  - matches: [{path: {type: PathPrefix, value: /rw-prefix}}]
    filters:
    - type: URLRewrite
      urlRewrite:
        path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}
    backendRefs: [` + ref("filtered") + `]
  - matches: [{path: {type: PathPrefix, value: /strip}}]
    filters:
    - type: URLRewrite
      urlRewrite:
        path: {type: ReplacePrefixMatch, replacePrefixMatch: /}
    backendRefs: [` + ref("filtered") + `]
  - matches: [{path: {type: PathPrefix, value: /headers}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: X-Set, value: gateway}]
        add: [{name: X-Add, value: gateway}]
        remove: [X-Remove]
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        set: [{name: X-Resp-Set, value: gateway}]
        add: [{name: X-Resp-Add, value: gateway}]
        remove: [X-Backend-Remove]
    backendRefs: [` + ref("filtered") + `]
`
	g := startGateway(t, ip, cfg)

	t.Run("redirects", func(t *testing.T) {
		p := fmt.Sprint(port)
		tests := []struct {
			name, path string
			status     int
			location   string
		}{
			{"scheme https drops port 443, keeps query", "/scheme/x?a=b", 301, "https://filters.test/scheme/x?a=b"},
			{"hostname keeps listener port", "/hostname/y", 302, "http://other.test:" + p + "/hostname/y"},
			{"port", "/port", 308, "http://filters.test:8081/port"},
			{"scheme and port", "/https-port/z", 302, "https://filters.test:8443/https-port/z"},
			{"full path", "/full/anything", 302, "http://filters.test:" + p + "/replaced"},
			{"prefix path", "/old/a/b", 301, "http://filters.test:" + p + "/new/a/b"},
			{"prefix path itself", "/old", 301, "http://filters.test:" + p + "/new"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				r := get(t, g.url(port, tc.path), "filters.test:"+p)
				if r.status != tc.status || r.header.Get("Location") != tc.location {
					t.Fatalf("GET %s: got %d Location %q, want %d %q", tc.path, r.status, r.header.Get("Location"), tc.status, tc.location)
				}
				if r.echo != nil {
					t.Fatalf("a redirect reached the backend: %v", r)
				}
			})
		}
	})

	t.Run("rewrites", func(t *testing.T) {
		tests := []struct {
			name, path         string
			wantHost, wantPath string
			wantQuery          string
		}{
			{"hostname", "/rw-host/a", "backend.internal", "/rw-host/a", ""},
			{"full path keeps query", "/rw-full/a/b?x=1", "filters.test", "/full-replaced", "x=1"},
			{"prefix", "/rw-prefix/users/7", "filters.test", "/v2/users/7", ""},
			{"prefix itself", "/rw-prefix", "filters.test", "/v2", ""},
			{"prefix to root", "/strip/x/y", "filters.test", "/x/y", ""},
			{"prefix to root itself", "/strip", "filters.test", "/", ""},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				r := get(t, g.url(port, tc.path), "filters.test")
				if r.status != http.StatusOK || r.echo == nil {
					t.Fatalf("GET %s: %v", tc.path, r)
				}
				e := r.echo
				if e.Host != tc.wantHost || e.Path != tc.wantPath || e.RawQuery != tc.wantQuery {
					t.Fatalf("GET %s: backend saw Host %q path %q query %q; want %q %q %q", tc.path, e.Host, e.Path, e.RawQuery, tc.wantHost, tc.wantPath, tc.wantQuery)
				}
			})
		}
	})

	t.Run("header modifiers", func(t *testing.T) {
		r := do(t, defaultClient, request{url: g.url(port, "/headers"), host: "filters.test", header: http.Header{
			"X-Set":    {"client"},
			"X-Add":    {"client"},
			"X-Remove": {"client"},
			"X-Keep":   {"client"},
		}})
		if r.status != http.StatusOK || r.echo == nil {
			t.Fatalf("GET /headers: %v", r)
		}
		h := r.echo.Header
		if got := h.Values("X-Set"); strings.Join(got, ",") != "gateway" {
			t.Errorf("request X-Set = %q, want [gateway]", got)
		}
		if got := strings.Join(h.Values("X-Add"), ", "); got != "client, gateway" {
			t.Errorf("request X-Add = %q, want \"client, gateway\"", got)
		}
		if got := h.Values("X-Remove"); len(got) != 0 {
			t.Errorf("request X-Remove = %q, want removed", got)
		}
		if got := h.Get("X-Keep"); got != "client" {
			t.Errorf("request X-Keep = %q, want it forwarded untouched", got)
		}
		if got := r.header.Values("X-Resp-Set"); strings.Join(got, ",") != "gateway" {
			t.Errorf("response X-Resp-Set = %q, want [gateway]", got)
		}
		if got := r.header.Get("X-Resp-Add"); got != "gateway" {
			t.Errorf("response X-Resp-Add = %q, want gateway", got)
		}
		if got := r.header.Values("X-Backend-Remove"); len(got) != 0 {
			t.Errorf("response X-Backend-Remove = %q, want removed", got)
		}
		if got := r.header.Get("X-Backend"); got != "filtered" {
			t.Errorf("response X-Backend = %q, want the backend's header passed through", got)
		}
	})
}
