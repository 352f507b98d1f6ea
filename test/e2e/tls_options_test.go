package e2e

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"
)

// withListenerOptions adds tls.options to the HTTPS listener name of a
// gatewayYAML config.
func withListenerOptions(t *testing.T, cfg, name string, opts map[string]string) string {
	t.Helper()
	i := strings.Index(cfg, "  - name: "+name+"\n")
	if i < 0 {
		t.Fatalf("no listener %s", name)
	}
	const refs = "      certificateRefs:\n"
	j := strings.Index(cfg[i:], refs)
	if j < 0 {
		t.Fatalf("listener %s has no certificateRefs", name)
	}
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("      options:\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "        %s: %q\n", k, opts[k])
	}
	return cfg[:i+j] + b.String() + cfg[i+j:]
}

// tlsDial opens a TLS connection to the gateway's port with settings cfg.
func tlsDial(g *gateway, port int, cfg *tls.Config) (*tls.Conn, error) {
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 3 * time.Second}, Config: cfg}
	c, err := d.Dial("tcp", g.addr(port))
	if err != nil {
		return nil, err
	}
	return c.(*tls.Conn), nil
}

// tlsRequest sends GET / for host over an HTTP/1.1 connection c, with extra
// header lines, and returns the status and body. The read also takes in
// TLS 1.3 session tickets, which arrive after the handshake.
func tlsRequest(c *tls.Conn, host string, header ...string) (int, string, error) {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	req := "GET / HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n"
	for _, h := range header {
		req += h + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// TestTLSListenerOptions covers listener tls.options with the real binary:
// two listeners on one port keep their own settings, picked by SNI. The
// modern.test one (min-version 1.3, ALPN http/1.1) refuses a TLS 1.2
// client and never negotiates h2; the legacy.test one (one TLS 1.2 cipher
// suite) refuses a client without that suite and negotiates it with one
// that has it. A third listener with a bad option (on its own port) is not
// bound while the others serve; fixing it on reload binds it.
func TestTLSListenerOptions(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	port, pBad := freePort(t, ip), freePort(t, ip)
	modern, legacy := newTestCert(t, "modern.test"), newTestCert(t, "legacy.test")
	be := newBackend(t, "opts")
	base := gatewayYAML(ip,
		listener{name: "modern", port: port, protocol: "HTTPS", hostname: "modern.test", certs: []string{"modern-tls"}},
		listener{name: "legacy", port: port, protocol: "HTTPS", hostname: "legacy.test", certs: []string{"legacy-tls"}},
		listener{name: "bad", port: pBad, protocol: "HTTPS", hostname: "modern.test", certs: []string{"modern-tls"}},
	)
	base = withListenerOptions(t, base, "modern", map[string]string{
		"gateway.meshgate.dev/min-version": "1.3", "gateway.meshgate.dev/alpn": "http/1.1",
	})
	base = withListenerOptions(t, base, "legacy", map[string]string{
		"gateway.meshgate.dev/cipher-suites": "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
	})
	rest := modern.secretYAML("modern-tls") + legacy.secretYAML("legacy-tls") + be.yaml() + simpleRoute("all", nil, "opts")
	bad := withListenerOptions(t, base, "bad", map[string]string{"gateway.meshgate.dev/min-version": "1.0"})
	g := startGateway(t, ip, bad+rest)
	roots := x509.NewCertPool()
	roots.AddCert(modern.cert)
	roots.AddCert(legacy.cert)

	for _, c := range []struct {
		name      string
		cfg       *tls.Config
		ok        bool
		wantProto string
		wantSuite uint16
	}{
		{name: "modern/TLS 1.2 refused", cfg: &tls.Config{ServerName: "modern.test", MaxVersion: tls.VersionTLS12}},
		{name: "modern/TLS 1.3 without h2", cfg: &tls.Config{ServerName: "modern.test", NextProtos: []string{"h2", "http/1.1"}}, ok: true, wantProto: "http/1.1"},
		{name: "legacy/h2 kept", cfg: &tls.Config{ServerName: "legacy.test", NextProtos: []string{"h2", "http/1.1"}}, ok: true, wantProto: "h2"},
		{
			name: "legacy/suite not offered", ok: false,
			cfg: &tls.Config{ServerName: "legacy.test", MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}},
		},
		{
			name: "legacy/suite offered", ok: true, wantProto: "http/1.1", wantSuite: tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			cfg: &tls.Config{
				ServerName: "legacy.test", MaxVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"},
				CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256},
			},
		},
	} {
		c.cfg.RootCAs = roots
		conn, err := tlsDial(g, port, c.cfg)
		if !c.ok {
			if err == nil {
				conn.Close()
				t.Errorf("%s: handshake succeeded, want it refused", c.name)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		st := conn.ConnectionState()
		if st.NegotiatedProtocol != c.wantProto {
			t.Errorf("%s: ALPN %q, want %q", c.name, st.NegotiatedProtocol, c.wantProto)
		}
		if c.wantSuite != 0 && st.CipherSuite != c.wantSuite {
			t.Errorf("%s: cipher suite %s, want %s", c.name, tls.CipherSuiteName(st.CipherSuite), tls.CipherSuiteName(c.wantSuite))
		}
		if st.NegotiatedProtocol == "http/1.1" {
			if status, _, err := tlsRequest(conn, c.cfg.ServerName); err != nil || status != http.StatusOK {
				t.Errorf("%s: GET got %d %v, want 200", c.name, status, err)
			}
		}
		conn.Close()
	}

	// The listener with the bad option is not bound; fixed, it is.
	waitRefused(t, g.addr(pBad))
	g.reload(withListenerOptions(t, base, "bad", map[string]string{"gateway.meshgate.dev/min-version": "1.3"}) + rest)
	conn, err := tlsDial(g, pBad, &tls.Config{ServerName: "modern.test", RootCAs: roots})
	if err != nil {
		t.Fatalf("after fixing the option: %v", err)
	}
	if v := conn.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Errorf("after fixing the option: version %s, want TLS 1.3", tls.VersionName(v))
	}
	conn.Close()
}
