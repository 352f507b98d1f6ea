package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/crypto/bcrypt"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
)

// extAuthz is a real Envoy ext_authz gRPC server: "x-authz: allow" is let
// in with an identity header, "slow" outlasts the gateway's timeout,
// anything else is denied with the service's own status and body.
type extAuthz struct {
	authv3.UnimplementedAuthorizationServer
}

func (extAuthz) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	h := req.GetAttributes().GetRequest().GetHttp()
	switch h.GetHeaders()["x-authz"] {
	case "allow":
		return &authv3.CheckResponse{
			Status: &rpcstatus.Status{Code: int32(codes.OK)},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
				Headers: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-authz-user", Value: "bob:" + h.GetPath()}}},
			}},
		}, nil
	case "slow":
		select {
		case <-time.After(2 * time.Second):
		case <-ctx.Done():
		}
		return nil, ctx.Err()
	}
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(codes.PermissionDenied)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode_Forbidden},
			Headers: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-denied-by", Value: "authz"}}},
			Body:    "denied by policy",
		}},
	}, nil
}

type jwtKey struct {
	kid string
	key *rsa.PrivateKey
}

func (k jwtKey) public() jose.JSONWebKey {
	return jose.JSONWebKey{Key: &k.key.PublicKey, KeyID: k.kid, Algorithm: "RS256", Use: "sig"}
}

func (k jwtKey) sign(t *testing.T, over map[string]any) string {
	t.Helper()
	c := map[string]any{"iss": "https://issuer.test", "aud": "web", "sub": "alice", "tenant": "acme",
		"exp": time.Now().Add(time.Hour).Unix()}
	for key, v := range over {
		c[key] = v
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: k.key}, (&jose.SignerOptions{}).WithHeader("kid", k.kid))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func newJWTKey(t *testing.T, kid string) jwtKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return jwtKey{kid, k}
}

// TestSecurityPolicy covers SecurityPolicy through the real binary: IP
// lists behind PROXY protocol (v1 and v2) and with X-Forwarded-For from
// trusted and untrusted peers; JWT (good, expired, wrong audience, alg
// none, tampered, claim to header reaching the backend and driving a
// header match, JWKS rotation); Basic users; ext_authz over gRPC (a real
// grpc-go server) and over HTTP, allow, deny and timeout.
func TestSecurityPolicy(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	pProxy, pJWT, pXFF, pAuth := freePort(t, ip), freePort(t, ip), freePort(t, ip), freePort(t, ip)
	be, acme := newBackend(t, "be"), newBackend(t, "acme")

	// Remote JWKS, rotated during the test.
	k1, k2 := newJWTKey(t, "k1"), newJWTKey(t, "k2")
	var jwksMu sync.Mutex
	jwks := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{k1.public()}}
	jwksSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		jwksMu.Lock()
		defer jwksMu.Unlock()
		json.NewEncoder(w).Encode(jwks)
	}))
	t.Cleanup(jwksSrv.Close)

	// ext_authz over gRPC.
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	authv3.RegisterAuthorizationServer(gs, extAuthz{})
	go gs.Serve(gl)
	t.Cleanup(gs.Stop)
	// HTTP authorization service.
	httpAuthz := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/check/") {
			w.WriteHeader(500)
			return
		}
		if r.Header.Get("X-Authz") == "allow" {
			w.Header().Set("X-Auth-User", "carol")
			w.Header().Set("X-Not-Copied", "1")
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="authz"`)
		w.WriteHeader(401)
		fmt.Fprint(w, "login first")
	}))
	t.Cleanup(httpAuthz.Close)
	httpAuthzPort := httpAuthz.Listener.Addr().(*net.TCPAddr).Port

	hash, _ := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	cfg := gatewayYAML(ip, listener{name: "proxied", port: pProxy}, listener{name: "jwt", port: pJWT},
		listener{name: "xff", port: pXFF}, listener{name: "auth", port: pAuth}) +
		be.yaml() + acme.yaml() + backendYAML("grpc-authz", gl.Addr().(*net.TCPAddr).Port) + backendYAML("http-authz", httpAuthzPort) + fmt.Sprintf(`---
apiVersion: v1
kind: Secret
metadata: {name: users, namespace: default}
stringData:
  .htpasswd: |
    alice:%s
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: all, namespace: default}
spec:
  parentRefs: [{name: gw, sectionName: proxied}, {name: gw, sectionName: xff}]
  rules:
  - backendRefs: [%[2]s]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: tenants, namespace: default}
spec:
  parentRefs: [{name: gw, sectionName: jwt}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /}, headers: [{name: x-tenant, value: acme}]}]
    backendRefs: [%[3]s]
  - backendRefs: [%[2]s]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: authn, namespace: default}
spec:
  parentRefs: [{name: gw, sectionName: auth}]
  rules:
  - name: basic
    matches: [{path: {type: PathPrefix, value: /basic}}]
    backendRefs: [%[2]s]
  - name: grpc
    matches: [{path: {type: PathPrefix, value: /grpc}}]
    backendRefs: [%[2]s]
  - name: http
    matches: [{path: {type: PathPrefix, value: /http}}]
    backendRefs: [%[2]s]
---
apiVersion: gateway.meshgate.dev/v1alpha1
kind: SecurityPolicy
metadata: {name: lb-only, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw, sectionName: proxied}]
  proxyProtocol: true
  ipAccess: {allow: [10.0.0.0/8], deny: [10.66.0.0/16]}
---
apiVersion: gateway.meshgate.dev/v1alpha1
kind: SecurityPolicy
metadata: {name: xff-list, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw, sectionName: xff}]
  ipAccess: {deny: [203.0.113.0/24]}
---
apiVersion: gateway.meshgate.dev/v1alpha1
kind: SecurityPolicy
metadata: {name: tokens, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw, sectionName: jwt}]
  jwt:
    providers:
    - name: corp
      issuer: https://issuer.test
      audiences: [web]
      remoteJWKS: {uri: "%[4]s/jwks.json", cacheDuration: 1s}
      claimToHeaders: [{claim: tenant, header: x-tenant}, {claim: sub, header: x-user}]
---
apiVersion: gateway.meshgate.dev/v1alpha1
kind: SecurityPolicy
metadata: {name: basic, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: authn, sectionName: basic}]
  basicAuth: {users: {name: users}, realm: staff}
---
apiVersion: gateway.meshgate.dev/v1alpha1
kind: SecurityPolicy
metadata: {name: grpc-ext, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: authn, sectionName: grpc}]
  extAuth:
    grpc: {backendRef: {group: gateway.meshgate.dev, kind: Backend, name: grpc-authz}}
    timeout: 300ms
---
apiVersion: gateway.meshgate.dev/v1alpha1
kind: SecurityPolicy
metadata: {name: http-ext, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: authn, sectionName: http}]
  extAuth:
    http:
      backendRef: {group: gateway.meshgate.dev, kind: Backend, name: http-authz}
      path: /check
      headersToBackend: [x-auth-user]
`, hash, ref("be"), ref("acme"), jwksSrv.URL)
	g := startGateway(t, ip, cfg, "--trusted-proxies", "127.0.0.1/32")

	get := func(t *testing.T, c *http.Client, port int, path string, h map[string]string) result {
		t.Helper()
		hdr := http.Header{}
		for k, v := range h {
			hdr.Set(k, v)
		}
		return do(t, c, request{method: "GET", url: g.url(port, path), header: hdr})
	}
	expect := func(t *testing.T, r result, status int) {
		t.Helper()
		if r.status != status {
			t.Fatalf("got %v, want %d", r, status)
		}
	}

	t.Run("proxy protocol", func(t *testing.T) {
		raw := func(t *testing.T, header []byte) (int, string) {
			t.Helper()
			c, err := net.DialTimeout("tcp", g.addr(pProxy), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			c.Write(append(header, "GET /p HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.1.1.1\r\nConnection: close\r\n\r\n"...))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				return 0, ""
			}
			defer resp.Body.Close()
			var e echo
			json.NewDecoder(resp.Body).Decode(&e)
			return resp.StatusCode, e.Header.Get("X-Forwarded-For")
		}
		if st, xff := raw(t, []byte("PROXY TCP4 10.1.2.3 10.0.0.1 40000 80\r\n")); st != 200 || xff != "10.1.2.3" {
			t.Fatalf("v1 allowed client: %d, backend saw X-Forwarded-For %q", st, xff)
		}
		// The spoofed X-Forwarded-For (allowed) does not help a denied
		// PROXY address.
		if st, _ := raw(t, []byte("PROXY TCP4 10.66.0.5 10.0.0.1 40000 80\r\n")); st != 403 {
			t.Fatalf("v1 denied client: %d", st)
		}
		if st, _ := raw(t, []byte("PROXY TCP4 192.0.2.1 10.0.0.1 40000 80\r\n")); st != 403 {
			t.Fatalf("v1 client outside the allow list: %d", st)
		}
		v2 := append([]byte("\r\n\r\n\x00\r\nQUIT\n"), 0x21, 0x11, 0, 12, 10, 9, 8, 7, 10, 0, 0, 1, 0x9c, 0x40, 0, 80)
		if st, xff := raw(t, v2); st != 200 || xff != "10.9.8.7" {
			t.Fatalf("v2 allowed client: %d, %q", st, xff)
		}
		// No PROXY header: the connection is closed without an answer.
		if st, _ := raw(t, nil); st != 0 {
			t.Fatalf("connection without a PROXY header answered %d", st)
		}
		if waitLog(g, "request denied", func(m map[string]any) bool {
			return m["policy"] == "default/lb-only" && m["section"] == "ipAccess" && m["reason"] == "auth_denied_ip"
		}) == nil {
			t.Fatal("no denial log naming the policy and section")
		}
	})

	t.Run("x-forwarded-for", func(t *testing.T) {
		// 127.0.0.1 is a trusted proxy: its X-Forwarded-For counts.
		expect(t, get(t, defaultClient, pXFF, "/", map[string]string{"X-Forwarded-For": "203.0.113.9"}), 403)
		expect(t, get(t, defaultClient, pXFF, "/", map[string]string{"X-Forwarded-For": "198.51.100.1"}), 200)
		// From an untrusted peer a spoofed header is ignored: the peer's
		// own address is checked. A denied client cannot hide behind an
		// allowed address either way.
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		untrusted := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}, Timeout: 10 * time.Second}
		expect(t, get(t, untrusted, pXFF, "/", map[string]string{"X-Forwarded-For": "203.0.113.9"}), 200)
		expect(t, get(t, defaultClient, pXFF, "/", map[string]string{"X-Forwarded-For": "203.0.113.9, 198.51.100.1"}), 200)
	})

	t.Run("jwt", func(t *testing.T) {
		bearer := func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }
		r := get(t, defaultClient, pJWT, "/", map[string]string{"X-Tenant": "acme"})
		expect(t, r, 401)
		if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
			t.Fatalf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
		}
		r = get(t, defaultClient, pJWT, "/", bearer(k1.sign(t, nil)))
		expect(t, r, 200)
		// The tenant claim became x-tenant, which the route matched on.
		if r.backend() != "acme" || r.echo.Header.Get("X-User") != "alice" || r.echo.Header.Get("X-Tenant") != "acme" {
			t.Fatalf("claims to headers: backend %q headers %v", r.backend(), r.echo.Header)
		}
		// A client's own x-tenant is removed: other tenants go elsewhere.
		r = get(t, defaultClient, pJWT, "/", map[string]string{"Authorization": "Bearer " + k1.sign(t, map[string]any{"tenant": "globex"}), "X-Tenant": "acme"})
		if r.status != 200 || r.backend() != "be" || r.echo.Header.Get("X-Tenant") != "globex" {
			t.Fatalf("spoofed x-tenant: %v %v", r, r.echo)
		}
		expect(t, get(t, defaultClient, pJWT, "/", bearer(k1.sign(t, map[string]any{"exp": time.Now().Add(-time.Hour).Unix()}))), 401)
		expect(t, get(t, defaultClient, pJWT, "/", bearer(k1.sign(t, map[string]any{"aud": "other"}))), 401)
		good := strings.Split(k1.sign(t, nil), ".")
		enc := base64.RawURLEncoding.EncodeToString
		expect(t, get(t, defaultClient, pJWT, "/", bearer(enc([]byte(`{"alg":"none"}`))+"."+good[1]+".")), 401)
		expect(t, get(t, defaultClient, pJWT, "/", bearer(good[0]+"."+enc([]byte(`{"iss":"https://issuer.test","aud":"web","sub":"root","tenant":"acme","exp":9999999999}`))+"."+good[2])), 401)
		// Rotation: k2 is unknown until the set is fetched again.
		expect(t, get(t, defaultClient, pJWT, "/", bearer(k2.sign(t, nil))), 401)
		jwksMu.Lock()
		jwks = jose.JSONWebKeySet{Keys: []jose.JSONWebKey{k2.public()}}
		jwksMu.Unlock()
		deadline := time.Now().Add(5 * time.Second)
		for {
			r = get(t, defaultClient, pJWT, "/", bearer(k2.sign(t, nil)))
			if r.status == 200 || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		expect(t, r, 200)
		if waitLog(g, "request denied", func(m map[string]any) bool {
			s, _ := json.Marshal(m)
			return m["policy"] == "default/tokens" && m["reason"] == "auth_invalid_jwt" && !strings.Contains(string(s), good[2])
		}) == nil {
			t.Fatal("no JWT denial log naming the policy (without the token)")
		}
	})

	t.Run("basic", func(t *testing.T) {
		basic := func(u, p string) map[string]string {
			return map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p))}
		}
		r := get(t, defaultClient, pAuth, "/basic", nil)
		expect(t, r, 401)
		if !strings.Contains(r.header.Get("WWW-Authenticate"), `Basic realm="staff"`) {
			t.Fatalf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
		}
		expect(t, get(t, defaultClient, pAuth, "/basic", basic("alice", "s3cret")), 200)
		expect(t, get(t, defaultClient, pAuth, "/basic", basic("alice", "wrong")), 401)
		expect(t, get(t, defaultClient, pAuth, "/basic", basic("mallory", "s3cret")), 401)
		if strings.Contains(g.logs.String(), "s3cret") {
			t.Fatal("a password reached the log")
		}
	})

	t.Run("ext_authz grpc", func(t *testing.T) {
		r := get(t, defaultClient, pAuth, "/grpc/x", map[string]string{"X-Authz": "allow"})
		expect(t, r, 200)
		if r.echo.Header.Get("X-Authz-User") != "bob:/grpc/x" {
			t.Fatalf("headers from the service: %v", r.echo.Header)
		}
		r = get(t, defaultClient, pAuth, "/grpc/x", map[string]string{"X-Authz": "no"})
		if r.status != 403 || r.body != "denied by policy" || r.header.Get("X-Denied-By") != "authz" {
			t.Fatalf("denied: %v %v", r, r.header)
		}
		start := time.Now()
		expect(t, get(t, defaultClient, pAuth, "/grpc/x", map[string]string{"X-Authz": "slow"}), 403)
		if time.Since(start) > 1500*time.Millisecond {
			t.Fatalf("timeout not applied: %v", time.Since(start))
		}
		if waitLog(g, "request denied", func(m map[string]any) bool {
			return m["policy"] == "default/grpc-ext" && m["reason"] == "ext_auth_unavailable"
		}) == nil {
			t.Fatal("no ext_auth_unavailable log")
		}
	})

	t.Run("ext_authz http", func(t *testing.T) {
		r := get(t, defaultClient, pAuth, "/http/y", map[string]string{"X-Authz": "allow"})
		expect(t, r, 200)
		if r.echo.Header.Get("X-Auth-User") != "carol" || r.echo.Header.Get("X-Not-Copied") != "" {
			t.Fatalf("headers from the service: %v", r.echo.Header)
		}
		r = get(t, defaultClient, pAuth, "/http/y", nil)
		if r.status != 401 || r.body != "login first" || r.header.Get("WWW-Authenticate") != `Bearer realm="authz"` {
			t.Fatalf("denied: %v %v", r, r.header)
		}
	})
}

// waitLog is g.findLog, waiting up to 3 s for the line to reach the
// test's log buffer (the response can arrive before it).
func waitLog(g *gateway, msg string, match func(map[string]any) bool) map[string]any {
	deadline := time.Now().Add(3 * time.Second)
	for {
		if m := g.findLog(msg, match); m != nil || time.Now().After(deadline) {
			return m
		}
		time.Sleep(50 * time.Millisecond)
	}
}
