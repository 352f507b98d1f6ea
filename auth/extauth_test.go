package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"

	"github.com/meshgate/meshgate/ir"
)

// testCA is a certificate authority and a server certificate it issued
// for authz.test and 127.0.0.1.
type testCA struct {
	pem  []byte
	leaf tls.Certificate
}

func newTestCA(t *testing.T) testCA {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ = x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "authz.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"authz.test"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return testCA{
		pem:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		leaf: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
	}
}

// allowAll is an ext_authz service letting everything in.
type allowAll struct {
	authv3.UnimplementedAuthorizationServer
}

func (allowAll) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return &authv3.CheckResponse{Status: &rpcstatus.Status{Code: int32(codes.OK)}}, nil
}

// grpcAuthz serves allowAll on loopback, over TLS when cert is set.
func grpcAuthz(t *testing.T, cert *tls.Certificate) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var opts []grpc.ServerOption
	if cert != nil {
		opts = append(opts, grpc.Creds(credentials.NewServerTLSFromCert(cert)))
	}
	s := grpc.NewServer(opts...)
	authv3.RegisterAuthorizationServer(s, allowAll{})
	go s.Serve(ln)
	t.Cleanup(s.Stop)
	return ln.Addr().String()
}

func extPolicy(t *testing.T, grpcAPI bool, addr string, u *ir.UpstreamTLS, failOpen bool) *Policy {
	t.Helper()
	p, err := Compile(&ir.SecurityPolicy{ExtAuth: &ir.ExtAuth{
		Policy: "default/authz", GRPC: grpcAPI, Timeout: 2 * time.Second, FailOpen: failOpen,
		Backend: &ir.Backend{Name: "backend/default/authz", TLS: u, Endpoints: []ir.Endpoint{{Address: addr}}},
	}}, &Conns{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}

func TestExtAuthTLS(t *testing.T) {
	good, wrong := newTestCA(t), newTestCA(t)
	httpSrv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-User", "tls-checked")
	}))
	httpSrv.TLS = &tls.Config{Certificates: []tls.Certificate{good.leaf}}
	httpSrv.StartTLS()
	defer httpSrv.Close()
	httpAddr := strings.TrimPrefix(httpSrv.URL, "https://")
	grpcAddr := grpcAuthz(t, &good.leaf)

	tests := []struct {
		name     string
		grpc     bool
		ca       []byte
		failOpen bool
		// wantDenied is the denial reason, "" to let in; wantErr a part
		// of the logged reason.
		wantDenied, wantErr string
	}{
		{name: "http good CA", ca: good.pem},
		{name: "http wrong CA closed", ca: wrong.pem, wantDenied: "ext_auth_unavailable", wantErr: "certificate signed by unknown authority"},
		{name: "http wrong CA open", ca: wrong.pem, failOpen: true, wantErr: "certificate signed by unknown authority"},
		{name: "grpc good CA", grpc: true, ca: good.pem},
		{name: "grpc wrong CA closed", grpc: true, ca: wrong.pem, wantDenied: "ext_auth_unavailable", wantErr: "certificate signed by unknown authority"},
		{name: "grpc wrong CA open", grpc: true, ca: wrong.pem, failOpen: true, wantErr: "certificate signed by unknown authority"},
		{name: "bad CA bundle closed", grpc: true, ca: []byte("not a certificate"), wantDenied: "ext_auth_unavailable", wantErr: "no usable CA certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr := httpAddr
			if tc.grpc {
				addr = grpcAddr
			}
			p := extPolicy(t, tc.grpc, addr, &ir.UpstreamTLS{ServerName: "authz.test", CAPEM: tc.ca, CAName: "test"}, tc.failOpen)
			p.Start()
			r := httptest.NewRequest(http.MethodGet, "http://app.test/orders?id=1", nil)
			d, err := p.Check(context.Background(), SectionExt, r, "192.0.2.1:1234")
			reason, detail := "", ""
			if d != nil {
				reason, detail = d.Reason, d.Detail
			}
			if err != nil {
				detail = err.Error()
			}
			if reason != tc.wantDenied {
				t.Fatalf("denial %q (%s), want %q", reason, detail, tc.wantDenied)
			}
			if tc.wantErr == "" && (d != nil || err != nil) {
				t.Fatalf("unexpected failure: %v %v", d, err)
			}
			if !strings.Contains(detail, tc.wantErr) {
				t.Fatalf("reason %q does not say %q", detail, tc.wantErr)
			}
			if strings.Contains(detail, "id=1") {
				t.Fatalf("reason %q holds the request's query", detail)
			}
			if tc.wantErr == "" && !tc.grpc && r.Header.Get("X-User") != "" {
				t.Fatalf("X-User copied without headersToBackend")
			}
		})
	}
}

func TestExtConnsClosedWhenUnused(t *testing.T) {
	addrA, addrB := grpcAuthz(t, nil), grpcAuthz(t, nil)
	newExtFor := func(pool *Conns, addrs ...string) *Ext {
		var eps []ir.Endpoint
		for _, a := range addrs {
			eps = append(eps, ir.Endpoint{Address: a})
		}
		e, err := NewExt(&ir.ExtAuth{Policy: "default/authz", GRPC: true, Timeout: 2 * time.Second,
			Backend: &ir.Backend{Name: "authz", Endpoints: eps}}, pool)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	check := func(e *Ext) {
		t.Helper()
		r := httptest.NewRequest(http.MethodGet, "http://app.test/", nil)
		if res := e.Check(context.Background(), r, "192.0.2.1:1"); !res.Allowed {
			t.Fatalf("check not allowed: %+v", res)
		}
	}
	open := func(pool *Conns, want int) {
		t.Helper()
		if got, _ := pool.open(); got != want {
			t.Fatalf("%d gRPC connections open, want %d", got, want)
		}
	}

	t.Run("reload keeps shared, closes dropped", func(t *testing.T) {
		pool := &Conns{}
		old := newExtFor(pool, addrA, addrB)
		old.Start()
		check(old)
		ccB := old.conns[addrB]
		open(pool, 2)
		// The next config keeps A and drops B: the new one starts
		// first, then the old one stops.
		next := newExtFor(pool, addrA)
		next.Start()
		old.Stop()
		open(pool, 1)
		if s := ccB.GetState(); s != connectivity.Shutdown {
			t.Fatalf("dropped address's connection is %v, want Shutdown", s)
		}
		check(next)
		next.Stop()
		open(pool, 0)
	})

	t.Run("closed after the checks in flight", func(t *testing.T) {
		pool := &Conns{}
		e := newExtFor(pool, addrA)
		e.Start()
		conns, _ := e.begin() // a check of the old config still running
		e.Stop()
		open(pool, 1)
		if s := conns[addrA].GetState(); s == connectivity.Shutdown {
			t.Fatal("connection closed under a check in flight")
		}
		e.end()
		open(pool, 0)
		if s := conns[addrA].GetState(); s != connectivity.Shutdown {
			t.Fatalf("connection is %v after the last check, want Shutdown", s)
		}
		// A straggler check of the retired config takes a connection for
		// its duration only.
		check(e)
		open(pool, 0)
	})

	t.Run("http clients counted", func(t *testing.T) {
		pool := &Conns{}
		ca := newTestCA(t)
		mk := func(u *ir.UpstreamTLS) *Ext {
			e, err := NewExt(&ir.ExtAuth{Policy: "p", Backend: &ir.Backend{Name: "b", TLS: u, Endpoints: []ir.Endpoint{{Address: "127.0.0.1:1"}}}}, pool)
			if err != nil {
				t.Fatal(err)
			}
			e.Start()
			return e
		}
		a, b := mk(nil), mk(&ir.UpstreamTLS{ServerName: "authz.test", CAPEM: ca.pem})
		c := mk(nil)
		if _, n := pool.open(); n != 2 {
			t.Fatalf("%d HTTP clients, want 2 (cleartext shared, TLS)", n)
		}
		a.Stop()
		b.Stop()
		if _, n := pool.open(); n != 1 {
			t.Fatalf("%d HTTP clients, want 1", n)
		}
		c.Stop()
		if _, n := pool.open(); n != 0 {
			t.Fatalf("%d HTTP clients, want 0", n)
		}
	})
}
