package e2e

import (
	"net/http"
	"testing"
)

// TestTimeouts covers HTTPRoute rule timeouts: request and backendRequest
// against a slow backend answer 504; a backend answering within the
// timeout gives 200.
func TestTimeouts(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	port := freePort(t, ip)
	be := newBackend(t, "slow")
	cfg := gatewayYAML(ip, listener{name: "http", port: port}) + be.yaml() + `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: timeouts
  namespace: default
spec:
  parentRefs:
  - name: gw
  hostnames: ["timeouts.test"]
  rules:
  - matches: [{path: {type: PathPrefix, value: /request}}]
    timeouts: {request: 1s}
    backendRefs: [` + ref("slow") + `]
  - matches: [{path: {type: PathPrefix, value: /backend}}]
    timeouts: {backendRequest: 1s}
    backendRefs: [` + ref("slow") + `]
  - matches: [{path: {type: PathPrefix, value: /both}}]
    timeouts: {request: 4s, backendRequest: 1s}
    backendRefs: [` + ref("slow") + `]
  - matches: [{path: {type: PathPrefix, value: /roomy}}]
    timeouts: {request: 5s, backendRequest: 5s}
    backendRefs: [` + ref("slow") + `]
`
	g := startGateway(t, ip, cfg)

	tests := []struct {
		name string
		path string
		want int
	}{
		{"request timeout, slow backend", "/request?delay=6s", http.StatusGatewayTimeout},
		{"backendRequest timeout, slow backend", "/backend?delay=6s", http.StatusGatewayTimeout},
		{"backendRequest shorter than request", "/both?delay=6s", http.StatusGatewayTimeout},
		{"request timeout, fast backend", "/request", http.StatusOK},
		{"backendRequest timeout, fast backend", "/backend?delay=10ms", http.StatusOK},
		{"backend within a roomy timeout", "/roomy?delay=200ms", http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := get(t, g.url(port, tc.path), "timeouts.test")
			if r.status != tc.want {
				t.Fatalf("GET %s: got %v, want %d", tc.path, r, tc.want)
			}
			if tc.want == http.StatusOK && r.backend() != "slow" {
				t.Fatalf("GET %s: got %v, want the backend's answer", tc.path, r)
			}
		})
	}
}
