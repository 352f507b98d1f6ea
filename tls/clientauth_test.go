package tls

import (
	ctls "crypto/tls"
	"crypto/x509"
	"net"
	"testing"

	"github.com/meshgate/meshgate/ir"
)

// handshake runs a TLS handshake over a pipe with server settings srv and
// the client presenting client (nil for none); it returns the server's
// error, or the client's when the server saw none.
func handshake(t *testing.T, srv *ctls.Config, serverCert *ir.Certificate, client *ir.Certificate) error {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(serverCert.CertPEM)
	ccfg := &ctls.Config{ServerName: "srv.test", RootCAs: roots}
	if client != nil {
		kp, err := ctls.X509KeyPair(client.CertPEM, client.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		ccfg.Certificates = []ctls.Certificate{kp}
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	errc := make(chan error, 1)
	go func() {
		c := ctls.Client(b, ccfg)
		err := c.Handshake()
		if err == nil {
			// TLS 1.3 reports the server's refusal on the first read.
			_, err = c.Read(make([]byte, 1))
		}
		b.Close()
		errc <- err
	}()
	s := ctls.Server(a, srv)
	serr := s.Handshake()
	a.Close()
	cerr := <-errc
	if serr != nil {
		return serr
	}
	if cerr != nil && cerr.Error() != "EOF" && cerr.Error() != "io: read/write on closed pipe" {
		return cerr
	}
	return nil
}

func TestClientAuth(t *testing.T) {
	serverCert := selfSigned(t, "srv.test")
	store, err := NewStore([]*ir.Certificate{serverCert})
	if err != nil {
		t.Fatal(err)
	}
	trusted := selfSigned(t, "alice")
	stranger := selfSigned(t, "mallory")
	config := func(ca *ir.ClientAuth) *ctls.Config {
		c, err := NewClientAuth(ca)
		if err != nil {
			t.Fatal(err)
		}
		return c.Apply(ServerConfig(func() *Store { return store }))
	}
	strict := config(&ir.ClientAuth{Mode: ir.ClientAuthAllowValidOnly, CAPEM: trusted.CertPEM, CAName: "configmap/default/ca"})
	fallback := config(&ir.ClientAuth{Mode: ir.ClientAuthAllowInsecureFallback, CAPEM: trusted.CertPEM, CAName: "configmap/default/ca"})
	none := config(nil)
	for _, c := range []struct {
		name   string
		cfg    *ctls.Config
		client *ir.Certificate
		ok     bool
	}{
		{"AllowValidOnly valid", strict, trusted, true},
		{"AllowValidOnly none", strict, nil, false},
		{"AllowValidOnly other CA", strict, stranger, false},
		{"AllowInsecureFallback valid", fallback, trusted, true},
		{"AllowInsecureFallback none", fallback, nil, true},
		{"AllowInsecureFallback other CA", fallback, stranger, true},
		{"no validation", none, nil, true},
	} {
		err := handshake(t, c.cfg, serverCert, c.client)
		if (err == nil) != c.ok {
			t.Errorf("%s: handshake error %v, want success %v", c.name, err, c.ok)
		}
	}

	if _, err := NewClientAuth(&ir.ClientAuth{CAPEM: []byte("not pem")}); err == nil {
		t.Error("NewClientAuth accepted a bundle without certificates")
	}
	if _, err := NewClientAuth(&ir.ClientAuth{Mode: "Sometimes", CAPEM: trusted.CertPEM}); err == nil {
		t.Error("NewClientAuth accepted an unknown mode")
	}
}
