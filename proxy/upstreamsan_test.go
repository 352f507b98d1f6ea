package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/meshgate/meshgate/ir"
)

// sanCert is a self-signed CA certificate for dnsNames and uris.
func sanCert(t *testing.T, dnsNames []string, uris ...string) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "backend"},
		DNSNames:              dnsNames,
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, u := range uris {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// handshake connects to a TLS server presenting cert with the client config
// built for u and returns the handshake error.
func handshake(t *testing.T, cert tls.Certificate, u *ir.UpstreamTLS) error {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	var c upstreamTLS
	e, err := c.entry(u)
	if err != nil {
		return err
	}
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_, err = tlsHandshake(t.Context(), conn, e.h1)
	if err == nil {
		conn.Close()
	}
	return err
}

func TestUpstreamTLSSubjectAltNames(t *testing.T) {
	cert, caPEM := sanCert(t, []string{"api.internal", "*.svc.internal"}, "spiffe://cluster.local/ns/default/sa/api")
	_, otherPEM := sanCert(t, []string{"api.internal"})
	for _, c := range []struct {
		name string
		u    ir.UpstreamTLS
		want string // "" for success, else a substring of the error
	}{
		{"server name", ir.UpstreamTLS{ServerName: "api.internal", CAPEM: caPEM}, ""},
		{"server name mismatch", ir.UpstreamTLS{ServerName: "other.internal", CAPEM: caPEM}, "not other.internal"},
		{"DNS SAN, SNI not checked", ir.UpstreamTLS{ServerName: "sni.only", CAPEM: caPEM, SANDNSNames: []string{"nope.internal", "api.internal"}}, ""},
		{"DNS SAN via wildcard certificate", ir.UpstreamTLS{ServerName: "x", CAPEM: caPEM, SANDNSNames: []string{"foo.svc.internal"}}, ""},
		{"wildcard SAN wanted", ir.UpstreamTLS{ServerName: "x", CAPEM: caPEM, SANDNSNames: []string{"*.svc.internal"}}, ""},
		{"URI SAN", ir.UpstreamTLS{ServerName: "x", CAPEM: caPEM, SANURIs: []string{"spiffe://cluster.local/ns/default/sa/api"}}, ""},
		{"SAN mismatch", ir.UpstreamTLS{ServerName: "api.internal", CAPEM: caPEM, SANDNSNames: []string{"web.internal"}, SANURIs: []string{"spiffe://cluster.local/ns/default/sa/web"}}, "match none of [web.internal, spiffe://cluster.local/ns/default/sa/web]"},
		{"SAN with untrusted CA", ir.UpstreamTLS{ServerName: "x", CAPEM: otherPEM, SANDNSNames: []string{"api.internal"}}, "certificate signed by unknown authority"},
		{"unusable settings", ir.UpstreamTLS{ServerName: "api.internal", CAPEM: caPEM, Error: "BackendTLSPolicy default/p is not usable: no CA"}, "not usable: no CA"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := handshake(t, cert, &c.u)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("handshake failed: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("got error %v, want one containing %q", err, c.want)
			}
		})
	}
}

// TestUpstreamTLSCacheKeySANs checks that settings differing only in their
// subject alt names get different client configs (and connection pools).
func TestUpstreamTLSCacheKeySANs(t *testing.T) {
	var c upstreamTLS
	a, err := c.entry(&ir.UpstreamTLS{ServerName: "s"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.entry(&ir.UpstreamTLS{ServerName: "s", SANDNSNames: []string{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	if a.key == b.key {
		t.Fatal("SANs not part of the cache key")
	}
}
