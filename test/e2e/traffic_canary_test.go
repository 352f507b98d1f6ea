package e2e

import (
	"net/http"
	"testing"
)

// TestTrafficCanary covers the canary pattern with plain HTTPRoute rules:
// requests marked by a header, a cookie or a query parameter always reach
// the canary, and unmarked traffic is split 90/10 between stable and canary,
// the canary's share within 5 sigma of the binomial expectation.
func TestTrafficCanary(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	port := freePort(t, ip)
	stable, canary := newBackend(t, "stable"), newBackend(t, "canary")
	cfg := gatewayYAML(ip, listener{name: "http", port: port}) + stable.yaml() + canary.yaml() + `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: canary, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: ["canary.test"]
  rules:
  - matches:
    - headers: [{name: x-canary, value: "always"}]
    - headers: [{name: cookie, type: RegularExpression, value: "(.*; *)?canary=on(;.*)?"}]
    - queryParams: [{name: canary, value: "on"}]
    backendRefs: [` + ref("canary") + `]
  - backendRefs: [` + wref("stable", 90) + `, ` + wref("canary", 10) + `]
`
	g := startGateway(t, ip, cfg)
	c := newClient()
	defer c.CloseIdleConnections()

	marked := []struct {
		name   string
		path   string
		header http.Header
	}{
		{"header", "/h", http.Header{"X-Canary": {"always"}}},
		{"cookie alone", "/c", http.Header{"Cookie": {"canary=on"}}},
		{"cookie among others", "/c2", http.Header{"Cookie": {"session=abc; canary=on; theme=dark"}}},
		{"query parameter", "/q?canary=on", nil},
	}
	for _, tc := range marked {
		t.Run("marked by "+tc.name, func(t *testing.T) {
			got := countBy(getN(t, c, 30, g.url(port, tc.path), "canary.test", tc.header))
			if got["canary"] != 30 {
				t.Fatalf("30 requests marked by %s: %v, want all on canary", tc.name, got)
			}
		})
	}
	unmarked := []struct {
		name   string
		path   string
		header http.Header
	}{
		{"other header value", "/h", http.Header{"X-Canary": {"never"}}},
		{"other cookie", "/c", http.Header{"Cookie": {"canary=off; xcanary=on"}}},
		{"other query value", "/q?canary=off", nil},
	}
	for _, tc := range unmarked {
		t.Run("not marked: "+tc.name, func(t *testing.T) {
			// 200 requests split 90/10: all-canary would be 200.
			got := countBy(getN(t, c, 200, g.url(port, tc.path), "canary.test", tc.header))
			if got["stable"]+got["canary"] != 200 {
				t.Fatalf("%v, want 200 answers from stable or canary", got)
			}
			if ok, msg := within5Sigma(got["canary"], 200, 0.1); !ok {
				t.Fatalf("canary share for unmarked requests: %s (%v)", msg, got)
			}
		})
	}
	t.Run("split 90/10", func(t *testing.T) {
		const n = 2000
		got := sendConcurrent(t, g.url(port, "/split"), "canary.test", n, 8)
		if got["stable"]+got["canary"] != n {
			t.Fatalf("%v, want %d answers from stable or canary", got, n)
		}
		ok, msg := within5Sigma(got["canary"], n, 0.1)
		t.Logf("canary: %s", msg)
		if !ok {
			t.Fatalf("canary share: %s", msg)
		}
	})
}
