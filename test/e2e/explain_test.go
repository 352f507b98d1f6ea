package e2e

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// explainConfig has a route "faulty" (a 30% abort FaultInjection) limited
// by a TrafficPolicy rate limit.
func explainConfig(ip string, port int, be *backend) string {
	return gatewayYAML(ip, listener{name: "http", port: port}) + be.yaml() +
		faultYAML("abort-some", `abort: {httpStatus: 503, percentage: "30"}`) + `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: faulty, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: [faulty.test]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    filters: ` + faultRef("abort-some") + `
    backendRefs: [` + ref(be.name) + `]
` + trafficPolicy("per-client", "HTTPRoute", "faulty", "", `rateLimit:
  local: [{key: ClientIP, requests: 5, unit: Minute}]`)
}

// TestExplainCLI covers `gateway explain` against a config file and
// against a running gateway: the listener, route, rule, match, fault
// percentages, rate limit and what each does, the backend and its
// endpoint (with its live state from the running gateway), and a 404
// explained as no_route.
func TestExplainCLI(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	port := freePort(t, ip)
	be := newBackend(t, "app")
	cfg := explainConfig(ip, port, be)
	path := writeTemp(t, "gw.yaml", cfg)
	endpoint := "127.0.0.1:" + strconv.Itoa(be.port)

	common := []string{"--host", "faulty.test", "--path", "/api/x", "--method", "POST", "--header", "x-user=u1"}
	code, out := runCLI(t, append([]string{"explain", "--config", path}, common...)...)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, want := range []string{
		"request:    POST faulty.test/api/x [X-User: u1]",
		"listener:   " + ip + ":" + strconv.Itoa(port) + " (HTTP), Gateway listener default/gw/http",
		"route:      default/faulty rule 0 match 0",
		"match:      PathPrefix /api",
		"policies:   default/per-client",
		"fault:      default/abort-some: abort 503 to 30% of requests",
		"5 per 1m0s by ClientIP",
		"429 rate_limited once",
		"503 fault_abort: 30% of requests answered without forwarding",
		"backend:    backend/default/app weight 1 (100%)",
		"endpoint: " + endpoint,
		"forward 100% of requests to backend/default/app",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	code, out = runCLI(t, "explain", "--config", path, "--host", "other.test", "--path", "/")
	if code != 0 || !strings.Contains(out, "404 no_route: default/gw/http accepts the host, but no route serves host \"other.test\"") {
		t.Fatalf("no route: exit %d:\n%s", code, out)
	}

	g := startGateway(t, ip, cfg)
	code, out = runCLI(t, append([]string{"explain", "--against", g.adminAddr}, common...)...)
	if code != 0 {
		t.Fatalf("--against: exit %d:\n%s", code, out)
	}
	for _, want := range []string{"route:      default/faulty rule 0 match 0", "fault:      default/abort-some",
		"now: 1 of 1 endpoint(s) in rotation, 0 ejected", "running gateway says: default/faulty rule 0 serves it"} {
		if !strings.Contains(out, want) {
			t.Errorf("--against output lacks %q:\n%s", want, out)
		}
	}
}

// TestDebugHeader covers --debug-header-from: a trusted client sending
// x-meshgate-debug: 1 gets the route, rule, backend, endpoint, retries and
// a typed reason back (none, no_route, circuit_open, rate_limited,
// upstream_timeout with its stage); the backend never sees the request
// header; an untrusted client never gets the response header.
func TestDebugHeader(t *testing.T) {
	t.Parallel()
	app, guarded := newBackend(t, "app"), newBackend(t, "guarded")
	routes := func(ip string, port int) string {
		return gatewayYAML(ip, listener{name: "http", port: port}) + app.yaml() + guarded.yaml() +
			simpleRoute("app", []string{"app.test"}, "app") +
			simpleRoute("breaker", []string{"breaker.test"}, "guarded") +
			simpleRoute("limited", []string{"limited.test"}, "app") + `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: slow, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: [slow.test]
  rules:
  - timeouts: {request: 300ms}
    backendRefs: [` + ref("app") + `]
` + trafficPolicy("cap", "Backend", "guarded", "", `circuitBreaker: {maxRequests: 1}`) +
			trafficPolicy("one-per-minute", "HTTPRoute", "limited", "", `rateLimit:
  local: [{key: Route, requests: 1, unit: Minute}]`)
	}
	ipT, ipU := newLoopbackIP(t), newLoopbackIP(t)
	portT, portU := freePort(t, ipT), freePort(t, ipU)
	trusted := startGateway(t, ipT, routes(ipT, portT), "--debug-header-from", "127.0.0.1/32")
	untrusted := startGateway(t, ipU, routes(ipU, portU), "--debug-header-from", "127.0.0.2/32")
	c := newClient()
	defer c.CloseIdleConnections()
	dbg := http.Header{"X-Meshgate-Debug": {"1"}}
	ask := func(g *gateway, port int, host, path string) result {
		t.Helper()
		return do(t, c, request{url: g.url(port, path), host: host, header: dbg})
	}
	appEP := "127.0.0.1:" + strconv.Itoa(app.port)

	t.Run("served", func(t *testing.T) {
		r := ask(trusted, portT, "app.test", "/hello")
		want := "listener=default/gw/http route=default/app rule=0 backend=backend/default/app endpoint=" + appEP + " retries=0 reason=none"
		if r.status != 200 || r.header.Get("X-Meshgate-Debug") != want {
			t.Fatalf("got %s, debug %q; want %q", r, r.header.Get("X-Meshgate-Debug"), want)
		}
		if r.echo == nil || r.echo.Header.Get("X-Meshgate-Debug") != "" {
			t.Fatalf("the backend saw the debug request header: %+v", r.echo)
		}
	})

	t.Run("untrusted client", func(t *testing.T) {
		r := ask(untrusted, portU, "app.test", "/hello")
		if r.status != 200 || r.header.Get("X-Meshgate-Debug") != "" {
			t.Fatalf("untrusted client got %s, debug %q", r, r.header.Get("X-Meshgate-Debug"))
		}
		if r.echo == nil || r.echo.Header.Get("X-Meshgate-Debug") != "" {
			t.Fatalf("the backend saw the debug request header: %+v", r.echo)
		}
		if r := ask(untrusted, portU, "nothing.test", "/"); r.status != 404 || r.header.Get("X-Meshgate-Debug") != "" {
			t.Fatalf("untrusted 404 got debug %q", r.header.Get("X-Meshgate-Debug"))
		}
	})

	t.Run("not asked", func(t *testing.T) {
		r := do(t, c, request{url: trusted.url(portT, "/"), host: "app.test"})
		if r.header.Get("X-Meshgate-Debug") != "" {
			t.Fatalf("debug header without asking: %q", r.header.Get("X-Meshgate-Debug"))
		}
	})

	t.Run("no route", func(t *testing.T) {
		r := ask(trusted, portT, "nothing.test", "/")
		if d := r.header.Get("X-Meshgate-Debug"); r.status != 404 || !strings.Contains(d, "route=- rule=-") || !strings.HasSuffix(d, "reason=no_route") {
			t.Fatalf("got %s, debug %q", r, d)
		}
	})

	t.Run("rate limited", func(t *testing.T) {
		ask(trusted, portT, "limited.test", "/")
		r := ask(trusted, portT, "limited.test", "/")
		if d := r.header.Get("X-Meshgate-Debug"); r.status != 429 || !strings.Contains(d, "route=default/limited rule=0") || !strings.HasSuffix(d, "reason=rate_limited") {
			t.Fatalf("got %s, debug %q", r, d)
		}
	})

	t.Run("upstream timeout", func(t *testing.T) {
		r := ask(trusted, portT, "slow.test", "/?delay=3s")
		d := r.header.Get("X-Meshgate-Debug")
		if r.status != 504 || !strings.Contains(d, "route=default/slow rule=0 backend=backend/default/app endpoint="+appEP) ||
			!strings.HasSuffix(d, "reason=upstream_timeout stage=first-byte") {
			t.Fatalf("got %s, debug %q", r, d)
		}
	})

	t.Run("breaker open", func(t *testing.T) {
		held := make(chan result, 1)
		go func() {
			r, _ := tryDo(c, request{url: trusted.url(portT, "/held?delay=3s"), host: "breaker.test"})
			held <- r
		}()
		if !pollUntil(5*time.Second, func() bool { return guarded.sawPath("/held") }) {
			t.Fatal("the held request never reached the backend")
		}
		r := ask(trusted, portT, "breaker.test", "/second")
		d := r.header.Get("X-Meshgate-Debug")
		if r.status != 503 || !strings.Contains(d, "route=default/breaker rule=0 backend=backend/default/guarded") || !strings.HasSuffix(d, "reason=circuit_open") {
			t.Fatalf("got %s, debug %q", r, d)
		}
		<-held
	})
}
