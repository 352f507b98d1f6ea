package e2e

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// mtlsCA is a test CA that issues client certificates.
type mtlsCA struct {
	testCert
	key crypto.Signer
}

func newMTLSCA(t *testing.T, name string) mtlsCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return mtlsCA{testCert: testCert{cert: cert, certPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}, key: key}
}

// issueClient is a client certificate for cn signed by ca, valid from
// notBefore to notAfter.
func (ca mtlsCA) issueClient(t *testing.T, cn string, notBefore, notAfter time.Time) testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return testCert{
		cert:    cert,
		certPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		keyPEM:  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})),
	}
}

// withGatewayTLS inserts spec.tls (YAML indented under "  tls:") into the
// Gateway "gw" of a gatewayYAML config.
func withGatewayTLS(cfg, tlsYAML string) string {
	return strings.Replace(cfg, "  listeners:\n", "  tls:\n"+tlsYAML+"  listeners:\n", 1)
}

// mtlsGet sends GET / for host to the gateway's port over a new TLS
// connection (no resumption), presenting client when it has a certificate,
// and returns the status or the error.
func mtlsGet(g *gateway, port int, host string, roots *x509.CertPool, client *testCert, h2 bool) (int, string, error) {
	cfg := &tls.Config{ServerName: host, RootCAs: roots}
	if client != nil {
		kp, err := tls.X509KeyPair([]byte(client.certPEM), []byte(client.keyPEM))
		if err != nil {
			return 0, "", err
		}
		cfg.Certificates = []tls.Certificate{kp}
	}
	tr := &http.Transport{
		TLSClientConfig:   cfg,
		DisableKeepAlives: true,
		ForceAttemptHTTP2: h2,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, g.addr(port))
		},
	}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	resp, err := c.Get("https://" + host + "/")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), nil
}

// TestMTLSFrontend covers Gateway spec.tls.frontend with the real binary:
// on the AllowValidOnly port (the default validation, CA from a ConfigMap)
// a client without a certificate, with one from another CA or with an
// expired one fails the handshake, and one with a valid certificate gets
// 200, over HTTP/1.1 and HTTP/2; on the AllowInsecureFallback port (a
// perPort override) every client gets 200. Removing spec.tls on reload
// lets clients without certificates in.
func TestMTLSFrontend(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	pStrict, pFallback := freePort(t, ip), freePort(t, ip)
	server := newTestCert(t, "mtls.test")
	ca := newMTLSCA(t, "client-ca")
	other := newMTLSCA(t, "other-ca")
	now := time.Now()
	valid := ca.issueClient(t, "alice", now.Add(-time.Hour), now.Add(time.Hour))
	expired := ca.issueClient(t, "bob", now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	stranger := other.issueClient(t, "mallory", now.Add(-time.Hour), now.Add(time.Hour))
	be := newBackend(t, "mtls")
	base := gatewayYAML(ip,
		listener{name: "strict", port: pStrict, protocol: "HTTPS", hostname: "mtls.test", certs: []string{"server-tls"}},
		listener{name: "fallback", port: pFallback, protocol: "HTTPS", hostname: "mtls.test", certs: []string{"server-tls"}},
	)
	rest := server.secretYAML("server-tls") + caConfigMapYAML("client-ca", ca.testCert) + be.yaml() + simpleRoute("all", nil, "mtls")
	cfg := withGatewayTLS(base, fmt.Sprintf(`    frontend:
      default:
        validation:
          caCertificateRefs: [{group: "", kind: ConfigMap, name: client-ca}]
      perPort:
      - port: %d
        tls:
          validation:
            mode: AllowInsecureFallback
            caCertificateRefs: [{group: "", kind: ConfigMap, name: client-ca}]
`, pFallback)) + rest
	g := startGateway(t, ip, cfg)
	roots := x509.NewCertPool()
	roots.AddCert(server.cert)

	for _, h2 := range []bool{false, true} {
		proto := "HTTP/1.1"
		if h2 {
			proto = "HTTP/2"
		}
		t.Run(proto, func(t *testing.T) {
			for _, c := range []struct {
				name   string
				port   int
				client *testCert
				ok     bool
			}{
				{"AllowValidOnly/valid", pStrict, &valid, true},
				{"AllowValidOnly/no cert", pStrict, nil, false},
				{"AllowValidOnly/other CA", pStrict, &stranger, false},
				{"AllowValidOnly/expired", pStrict, &expired, false},
				{"AllowInsecureFallback/valid", pFallback, &valid, true},
				{"AllowInsecureFallback/no cert", pFallback, nil, true},
				{"AllowInsecureFallback/other CA", pFallback, &stranger, true},
				{"AllowInsecureFallback/expired", pFallback, &expired, true},
			} {
				status, body, err := mtlsGet(g, c.port, "mtls.test", roots, c.client, h2)
				switch {
				case c.ok && (err != nil || status != http.StatusOK):
					t.Errorf("%s: got %d %v, want 200", c.name, status, err)
				case !c.ok && err == nil:
					t.Errorf("%s: got %d %q, want the handshake to fail", c.name, status, truncate(body, 80))
				case !c.ok && !strings.Contains(err.Error(), "tls"):
					t.Errorf("%s: got error %v, want a TLS failure", c.name, err)
				}
			}
		})
	}

	// Without spec.tls the strict port asks for no certificate.
	g.reload(base + rest)
	if status, _, err := mtlsGet(g, pStrict, "mtls.test", roots, nil, false); err != nil || status != http.StatusOK {
		t.Fatalf("after removing spec.tls: got %d %v, want 200", status, err)
	}
}

// TestMTLSBackendClientCert covers Gateway spec.tls.backend
// .clientCertificateRef: a TLS backend (BackendTLSPolicy) that requires and
// verifies client certificates refuses the gateway until the Gateway names
// a client certificate, then answers 200 and sees that certificate.
func TestMTLSBackendClientCert(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	p := freePort(t, ip)
	beCert := newSANCert(t, []string{"backend.test"})
	kp, err := tls.X509KeyPair([]byte(beCert.certPEM), []byte(beCert.keyPEM))
	if err != nil {
		t.Fatal(err)
	}
	ca := newMTLSCA(t, "gateway-client-ca")
	now := time.Now()
	gwClient := ca.issueClient(t, "meshgate-gateway", now.Add(-time.Hour), now.Add(time.Hour))
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "client=%s", r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{kp}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	srv.Config.ErrorLog = nil
	srv.StartTLS()
	t.Cleanup(srv.Close)
	bePort := srv.Listener.Addr().(*net.TCPAddr).Port

	base := gatewayYAML(ip, listener{name: "http", port: p})
	rest := caConfigMapYAML("backend-ca", beCert) +
		tlsServiceYAML("secure", bePort, "") +
		backendTLSPolicyYAML("secure", "    hostname: backend.test\n    caCertificateRefs: [{group: \"\", kind: ConfigMap, name: backend-ca}]\n") +
		svcRoute("secure", "secure.test", "secure") +
		gwClient.secretYAML("gateway-client")
	g := startGateway(t, ip, base+rest)

	if r := get(t, g.url(p, "/"), "secure.test"); r.status < 500 {
		t.Fatalf("without a client certificate: got %v, want the backend's refusal (5xx)", r)
	}

	g.reload(withGatewayTLS(base, "    backend:\n      clientCertificateRef: {name: gateway-client}\n") + rest)
	if r := get(t, g.url(p, "/"), "secure.test"); r.status != http.StatusOK || r.body != "client=meshgate-gateway" {
		t.Fatalf("with the Gateway's client certificate: got %v, want 200 client=meshgate-gateway", r)
	}

	// A reference to a missing Secret leaves the Gateway serving without
	// a client certificate, so the backend refuses again.
	g.reload(withGatewayTLS(base, "    backend:\n      clientCertificateRef: {name: missing}\n") + rest)
	if r := get(t, g.url(p, "/"), "secure.test"); r.status < 500 {
		t.Fatalf("with a missing client certificate Secret: got %v, want 5xx", r)
	}
}
