package tls

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	ctls "crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"net/url"
	"testing"
	"time"

	"github.com/meshgate/meshgate/ir"
)

// issue returns a CA and a client certificate it signed with the given
// subject and SANs.
func issue(t *testing.T, subject pkix.Name, uris []string, dns []string) (caPEM []byte, leaf *x509.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: subject, DNSNames: dns,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	for _, u := range uris {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ = x509.ParseCertificate(der)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), leaf
}

func TestIdentity(t *testing.T) {
	caPEM, leaf := issue(t, pkix.Name{CommonName: "web", Organization: []string{`Acme, "Inc"`}},
		[]string{"spiffe://example.org/ns/default/sa/web"}, []string{"web.example.org", "web2.example.org"})
	otherPEM, _ := issue(t, pkix.Name{CommonName: "x"}, nil, nil)
	sum := sha256.Sum256(leaf.Raw)
	// The subject's RFC 2253 form is CN=web,O=Acme\, \"Inc\"; inside the
	// quoted XFCC value its backslashes and quotes are escaped once more.
	want := "Hash=" + hex.EncodeToString(sum[:]) + `;Subject="CN=web,O=Acme\\, \\\"Inc\\\"";URI=spiffe://example.org/ns/default/sa/web;DNS=web.example.org;DNS=web2.example.org`
	auth := func(mode ir.ClientAuthMode, ca []byte) *ClientAuth {
		c, err := NewClientAuth(&ir.ClientAuth{Mode: mode, CAPEM: ca, IdentityHeader: "X-Forwarded-Client-Cert"})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	verified := &ctls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}, VerifiedChains: [][]*x509.Certificate{{leaf}}}
	unverified := &ctls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}
	for _, c := range []struct {
		name string
		auth *ClientAuth
		st   *ctls.ConnectionState
		want string
	}{
		{"verified in the handshake", auth(ir.ClientAuthAllowValidOnly, caPEM), verified, want},
		{"insecure fallback, verifies", auth(ir.ClientAuthAllowInsecureFallback, caPEM), unverified, want},
		{"insecure fallback, other CA", auth(ir.ClientAuthAllowInsecureFallback, otherPEM), unverified, ""},
		{"no certificate", auth(ir.ClientAuthAllowInsecureFallback, caPEM), &ctls.ConnectionState{}, ""},
		{"cleartext", auth(ir.ClientAuthAllowValidOnly, caPEM), nil, ""},
		{"no policy", nil, verified, ""},
	} {
		if got := c.auth.Identity(c.st); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, c.want)
		}
	}
	if h := auth(ir.ClientAuthAllowValidOnly, caPEM).IdentityHeader(); h != "X-Forwarded-Client-Cert" {
		t.Errorf("IdentityHeader %q", h)
	}
}

func TestEscapeXFCC(t *testing.T) {
	for in, want := range map[string]string{
		"plain":       "plain",
		`a"b\c`:       `a\"b\\c`,
		"line\r\nnew": "line??new",
	} {
		if got := escapeXFCC(in); got != want {
			t.Errorf("escapeXFCC(%q) = %q, want %q", in, got, want)
		}
	}
}
