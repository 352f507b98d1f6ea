package e2e

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"testing"
)

// TestTrafficToxiproxy puts toxiproxy in front of one upstream and checks
// traffic policies against real network faults: a latency toxic past a
// TrafficPolicy request timeout gives 504; with a reset_peer toxic, a retry
// policy on reset sends each request that hit the reset to a second,
// healthy endpoint, so every request succeeds.
func TestTrafficToxiproxy(t *testing.T) {
	t.Parallel()
	tp := startToxiproxy(t)
	proxied := newBackend(t, "proxied")
	healthy := newBackend(t, "healthy")
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t, "127.0.0.1")))
	tp.call(t, http.MethodPost, "/proxies", map[string]any{
		"name": "traffic", "listen": listen, "upstream": net.JoinHostPort("127.0.0.1", strconv.Itoa(proxied.port)), "enabled": true,
	}, http.StatusCreated)
	_, ps, _ := net.SplitHostPort(listen)
	proxyPort, _ := strconv.Atoi(ps)

	ip := newLoopbackIP(t)
	port := freePort(t, ip)
	const host = "toxic.test"
	cfg := gatewayYAML(ip, listener{name: "http", port: port}) +
		trafficBackendYAML("through-proxy", proxyPort) +
		trafficBackendYAML("proxy-and-healthy", proxyPort, healthy.port) + `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: toxic, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: ["` + host + `"]
  rules:
  - name: latency
    matches: [{path: {type: PathPrefix, value: /latency}}]
    backendRefs: [` + ref("through-proxy") + `]
  - name: reset
    matches: [{path: {type: PathPrefix, value: /reset}}]
    backendRefs: [` + ref("proxy-and-healthy") + `]
  - name: reset-no-retry
    matches: [{path: {type: PathPrefix, value: /no-retry}}]
    backendRefs: [` + ref("proxy-and-healthy") + `]
` + trafficPolicy("latency-timeout", "HTTPRoute", "toxic", "latency", `timeouts: {request: 1s}`) +
		trafficPolicy("retry-reset", "HTTPRoute", "toxic", "reset", `retry:
  attempts: 2
  retryOn: [reset]
  backoff: {baseInterval: 1ms}`)
	g := startGateway(t, ip, cfg)
	c := newClient()
	defer c.CloseIdleConnections()
	// Requests under a toxic go on connections of their own, so the client
	// never silently resends one.
	oneShot := newClient()
	oneShot.Transport.(*http.Transport).DisableKeepAlives = true

	if r := get(t, g.url(port, "/latency/warm"), host); r.status != http.StatusOK || r.backend() != "proxied" {
		t.Fatalf("through the proxy without a toxic: %v, want 200 from proxied", r)
	}

	t.Run("latency past the request timeout", func(t *testing.T) {
		remove := tp.addToxic(t, "traffic", "latency", "latency", map[string]any{"latency": 3000})
		defer remove()
		for i := 0; i < 2; i++ {
			r := do(t, oneShot, request{url: g.url(port, fmt.Sprintf("/latency/%d", i)), host: host})
			if r.status != http.StatusGatewayTimeout {
				t.Fatalf("with 3 s latency and a 1 s request timeout: %v, want 504", r)
			}
		}
	})

	t.Run("reset_peer retried on the healthy endpoint", func(t *testing.T) {
		remove := tp.addToxic(t, "traffic", "reset", "reset_peer", map[string]any{"timeout": 0})
		defer remove()
		// Control: without retry, the requests sent to the proxy fail.
		failed := 0
		for i := 0; i < 6; i++ {
			r := do(t, oneShot, request{url: g.url(port, fmt.Sprintf("/no-retry/%d", i)), host: host})
			switch {
			case r.status == http.StatusBadGateway:
				failed++
			case r.status != http.StatusOK || r.backend() != "healthy":
				t.Fatalf("without retry: %v, want 502 or 200 from healthy", r)
			}
		}
		if failed == 0 {
			t.Fatalf("without retry none of 6 requests hit the reset: the proxied endpoint was never picked")
		}
		for i := 0; i < 10; i++ {
			path := fmt.Sprintf("/reset/%d", i)
			r := do(t, oneShot, request{url: g.url(port, path), host: host})
			if r.status != http.StatusOK || r.backend() != "healthy" || r.echo.Path != path {
				t.Fatalf("GET %s with reset_peer on the proxy: %v, want the healthy endpoint's echo", path, r)
			}
		}
	})
}
