package server

// HTTP/3 listener tests: real QUIC over loopback with quic-go's http3 client.
// Every wait is bounded by h3Wait; nothing asserts on elapsed time.

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
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/quic-go/quicvarint"

	"github.com/meshgate/meshgate/ir"
	mgtls "github.com/meshgate/meshgate/tls"
)

// h3Wait bounds every wait in these tests; reaching it is a failure.
const h3Wait = 30 * time.Second

// h3ServerName is the SNI the test clients send and the certificates carry.
const h3ServerName = "h3.test"

// h3Cert makes a self-signed certificate for h3ServerName with common name
// cn, as the dataplane gets it (PEM in an ir.Certificate), and a pool that
// trusts it.
func h3Cert(t *testing.T, cn string) (*ir.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: cn},
		DNSNames:              []string{h3ServerName},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return &ir.Certificate{
		Name:    "secret/default/" + cn,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}),
	}, pool
}

// h3ServerTLS builds the listener TLS settings the way the dataplane does:
// tls.ServerConfig over a certificate store.
func h3ServerTLS(t *testing.T, certs ...*ir.Certificate) *ctls.Config {
	t.Helper()
	store, err := mgtls.NewStore(certs)
	if err != nil {
		t.Fatal(err)
	}
	return mgtls.ServerConfig(func() *mgtls.Store { return store })
}

// h3LogTap is a slog handler that reports the status attribute of every
// record (the listener logs refusals with one).
type h3LogTap struct{ status chan int64 }

func (h *h3LogTap) Enabled(context.Context, slog.Level) bool { return true }
func (h *h3LogTap) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *h3LogTap) WithGroup(string) slog.Handler            { return h }
func (h *h3LogTap) Handle(_ context.Context, r slog.Record) error {
	if os.Getenv("H3_TEST_LOG") != "" {
		fmt.Fprintln(os.Stderr, r.Time.Format("15:04:05.000"), r.Level, r.Message)
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "status" && a.Value.Kind() == slog.KindInt64 {
			select {
			case h.status <- a.Value.Int64():
			default:
			}
		}
		return true
	})
	return nil
}

func h3Logger() (*slog.Logger, *h3LogTap) {
	tap := &h3LogTap{status: make(chan int64, 16)}
	return slog.New(tap), tap
}

// h3Start serves handler over HTTP/3 on a loopback port with cfg; the test's
// cleanup shuts it down.
func h3Start(t *testing.T, addr string, handler http.Handler, limits Limits, opts H3Options, cfg *ctls.Config, log *slog.Logger) *H3Listener {
	t.Helper()
	if log == nil {
		log, _ = h3Logger()
	}
	l, err := ListenH3(addr, handler, limits, opts, log)
	if err != nil {
		t.Fatal(err)
	}
	l.SetTLS(cfg)
	l.Serve()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		l.Shutdown(ctx)
	})
	return l
}

// h3Client returns an HTTP/3 client trusting pool; its connections close
// with the test.
func h3Client(t *testing.T, pool *x509.CertPool, cache ctls.ClientSessionCache) (*http.Client, *http3.Transport) {
	tr := &http3.Transport{
		TLSClientConfig: &ctls.Config{RootCAs: pool, ServerName: h3ServerName, ClientSessionCache: cache},
		QUICConfig:      &quic.Config{HandshakeIdleTimeout: h3Wait / 2},
	}
	t.Cleanup(func() { tr.Close() })
	return &http.Client{Transport: tr, Timeout: h3Wait}, tr
}

func h3URL(l *H3Listener, path string) string { return "https://" + l.Addr().String() + path }

// h3Echo answers with what it saw of the request and echoes the body.
func h3Echo(w http.ResponseWriter, r *http.Request) {
	ci := ConnInfoFrom(r.Context())
	w.Header().Set("X-Method", r.Method)
	w.Header().Set("X-Path", r.URL.RequestURI())
	w.Header().Set("X-Proto-Major", strconv.Itoa(r.ProtoMajor))
	w.Header().Set("X-Conn-Info", strconv.FormatBool(ci != nil && ci.TLS != nil && ci.TLS.NegotiatedProtocol == "h3"))
	w.Header().Set("X-Early-Data", r.Header.Get("Early-Data"))
	w.Header().Set("X-Handshake-Complete", strconv.FormatBool(r.TLS != nil && r.TLS.HandshakeComplete))
	io.Copy(w, r.Body)
}

func h3Read(t *testing.T, resp *http.Response, err error) []byte {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// GET and a 1 MiB POST reach the handler intact over HTTP/3, on the port of
// the TCP listener, with ConnInfo as for the other protocols.
func TestH3GetAndPost(t *testing.T) {
	certA, pool := h3Cert(t, "a")
	log, _ := h3Logger()
	tcp, err := Listen("127.0.0.1:0", http.HandlerFunc(h3Echo), Limits{}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tcp.Shutdown(context.Background()) })
	l := h3Start(t, tcp.Addr().String(), http.HandlerFunc(h3Echo), Limits{}, H3Options{}, h3ServerTLS(t, certA), log)
	tcpPort, udpPort := tcp.Addr().(*net.TCPAddr).Port, l.Addr().(*net.UDPAddr).Port
	if tcpPort != udpPort {
		t.Fatalf("UDP port %d, TCP port %d", udpPort, tcpPort)
	}
	if got, want := AltSvc(udpPort), `h3=":`+strconv.Itoa(tcpPort)+`"; ma=86400`; got != want {
		t.Errorf("AltSvc = %s, want %s", got, want)
	}
	client, _ := h3Client(t, pool, nil)

	resp, err := client.Get(h3URL(l, "/hello?x=1"))
	body := h3Read(t, resp, err)
	if resp.StatusCode != 200 || resp.ProtoMajor != 3 || len(body) != 0 {
		t.Fatalf("GET: %s %d %q", resp.Proto, resp.StatusCode, body)
	}
	for k, want := range map[string]string{"X-Method": "GET", "X-Path": "/hello?x=1", "X-Proto-Major": "3", "X-Conn-Info": "true", "X-Early-Data": "", "X-Handshake-Complete": "true"} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("GET: %s = %q, want %q", k, got, want)
		}
	}

	big := make([]byte, 1<<20)
	rand.Read(big)
	resp, err = client.Post(h3URL(l, "/upload"), "application/octet-stream", bytes.NewReader(big))
	body = h3Read(t, resp, err)
	if resp.StatusCode != 200 || resp.Header.Get("X-Method") != "POST" || resp.Header.Get("X-Path") != "/upload" || resp.Header.Get("X-Proto-Major") != "3" {
		t.Fatalf("POST: %d %v", resp.StatusCode, resp.Header)
	}
	if !bytes.Equal(body, big) {
		t.Fatalf("POST: echoed %d bytes, want the %d sent", len(body), len(big))
	}
}

// The constructor never leaves the QUIC config to quic-go's defaults (which
// allow 0-RTT) and maps the listener limits.
func TestH3QUICConfig(t *testing.T) {
	log, _ := h3Logger()
	l, err := ListenH3("127.0.0.1:0", http.NotFoundHandler(), Limits{}, H3Options{}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Shutdown(context.Background())
	qc := l.srv.QUICConfig
	if qc == nil || qc.Allow0RTT {
		t.Fatalf("default QUIC config %+v: want explicit, without 0-RTT", qc)
	}
	if qc.MaxIncomingStreams != 100 || qc.MaxIdleTimeout != 60*time.Second || qc.HandshakeIdleTimeout != 10*time.Second {
		t.Errorf("default limits not mapped: %+v", qc)
	}
	if l.srv.MaxHeaderBytes != 60<<10 || l.srv.IdleTimeout != 60*time.Second {
		t.Errorf("http3 server limits: MaxHeaderBytes %d IdleTimeout %v", l.srv.MaxHeaderBytes, l.srv.IdleTimeout)
	}
	qc = h3QUICConfig(Limits{ReadHeaderTimeout: 3 * time.Second, IdleTimeout: 7 * time.Second, MaxConcurrentStreams: 9}.withDefaults(), H3Options{Allow0RTT: true})
	if !qc.Allow0RTT || qc.MaxIncomingStreams != 9 || qc.MaxIdleTimeout != 7*time.Second || qc.HandshakeIdleTimeout != 3*time.Second {
		t.Errorf("QUIC config %+v", qc)
	}
}

// SetTLS swaps the certificate for new connections on the same socket.
func TestH3SetTLS(t *testing.T) {
	certA, poolA := h3Cert(t, "a")
	certB, poolB := h3Cert(t, "b")
	l := h3Start(t, "127.0.0.1:0", http.HandlerFunc(h3Echo), Limits{}, H3Options{}, h3ServerTLS(t, certA), nil)
	addr := l.Addr().String()

	// peerCN connects anew and reports the certificate the server showed.
	peerCN := func(pool *x509.CertPool) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), h3Wait)
		defer cancel()
		conn, err := quic.DialAddr(ctx, addr, &ctls.Config{RootCAs: pool, ServerName: h3ServerName, NextProtos: []string{http3.NextProtoH3}}, nil)
		if err != nil {
			return "", err
		}
		defer conn.CloseWithError(0, "")
		cc := (&http3.Transport{}).NewClientConn(conn)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+h3ServerName+"/cn", nil)
		resp, err := cc.RoundTrip(req)
		if err != nil {
			return "", err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return "", fmt.Errorf("status %d", resp.StatusCode)
		}
		return conn.ConnectionState().TLS.PeerCertificates[0].Subject.CommonName, nil
	}
	if cn, err := peerCN(poolA); err != nil || cn != "a" {
		t.Fatalf("before SetTLS: %q %v", cn, err)
	}
	l.SetTLS(h3ServerTLS(t, certB))
	if l.Addr().String() != addr {
		t.Fatalf("address changed: %s -> %s", addr, l.Addr())
	}
	if cn, err := peerCN(poolB); err != nil || cn != "b" {
		t.Fatalf("after SetTLS: %q %v", cn, err)
	}
	if _, err := peerCN(poolA); err == nil {
		t.Error("client trusting only the old certificate still connected")
	}
	l.SetTLS(nil)
	if _, err := peerCN(poolB); err == nil {
		t.Error("handshake succeeded without TLS settings")
	}
}

// Shutdown lets an in-flight request finish, then releases the socket; with
// an expired context it cuts the request off.
func TestH3Shutdown(t *testing.T) {
	cert, pool := h3Cert(t, "a")
	t.Run("graceful", func(t *testing.T) {
		entered, release := make(chan struct{}), make(chan struct{})
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(entered)
			select {
			case <-release:
			case <-time.After(h3Wait):
			}
			io.WriteString(w, "finished")
		})
		log, _ := h3Logger()
		l, err := ListenH3("127.0.0.1:0", h, Limits{}, H3Options{}, log)
		if err != nil {
			t.Fatal(err)
		}
		l.SetTLS(h3ServerTLS(t, cert))
		l.Serve()
		addr := l.Addr().String()
		client, _ := h3Client(t, pool, nil)
		type result struct {
			body []byte
			err  error
		}
		got := make(chan result, 1)
		go func() {
			resp, err := client.Get("https://" + addr + "/slow")
			if err != nil {
				got <- result{err: err}
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			got <- result{b, err}
		}()
		select {
		case <-entered:
		case <-time.After(h3Wait):
			t.Fatal("request never reached the handler")
		}
		shut := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), h3Wait)
			defer cancel()
			shut <- l.Shutdown(ctx)
		}()
		select {
		case err := <-shut:
			t.Fatalf("Shutdown returned (%v) with a request in flight", err)
		default:
		}
		close(release)
		select {
		case r := <-got:
			if r.err != nil || string(r.body) != "finished" {
				t.Fatalf("in-flight request: %q %v", r.body, r.err)
			}
		case <-time.After(h3Wait):
			t.Fatal("in-flight request never finished")
		}
		select {
		case err := <-shut:
			if err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
		case <-time.After(h3Wait):
			t.Fatal("Shutdown never returned")
		}
		// The socket is released: the address can be bound again.
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			t.Fatalf("UDP address still bound after Shutdown: %v", err)
		}
		pc.Close()
	})
	t.Run("deadline", func(t *testing.T) {
		entered := make(chan struct{})
		var cutOff atomic.Bool
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(entered)
			select {
			case <-r.Context().Done():
				cutOff.Store(true)
			case <-time.After(h3Wait):
			}
		})
		log, _ := h3Logger()
		l, err := ListenH3("127.0.0.1:0", h, Limits{}, H3Options{}, log)
		if err != nil {
			t.Fatal(err)
		}
		l.SetTLS(h3ServerTLS(t, cert))
		l.Serve()
		client, _ := h3Client(t, pool, nil)
		got := make(chan error, 1)
		go func() {
			resp, err := client.Get(h3URL(l, "/stuck"))
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			got <- err
		}()
		select {
		case <-entered:
		case <-time.After(h3Wait):
			t.Fatal("request never reached the handler")
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := l.Shutdown(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("Shutdown with an ended context: %v", err)
		}
		if !cutOff.Load() {
			t.Error("handler's context not canceled by Shutdown")
		}
		select {
		case err := <-got:
			if err == nil {
				t.Error("cut-off request looked complete to the client")
			}
		case <-time.After(h3Wait):
			t.Fatal("client never learned of the cut-off")
		}
	})
	t.Run("never served", func(t *testing.T) {
		log, _ := h3Logger()
		l, err := ListenH3("127.0.0.1:0", http.NotFoundHandler(), Limits{}, H3Options{}, log)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

// Requests over the header limits get 431 and never reach the handler.
func TestH3HeaderLimits(t *testing.T) {
	cert, pool := h3Cert(t, "a")
	var reached atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached.Add(1) })
	l := h3Start(t, "127.0.0.1:0", h, Limits{MaxHeaderBytes: 16 << 10}, H3Options{}, h3ServerTLS(t, cert), nil)
	client, _ := h3Client(t, pool, nil)
	do := func(fill func(http.Header)) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, h3URL(l, "/h"), nil)
		fill(req.Header)
		resp, err := client.Do(req)
		h3Read(t, resp, err)
		return resp.StatusCode
	}
	if s := do(func(h http.Header) { h.Set("X-Big", string(bytes.Repeat([]byte("a"), 32<<10))) }); s != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("32 KiB header under a 16 KiB limit: status %d", s)
	}
	if s := do(func(h http.Header) {
		for i := range MaxHeaderFields + 1 {
			h.Set("X-F"+strconv.Itoa(i), "v")
		}
	}); s != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("%d header fields: status %d", MaxHeaderFields+1, s)
	}
	if n := reached.Load(); n != 0 {
		t.Fatalf("handler reached %d times by refused requests", n)
	}
	if s := do(func(h http.Header) { h.Set("X-Small", "ok") }); s != 200 || reached.Load() != 1 {
		t.Errorf("request within limits: status %d, handler reached %d times", s, reached.Load())
	}
}

// The early-data gate on crafted requests: unsafe methods in early data get
// 425, safe ones pass marked with Early-Data, complete handshakes pass as is.
func TestH3EarlyDataGate(t *testing.T) {
	log, _ := h3Logger()
	var seen *http.Request
	h := &h3Handler{next: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = r }), log: log}
	for _, c := range []struct {
		method   string
		complete bool
		status   int
		early    string
	}{
		{"GET", false, 200, "1"}, {"HEAD", false, 200, "1"}, {"OPTIONS", false, 200, "1"},
		{"POST", false, 425, ""}, {"PUT", false, 425, ""}, {"DELETE", false, 425, ""}, {"PATCH", false, 425, ""},
		{"POST", true, 200, ""}, {"GET", true, 200, ""},
	} {
		seen = nil
		r := httptest.NewRequest(c.method, "https://h3.test/x", nil)
		r.TLS = &ctls.ConnectionState{HandshakeComplete: c.complete, NegotiatedProtocol: "h3"}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != c.status || (c.status == 200) != (seen != nil) {
			t.Errorf("%s complete=%v: status %d, handler reached %v", c.method, c.complete, w.Code, seen != nil)
			continue
		}
		if seen != nil {
			if got := seen.Header.Get("Early-Data"); got != c.early {
				t.Errorf("%s complete=%v: Early-Data %q, want %q", c.method, c.complete, got, c.early)
			}
			if ci := ConnInfoFrom(seen.Context()); ci == nil || ci.TLS != r.TLS {
				t.Errorf("%s: ConnInfo %+v", c.method, ci)
			}
		}
	}
}

// h3TicketCache tells when the client got a session ticket.
type h3TicketCache struct {
	ctls.ClientSessionCache
	got chan struct{}
}

func (c *h3TicketCache) Put(key string, cs *ctls.ClientSessionState) {
	c.ClientSessionCache.Put(key, cs)
	if cs != nil {
		select {
		case c.got <- struct{}{}:
		default:
		}
	}
}

// h3Relay forwards UDP between one client and the server, holding the
// server's datagrams until release. While they are held the client cannot
// finish the handshake, so everything it sends is 0-RTT and everything the
// server reads arrives before the handshake completes: the early-data test
// does not depend on who wins a race.
type h3Relay struct {
	front *net.UDPConn // the client sends here
	back  *net.UDPConn // connected to the server
	wg    sync.WaitGroup

	mu     sync.Mutex
	client net.Addr
	hold   bool
	held   [][]byte
}

func h3StartRelay(t *testing.T, server net.Addr) *h3Relay {
	t.Helper()
	front, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	back, err := net.DialUDP("udp", nil, server.(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	r := &h3Relay{front: front, back: back, hold: true}
	deadline := time.Now().Add(2 * h3Wait)
	front.SetReadDeadline(deadline)
	back.SetReadDeadline(deadline)
	const maxDatagrams = 100000
	r.wg.Go(func() {
		buf := make([]byte, 64<<10)
		for range maxDatagrams {
			n, from, err := front.ReadFrom(buf)
			if err != nil {
				return
			}
			r.mu.Lock()
			r.client = from
			r.mu.Unlock()
			back.Write(buf[:n])
		}
	})
	r.wg.Go(func() {
		buf := make([]byte, 64<<10)
		for range maxDatagrams {
			n, err := back.Read(buf)
			if err != nil {
				return
			}
			r.mu.Lock()
			if r.hold || r.client == nil {
				r.held = append(r.held, bytes.Clone(buf[:n]))
			} else {
				front.WriteTo(buf[:n], r.client)
			}
			r.mu.Unlock()
		}
	})
	t.Cleanup(func() {
		front.Close()
		back.Close()
		r.wg.Wait()
	})
	return r
}

func (r *h3Relay) addr() string { return r.front.LocalAddr().String() }

// release delivers what the server sent so far and everything after.
func (r *h3Relay) release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hold = false
	for _, d := range r.held {
		r.front.WriteTo(d, r.client)
	}
	r.held = nil
}

// With 0-RTT on, a resuming client's POST in early data gets 425 without
// reaching the handler, its GET in early data is served (marked Early-Data),
// and the same POST after the handshake is served.
func TestH3ZeroRTT(t *testing.T) {
	cert, pool := h3Cert(t, "a")
	var posts atomic.Int32
	earlyGet := make(chan struct{}, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			posts.Add(1)
		}
		h3Echo(w, r)
		if r.URL.Path == "/early-get" {
			earlyGet <- struct{}{}
		}
	})
	log, tap := h3Logger()
	l := h3Start(t, "127.0.0.1:0", h, Limits{}, H3Options{Allow0RTT: true}, h3ServerTLS(t, cert), log)

	// A first, full handshake leaves a session ticket in the cache.
	cache := &h3TicketCache{ClientSessionCache: ctls.NewLRUClientSessionCache(4), got: make(chan struct{}, 1)}
	client, tr := h3Client(t, pool, cache)
	resp, err := client.Get(h3URL(l, "/first"))
	if h3Read(t, resp, err); resp.StatusCode != 200 || resp.Header.Get("X-Handshake-Complete") != "true" {
		t.Fatalf("first request: %d %v", resp.StatusCode, resp.Header)
	}
	select {
	case <-cache.got:
	case <-time.After(h3Wait):
		t.Fatal("no session ticket from the server")
	}
	tr.Close()

	// The second connection resumes through the relay, which holds the
	// server's answers: the client stays in 0-RTT.
	relay := h3StartRelay(t, l.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), h3Wait)
	defer cancel()
	clientTLS := &ctls.Config{RootCAs: pool, ServerName: h3ServerName, NextProtos: []string{http3.NextProtoH3}, ClientSessionCache: cache}
	conn, err := quic.DialAddrEarly(ctx, relay.addr(), clientTLS, &quic.Config{HandshakeIdleTimeout: h3Wait})
	if err != nil {
		t.Fatalf("0-RTT dial (did the ticket allow early data?): %v", err)
	}
	t.Cleanup(func() { conn.CloseWithError(0, "") })
	cc := (&http3.Transport{}).NewClientConn(conn)

	// POST in early data. RoundTrip would wait for the handshake, so the
	// request goes out by hand.
	post, err := cc.OpenRequestStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+h3ServerName+"/early-post", nil)
	if err := post.SendRequestHeader(req); err != nil {
		t.Fatal(err)
	}
	if _, err := post.Write([]byte("replayable")); err != nil {
		t.Fatal(err)
	}
	post.Close()

	// GET in early data, as quic-go's client sends it when asked to.
	type result struct {
		resp *http.Response
		body []byte
		err  error
	}
	gotGet := make(chan result, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http3.MethodGet0RTT, "https://"+h3ServerName+"/early-get", nil)
		resp, err := cc.RoundTrip(req)
		if err != nil {
			gotGet <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		gotGet <- result{resp, b, err}
	}()

	// The server refuses the POST and serves the GET before anything
	// reaches the client.
	select {
	case s := <-tap.status:
		if s != http.StatusTooEarly {
			t.Fatalf("server logged a refusal with status %d, want 425", s)
		}
	case <-ctx.Done():
		t.Fatal("server never refused the early POST")
	}
	select {
	case <-earlyGet:
	case <-ctx.Done():
		t.Fatal("early GET never reached the handler")
	}
	relay.release()

	rp, err := post.ReadResponse()
	body := h3Read(t, rp, err)
	if rp.StatusCode != http.StatusTooEarly {
		t.Errorf("POST in early data: status %d %q, want 425", rp.StatusCode, body)
	}
	var g result
	select {
	case g = <-gotGet:
	case <-ctx.Done():
		t.Fatal("GET in early data never answered")
	}
	if g.err != nil {
		t.Fatalf("GET in early data: %v", g.err)
	}
	if g.resp.StatusCode != 200 || g.resp.Header.Get("X-Method") != "GET" || g.resp.Header.Get("X-Early-Data") != "1" ||
		g.resp.Header.Get("X-Handshake-Complete") != "false" || g.resp.Header.Get("X-Conn-Info") != "true" {
		t.Errorf("GET in early data: %d %v", g.resp.StatusCode, g.resp.Header)
	}
	if !conn.ConnectionState().Used0RTT {
		t.Error("connection did not use 0-RTT")
	}
	if n := posts.Load(); n != 0 {
		t.Fatalf("early POST reached the handler %d times", n)
	}

	// After the handshake the retried POST is served.
	req, _ = http.NewRequestWithContext(ctx, http.MethodPost, "https://"+h3ServerName+"/late-post", bytes.NewReader([]byte("safe now")))
	resp, err = cc.RoundTrip(req)
	body = h3Read(t, resp, err)
	if resp.StatusCode != 200 || string(body) != "safe now" || resp.Header.Get("X-Early-Data") != "" || posts.Load() != 1 {
		t.Errorf("POST after the handshake: %d %q %v (handler reached %d times)", resp.StatusCode, body, resp.Header, posts.Load())
	}

	// GOAWAY reaches the client through the relay too; it closes the idle
	// connection and Shutdown completes without cutting anything off.
	if err := l.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// h3HeadersFrame is a GET for path as a HEADERS frame, QPACK-encoded by hand
// (RFC 9204: required insert count 0, base 0, static references to :method
// GET, :scheme https and :path /, and :authority and :path with literal
// values).
func h3HeadersFrame(path string) []byte {
	block := []byte{0x00, 0x00, 0xc0 | 17, 0xc0 | 23, 0x50, byte(len(h3ServerName))}
	block = append(block, h3ServerName...)
	block = append(block, 0x51, byte(len(path)))
	block = append(block, path...)
	frame := quicvarint.Append(nil, 0x01) // HEADERS
	frame = quicvarint.Append(frame, uint64(len(block)))
	return append(frame, block...)
}

// A request stream whose HEADERS frame trickles in (and never completes) is
// reset once ReadHeaderTimeout has passed, without reaching the handler; the
// connection goes on serving requests, whose bodies are not bound by the
// HEADERS deadline.
func TestH3HeadersReadTimeout(t *testing.T) {
	const readHeader = 2 * time.Second
	cert, pool := h3Cert(t, "a")
	var reached atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		h3Echo(w, r)
	})
	l := h3Start(t, "127.0.0.1:0", h, Limits{ReadHeaderTimeout: readHeader}, H3Options{}, h3ServerTLS(t, cert), nil)

	ctx, cancel := context.WithTimeout(context.Background(), 2*h3Wait)
	defer cancel()
	// PINGs keep the connection alive: only the HEADERS deadline can end
	// the stream.
	conn, err := quic.DialAddr(ctx, l.Addr().String(), &ctls.Config{RootCAs: pool, ServerName: h3ServerName, NextProtos: []string{http3.NextProtoH3}},
		&quic.Config{HandshakeIdleTimeout: h3Wait, KeepAlivePeriod: 500 * time.Millisecond, MaxIdleTimeout: 2 * h3Wait})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseWithError(0, "")
	str, err := conn.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	frame := h3HeadersFrame("/slow")
	readErr := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(str)
		readErr <- err
	}()
	stop := make(chan struct{})
	defer close(stop)
	start := time.Now()
	go func() {
		// Every byte but the last, one each 500 ms: the frame is never
		// complete.
		for _, b := range frame[:len(frame)-1] {
			if _, err := str.Write([]byte{b}); err != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
	select {
	case err := <-readErr:
		took := time.Since(start)
		var se *quic.StreamError
		if !errors.As(err, &se) || se.ErrorCode != quic.StreamErrorCode(http3.ErrCodeRequestIncomplete) {
			t.Fatalf("trickled HEADERS: stream ended with %v, want a reset with H3_REQUEST_INCOMPLETE", err)
		}
		if bound := 3 * readHeader; took > bound {
			t.Errorf("trickled HEADERS reset after %v, over 3× the %v ReadHeaderTimeout", took, readHeader)
		}
	case <-time.After(h3Wait):
		t.Fatalf("stream trickling its HEADERS still open after %v with a %v ReadHeaderTimeout", h3Wait, readHeader)
	}
	if n := reached.Load(); n != 0 {
		t.Fatalf("handler reached %d times by the trickled request", n)
	}

	// The same connection serves a request whose body arrives slower than
	// ReadHeaderTimeout: the deadline ended with its HEADERS frame.
	cc := (&http3.Transport{}).NewClientConn(conn)
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte("slow "))
		select {
		case <-time.After(readHeader + readHeader/2):
		case <-stop:
		}
		pw.Write([]byte("body"))
		pw.Close()
	}()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+h3ServerName+"/after", pr)
	resp, err := cc.RoundTrip(req)
	body := h3Read(t, resp, err)
	if resp.StatusCode != 200 || string(body) != "slow body" || reached.Load() != 1 {
		t.Errorf("request after the reset: %d %q, handler reached %d times", resp.StatusCode, body, reached.Load())
	}
}
