package e2e

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// waitHealthy polls the admin /healthz until it answers 200 (at most 15 s).
func (g *gateway) waitHealthy() {
	g.t.Helper()
	c := &http.Client{Timeout: time.Second}
	for i := 0; i < 300; i++ {
		if !g.running() {
			g.t.Fatalf("gateway exited: %v", g.exitErr)
		}
		if resp, err := c.Get("http://" + g.adminAddr + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	g.t.Fatal("admin /healthz not 200 within 15 s")
}

// TestReadiness checks /ready stays 503 while nothing is served: the first
// file does not parse, or the only listener's port is taken; and that it
// turns 200 once a config is applied and serves (the taken port is retried
// in the background and bound once freed).
func TestReadiness(t *testing.T) {
	t.Parallel()

	t.Run("unparsable first config", func(t *testing.T) {
		t.Parallel()
		ip := newLoopbackIP(t)
		port := freePort(t, ip)
		be := newBackend(t, "ready")
		good := gatewayYAML(ip, listener{name: "http", port: port}) + be.yaml() + simpleRoute("all", nil, "ready")
		g := launchGateway(t, ip, good+"---\nkind: [unclosed\n")
		g.waitHealthy()
		g.waitLogCount("config rejected; previous config stays in force", 1)
		if st := g.adminGet("/ready"); st != http.StatusServiceUnavailable {
			t.Fatalf("/ready %d with no config applied, want 503", st)
		}
		g.reload(good)
		g.waitReady()
		if r := get(t, g.url(port, "/"), "x"); r.backend() != "ready" {
			t.Fatalf("after the fix: %v", r)
		}
	})

	t.Run("listener port taken", func(t *testing.T) {
		t.Parallel()
		ip := newLoopbackIP(t)
		blocker, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			t.Fatal(err)
		}
		defer blocker.Close()
		port := blocker.Addr().(*net.TCPAddr).Port
		be := newBackend(t, "ready")
		cfg := gatewayYAML(ip, listener{name: "http", port: port}) + be.yaml() + simpleRoute("all", nil, "ready")
		g := launchGateway(t, ip, cfg)
		g.waitHealthy()
		g.waitLogCount("listener not bound; the rest of the config is applied, retrying in the background", 1)
		if st := g.adminGet("/ready"); st != http.StatusServiceUnavailable {
			t.Fatalf("/ready %d while the only listener port is taken, want 503", st)
		}
		if st := g.adminGet("/healthz"); st != http.StatusOK {
			t.Fatalf("/healthz %d, want 200", st)
		}
		// Free the port: the bind is retried in the background.
		blocker.Close()
		g.waitReady()
		if r := get(t, g.url(port, "/"), "x"); r.backend() != "ready" {
			t.Fatalf("after the port was freed: %v", r)
		}
	})
}

// TestProxying covers request bodies (sized and chunked), hop-by-hop
// headers in responses, and an h2c backend.
func TestProxying(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	port := freePort(t, ip)
	be := newBackend(t, "proxy")
	h2c := newH2CBackend(t, "h2c-backend")
	cfg := gatewayYAML(ip, listener{name: "http", port: port}) + be.yaml() + fmt.Sprintf(`---
apiVersion: gateway.meshgate.dev/v1alpha1
kind: Backend
metadata:
  name: h2c-backend
  namespace: default
spec:
  appProtocol: kubernetes.io/h2c
  endpoints:
  - address: 127.0.0.1
    port: %d
`, h2c.port) + `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: proxy
  namespace: default
spec:
  parentRefs: [{name: gw}]
  rules:
  - backendRefs: [` + ref("proxy") + `]
  - matches: [{path: {type: PathPrefix, value: /h2c}}]
    backendRefs: [` + ref("h2c-backend") + `]
`
	g := startGateway(t, ip, cfg)
	addr := g.addr(port)
	be.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/resp-hop" {
			w.Header().Set("Connection", "X-Resp-Hop")
			w.Header().Set("X-Resp-Hop", "secret")
			w.Header().Set("Keep-Alive", "timeout=5")
			w.Header().Set("X-Resp-Kept", "yes")
		}
		return false
	})

	t.Run("POST with Content-Length", func(t *testing.T) {
		body := strings.Repeat("0123456789", 10000)
		r := do(t, defaultClient, request{method: "POST", url: g.url(port, "/post"), host: "x", body: body})
		if r.echo == nil || r.echo.Body != body || r.echo.ContentLength != int64(len(body)) {
			t.Fatalf("backend got %v", r)
		}
	})

	t.Run("chunked POST", func(t *testing.T) {
		rr := rawExchange(t, addr, "POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"+
			"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", false)
		if rr.echo == nil || rr.echo.Body != "hello world" {
			t.Fatalf("status %d body %q", rr.resp.StatusCode, rr.body)
		}
	})

	t.Run("POST without body", func(t *testing.T) {
		rr := rawExchange(t, addr, "POST /empty HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", false)
		if rr.echo == nil || rr.echo.Body != "" || rr.echo.Method != "POST" {
			t.Fatalf("status %d body %q", rr.resp.StatusCode, rr.body)
		}
	})

	t.Run("hop-by-hop response headers not forwarded", func(t *testing.T) {
		rr := rawExchange(t, addr, "GET /resp-hop HTTP/1.1\r\nHost: x\r\n\r\n", false)
		if rr.resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", rr.resp.StatusCode)
		}
		h := rr.resp.Header
		for _, k := range []string{"X-Resp-Hop", "Keep-Alive"} {
			if v, ok := h[k]; ok {
				t.Errorf("client received hop-by-hop %s: %q", k, v)
			}
		}
		if c := h.Get("Connection"); strings.Contains(strings.ToLower(c), "x-resp-hop") {
			t.Errorf("client received the backend's Connection: %q", c)
		}
		if h.Get("X-Resp-Kept") != "yes" {
			t.Errorf("end-to-end response header lost: %v", h)
		}
	})

	t.Run("h2c backend", func(t *testing.T) {
		for i := 0; i < 3; i++ {
			r := do(t, defaultClient, request{method: "POST", url: g.url(port, "/h2c/x?y=1"), host: "h2c.test", body: "ping"})
			if r.status != http.StatusOK || r.backend() != "h2c-backend" {
				t.Fatalf("got %v", r)
			}
			e := r.echo
			if e.Proto != "HTTP/2.0" || e.Path != "/h2c/x" || e.RawQuery != "y=1" || e.Host != "h2c.test" || e.Body != "ping" {
				t.Fatalf("h2c backend saw proto %s path %s query %s host %s body %q", e.Proto, e.Path, e.RawQuery, e.Host, e.Body)
			}
		}
	})
}
