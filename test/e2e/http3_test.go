package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// TestHTTP3 reaches routes over HTTP/3 on the UDP port of an HTTPS listener,
// finds that port through Alt-Svc on HTTP/1.1 and HTTP/2 responses, and
// checks that the same routes and filters apply.
func TestHTTP3(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	p := freePort(t, ip)
	cert := newTestCert(t, "h3.test")
	be := newBackend(t, "h3")
	g := startGateway(t, ip, gatewayYAML(ip,
		listener{name: "https", port: p, protocol: "HTTPS", hostname: "h3.test", certs: []string{"h3-tls"}},
	)+cert.secretYAML("h3-tls")+be.yaml()+simpleRoute("all", nil, "h3"))
	roots := x509.NewCertPool()
	roots.AddCert(cert.cert)
	url := "https://h3.test:" + strconv.Itoa(p)

	t.Run("Alt-Svc on HTTP/2 names the UDP port", func(t *testing.T) {
		tr := &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: roots},
			ForceAttemptHTTP2: true,
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, g.addr(p))
			},
		}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(url + "/alt")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := `h3=":` + strconv.Itoa(p) + `"; ma=86400`
		if resp.ProtoMajor != 2 || resp.Header.Get("Alt-Svc") != want {
			t.Fatalf("%s Alt-Svc %q, want %q", resp.Proto, resp.Header.Get("Alt-Svc"), want)
		}
	})

	tr := &http3.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "h3.test"},
		QUICConfig:      &quic.Config{HandshakeIdleTimeout: 10 * time.Second},
		Dial: func(ctx context.Context, _ string, tlsCfg *tls.Config, cfg *quic.Config) (*quic.Conn, error) {
			return quic.DialAddrEarly(ctx, g.addr(p), tlsCfg, cfg)
		},
	}
	defer tr.Close()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for _, tc := range []struct {
		name, method, body string
	}{
		{"GET", "GET", ""},
		{"POST with a body", "POST", strings.Repeat("h3 body ", 10000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, url+"/over/h3?q=1", strings.NewReader(tc.body))
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 3 || resp.Header.Get("X-Backend") != "h3" {
				t.Fatalf("%s status %d backend %q", resp.Proto, resp.StatusCode, resp.Header.Get("X-Backend"))
			}
			reqs := be.requests()
			e := reqs[len(reqs)-1]
			if e.Method != tc.method || e.Path != "/over/h3" || e.RawQuery != "q=1" || e.Body != tc.body[:min(len(tc.body), 1<<20)] {
				t.Fatalf("backend saw %s %s?%s body %d bytes", e.Method, e.Path, e.RawQuery, len(e.Body))
			}
			if got := e.Header.Get("X-Forwarded-Proto"); got != "https" {
				t.Errorf("X-Forwarded-Proto %q, want https", got)
			}
		})
	}
}
