package e2e

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/interop"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
)

// tlsBackendYAML is a Backend reached over TLS, verified against the CA in
// Secret caSecret (whose ca.crt is ca's certificate).
func tlsBackendYAML(name string, port int, appProtocol, serverName, caSecret string, ca testCert) string {
	ap := ""
	if appProtocol != "" {
		ap = "  appProtocol: " + appProtocol + "\n"
	}
	return fmt.Sprintf(`---
apiVersion: gateway.meshgate.dev/v1alpha1
kind: Backend
metadata:
  name: %s
  namespace: default
spec:
  endpoints:
  - address: 127.0.0.1
    port: %d
%s  tls:
    serverName: %s
    caCertificateRefs: [{name: %s}]
---
apiVersion: v1
kind: Secret
metadata:
  name: %s
  namespace: default
stringData:
  ca.crt: |
%s
`, name, port, ap, serverName, caSecret, caSecret, indent(ca.certPEM, 4))
}

// TestUpstreamTLS sends traffic to backends over TLS: HTTP/1.1 with ALPN
// http/1.1, gRPC over HTTP/2 with ALPN h2, both verifying the backend's
// certificate against the Backend's CA; a certificate the CA did not sign is
// refused with 503.
func TestUpstreamTLS(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	p := freePort(t, ip)

	beCert := newTestCert(t, "backend.test")
	kp, err := tls.X509KeyPair([]byte(beCert.certPEM), []byte(beCert.keyPEM))
	if err != nil {
		t.Fatal(err)
	}
	h1 := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "tls=%v alpn=%q sni=%q", r.TLS != nil, r.TLS.NegotiatedProtocol, r.TLS.ServerName)
	}))
	h1.TLS = &tls.Config{Certificates: []tls.Certificate{kp}, NextProtos: []string{"http/1.1"}}
	h1.StartTLS()
	t.Cleanup(h1.Close)
	h1Port := h1.Listener.Addr().(*net.TCPAddr).Port

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.Creds(credentials.NewServerTLSFromCert(&kp)))
	testgrpc.RegisterTestServiceServer(gs, interop.NewTestServer())
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)
	grpcPort := ln.Addr().(*net.TCPAddr).Port

	stranger := newTestCert(t, "backend.test") // same name, other key and CA
	cfg := gatewayYAML(ip, listener{name: "http", port: p}) +
		tlsBackendYAML("h1tls", h1Port, "", "backend.test", "backend-ca", beCert) +
		tlsBackendYAML("grpctls", grpcPort, "", "backend.test", "backend-ca2", beCert) +
		tlsBackendYAML("untrusted", h1Port, "", "backend.test", "stranger-ca", stranger) +
		simpleRoute("h1", []string{"h1.test"}, "h1tls") +
		simpleRoute("untrusted", []string{"untrusted.test"}, "untrusted") +
		grpcRoute("grpc", []string{"grpc.test"}, "grpctls")
	g := startGateway(t, ip, cfg)

	t.Run("HTTP/1.1 over TLS", func(t *testing.T) {
		r := get(t, g.url(p, "/"), "h1.test")
		if r.status != http.StatusOK || r.body != `tls=true alpn="http/1.1" sni="backend.test"` {
			t.Fatalf("got %v", r)
		}
	})
	t.Run("gRPC over TLS with ALPN h2", func(t *testing.T) {
		cc, err := grpc.NewClient(g.addr(p), grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("grpc.test"))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		tc := testgrpc.NewTestServiceClient(cc)
		for _, c := range []struct {
			name string
			run  func()
		}{
			{"large_unary", func() { interop.DoLargeUnaryCall(t.Context(), tc) }},
			{"ping_pong", func() { interop.DoPingPong(t.Context(), tc) }},
			{"custom_metadata", func() { interop.DoCustomMetadata(t.Context(), tc) }},
		} {
			t.Run(c.name, func(t *testing.T) { runInterop(t, c.run) })
		}
	})
	t.Run("certificate from another CA is refused", func(t *testing.T) {
		r := get(t, g.url(p, "/"), "untrusted.test")
		if r.status != http.StatusServiceUnavailable {
			t.Fatalf("got %v, want 503", r)
		}
		ok := pollUntil(5*time.Second, func() bool {
			return g.findLog("request failed", func(m map[string]any) bool {
				return m["host"] == "untrusted.test" && m["reason"] == "upstream_connect_failure"
			}) != nil
		})
		if !ok {
			t.Error("no log line saying the upstream connection failed")
		}
	})
}
