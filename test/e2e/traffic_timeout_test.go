package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestTrafficTimeouts covers TrafficPolicy timeouts: timeouts.request ends a
// request to a slow upstream with 504 (and lets a fast one through), and a
// retry with perTryTimeout and retryOn timeout turns an attempt that hangs
// on a slow endpoint into a second attempt on a fast endpoint, which
// answers.
func TestTrafficTimeouts(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	port := freePort(t, ip)
	slow := newBackend(t, "slow")
	// The hanging endpoint holds every request until the gateway gives up
	// on it (or 10 s pass).
	hang := newBackend(t, "hang")
	hang.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
		return true
	})
	fast := newBackend(t, "fast")
	const host = "timeouts.test"
	cfg := gatewayYAML(ip, listener{name: "http", port: port}) + slow.yaml() +
		trafficBackendYAML("hang-and-fast", hang.port, fast.port) + `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: timeouts, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: ["` + host + `"]
  rules:
  - name: request
    matches: [{path: {type: PathPrefix, value: /request}}]
    backendRefs: [` + ref("slow") + `]
  - name: per-try
    matches: [{path: {type: PathPrefix, value: /per-try}}]
    backendRefs: [` + ref("hang-and-fast") + `]
` + trafficPolicy("request-timeout", "HTTPRoute", "timeouts", "request", `timeouts: {request: 500ms}`) +
		trafficPolicy("per-try", "HTTPRoute", "timeouts", "per-try", `retry:
  attempts: 2
  retryOn: [timeout]
  perTryTimeout: 300ms
  backoff: {baseInterval: 1ms}`)
	g := startGateway(t, ip, cfg)
	c := newClient()
	defer c.CloseIdleConnections()

	t.Run("request timeout", func(t *testing.T) {
		r := get(t, g.url(port, "/request/slow?delay=5s"), host)
		if r.status != http.StatusGatewayTimeout {
			t.Fatalf("slow upstream: %v, want 504", r)
		}
		if !slow.sawPath("/request/slow") {
			t.Fatalf("the slow upstream never saw the request")
		}
		r = get(t, g.url(port, "/request/fast"), host)
		if r.status != http.StatusOK || r.backend() != "slow" {
			t.Fatalf("upstream answering at once: %v, want its 200", r)
		}
	})

	t.Run("per-try timeout retried on the fast endpoint", func(t *testing.T) {
		for i := 0; i < 6; i++ {
			path := fmt.Sprintf("/per-try/%d", i)
			r := do(t, c, request{url: g.url(port, path), host: host})
			if r.status != http.StatusOK || r.backend() != "fast" || r.echo.Path != path {
				t.Fatalf("GET %s: %v, want the fast endpoint's echo", path, r)
			}
		}
		// Round robin sent some first attempts to the hanging endpoint:
		// those were the ones retried.
		n := 0
		for _, e := range hang.requests() {
			if strings.HasPrefix(e.Path, "/per-try/") {
				n++
			}
		}
		if n == 0 {
			t.Fatalf("the hanging endpoint saw none of 6 requests: the per-try timeout was never exercised")
		}
		t.Logf("%d of 6 requests timed out on the hanging endpoint and were retried", n)
	})
}
