package tls

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	ctls "crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/meshgate/meshgate/ir"
)

// testCA is a CA with an OCSP responder on loopback answering status for
// every serial (Good unless told otherwise).
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	srv  *httptest.Server

	status   atomic.Int64 // ocsp.Good, ocsp.Revoked; -1: answer 503
	validity atomic.Int64 // of each response
	requests atomic.Int64
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "OCSP test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca := &testCA{key: key}
	ca.cert, _ = x509.ParseCertificate(der)
	ca.pool = x509.NewCertPool()
	ca.pool.AddCert(ca.cert)
	ca.validity.Store(int64(time.Hour))
	ca.srv = httptest.NewServer(http.HandlerFunc(ca.respond))
	t.Cleanup(ca.srv.Close)
	return ca
}

func (ca *testCA) respond(w http.ResponseWriter, r *http.Request) {
	ca.requests.Add(1)
	status := int(ca.status.Load())
	if status < 0 {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	body, _ := io.ReadAll(r.Body)
	req, err := ocsp.ParseRequest(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	now := time.Now().Truncate(time.Second)
	resp := ocsp.Response{Status: status, SerialNumber: req.SerialNumber, ThisUpdate: now,
		NextUpdate: now.Add(time.Duration(ca.validity.Load())), RevokedAt: now, RevocationReason: ocsp.KeyCompromise}
	der, err := ocsp.CreateResponse(ca.cert, ca.cert, resp, ca.key)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/ocsp-response")
	w.Write(der)
}

// leaf issues a certificate for name naming responder (none when "") and
// returns it as an ir.Certificate with the CA in its chain.
func (ca *testCA) leaf(t *testing.T, name, responder string) *ir.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if responder != "" {
		tmpl.OCSPServer = []string{responder}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})...)
	return &ir.Certificate{Name: "secret/default/" + name, Hostnames: []string{name}, CertPEM: chain,
		KeyPEM: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})}
}

// logBuffer collects log output across goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// staplingHandshake runs a TLS handshake over a loopback TCP connection against
// a listener serving store and returns the client's view.
func staplingHandshake(t *testing.T, store *Store, name string, roots *x509.CertPool) ctls.ConnectionState {
	t.Helper()
	ln, err := ctls.Listen("tcp", "127.0.0.1:0", ServerConfig(func() *Store { return store }))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.(*ctls.Conn).Handshake()
			c.Close()
		}
	}()
	c, err := ctls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), &ctls.Config{ServerName: name, RootCAs: roots})
	if err != nil {
		t.Fatalf("handshake for %s: %v", name, err)
	}
	defer c.Close()
	return c.ConnectionState()
}

// eventually polls cond for up to 10 s (background fetches on a loaded
// machine); false when it never held.
func eventually(cond func() bool) bool {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

func TestStapling(t *testing.T) {
	tests := []struct {
		name      string
		status    int // -1: the responder answers 503
		closed    bool
		noOCSPURL bool
		wantGood  bool
		wantLog   string
	}{
		{name: "good response is stapled", status: ocsp.Good, wantGood: true},
		{name: "responder answering 503", status: -1, wantLog: "OCSP staple fetch failed"},
		{name: "responder not listening", status: ocsp.Good, closed: true, wantLog: "OCSP staple fetch failed"},
		{name: "revoked is not stapled", status: ocsp.Revoked, wantLog: "does not vouch"},
		{name: "no responder named", status: ocsp.Good, noOCSPURL: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ca := newTestCA(t)
			ca.status.Store(int64(tt.status))
			responder := ca.srv.URL
			if tt.closed {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				responder = "http://" + ln.Addr().String()
				ln.Close()
			}
			if tt.noOCSPURL {
				responder = ""
			}
			var logs logBuffer
			st := &Stapler{Log: slog.New(slog.NewTextHandler(&logs, nil))}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go st.Run(ctx)

			store, err := NewStore([]*ir.Certificate{ca.leaf(t, "ocsp.test", responder)})
			if err != nil {
				t.Fatal(err)
			}
			store.Staple(st)
			if tt.noOCSPURL {
				if n := st.tracked(); n != 0 {
					t.Errorf("%d certificates tracked, want none without an OCSP URL", n)
				}
			}
			switch {
			case tt.wantGood:
				if !eventually(func() bool { c, _ := store.Certificate("ocsp.test"); return c.OCSPStaple != nil }) {
					t.Fatalf("no staple after 10 s (%d OCSP requests); logs:\n%s", ca.requests.Load(), logs.String())
				}
			case tt.wantLog != "":
				if !eventually(func() bool { return strings.Contains(logs.String(), tt.wantLog) }) {
					t.Fatalf("no %q log after 10 s; logs:\n%s", tt.wantLog, logs.String())
				}
			}

			cs := staplingHandshake(t, store, "ocsp.test", ca.pool)
			if !tt.wantGood {
				if cs.OCSPResponse != nil {
					t.Errorf("handshake carries an OCSP response, want none")
				}
				return
			}
			resp, err := ocsp.ParseResponseForCert(cs.OCSPResponse, cs.PeerCertificates[0], ca.cert)
			if err != nil || resp.Status != ocsp.Good {
				t.Fatalf("stapled response %v, status %v; want a good one", err, resp)
			}
		})
	}
}

// TestStaplingRefresh: a response is fetched again before it expires; a
// responder going down afterwards keeps the last valid staple.
func TestStaplingRefresh(t *testing.T) {
	ca := newTestCA(t)
	ca.validity.Store(int64(4 * time.Second))
	var logs logBuffer
	st := &Stapler{Log: slog.New(slog.NewTextHandler(&logs, nil)), MinRefresh: 10 * time.Millisecond, RetryInterval: 10 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go st.Run(ctx)
	store, err := NewStore([]*ir.Certificate{ca.leaf(t, "ocsp.test", ca.srv.URL)})
	if err != nil {
		t.Fatal(err)
	}
	store.Staple(st)
	staple := func() []byte { c, _ := store.Certificate("ocsp.test"); return c.OCSPStaple }
	if !eventually(func() bool { return staple() != nil }) {
		t.Fatalf("no staple; logs:\n%s", logs.String())
	}
	first := staple()
	// Valid 4 s, so fetched again after about 2 s with a new ThisUpdate.
	if !eventually(func() bool { return ca.requests.Load() >= 2 && !bytes.Equal(staple(), first) }) {
		t.Fatalf("staple not refreshed (%d requests)", ca.requests.Load())
	}
	ca.status.Store(-1)
	n := ca.requests.Load()
	if !eventually(func() bool {
		return ca.requests.Load() > n && strings.Contains(logs.String(), "OCSP staple fetch failed")
	}) {
		t.Fatal("no failed fetch logged after the responder went down")
	}
	kept := staple()
	if kept == nil {
		t.Fatal("staple dropped at once when the responder went down, while still valid")
	}
	resp, err := ocsp.ParseResponse(kept, ca.cert)
	if err != nil {
		t.Fatal(err)
	}
	// Once it expires, it is no longer served.
	if !eventually(func() bool { return staple() == nil }) {
		t.Fatalf("expired staple (next update %v) still served at %v", resp.NextUpdate, time.Now())
	}
}

// TestStaplerSharesAndReleases: two Stores with the same certificate share
// one entry (one fetch), dropped once both are garbage collected.
func TestStaplerSharesAndReleases(t *testing.T) {
	ca := newTestCA(t)
	st := &Stapler{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go st.Run(ctx)
	cert := ca.leaf(t, "ocsp.test", ca.srv.URL)
	func() {
		a, err := NewStore([]*ir.Certificate{cert})
		if err != nil {
			t.Fatal(err)
		}
		b, err := NewStore([]*ir.Certificate{cert})
		if err != nil {
			t.Fatal(err)
		}
		a.Staple(st)
		b.Staple(st)
		if n := st.tracked(); n != 1 {
			t.Errorf("%d entries for one certificate in two Stores, want 1", n)
		}
		if !eventually(func() bool { c, _ := b.Certificate("ocsp.test"); return c.OCSPStaple != nil }) {
			t.Fatal("no staple")
		}
		runtime.KeepAlive(a)
	}()
	if !eventually(func() bool { runtime.GC(); return st.tracked() == 0 }) {
		t.Errorf("%d entries left after their Stores were collected", st.tracked())
	}
	if n := ca.requests.Load(); n != 1 {
		t.Errorf("%d OCSP requests, want 1 for a shared certificate", n)
	}
}
