package e2e

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// identityGet sends GET / with header set to spoof over a new connection
// (HTTP/2 when h2), presenting client when set, and returns the request
// headers the backend saw.
func identityGet(t *testing.T, g *gateway, port int, roots *x509.CertPool, client *testCert, h2 bool, header, spoof string) http.Header {
	t.Helper()
	cfg := &tls.Config{ServerName: "identity.test", RootCAs: roots}
	if client != nil {
		kp, err := tls.X509KeyPair([]byte(client.certPEM), []byte(client.keyPEM))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{kp}
	}
	tr := &http.Transport{
		TLSClientConfig: cfg, DisableKeepAlives: true, ForceAttemptHTTP2: h2,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, g.addr(port))
		},
	}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, "https://identity.test/", nil)
	req.Header.Set(header, spoof)
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	defer resp.Body.Close()
	if want := map[bool]int{false: 1, true: 2}[h2]; resp.ProtoMajor != want {
		t.Errorf("answered over %s, want HTTP/%d", resp.Proto, want)
	}
	var e echo
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET: status %d, decode %v", resp.StatusCode, err)
	}
	return e.Header
}

// TestTLSClientIdentityHeader covers forwarding the verified client
// identity: on an AllowValidOnly port the backend gets
// X-Forwarded-Client-Cert (hash, subject, URI and DNS SANs) for the client's
// certificate and never the client's own copy; on an AllowInsecureFallback
// port with the header renamed by
// tls.options[gateway.meshgate.dev/client-identity-header], a client
// without a certificate or with one from another CA gets none (its spoofed
// header removed), and a valid one gets its identity. Over HTTP/1.1 and
// HTTP/2.
func TestTLSClientIdentityHeader(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	pStrict, pFallback := freePort(t, ip), freePort(t, ip)
	server := newTestCert(t, "identity.test")
	ca, other := newMTLSCA(t, "client-ca"), newMTLSCA(t, "other-ca")
	now := time.Now()
	alice := ca.issueClient(t, "alice", now.Add(-time.Hour), now.Add(time.Hour))
	mallory := other.issueClient(t, "mallory", now.Add(-time.Hour), now.Add(time.Hour))
	be := newBackend(t, "identity")
	gw := gatewayYAML(ip,
		listener{name: "strict", port: pStrict, protocol: "HTTPS", hostname: "identity.test", certs: []string{"server-tls"}},
		listener{name: "fallback", port: pFallback, protocol: "HTTPS", hostname: "identity.test", certs: []string{"server-tls"}},
	)
	gw = withListenerOptions(t, gw, "fallback", map[string]string{"gateway.meshgate.dev/client-identity-header": "x-client-identity"})
	cfg := withGatewayTLS(gw, fmt.Sprintf(`    frontend:
      default:
        validation:
          caCertificateRefs: [{group: "", kind: ConfigMap, name: client-ca}]
      perPort:
      - port: %d
        tls:
          validation:
            mode: AllowInsecureFallback
            caCertificateRefs: [{group: "", kind: ConfigMap, name: client-ca}]
`, pFallback)) + server.secretYAML("server-tls") + caConfigMapYAML("client-ca", ca.testCert) + be.yaml() + simpleRoute("all", nil, "identity")
	g := startGateway(t, ip, cfg)
	roots := x509.NewCertPool()
	roots.AddCert(server.cert)
	sum := sha256.Sum256(alice.cert.Raw)
	aliceID := "Hash=" + hex.EncodeToString(sum[:]) + `;Subject="CN=alice"`

	const spoof = `Hash=00;Subject="CN=admin"`
	for _, h2 := range []bool{false, true} {
		for _, c := range []struct {
			name   string
			port   int
			client *testCert
			header string
			want   string // "" for absent
		}{
			{"AllowValidOnly/valid", pStrict, &alice, "X-Forwarded-Client-Cert", aliceID},
			{"AllowInsecureFallback/valid", pFallback, &alice, "X-Client-Identity", aliceID},
			{"AllowInsecureFallback/no cert", pFallback, nil, "X-Client-Identity", ""},
			{"AllowInsecureFallback/other CA", pFallback, &mallory, "X-Client-Identity", ""},
		} {
			got := identityGet(t, g, c.port, roots, c.client, h2, c.header, spoof)
			vals := got[c.header]
			switch {
			case c.want == "" && len(vals) != 0:
				t.Errorf("h2 %v, %s: backend got %s %q, want none", h2, c.name, c.header, vals)
			case c.want != "" && (len(vals) != 1 || !strings.HasPrefix(vals[0], c.want)):
				t.Errorf("h2 %v, %s: backend got %s %q, want one value starting %q", h2, c.name, c.header, vals, c.want)
			}
		}
	}
}
