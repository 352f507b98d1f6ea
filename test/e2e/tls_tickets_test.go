package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// ticketClient keeps TLS sessions between connections, as browsers do.
type ticketClient struct {
	roots *x509.CertPool
	cache tls.ClientSessionCache
	cert  *testCert
	max   uint16 // highest TLS version; 0 for the default
}

// get makes a new connection to port for host, sends GET / and reports
// whether the session was resumed, with the status or the error.
func (tc *ticketClient) get(g *gateway, port int, host string) (resumed bool, status int, err error) {
	cfg := &tls.Config{ServerName: host, RootCAs: tc.roots, ClientSessionCache: tc.cache, MaxVersion: tc.max, NextProtos: []string{"http/1.1"}}
	if tc.cert != nil {
		kp, err := tls.X509KeyPair([]byte(tc.cert.certPEM), []byte(tc.cert.keyPEM))
		if err != nil {
			return false, 0, err
		}
		cfg.Certificates = []tls.Certificate{kp}
	}
	c, err := tlsDial(g, port, cfg)
	if err != nil {
		return false, 0, err
	}
	defer c.Close()
	// TLS 1.3 refuses a client certificate after the client's side of the
	// handshake: the request is where it shows.
	status, _, err = tlsRequest(c, host)
	return c.ConnectionState().DidResume, status, err
}

// TestTLSSessionTicketsPerPolicy covers session ticket keys with the real
// binary: on a port without client certificate validation and one with
// (AllowValidOnly), sessions resume within each, and keep resuming after a
// reload that changes other things, so the keys outlive reloads. A session
// from the lax port is never resumed on the strict one: the client gets a
// full handshake, in which its certificate is demanded. A reload that
// changes the strict port's policy (another CA) ends its sessions.
func TestTLSSessionTicketsPerPolicy(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	pLax, pStrict := freePort(t, ip), freePort(t, ip)
	server := newTestCert(t, "tickets.test")
	ca, other := newMTLSCA(t, "client-ca"), newMTLSCA(t, "other-ca")
	now := time.Now()
	alice := ca.issueClient(t, "alice", now.Add(-time.Hour), now.Add(time.Hour))
	be := newBackend(t, "tickets")
	gw := gatewayYAML(ip,
		listener{name: "lax", port: pLax, protocol: "HTTPS", hostname: "tickets.test", certs: []string{"server-tls"}},
		listener{name: "strict", port: pStrict, protocol: "HTTPS", hostname: "tickets.test", certs: []string{"server-tls"}},
	)
	frontend := func(caName string) string {
		return fmt.Sprintf(`    frontend:
      perPort:
      - port: %d
        tls:
          validation:
            caCertificateRefs: [{group: "", kind: ConfigMap, name: %s}]
`, pStrict, caName)
	}
	rest := server.secretYAML("server-tls") + caConfigMapYAML("client-ca", ca.testCert) + caConfigMapYAML("other-ca", other.testCert) + be.yaml()
	cfg := func(caName, routeName string) string {
		return withGatewayTLS(gw, frontend(caName)) + rest + simpleRoute(routeName, nil, "tickets")
	}
	g := startGateway(t, ip, cfg("client-ca", "all"))
	roots := x509.NewCertPool()
	roots.AddCert(server.cert)

	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			client := func(cert *testCert) *ticketClient {
				return &ticketClient{roots: roots, cache: tls.NewLRUClientSessionCache(4), cert: cert, max: version}
			}
			// expect makes one request and checks its outcome.
			expect := func(step string, tc *ticketClient, port int, wantResumed, wantOK bool) {
				t.Helper()
				resumed, status, err := tc.get(g, port, "tickets.test")
				ok := err == nil && status == http.StatusOK
				if resumed != wantResumed || ok != wantOK {
					t.Errorf("%s: resumed %v, status %d, error %v; want resumed %v, served %v", step, resumed, status, err, wantResumed, wantOK)
				}
			}
			lax, strict := client(nil), client(&alice)
			expect("lax, first", lax, pLax, false, true)
			expect("lax, again", lax, pLax, true, true)
			expect("strict, first", strict, pStrict, false, true)
			expect("strict, again", strict, pStrict, true, true)

			// A lax session on the strict port: no resumption, and
			// without a certificate no entry.
			expect("lax ticket on strict, no certificate", lax, pStrict, false, false)
			laxWithCert := client(&alice)
			expect("lax, with a certificate", laxWithCert, pLax, false, true)
			expect("lax ticket on strict, with a certificate", laxWithCert, pStrict, false, true)

			// A reload that keeps the policies keeps the sessions.
			lax, strict = client(nil), client(&alice)
			expect("lax, before reload", lax, pLax, false, true)
			expect("strict, before reload", strict, pStrict, false, true)
			g.reload(cfg("client-ca", "renamed-"+tls.VersionName(version)[4:]))
			expect("lax, after a reload", lax, pLax, true, true)
			expect("strict, after a reload", strict, pStrict, true, true)

			// Another CA on the strict port: alice's session is gone
			// (and so is her entry). Then back, for the next version.
			g.reload(cfg("other-ca", "all"))
			expect("strict, after the policy changed", strict, pStrict, false, false)
			expect("lax, after the strict policy changed", lax, pLax, true, true)
			g.reload(cfg("client-ca", "all"))
		})
	}
}
