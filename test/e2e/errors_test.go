package e2e

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"
)

// closingServer accepts connections, reads the request and closes the
// connection without answering.
func closingServer(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			buf := make([]byte, 4096)
			c.Read(buf)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().(*net.TCPAddr).Port
}

// TestUpstreamErrors covers what clients get when the backend cannot
// answer: nothing listening (503), a connection closed without an answer
// (502), a Backend without endpoints (rejected by the translator, so its
// backendRef is unresolved: 500) and a Service whose endpoints are all
// not ready (503); the same for a WebSocket upgrade, which takes the
// tunnel's path (one endpoint, no retries) to the same answers.
func TestUpstreamErrors(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	port := freePort(t, ip)
	deadPort := freePort(t, "127.0.0.1")
	closer := closingServer(t)
	ok := newBackend(t, "svc-ok")
	emptyBackend := `---
apiVersion: gateway.meshgate.dev/v1alpha1
kind: Backend
metadata:
  name: empty
  namespace: default
spec:
  endpoints: []
`
	services := fmt.Sprintf(`---
apiVersion: v1
kind: Service
metadata:
  name: notready
  namespace: default
spec:
  ports:
  - {name: http, port: 80, protocol: TCP}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: notready-1
  namespace: default
  labels: {kubernetes.io/service-name: notready}
addressType: IPv4
ports:
- {name: http, port: %d, protocol: TCP}
endpoints:
- addresses: ["127.0.0.1"]
  conditions: {ready: false}
---
apiVersion: v1
kind: Service
metadata:
  name: ready
  namespace: default
spec:
  ports:
  - {name: http, port: 80, protocol: TCP}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ready-1
  namespace: default
  labels: {kubernetes.io/service-name: ready}
addressType: IPv4
ports:
- {name: http, port: %d, protocol: TCP}
endpoints:
- addresses: ["127.0.0.1"]
  conditions: {ready: true}
`, ok.port, ok.port)
	cfg := gatewayYAML(ip, listener{name: "http", port: port}) +
		backendYAML("dead", deadPort) + backendYAML("closer", closer) + emptyBackend + services + `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: errors
  namespace: default
spec:
  parentRefs:
  - name: gw
  hostnames: ["errors.test"]
  rules:
  - matches: [{path: {type: PathPrefix, value: /dead}}]
    backendRefs: [` + ref("dead") + `]
  - matches: [{path: {type: PathPrefix, value: /closer}}]
    backendRefs: [` + ref("closer") + `]
  - matches: [{path: {type: PathPrefix, value: /empty}}]
    backendRefs: [` + ref("empty") + `]
  - matches: [{path: {type: PathPrefix, value: /notready}}]
    backendRefs: [{name: notready, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /ready}}]
    backendRefs: [{name: ready, port: 80}]
`
	// What `gateway validate` says about the same config.
	dir := t.TempDir()
	path := filepath.Join(dir, "errors.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command(gatewayBin, "validate", "--config", path).CombinedOutput()
	if !regexp.MustCompile(`REJECTED  Backend default/empty[^\n]*: spec\.endpoints`).Match(out) {
		t.Errorf("validate does not reject the Backend without endpoints:\n%s", out)
	}

	g := startGateway(t, ip, cfg)
	tests := []struct {
		name    string
		path    string
		upgrade bool
		want    int
	}{
		{"nothing listening", "/dead", false, http.StatusServiceUnavailable},
		{"connection closed without an answer", "/closer", false, http.StatusBadGateway},
		{"Backend without endpoints is rejected, ref unresolved", "/empty", false, http.StatusInternalServerError},
		{"Service with no ready endpoints", "/notready", false, http.StatusServiceUnavailable},
		{"Service with a ready endpoint", "/ready", false, http.StatusOK},
		{"upgrade, nothing listening", "/dead", true, http.StatusServiceUnavailable},
		{"upgrade, connection closed without an answer", "/closer", true, http.StatusBadGateway},
		{"upgrade, Service with no ready endpoints", "/notready", true, http.StatusServiceUnavailable},
	}
	upgrade := http.Header{
		"Connection":            {"Upgrade"},
		"Upgrade":               {"websocket"},
		"Sec-Websocket-Key":     {"dGhlIHNhbXBsZSBub25jZQ=="},
		"Sec-Websocket-Version": {"13"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := request{url: g.url(port, tc.path), host: "errors.test"}
			if tc.upgrade {
				req.header = upgrade
			}
			for i := 0; i < 3; i++ {
				r := do(t, defaultClient, req)
				if r.status != tc.want {
					t.Fatalf("GET %s (try %d): got %v, want %d", tc.path, i+1, r, tc.want)
				}
			}
		})
	}
}
