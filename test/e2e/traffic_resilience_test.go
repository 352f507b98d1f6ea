package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestTrafficOutlierDetection covers TrafficPolicy outlierDetection on a
// Backend of two endpoints, one of which answers 500 to everything: after
// consecutive5xx (3) failures in a row it is ejected and every request goes
// to the good endpoint; once baseEjectionTime (1 s) has passed it gets
// requests again. With retries, each attempt's own answer is what counts:
// the endpoint that answers a retry is not blamed for the failure before it.
func TestTrafficOutlierDetection(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	port := freePort(t, ip)
	good, bad := newBackend(t, "good"), newBackend(t, "bad")
	failing := func(status int) func(w http.ResponseWriter, r *http.Request) bool {
		return func(w http.ResponseWriter, r *http.Request) bool {
			w.Header().Set("X-Backend", "bad")
			http.Error(w, "always failing", status)
			return true
		}
	}
	bad.setHook(failing(http.StatusInternalServerError))
	good2, bad2 := newBackend(t, "good2"), newBackend(t, "bad2")
	bad2.setHook(failing(http.StatusServiceUnavailable))
	const host, retryHost = "outlier.test", "outlier-retry.test"
	cfg := gatewayYAML(ip, listener{name: "http", port: port}) +
		trafficBackendYAML("pair", good.port, bad.port) + simpleRoute("outlier", []string{host}, "pair") +
		trafficPolicy("eject", "Backend", "pair", "", `outlierDetection:
  consecutive5xx: 3
  baseEjectionTime: 1s
  maxEjectionTime: 10s
  maxEjectionPercent: 50`) +
		trafficBackendYAML("retried-pair", bad2.port, good2.port) + `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: outlier-retry, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: ["` + retryHost + `"]
  rules:
  - retry: {codes: [503], attempts: 1, backoff: 1ms}
    backendRefs: [` + ref("retried-pair") + `]
` + trafficPolicy("eject-any", "Backend", "retried-pair", "", `outlierDetection:
  consecutive5xx: 2
  baseEjectionTime: 30s
  maxEjectionPercent: 100`)
	g := startGateway(t, ip, cfg)
	c := newClient()
	defer c.CloseIdleConnections()

	t.Run("retried requests blame only the failing endpoint", func(t *testing.T) {
		// Every request whose first attempt fails on bad2 is answered by
		// good2 on the retry; bad2 is ejected after 2 failures, good2
		// never is, so all requests succeed.
		for i := 0; i < 20; i++ {
			r := do(t, c, request{url: g.url(port, fmt.Sprintf("/r/%d", i)), host: retryHost})
			if r.status != http.StatusOK || r.backend() != "good2" {
				t.Fatalf("request %d: %v, want 200 from good2", i+1, r)
			}
		}
		if n := len(bad2.requests()); n != 2 {
			t.Errorf("bad2 saw %d requests, want 2 (ejected after consecutive5xx: 2)", n)
		}
	})
	// from names the endpoint that answered.
	from := func(r result) string {
		switch {
		case r.status == http.StatusOK && r.backend() == "good":
			return "good"
		case r.status == http.StatusInternalServerError && r.header.Get("X-Backend") == "bad":
			return "bad"
		}
		t.Fatalf("unexpected answer %v", r)
		return ""
	}
	send := func() string { return from(do(t, c, request{url: g.url(port, "/"), host: host})) }

	// Round robin alternates, so the bad endpoint fails 3 times within
	// the first 6 requests or so. thirdSent is when the request that got
	// the third failure was sent: the ejection began after it.
	fails := 0
	var thirdSent time.Time
	for i := 0; i < 20 && fails < 3; i++ {
		sent := time.Now()
		if send() == "bad" {
			fails++
			thirdSent = sent
		}
	}
	if fails < 3 {
		t.Fatalf("bad endpoint answered %d of 20 requests, want at least 3", fails)
	}
	// The ejection happens as the third failure is reported, which may
	// trail the client's receipt of the answer by a moment: wait until two
	// requests in a row went to the good endpoint (bounded), then nothing
	// may reach the bad one until its ejection ends.
	streak := 0
	for i := 0; i < 10 && streak < 2; i++ {
		if send() == "good" {
			streak++
		} else {
			streak = 0
		}
	}
	if streak < 2 {
		t.Fatalf("the bad endpoint still gets requests after %d failures in a row", fails)
	}
	for i := 0; i < 20; i++ {
		if got := send(); got != "good" {
			if time.Since(thirdSent) >= time.Second {
				break // the 1 s ejection may rightly have ended already
			}
			t.Fatalf("request %d after the ejection went to %s, want good", i+1, got)
		}
	}
	// After baseEjectionTime the bad endpoint is tried again, and not
	// before (a lower bound: the ejection began after thirdSent).
	back := pollUntil(5*time.Second, func() bool {
		if send() != "bad" {
			return false
		}
		// Measured after the answer, which came after the pick.
		if time.Since(thirdSent) < time.Second {
			t.Fatalf("the bad endpoint got a request less than 1 s after its ejection")
		}
		return true
	})
	if !back {
		t.Fatalf("the bad endpoint got no request within 5 s after its 1 s ejection")
	}
}

// TestTrafficHealthCheck covers TrafficPolicy active HTTP health checks: when
// an endpoint's health path answers 503 it stops getting traffic within a
// bounded wait; when it answers 200 again, traffic comes back.
func TestTrafficHealthCheck(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	port := freePort(t, ip)
	one, two := newBackend(t, "one"), newBackend(t, "two")
	var twoStatus atomic.Int32
	twoStatus.Store(http.StatusOK)
	var probes atomic.Int32
	healthz := func(status *atomic.Int32) func(w http.ResponseWriter, r *http.Request) bool {
		return func(w http.ResponseWriter, r *http.Request) bool {
			if r.URL.Path != "/healthz" {
				return false
			}
			probes.Add(1)
			code := http.StatusOK
			if status != nil {
				code = int(status.Load())
			}
			w.WriteHeader(code)
			return true
		}
	}
	one.setHook(healthz(nil))
	two.setHook(healthz(&twoStatus))
	const host = "health.test"
	cfg := gatewayYAML(ip, listener{name: "http", port: port}) +
		trafficBackendYAML("checked", one.port, two.port) + simpleRoute("health", []string{host}, "checked") +
		trafficPolicy("probe", "Backend", "checked", "", `healthCheck:
  type: HTTP
  interval: 100ms
  timeout: 1s
  unhealthyThreshold: 2
  healthyThreshold: 1
  http: {path: /healthz}`)
	g := startGateway(t, ip, cfg)
	c := newClient()
	defer c.CloseIdleConnections()
	send := func() string {
		r := do(t, c, request{url: g.url(port, "/app"), host: host})
		if r.status != http.StatusOK {
			t.Fatalf("GET /app: %v, want 200", r)
		}
		return r.backend()
	}
	if !pollUntil(5*time.Second, func() bool { return probes.Load() >= 4 }) {
		t.Fatalf("endpoints got %d health probes within 5 s", probes.Load())
	}
	both := countBy(getN(t, c, 10, g.url(port, "/app"), host, nil))
	if both["one"] == 0 || both["two"] == 0 {
		t.Fatalf("both endpoints healthy: %v, want traffic on both", both)
	}

	twoStatus.Store(http.StatusServiceUnavailable)
	// Out of rotation once two probes in a row failed: wait (bounded)
	// until ten requests in a row went to one, then none may go to two.
	streak := 0
	ok := pollUntil(5*time.Second, func() bool {
		if send() == "one" {
			streak++
		} else {
			streak = 0
		}
		return streak >= 10
	})
	if !ok {
		t.Fatalf("endpoint two still gets traffic 5 s after its health check started failing")
	}
	if got := countBy(getN(t, c, 30, g.url(port, "/app"), host, nil)); got["one"] != 30 {
		t.Fatalf("with two failing its health check: %v, want all 30 on one", got)
	}

	twoStatus.Store(http.StatusOK)
	if !pollUntil(5*time.Second, func() bool { return send() == "two" }) {
		t.Fatalf("endpoint two got no traffic within 5 s after its health check passed again")
	}
}

// TestTrafficCircuitBreaker covers TrafficPolicy circuitBreaker maxRequests:
// with 2 requests held by a slow upstream, 3 more concurrent ones are
// answered 503 at once with x-meshgate-overloaded: circuit-breaker, without
// reaching the upstream; once the held ones end, requests succeed again.
func TestTrafficCircuitBreaker(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	port := freePort(t, ip)
	be := newBackend(t, "guarded")
	release := make(chan struct{})
	var held atomic.Int32
	be.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasPrefix(r.URL.Path, "/hold") {
			return false
		}
		held.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		case <-time.After(15 * time.Second):
		}
		return false
	})
	const host = "breaker.test"
	cfg := gatewayYAML(ip, listener{name: "http", port: port}) + be.yaml() +
		simpleRoute("breaker", []string{host}, "guarded") +
		trafficPolicy("cap", "Backend", "guarded", "", `circuitBreaker: {maxRequests: 2}`)
	g := startGateway(t, ip, cfg)
	c := newClient()
	defer c.CloseIdleConnections()

	// Two requests fill the breaker; the next three find it full.
	type answer struct {
		r   result
		err error
	}
	results := make(chan answer, 5)
	var wg sync.WaitGroup
	launch := func(i int) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := tryDo(c, request{url: g.url(port, fmt.Sprintf("/hold/%d", i)), host: host})
			results <- answer{r, err}
		}()
	}
	for i := 0; i < 2; i++ {
		launch(i)
	}
	if !pollUntil(5*time.Second, func() bool { return held.Load() == 2 }) {
		close(release)
		t.Fatalf("upstream holds %d requests after 5 s, want 2", held.Load())
	}
	for i := 2; i < 5; i++ {
		launch(i)
	}
	var rejected []result
	for len(rejected) < 3 {
		select {
		case a := <-results:
			if a.err != nil || a.r.status != http.StatusServiceUnavailable {
				close(release)
				t.Fatalf("while 2 requests are held: %v %v, want 503", a.r, a.err)
			}
			rejected = append(rejected, a.r)
		case <-time.After(10 * time.Second):
			close(release)
			t.Fatalf("only %d of 3 requests over the cap answered within 10 s", len(rejected))
		}
	}
	for _, r := range rejected {
		if got := r.header.Get("X-Meshgate-Overloaded"); got != "circuit-breaker" {
			t.Errorf("503 over the cap has x-meshgate-overloaded %q, want circuit-breaker", got)
		}
	}
	if n := held.Load(); n != 2 {
		t.Errorf("upstream saw %d held requests, want 2 (requests over the cap must not be forwarded)", n)
	}
	close(release)
	wg.Wait()
	close(results)
	for a := range results {
		if a.err != nil || a.r.status != http.StatusOK || a.r.backend() != "guarded" {
			t.Errorf("held request after release: %v %v, want 200", a.r, a.err)
		}
	}
	// The breaker is empty again.
	for i := 0; i < 5; i++ {
		if r := do(t, c, request{url: g.url(port, fmt.Sprintf("/after/%d", i)), host: host}); r.status != http.StatusOK {
			t.Fatalf("after the held requests ended: %v, want 200", r)
		}
	}
}
