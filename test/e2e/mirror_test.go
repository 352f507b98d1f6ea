package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
)

// TestRequestMirror copies requests to a mirror backend: the client gets the
// primary's answer, the mirror sees the same method, path and body; a
// GRPCRoute mirror gets the gRPC call over HTTP/2; a slow mirror does not
// slow the primary.
func TestRequestMirror(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	p := freePort(t, ip)
	primary, shadow := newBackend(t, "primary"), newH2CBackend(t, "shadow")
	// The mirror's answer to /slow waits until the test lets it go.
	release := make(chan struct{})
	shadow.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasPrefix(r.URL.Path, "/slow") {
			select {
			case <-release:
			case <-time.After(20 * time.Second):
			}
		}
		return false
	})
	grpcPort := startInteropServer(t)
	cfg := gatewayYAML(ip, listener{name: "http", port: p}) + primary.yaml() + shadow.yaml() + backendYAML("interop", grpcPort) + fmt.Sprintf(`---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: mirrored, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: [web.test]
  rules:
  - filters:
    - type: RequestMirror
      requestMirror: {backendRef: %s}
    backendRefs: [%s]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: grpc-mirrored, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: [grpc.test]
  rules:
  - filters:
    - type: RequestMirror
      requestMirror: {backendRef: %s}
    backendRefs: [%s]
`, ref("shadow"), ref("primary"), ref("shadow"), ref("interop"))
	g := startGateway(t, ip, cfg)

	sawShadow := func(method, path, body string) bool {
		return pollUntil(5*time.Second, func() bool {
			for _, e := range shadow.requests() {
				if e.Method == method && e.Path == path && e.Body == body {
					return true
				}
			}
			return false
		})
	}
	t.Run("HTTP request and body copied, primary answers", func(t *testing.T) {
		r := do(t, newClient(), request{method: "POST", url: g.url(p, "/orders"), host: "web.test", body: "order=42"})
		if r.status != http.StatusOK || r.backend() != "primary" {
			t.Fatalf("got %v", r)
		}
		if !sawShadow("POST", "/orders", "order=42") {
			t.Fatal("mirror backend never saw the copy")
		}
	})
	t.Run("gRPC call copied over HTTP/2", func(t *testing.T) {
		cc, err := grpc.NewClient(g.addr(p), grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("grpc.test"))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		if _, err := testgrpc.NewTestServiceClient(cc).EmptyCall(t.Context(), &testgrpc.Empty{}); err != nil {
			t.Fatalf("primary call: %v", err)
		}
		ok := pollUntil(5*time.Second, func() bool {
			for _, e := range shadow.requests() {
				if e.Path == "/grpc.testing.TestService/EmptyCall" && e.Proto == "HTTP/2.0" {
					return true
				}
			}
			return false
		})
		if !ok {
			t.Fatal("mirror backend never saw the gRPC copy over HTTP/2")
		}
	})
	t.Run("stuck mirror does not hold the primary", func(t *testing.T) {
		defer close(release)
		r := get(t, g.url(p, "/slow"), "web.test")
		if r.status != http.StatusOK || r.backend() != "primary" {
			t.Fatalf("got %v while the mirror was stuck", r)
		}
		if !sawShadow("GET", "/slow", "") {
			t.Fatal("mirror never got the copy")
		}
	})
}
