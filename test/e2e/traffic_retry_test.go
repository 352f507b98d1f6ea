package e2e

import (
	"fmt"
	"net/http"
	"testing"
)

// TestTrafficRetries covers retries from a TrafficPolicy (retryOn
// gateway-error) and from an HTTPRoute rule's own retry (codes [503],
// attempts 3): an upstream failing N times then succeeding gives the client
// a 200 after exactly N+1 attempts, and one failing more often than the
// attempts allow gives the last failure; POST is not retried unless the
// policy allows non-idempotent retries; a connect failure is retried on the
// other endpoint, so with one dead endpoint every request succeeds; and a
// retry budget of 0% with no minimum allows no retry at all.
func TestTrafficRetries(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	port := freePort(t, ip)
	be := newBackend(t, "flaky")
	ff := newFailFirst()
	be.setHook(ff.hook)
	live := newBackend(t, "live")
	dead := freePort(t, "127.0.0.1") // nothing listens there: connections are refused
	const host = "retry.test"
	cfg := gatewayYAML(ip, listener{name: "http", port: port}) + be.yaml() +
		trafficBackendYAML("half-dead", dead, live.port) + `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: retries, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: ["` + host + `"]
  rules:
  - name: policy
    matches: [{path: {type: PathPrefix, value: /policy}}]
    backendRefs: [` + ref("flaky") + `]
  - name: policy-post
    matches: [{path: {type: PathPrefix, value: /policy-post}}]
    backendRefs: [` + ref("flaky") + `]
  - name: own
    matches: [{path: {type: PathPrefix, value: /own}}]
    retry: {codes: [503], attempts: 3, backoff: 1ms}
    backendRefs: [` + ref("flaky") + `]
  - name: no-budget
    matches: [{path: {type: PathPrefix, value: /no-budget}}]
    backendRefs: [` + ref("flaky") + `]
  - name: half-dead
    matches: [{path: {type: PathPrefix, value: /half-dead}}]
    retry: {attempts: 2, backoff: 1ms}
    backendRefs: [` + ref("half-dead") + `]
  - name: half-dead-no-retry
    matches: [{path: {type: PathPrefix, value: /no-retry-half-dead}}]
    backendRefs: [` + ref("half-dead") + `]
` + trafficPolicy("retry-gateway-errors", "HTTPRoute", "retries", "policy", `retry:
  attempts: 3
  retryOn: [gateway-error]
  backoff: {baseInterval: 1ms}`) +
		trafficPolicy("retry-post", "HTTPRoute", "retries", "policy-post", `retry:
  attempts: 3
  retryOn: [gateway-error]
  allowNonIdempotent: true
  backoff: {baseInterval: 1ms}`) +
		trafficPolicy("retry-no-budget", "HTTPRoute", "retries", "no-budget", `retry:
  attempts: 3
  retryOn: [gateway-error]
  backoff: {baseInterval: 1ms}
  budget: {percent: 0, minRetryConcurrency: 0}`)
	g := startGateway(t, ip, cfg)
	addr := g.addr(port)

	tests := []struct {
		name     string
		method   string
		prefix   string
		fails    int
		want     int // status
		attempts int // seen by the upstream
	}{
		{"policy: 2 failures then success", "GET", "/policy", 2, 200, 3},
		{"policy: 3 failures then success", "GET", "/policy", 3, 200, 4},
		{"policy: more failures than attempts", "GET", "/policy", 5, 503, 4},
		{"policy: POST is not retried", "POST", "/policy", 1, 503, 1},
		{"policy allowing non-idempotent: POST retried", "POST", "/policy-post", 2, 200, 3},
		{"rule retry: 2 failures then success", "GET", "/own", 2, 200, 3},
		{"rule retry: 3 failures then success", "GET", "/own", 3, 200, 4},
		{"rule retry: more failures than attempts", "GET", "/own", 4, 503, 4},
		{"rule retry: POST is not retried", "POST", "/own", 1, 503, 1},
		{"rule retry: PUT is retried", "PUT", "/own", 1, 200, 2},
		{"budget 0% and no minimum: no retry", "GET", "/no-budget", 1, 503, 1},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			uri := fmt.Sprintf("%s/%d?fail=%d", tc.prefix, i, tc.fails)
			body := ""
			if tc.method != "GET" {
				body = "payload-" + fmt.Sprint(i)
			}
			r := retrySend(t, addr, host, tc.method, uri, body)
			if r.status != tc.want {
				t.Errorf("%s %s: status %d (%q), want %d", tc.method, uri, r.status, truncate(r.body, 200), tc.want)
			}
			if got := ff.seen(uri); got != tc.attempts {
				t.Errorf("%s %s: upstream saw %d attempts, want %d", tc.method, uri, got, tc.attempts)
			}
			if tc.want == 200 && body != "" {
				// The retried attempt carried the whole body again.
				n := 0
				for _, e := range be.requests() {
					if e.Path == fmt.Sprintf("%s/%d", tc.prefix, i) {
						n++
						if e.Body != body {
							t.Errorf("attempt %d carried body %q, want %q", n, e.Body, body)
						}
					}
				}
			}
		})
	}

	t.Run("connect failure retried on the other endpoint", func(t *testing.T) {
		// Control: without retry, round robin sends every other request
		// to the dead endpoint, so the dead endpoint is really picked.
		var failed int
		for i := 0; i < 10; i++ {
			r := retrySend(t, addr, host, "GET", fmt.Sprintf("/no-retry-half-dead/%d", i), "")
			if r.status == http.StatusServiceUnavailable {
				failed++
			} else if r.status != http.StatusOK {
				t.Fatalf("without retry: status %d (%q), want 200 or 503", r.status, truncate(r.body, 200))
			}
		}
		if failed == 0 {
			t.Fatalf("without retry no request of 10 failed: the dead endpoint was never picked")
		}
		for i := 0; i < 20; i++ {
			path := fmt.Sprintf("/half-dead/%d", i)
			r := retrySend(t, addr, host, "GET", path, "")
			if r.status != http.StatusOK {
				t.Fatalf("GET %s: status %d (%q), want 200 from the live endpoint", path, r.status, truncate(r.body, 200))
			}
		}
		if n := len(live.requests()); n != 20+10-failed {
			t.Errorf("live endpoint saw %d requests, want %d", n, 20+10-failed)
		}
	})
}
