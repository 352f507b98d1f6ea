package l4

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/meshgate/meshgate/ir"
)

// tlsDial connects through the gateway as a TLS client with cfg.
func tlsDial(t *testing.T, gw net.Addr, cfg *tls.Config) (*tls.Conn, error) {
	t.Helper()
	raw := dial(t, gw)
	c := tls.Client(raw, cfg)
	return c, c.Handshake()
}

func TestTLSPassthroughBySNI(t *testing.T) {
	certA := selfSigned(t, "a.example.com")
	certB := selfSigned(t, "b.example.com")
	certW := selfSigned(t, "x.wild.test")
	beA, beB, beW := startTLSEcho(t, certA), startTLSEcho(t, certB), startTLSEcho(t, certW)
	l := streamListener(ir.ProtocolTLS,
		&ir.ListenerHost{Name: "gw/any", TLSMode: ir.TLSPassthrough, L4Routes: []*ir.L4Route{
			l4Route("ns/a", []string{"a.example.com"}, weighted(1, irBackend("a", beA.addr()))),
			l4Route("ns/b", []string{"b.example.com"}, weighted(1, irBackend("b", beB.addr()))),
		}},
		&ir.ListenerHost{Name: "gw/wild", Hostname: "*.wild.test", TLSMode: ir.TLSPassthrough, L4Routes: []*ir.L4Route{
			l4Route("ns/w", nil, weighted(1, irBackend("w", beW.addr()))),
		}},
	)
	gw := startGateway(t, l, quietOptions())

	tests := []struct {
		sni  string
		cert *testCert
		be   *tcpBackend
	}{
		{"a.example.com", certA, beA},
		{"b.example.com", certB, beB},
		{"x.wild.test", certW, beW},
	}
	for _, tc := range tests {
		t.Run(tc.sni, func(t *testing.T) {
			before := tc.be.accepted.Load()
			// Verifying with this backend's own root proves the
			// handshake reached it, untouched.
			c, err := tlsDial(t, gw.Addr(), &tls.Config{ServerName: tc.sni, RootCAs: tc.cert.pool})
			if err != nil {
				t.Fatal(err)
			}
			if err := roundTrip(c, 64<<10); err != nil {
				t.Fatal(err)
			}
			c.Close()
			if tc.be.accepted.Load() != before+1 {
				t.Fatal("backend did not get the connection")
			}
		})
	}

	t.Run("unknown sni", func(t *testing.T) {
		before := gw.Stats().NoRoute
		if _, err := tlsDial(t, gw.Addr(), &tls.Config{ServerName: "c.example.com", RootCAs: certA.pool}); err == nil {
			t.Fatal("handshake succeeded")
		}
		if got := gw.Stats().NoRoute; got != before+1 {
			t.Fatalf("no_route %d, want %d", got, before+1)
		}
	})
	t.Run("no sni", func(t *testing.T) {
		before := gw.Stats().NoRoute
		if _, err := tlsDial(t, gw.Addr(), &tls.Config{InsecureSkipVerify: true}); err == nil {
			t.Fatal("handshake succeeded")
		}
		if got := gw.Stats().NoRoute; got != before+1 {
			t.Fatalf("no_route %d, want %d", got, before+1)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		before := gw.Stats().SNIErrors
		c := dial(t, gw.Addr())
		c.Write([]byte("GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n"))
		expectClosed(t, c)
		if got := gw.Stats().SNIErrors; got != before+1 {
			t.Fatalf("sni_errors %d, want %d", got, before+1)
		}
	})
}

func TestTLSClientHelloTimeout(t *testing.T) {
	opts := quietOptions()
	opts.ClientHelloTimeout = 50 * time.Millisecond
	l := streamListener(ir.ProtocolTLS, &ir.ListenerHost{Name: "h", TLSMode: ir.TLSPassthrough})
	gw := startGateway(t, l, opts)
	c := dial(t, gw.Addr())
	c.Write([]byte{22, 3, 1, 0, 200}) // a record header, then nothing
	expectClosed(t, c)
	if st := gw.Stats(); st.SNIErrors != 1 {
		t.Fatalf("stats %+v, want 1 sni error", st)
	}
}

func TestTLSTerminate(t *testing.T) {
	gwCert := selfSigned(t, "secure.example.com")
	passCert := selfSigned(t, "pass.example.com")
	plain := startEcho(t)
	pass := startTLSEcho(t, passCert)
	l := streamListener(ir.ProtocolTLS,
		&ir.ListenerHost{Name: "gw/secure", Hostname: "secure.example.com", TLSMode: ir.TLSTerminate, L4Routes: []*ir.L4Route{
			l4Route("ns/secure", nil, weighted(1, irBackend("plain", plain.addr()))),
		}},
		&ir.ListenerHost{Name: "gw/pass", Hostname: "pass.example.com", TLSMode: ir.TLSPassthrough, L4Routes: []*ir.L4Route{
			l4Route("ns/pass", nil, weighted(1, irBackend("pass", pass.addr()))),
		}},
	)
	l.Certificates = []*ir.Certificate{gwCert.ir}
	gw := startGateway(t, l, quietOptions())

	t.Run("terminated", func(t *testing.T) {
		c, err := tlsDial(t, gw.Addr(), &tls.Config{
			ServerName: "secure.example.com", RootCAs: gwCert.pool, NextProtos: []string{"h2", "http/1.1"},
		})
		if err != nil {
			t.Fatal(err)
		}
		if p := c.ConnectionState().NegotiatedProtocol; p != "" {
			t.Errorf("ALPN negotiated %q, want none", p)
		}
		if err := roundTrip(c, 128<<10); err != nil {
			t.Fatal(err)
		}
		// Half-close through TLS: close_notify reaches the backend as
		// EOF, whose close comes back as EOF after the echo.
		want := []byte("last words")
		c.Write(want)
		if err := c.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(c)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("got %q, %v; want %q then EOF", got, err, want)
		}
		if plain.accepted.Load() != 1 {
			t.Fatalf("plaintext backend accepted %d", plain.accepted.Load())
		}
	})
	t.Run("passthrough on the same socket", func(t *testing.T) {
		c, err := tlsDial(t, gw.Addr(), &tls.Config{ServerName: "pass.example.com", RootCAs: passCert.pool})
		if err != nil {
			t.Fatal(err)
		}
		if err := roundTrip(c, 1024); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("client rejects the certificate", func(t *testing.T) {
		before := gw.Stats().HandshakeErrors
		if _, err := tlsDial(t, gw.Addr(), &tls.Config{ServerName: "secure.example.com", RootCAs: passCert.pool}); err == nil {
			t.Fatal("handshake succeeded with the wrong root")
		}
		waitFor(t, "the handshake error to be counted", func() bool { return gw.Stats().HandshakeErrors == before+1 })
	})
}
