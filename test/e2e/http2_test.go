package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// testCert is a self-signed certificate for one hostname.
type testCert struct {
	cert            *x509.Certificate
	certPEM, keyPEM string
}

func newTestCert(t *testing.T, hostname string) testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: hostname},
		DNSNames:              []string{hostname},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
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

// h2cTransport is an HTTP/2 client transport with prior knowledge over
// cleartext (h2c), closed when the test ends.
func h2cTransport(t *testing.T) *http2.Transport {
	tr := &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// secretYAML is a kubernetes.io/tls Secret holding c.
func (c testCert) secretYAML(name string) string {
	return fmt.Sprintf(`---
apiVersion: v1
kind: Secret
metadata:
  name: %s
  namespace: default
type: kubernetes.io/tls
stringData:
  tls.crt: |
%s
  tls.key: |
%s
`, name, indent(c.certPEM, 4), indent(c.keyPEM, 4))
}

// TestHTTP2 covers HTTPS with certificates chosen by SNI from Secrets,
// HTTP/2 over TLS (ALPN h2), HTTP/1.1 over TLS and cleartext HTTP/2 with
// prior knowledge.
func TestHTTP2(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	pTLS, pPlain := freePort(t, ip), freePort(t, ip)
	secure := newTestCert(t, "secure.test")
	other := newTestCert(t, "other.test")
	be := newBackend(t, "h2")
	cfg := gatewayYAML(ip,
		listener{name: "https-secure", port: pTLS, protocol: "HTTPS", hostname: "secure.test", certs: []string{"secure-tls"}},
		listener{name: "https-other", port: pTLS, protocol: "HTTPS", hostname: "other.test", certs: []string{"other-tls"}},
		listener{name: "http", port: pPlain},
	) + secure.secretYAML("secure-tls") + other.secretYAML("other-tls") + be.yaml() + simpleRoute("all", nil, "h2")
	g := startGateway(t, ip, cfg)

	roots := x509.NewCertPool()
	roots.AddCert(secure.cert)
	roots.AddCert(other.cert)
	// dialGateway ignores the address asked for: the test hostnames do not
	// resolve.
	dialGateway := func(port int) func(ctx context.Context, network, addr string) (net.Conn, error) {
		return func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, g.addr(port))
		}
	}
	tlsClient := func(h2 bool) *http.Client {
		tr := &http.Transport{
			DialContext:       dialGateway(pTLS),
			TLSClientConfig:   &tls.Config{RootCAs: roots},
			ForceAttemptHTTP2: h2,
		}
		if !h2 {
			tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr, Timeout: 10 * time.Second}
	}

	tests := []struct {
		name      string
		client    *http.Client
		host      string
		wantProto string
		wantCert  *x509.Certificate
	}{
		{"h2 over TLS, SNI secure.test", tlsClient(true), "secure.test", "HTTP/2.0", secure.cert},
		{"h2 over TLS, SNI other.test", tlsClient(true), "other.test", "HTTP/2.0", other.cert},
		{"HTTP/1.1 over TLS", tlsClient(false), "secure.test", "HTTP/1.1", secure.cert},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			url := "https://" + net.JoinHostPort(tc.host, strconv.Itoa(pTLS)) + "/tls?x=1"
			resp, err := tc.client.Get(url)
			if err != nil {
				t.Fatalf("GET %s: %v", url, err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Backend") != "h2" {
				t.Fatalf("GET %s: status %d backend %q", url, resp.StatusCode, resp.Header.Get("X-Backend"))
			}
			if resp.Proto != tc.wantProto {
				t.Errorf("Proto %q, want %q", resp.Proto, tc.wantProto)
			}
			wantALPN := "h2"
			if tc.wantProto != "HTTP/2.0" {
				wantALPN = "http/1.1"
			}
			if resp.TLS == nil || resp.TLS.NegotiatedProtocol != wantALPN {
				t.Fatalf("TLS state %+v, want ALPN %q", resp.TLS, wantALPN)
			}
			if len(resp.TLS.PeerCertificates) == 0 || !resp.TLS.PeerCertificates[0].Equal(tc.wantCert) {
				t.Fatalf("server certificate is not the one from the Secret for %s", tc.host)
			}
		})
	}

	t.Run("h2c prior knowledge", func(t *testing.T) {
		tr := h2cTransport(t)
		c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		for i := 0; i < 3; i++ {
			r := do(t, c, request{url: g.url(pPlain, "/h2c"), host: "plain.test"})
			if r.status != http.StatusOK || r.backend() != "h2" {
				t.Fatalf("h2c GET: %v", r)
			}
			if r.proto != "HTTP/2.0" {
				t.Fatalf("h2c Proto %q, want HTTP/2.0", r.proto)
			}
			if r.echo.Host != "plain.test" || r.echo.Path != "/h2c" {
				t.Fatalf("backend saw Host %q path %q", r.echo.Host, r.echo.Path)
			}
			if got := r.echo.Header.Get("X-Forwarded-Proto"); got != "http" {
				t.Errorf("X-Forwarded-Proto %q, want http", got)
			}
		}
	})

	// The streams of one connection share what the forwarding headers
	// need (proxy.ForwardedPolicy.ApplyShared); a stream for another host
	// must still get its own.
	t.Run("h2c streams of one connection for two hosts get their own forwarding headers", func(t *testing.T) {
		tr := h2cTransport(t)
		c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		var wg sync.WaitGroup
		errs := make(chan error, 60)
		for i := range 60 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				host := []string{"a.test", "b.test", "c.test"}[i%3]
				r, err := tryDo(c, request{url: g.url(pPlain, "/fwd"), host: host})
				if err != nil {
					errs <- err
					return
				}
				if r.status != http.StatusOK || r.echo == nil || r.proto != "HTTP/2.0" {
					errs <- fmt.Errorf("GET for %s: %v", host, r)
					return
				}
				want := ";host=" + host + ";proto=http"
				if got := r.echo.Header.Get("Forwarded"); !strings.HasPrefix(got, "for=") || !strings.HasSuffix(got, want) {
					errs <- fmt.Errorf("Forwarded %q for a request to %s, want for=...%s", got, host, want)
				}
				if got := r.echo.Header.Get("X-Forwarded-Host"); got != host {
					errs <- fmt.Errorf("X-Forwarded-Host %q for a request to %s", got, host)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	t.Run("HTTPS sets X-Forwarded-Proto https", func(t *testing.T) {
		r := do(t, tlsClient(true), request{url: "https://" + net.JoinHostPort("secure.test", strconv.Itoa(pTLS)) + "/xfp"})
		if r.status != http.StatusOK || r.echo == nil {
			t.Fatalf("GET: %v", r)
		}
		if got := r.echo.Header.Get("X-Forwarded-Proto"); got != "https" {
			t.Errorf("X-Forwarded-Proto %q, want https", got)
		}
		if r.echo.Host != net.JoinHostPort("secure.test", strconv.Itoa(pTLS)) {
			t.Errorf("backend saw Host %q", r.echo.Host)
		}
	})
}
