package e2e

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	jose "github.com/go-jose/go-jose/v4"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// TestSecurityClaimRouting: a JWT policy attached to an HTTPRoute copies
// the tier claim to x-tier, and the request is matched again so the
// route's header match picks the backend. A client's own x-tier never
// counts, with or without a token.
func TestSecurityClaimRouting(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	p := freePort(t, ip)
	gold, free := newBackend(t, "gold"), newBackend(t, "free")
	k := newJWTKey(t, "k1")
	set, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{k.public()}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := gatewayYAML(ip, listener{name: "http", port: p}) + gold.yaml() + free.yaml() + fmt.Sprintf(`---
apiVersion: v1
kind: Secret
metadata: {name: idp-keys, namespace: default}
stringData:
  jwks: '%s'
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: tiers, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /}, headers: [{name: x-tier, value: gold}]}]
    backendRefs: [%s]
  - backendRefs: [%s]
---
apiVersion: gateway.meshgate.dev/v1alpha1
kind: SecurityPolicy
metadata: {name: tiers, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: tiers}]
  jwt:
    providers:
    - name: corp
      issuer: https://issuer.test
      audiences: [web]
      jwksSecretRef: {name: idp-keys}
      claimToHeaders: [{claim: tier, header: x-tier}]
`, set, ref("gold"), ref("free"))
	g := startGateway(t, ip, cfg)

	send := func(t *testing.T, h map[string]string) result {
		t.Helper()
		hdr := http.Header{}
		for k, v := range h {
			hdr.Set(k, v)
		}
		return do(t, defaultClient, request{method: "GET", url: g.url(p, "/account"), header: hdr})
	}
	bearer := func(tier string) string { return "Bearer " + k.sign(t, map[string]any{"tier": tier}) }
	tests := []struct {
		name        string
		header      map[string]string
		wantStatus  int
		wantBackend string
	}{
		{"gold token", map[string]string{"Authorization": bearer("gold")}, 200, "gold"},
		{"free token", map[string]string{"Authorization": bearer("free")}, 200, "free"},
		{"no token", nil, 401, ""},
		{"client's own header without token", map[string]string{"X-Tier": "gold"}, 401, ""},
		{"free token and spoofed header", map[string]string{"Authorization": bearer("free"), "X-Tier": "gold"}, 200, "free"},
		{"gold token and spoofed header", map[string]string{"Authorization": bearer("gold"), "X-Tier": "free"}, 200, "gold"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := send(t, tc.header)
			if r.status != tc.wantStatus {
				t.Fatalf("got %v, want %d", r, tc.wantStatus)
			}
			if tc.wantBackend == "" {
				return
			}
			if r.backend() != tc.wantBackend {
				t.Fatalf("served by %q, want %q", r.backend(), tc.wantBackend)
			}
			// The backend sees the claim, never the client's copy.
			if got := r.echo.Header.Values("X-Tier"); len(got) != 1 || got[0] != tc.wantBackend {
				t.Fatalf("backend saw x-tier %q", got)
			}
		})
	}
	if len(gold.requests()) != 2 {
		t.Fatalf("gold backend got %d requests, want 2 (only gold tokens)", len(gold.requests()))
	}
	if waitLog(g, "request denied", func(m map[string]any) bool {
		return m["policy"] == "default/tiers" && m["section"] == "jwt" && m["reason"] == "auth_invalid_jwt"
	}) == nil {
		t.Fatal("no denial log naming the policy and section")
	}
	code, body := g.adminBody("/metrics")
	want := `meshgate_auth_denied_requests_total{policy="default/tiers",reason="auth_invalid_jwt",section="jwt"} 2`
	if code != 200 || !strings.Contains(body, want) {
		t.Fatalf("GET /metrics %d lacks %s", code, want)
	}
}

// TestSecurityExtAuthTLS asks authorization services over TLS (a Backend
// with spec.tls): gRPC ext_authz and HTTP. A service whose certificate the
// Backend's CA did not sign is unavailable: 403 by default, let through
// with failOpen, and the log says why.
func TestSecurityExtAuthTLS(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	p := freePort(t, ip)
	be := newBackend(t, "be")
	cert := newTestCert(t, "authz.test")
	stranger := newTestCert(t, "authz.test") // same name, another CA
	kp, err := tls.X509KeyPair([]byte(cert.certPEM), []byte(cert.keyPEM))
	if err != nil {
		t.Fatal(err)
	}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.Creds(credentials.NewServerTLSFromCert(&kp)))
	authv3.RegisterAuthorizationServer(gs, extAuthz{})
	go gs.Serve(gl)
	t.Cleanup(gs.Stop)
	grpcPort := gl.Addr().(*net.TCPAddr).Port
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Authz") != "allow" {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		w.Header().Set("X-Auth-User", fmt.Sprintf("carol tls=%v", r.TLS != nil))
	}))
	hs.TLS = &tls.Config{Certificates: []tls.Certificate{kp}}
	hs.StartTLS()
	t.Cleanup(hs.Close)
	httpPort := hs.Listener.Addr().(*net.TCPAddr).Port

	rule := func(name string) string {
		return fmt.Sprintf("  - name: %s\n    matches: [{path: {type: PathPrefix, value: /%s}}]\n    backendRefs: [%s]\n", name, name, ref("be"))
	}
	policy := func(name, kind, backend, extra string) string {
		return fmt.Sprintf(`---
apiVersion: gateway.meshgate.dev/v1alpha1
kind: SecurityPolicy
metadata: {name: %[1]s, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: ext, sectionName: %[1]s}]
  extAuth:
    %[2]s:
      backendRef: {group: gateway.meshgate.dev, kind: Backend, name: %[3]s}
%[4]s    timeout: 2s
`, name, kind, backend, extra)
	}
	cfg := gatewayYAML(ip, listener{name: "http", port: p}) + be.yaml() +
		tlsBackendYAML("grpc-authz", grpcPort, "", "authz.test", "authz-ca", cert) +
		tlsBackendYAML("http-authz", httpPort, "", "authz.test", "authz-ca2", cert) +
		tlsBackendYAML("grpc-stranger", grpcPort, "", "authz.test", "stranger-ca", stranger) +
		tlsBackendYAML("http-stranger", httpPort, "", "authz.test", "stranger-ca2", stranger) +
		"---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: ext, namespace: default}\nspec:\n  parentRefs: [{name: gw}]\n  rules:\n" +
		rule("grpc") + rule("http") + rule("grpcwrong") + rule("grpcopen") + rule("httpwrong") +
		policy("grpc", "grpc", "grpc-authz", "") +
		policy("http", "http", "http-authz", "      headersToBackend: [x-auth-user]\n") +
		policy("grpcwrong", "grpc", "grpc-stranger", "") +
		policy("grpcopen", "grpc", "grpc-stranger", "    failOpen: true\n") +
		policy("httpwrong", "http", "http-stranger", "")
	g := startGateway(t, ip, cfg)

	send := func(t *testing.T, path, authz string) result {
		t.Helper()
		return do(t, defaultClient, request{method: "GET", url: g.url(p, path), header: http.Header{"X-Authz": {authz}}})
	}
	t.Run("grpc, trusted CA", func(t *testing.T) {
		if r := send(t, "/grpc/a", "allow"); r.status != 200 || r.echo.Header.Get("X-Authz-User") != "bob:/grpc/a" {
			t.Fatalf("allowed: %v", r)
		}
		if r := send(t, "/grpc/a", "no"); r.status != 403 || r.body != "denied by policy" {
			t.Fatalf("denied by the service: %v", r)
		}
	})
	t.Run("http, trusted CA", func(t *testing.T) {
		if r := send(t, "/http/a", "allow"); r.status != 200 || r.echo.Header.Get("X-Auth-User") != "carol tls=true" {
			t.Fatalf("allowed: %v", r)
		}
		if r := send(t, "/http/a", "no"); r.status != 403 {
			t.Fatalf("denied by the service: %v", r)
		}
	})
	for _, tc := range []struct{ path, policy string }{{"/grpcwrong", "default/grpcwrong"}, {"/httpwrong", "default/httpwrong"}} {
		t.Run("untrusted certificate fails closed "+tc.path, func(t *testing.T) {
			if r := send(t, tc.path, "allow"); r.status != 403 {
				t.Fatalf("got %v, want 403", r)
			}
			if waitLog(g, "request denied", func(m map[string]any) bool {
				d, _ := m["detail"].(string)
				return m["policy"] == tc.policy && m["reason"] == "ext_auth_unavailable" && strings.Contains(d, "certificate")
			}) == nil {
				t.Fatal("no denial log saying the certificate was refused")
			}
		})
	}
	t.Run("untrusted certificate fails open", func(t *testing.T) {
		if r := send(t, "/grpcopen", "no"); r.status != 200 {
			t.Fatalf("got %v, want 200 (failOpen)", r)
		}
		if waitLog(g, "authorization service unavailable, failing open", func(m map[string]any) bool {
			e, _ := m["error"].(string)
			return m["policy"] == "default/grpcopen" && strings.Contains(e, "certificate")
		}) == nil {
			t.Fatal("no fail-open log saying the certificate was refused")
		}
	})
}
