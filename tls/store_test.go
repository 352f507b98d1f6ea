package tls

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	ctls "crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	"github.com/meshgate/meshgate/ir"
)

// selfSigned returns a certificate for cn as an ir.Certificate serving names.
func selfSigned(t *testing.T, cn string, names ...string) *ir.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, DNSNames: []string{cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	return &ir.Certificate{
		Name:      "secret/default/" + cn,
		Hostnames: names,
		CertPEM:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:    pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}),
	}
}

func leafCN(t *testing.T, c *ctls.Certificate) string {
	t.Helper()
	x, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return x.Subject.CommonName
}

func TestStoreCertificate(t *testing.T) {
	s, err := NewStore([]*ir.Certificate{
		selfSigned(t, "exact", "api.example.com"),
		selfSigned(t, "wild", "*.example.com"),
		selfSigned(t, "deepwild", "*.eu.example.com"),
		selfSigned(t, "default"),
		selfSigned(t, "shadowed", "api.example.com"),
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ sni, want string }{
		{"api.example.com", "exact"},
		{"API.Example.com.", "exact"},
		{"www.example.com", "wild"},
		{"a.eu.example.com", "deepwild"},
		{"example.com", "default"},
		{"", "default"},
		{"other.test", "default"},
	}
	for _, tc := range tests {
		t.Run(tc.sni, func(t *testing.T) {
			c, err := s.Certificate(tc.sni)
			if err != nil {
				t.Fatal(err)
			}
			if got := leafCN(t, c); got != tc.want {
				t.Errorf("SNI %q got certificate %q, want %q", tc.sni, got, tc.want)
			}
		})
	}
}

func TestStoreFallbackAndErrors(t *testing.T) {
	s, err := NewStore([]*ir.Certificate{selfSigned(t, "only", "a.example.com")})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := s.Certificate("b.example.com"); err != ErrNoCertificate {
		t.Errorf("no default listener: an unknown name must get no certificate, got %v (err %v)", c, err)
	}
	if _, err := s.Certificate(""); err != ErrNoCertificate {
		t.Errorf("no default listener: a client without SNI must get no certificate, got err %v", err)
	}
	empty, _ := NewStore(nil)
	if _, err := empty.Certificate("x"); err != ErrNoCertificate {
		t.Errorf("empty store: err = %v", err)
	}
	bad := selfSigned(t, "bad")
	bad.KeyPEM = []byte("not a key")
	if _, err := NewStore([]*ir.Certificate{bad}); err == nil {
		t.Error("invalid key accepted")
	}
	cfg := ServerConfig(func() *Store { return s })
	if cfg.MinVersion != ctls.VersionTLS12 || len(cfg.NextProtos) != 2 || cfg.NextProtos[0] != "h2" {
		t.Errorf("server config: min %x alpn %v", cfg.MinVersion, cfg.NextProtos)
	}
	if c, err := cfg.GetCertificate(&ctls.ClientHelloInfo{ServerName: "a.example.com"}); err != nil || leafCN(t, c) != "only" {
		t.Errorf("GetCertificate: %v", err)
	}
}
