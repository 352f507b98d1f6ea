package tls

import (
	ctls "crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/meshgate/meshgate/ir"
)

// fakeClock is a settable clock for TicketKeys.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// resumeClient is a client that keeps sessions and may present cert.
type resumeClient struct {
	roots *x509.CertPool
	cache ctls.ClientSessionCache
	cert  *ir.Certificate
}

func newResumeClient(t *testing.T, serverCert, cert *ir.Certificate) *resumeClient {
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(serverCert.CertPEM)
	return &resumeClient{roots: roots, cache: ctls.NewLRUClientSessionCache(8), cert: cert}
}

// connect makes one connection over loopback TCP (so the post-handshake
// session ticket can be sent while the client writes) to a server with
// settings srv, and returns the client's view: resumed or not, and the
// error of the handshake or of the first read (a TLS 1.3 server refuses a
// client certificate after the client's handshake is done).
func (rc *resumeClient) connect(t *testing.T, srv *ctls.Config, version uint16) (ctls.ConnectionState, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		s := ctls.Server(c, srv)
		if s.Handshake() == nil {
			s.Write([]byte("x"))
		}
	}()
	ccfg := &ctls.Config{ServerName: "srv.test", RootCAs: rc.roots, ClientSessionCache: rc.cache, MinVersion: version, MaxVersion: version}
	if rc.cert != nil {
		kp, err := ctls.X509KeyPair(rc.cert.CertPEM, rc.cert.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		ccfg.Certificates = []ctls.Certificate{kp}
	}
	c, err := ctls.Dial("tcp", ln.Addr().String(), ccfg)
	if err != nil {
		return ctls.ConnectionState{}, err
	}
	defer c.Close()
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		return c.ConnectionState(), err
	}
	return c.ConnectionState(), nil
}

func TestTicketKeysPerPolicy(t *testing.T) {
	serverCert := selfSigned(t, "srv.test", "srv.test")
	store, err := NewStore([]*ir.Certificate{serverCert})
	if err != nil {
		t.Fatal(err)
	}
	caA, caB := selfSigned(t, "alice"), selfSigned(t, "bob")
	// alice's certificate is its own CA: self-signed client certificates
	// verify against a pool holding them.
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	keys := NewTicketKeys(clock.now)
	// config builds a listener's settings as the data plane does, anew
	// for each call (a reload, or another socket).
	config := func(ca *ir.ClientAuth) *ctls.Config {
		auth, err := NewClientAuth(ca)
		if err != nil {
			t.Fatal(err)
		}
		return keys.Apply(auth.Apply(ServerConfig(func() *Store { return store })), auth.Fingerprint())
	}
	lax := func() *ctls.Config {
		return config(&ir.ClientAuth{Mode: ir.ClientAuthAllowInsecureFallback, CAPEM: caB.CertPEM, CAName: "b"})
	}
	strictA := func() *ctls.Config {
		return config(&ir.ClientAuth{Mode: ir.ClientAuthAllowValidOnly, CAPEM: caA.CertPEM, CAName: "a"})
	}
	none := func() *ctls.Config { return config(nil) }

	for _, version := range []uint16{ctls.VersionTLS12, ctls.VersionTLS13} {
		t.Run(ctls.VersionName(version), func(t *testing.T) {
			// Within one policy, across configs (reloads, sockets).
			rc := newResumeClient(t, serverCert, nil)
			if st, err := rc.connect(t, none(), version); err != nil || st.DidResume {
				t.Fatalf("first connection: resumed %v, error %v", st.DidResume, err)
			}
			if st, err := rc.connect(t, none(), version); err != nil || !st.DidResume {
				t.Fatalf("same policy, new config: resumed %v, error %v; want resumed", st.DidResume, err)
			}

			// A session from the lax listener (alice's certificate,
			// not verified there) is not resumed on the strict one.
			rc = newResumeClient(t, serverCert, caA)
			if _, err := rc.connect(t, lax(), version); err != nil {
				t.Fatal(err)
			}
			if st, err := rc.connect(t, lax(), version); err != nil || !st.DidResume {
				t.Fatalf("lax again: resumed %v, error %v; want resumed", st.DidResume, err)
			}
			if st, err := rc.connect(t, strictA(), version); err != nil || st.DidResume {
				t.Fatalf("lax ticket on strict: resumed %v, error %v; want a full handshake that succeeds", st.DidResume, err)
			}
			// A session from the lax listener without a certificate:
			// the strict one demands a certificate.
			rc = newResumeClient(t, serverCert, nil)
			if _, err := rc.connect(t, lax(), version); err != nil {
				t.Fatal(err)
			}
			if st, err := rc.connect(t, strictA(), version); err == nil || st.DidResume {
				t.Fatalf("lax ticket without certificate on strict: resumed %v, error %v; want the certificate demanded", st.DidResume, err)
			}

			// Keys rotate: a ticket resumes for TicketKeysKept-1
			// periods, not TicketKeysKept.
			rc = newResumeClient(t, serverCert, nil)
			rc.connect(t, none(), version)
			clock.add(time.Duration(TicketKeysKept-1) * TicketKeyPeriod)
			if st, err := rc.connect(t, none(), version); err != nil || !st.DidResume {
				t.Fatalf("ticket from %d periods ago: resumed %v, error %v; want resumed", TicketKeysKept-1, st.DidResume, err)
			}
			rc = newResumeClient(t, serverCert, nil)
			rc.connect(t, none(), version)
			clock.add(time.Duration(TicketKeysKept) * TicketKeyPeriod)
			if st, err := rc.connect(t, none(), version); err != nil || st.DidResume {
				t.Fatalf("ticket from %d periods ago: resumed %v, error %v; want a full handshake", TicketKeysKept, st.DidResume, err)
			}
		})
	}
}

// TestTicketKeysSeparate checks the keys directly: a ticket sealed for one
// fingerprint (or by another process) opens for no other.
func TestTicketKeysSeparate(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	k, other := NewTicketKeys(clock.now), NewTicketKeys(clock.now)
	fpA, fpB := [32]byte{1}, [32]byte{2}
	// A real ticket comes from a handshake, caught on its way out.
	serverCert := selfSigned(t, "srv.test", "srv.test")
	store, _ := NewStore([]*ir.Certificate{serverCert})
	var ticket []byte
	var cs ctls.ConnectionState
	cfg := k.Apply(ServerConfig(func() *Store { return store }), fpA)
	wrap := cfg.WrapSession
	cfg.WrapSession = func(c ctls.ConnectionState, s *ctls.SessionState) ([]byte, error) {
		b, err := wrap(c, s)
		ticket, cs = b, c
		return b, err
	}
	rc := newResumeClient(t, serverCert, nil)
	if _, err := rc.connect(t, cfg, ctls.VersionTLS13); err != nil {
		t.Fatal(err)
	}
	if ticket == nil {
		t.Fatal("no ticket issued")
	}
	for _, c := range []struct {
		name string
		keys *TicketKeys
		fp   [32]byte
		ok   bool
	}{
		{"same policy", k, fpA, true},
		{"other policy", k, fpB, false},
		{"other process", other, fpA, false},
	} {
		got, err := c.keys.Apply(&ctls.Config{}, c.fp).UnwrapSession(ticket, cs)
		if err != nil || (got != nil) != c.ok {
			t.Errorf("%s: session %v, error %v; want opened %v", c.name, got != nil, err, c.ok)
		}
	}
}
