package tls

import (
	ctls "crypto/tls"
	"crypto/x509"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/meshgate/meshgate/ir"
)

func TestParseOptions(t *testing.T) {
	for _, c := range []struct {
		name    string
		in      map[string]string
		want    ListenerOptions
		wantErr string // substring; "" for success
	}{
		{name: "empty", in: nil},
		{name: "other implementation", in: map[string]string{"example.com/x": "y"}},
		{
			name: "all", in: map[string]string{
				OptMinVersion: " 1.2 ", OptCipherSuites: "tls_ecdhe_rsa_with_aes_128_gcm_sha256, TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
				OptCurves: "P-256,x25519mlkem768", OptALPN: "HTTP/1.1", OptClientIdentityHeader: "x-client-id",
			},
			want: ListenerOptions{
				TLS: &ir.TLSOptions{
					MinVersion:   "1.2",
					CipherSuites: []string{"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"},
					Curves:       []string{"CurveP256", "X25519MLKEM768"}, ALPN: []string{"http/1.1"},
				},
				IdentityHeader: "X-Client-Id", IdentitySet: true,
			},
		},
		{name: "identity none", in: map[string]string{OptClientIdentityHeader: "None"}, want: ListenerOptions{IdentitySet: true}},
		{name: "version", in: map[string]string{OptMinVersion: "1.0"}, wantErr: `tls.options[gateway.meshgate.dev/min-version]: "1.0": not one of 1.2, 1.3`},
		{name: "insecure suite", in: map[string]string{OptCipherSuites: "TLS_RSA_WITH_AES_128_CBC_SHA"}, wantErr: "TLS_RSA_WITH_AES_128_CBC_SHA is insecure"},
		{name: "tls 1.3 suite", in: map[string]string{OptCipherSuites: "TLS_AES_128_GCM_SHA256"}, wantErr: "TLS 1.3 suite"},
		{name: "unknown suite", in: map[string]string{OptCipherSuites: "TLS_MADE_UP"}, wantErr: "not a known TLS 1.2 cipher suite"},
		{name: "suites with 1.3", in: map[string]string{OptMinVersion: "1.3", OptCipherSuites: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"}, wantErr: "TLS 1.2 only"},
		{name: "empty item", in: map[string]string{OptCurves: "X25519,,P-256"}, wantErr: "empty item"},
		{name: "repeat", in: map[string]string{OptALPN: "h2,H2"}, wantErr: "listed twice"},
		{name: "curve", in: map[string]string{OptCurves: "P-224"}, wantErr: "P-224 is not one of"},
		{name: "alpn", in: map[string]string{OptALPN: "h3"}, wantErr: "h3 is not one of h2, http/1.1"},
		{name: "unknown key", in: map[string]string{OptionPrefix + "max-version": "1.2"}, wantErr: "unknown key"},
		{name: "unprefixed", in: map[string]string{"min-version": "1.3"}, wantErr: "reserved for Gateway API"},
		{name: "header not a token", in: map[string]string{OptClientIdentityHeader: "x:y"}, wantErr: "not a header name"},
		{name: "header owned by HTTP", in: map[string]string{OptClientIdentityHeader: "content-length"}, wantErr: "Content-Length is owned by HTTP"},
		{name: "header empty", in: map[string]string{OptClientIdentityHeader: ""}, wantErr: "empty"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseOptions(c.in)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %+v (TLS %+v), want %+v (TLS %+v)", got, got.TLS, c.want, c.want.TLS)
			}
		})
	}
}

// hello runs a handshake of a client with settings client (ServerName
// set) against srv over loopback TCP and returns the server's view of it,
// or the server's error.
func hello(t *testing.T, srv *ctls.Config, client *ctls.Config) (ctls.ConnectionState, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ctls.Dial("tcp", ln.Addr().String(), client)
		if err == nil {
			c.Read(make([]byte, 1)) // until the server closes
			c.Close()
		}
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second)) // a hang fails, not a bound on speed
	s := ctls.Server(c, srv)
	err = s.Handshake()
	return s.ConnectionState(), err
}

func TestHostOptions(t *testing.T) {
	modernCert, legacyCert, anyCert := selfSigned(t, "modern.test", "modern.test"), selfSigned(t, "legacy.test", "*.legacy.test"), selfSigned(t, "any.test")
	store, err := NewStore([]*ir.Certificate{modernCert, legacyCert, anyCert})
	if err != nil {
		t.Fatal(err)
	}
	modern := &ir.TLSOptions{MinVersion: "1.3", ALPN: []string{"http/1.1"}, Curves: []string{"CurveP256"}}
	legacy := &ir.TLSOptions{CipherSuites: []string{"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"}}
	ho, err := NewHostOptions([]*ir.ListenerHost{
		{Name: "gw/modern", Hostname: "modern.test", TLS: modern},
		{Name: "gw/legacy", Hostname: "*.legacy.test", TLS: legacy},
		{Name: "gw/plain", Hostname: "plain.legacy.test"}, // no options: defaults, despite the wildcard
		{Name: "gw/any"},
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := ServerConfig(func() *Store { return store })
	cfg.NextProtos = append(cfg.NextProtos, "acme-tls/1") // as the data plane's ACME adds
	cfg = ho.Apply(cfg)
	roots := x509.NewCertPool()
	for _, c := range []*ir.Certificate{modernCert, legacyCert, anyCert} {
		roots.AppendCertsFromPEM(c.CertPEM)
	}
	client := func(name string, maxVersion uint16, alpn ...string) *ctls.Config {
		return &ctls.Config{ServerName: name, RootCAs: roots, InsecureSkipVerify: true, MaxVersion: maxVersion, NextProtos: alpn}
	}
	for _, c := range []struct {
		name      string
		client    *ctls.Config
		ok        bool
		wantProto string
		wantSuite uint16
		wantCurve ctls.CurveID
	}{
		{name: "modern refuses TLS 1.2", client: client("modern.test", ctls.VersionTLS12, "h2", "http/1.1")},
		{name: "modern TLS 1.3 without h2", client: client("modern.test", 0, "h2", "http/1.1"), ok: true, wantProto: "http/1.1", wantCurve: ctls.CurveP256},
		{name: "modern keeps acme-tls/1", client: client("modern.test", 0, "acme-tls/1"), ok: true, wantProto: "acme-tls/1"},
		{name: "legacy suite", client: client("a.legacy.test", ctls.VersionTLS12, "h2"), ok: true, wantProto: "h2", wantSuite: ctls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384},
		{name: "exact host without options", client: client("plain.legacy.test", ctls.VersionTLS12, "h2"), ok: true, wantProto: "h2", wantSuite: ctls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
		{name: "fallback host", client: client("other.test", ctls.VersionTLS12, "h2"), ok: true, wantProto: "h2", wantSuite: ctls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
	} {
		t.Run(c.name, func(t *testing.T) {
			st, err := hello(t, cfg, c.client)
			if (err == nil) != c.ok {
				t.Fatalf("handshake error %v, want success %v", err, c.ok)
			}
			if !c.ok {
				return
			}
			if st.NegotiatedProtocol != c.wantProto {
				t.Errorf("ALPN %q, want %q", st.NegotiatedProtocol, c.wantProto)
			}
			if c.wantSuite != 0 && st.CipherSuite != c.wantSuite {
				t.Errorf("cipher suite %s, want %s", ctls.CipherSuiteName(st.CipherSuite), ctls.CipherSuiteName(c.wantSuite))
			}
			if c.wantCurve != 0 && st.CurveID != c.wantCurve {
				t.Errorf("curve %s, want %s", st.CurveID, c.wantCurve)
			}
		})
	}

	// A request without SNI got the hostless listener's settings (here the
	// defaults): it may not ask for a host held to others.
	for host, want := range map[string]bool{
		"modern.test": true, "modern.test:8443": true, "MODERN.test.": true, "a.legacy.test": true,
		"plain.legacy.test": false, "other.test": false, "": false, "127.0.0.1:443": false, "[::1]:443": false,
	} {
		if got := ho.Unnamed(host); got != want {
			t.Errorf("Unnamed(%q) = %v, want %v", host, got, want)
		}
	}
	var none *HostOptions
	if none.Unnamed("modern.test") {
		t.Error("nil HostOptions: Unnamed true, want false")
	}
	// The hostless listener has settings of its own: a request without SNI
	// got them, and may ask for another host only if it has the same.
	anyOpts, err := NewHostOptions([]*ir.ListenerHost{
		{Name: "gw/any", TLS: modern},
		{Name: "gw/x", Hostname: "x.test"},
		{Name: "gw/y", Hostname: "y.test", TLS: modern},
	})
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]bool{"x.test": true, "y.test": false, "other.test": false} {
		if got := anyOpts.Unnamed(host); got != want {
			t.Errorf("hostless listener with settings: Unnamed(%q) = %v, want %v", host, got, want)
		}
	}

	if ho, err := NewHostOptions([]*ir.ListenerHost{{Name: "gw/plain"}}); ho != nil || err != nil {
		t.Errorf("hosts without options: %v, %v; want nil, nil", ho, err)
	}
	if _, err := NewHostOptions([]*ir.ListenerHost{{Name: "gw/bad", TLS: &ir.TLSOptions{MinVersion: "1.1"}}}); err == nil || !strings.Contains(err.Error(), "gw/bad") {
		t.Errorf("bad options: error %v, want one naming the host", err)
	}
}
