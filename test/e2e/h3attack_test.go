package e2e

// HTTP/3 attacks against the real binary: slow request heads and bodies and
// header bombs (row 26 of docs/reliability.md), and many half-open QUIC
// handshakes (row 27).

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/quic-go/quicvarint"
	"golang.org/x/net/http2/hpack"
)

const (
	h3aReadHeaderTimeout = 2 * time.Second
	// h3aIdleTimeout is --idle-timeout, which makes the body idle timeout
	// (the bound on each wait for request body bytes) 2 s too.
	h3aIdleTimeout = 2 * time.Second
	// h3aRequestTimeout is the route timeout of /timed.
	h3aRequestTimeout = 3 * time.Second
)

// h3aSetup is a gateway with an HTTPS listener (and so HTTP/3) for
// h3a.test.
type h3aSetup struct {
	g     *gateway
	port  int
	be    *backend
	roots *x509.CertPool
}

func newH3aSetup(t *testing.T) *h3aSetup {
	t.Helper()
	ip := newLoopbackIP(t)
	p := freePort(t, ip)
	cert := newTestCert(t, "h3a.test")
	be := newBackend(t, "h3a")
	cfg := gatewayYAML(ip, listener{name: "https", port: p, protocol: "HTTPS", hostname: "h3a.test", certs: []string{"h3a-tls"}}) +
		cert.secretYAML("h3a-tls") + be.yaml() + fmt.Sprintf(`---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: h3a, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /timed}}]
    timeouts: {request: %s}
    backendRefs: [%s]
  - backendRefs: [%s]
`, h3aRequestTimeout, ref("h3a"), ref("h3a"))
	g := startGateway(t, ip, cfg, "--read-header-timeout="+h3aReadHeaderTimeout.String(), "--idle-timeout="+h3aIdleTimeout.String())
	roots := x509.NewCertPool()
	roots.AddCert(cert.cert)
	return &h3aSetup{g: g, port: p, be: be, roots: roots}
}

func (s *h3aSetup) url(path string) string {
	return "https://h3a.test:" + strconv.Itoa(s.port) + path
}

func (s *h3aSetup) tlsConfig() *tls.Config {
	return &tls.Config{RootCAs: s.roots, ServerName: "h3a.test", NextProtos: []string{http3.NextProtoH3}}
}

// client is an HTTP/3 client of its own. Its QUIC connection sends PINGs, so
// that only the gateway's HTTP/3 bounds, not QUIC's idle timeout, can end a
// stalled request.
func (s *h3aSetup) client(t *testing.T) *http.Client {
	t.Helper()
	tr := &http3.Transport{
		TLSClientConfig: s.tlsConfig(),
		QUICConfig:      &quic.Config{HandshakeIdleTimeout: 5 * time.Second, KeepAlivePeriod: 500 * time.Millisecond},
		Dial: func(ctx context.Context, _ string, tlsCfg *tls.Config, cfg *quic.Config) (*quic.Conn, error) {
			return quic.DialAddrEarly(ctx, s.g.addr(s.port), tlsCfg, cfg)
		},
	}
	t.Cleanup(func() { tr.Close() })
	return &http.Client{Transport: tr}
}

// probe is one GET over a new HTTP/3 connection.
func (s *h3aSetup) probe(t *testing.T, path string) error {
	t.Helper()
	c := s.client(t)
	defer c.Transport.(*http3.Transport).Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url(path), nil)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 3 || resp.Header.Get("X-Backend") != "h3a" {
		return fmt.Errorf("%s status %d backend %q", resp.Proto, resp.StatusCode, resp.Header.Get("X-Backend"))
	}
	return nil
}

// slowBody sends a POST whose announced 1000-byte body is written by feed
// (which gets the pipe and a channel closed when the request ends), and
// waits at most bound for the gateway to end the request: a response, or an
// error from the client. It returns how it ended and after how long.
func (s *h3aSetup) slowBody(t *testing.T, path string, bound time.Duration, feed func(w io.Writer, stop <-chan struct{})) (outcome string, took time.Duration, cut bool) {
	t.Helper()
	c := s.client(t)
	pr, pw := io.Pipe()
	stop := make(chan struct{})
	var fed sync.WaitGroup
	fed.Add(1)
	go func() {
		defer fed.Done()
		feed(pw, stop)
	}()
	defer func() {
		close(stop)
		pw.CloseWithError(errors.New("test over"))
		fed.Wait()
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.url(path), pr)
	req.ContentLength = 1000
	type answer struct {
		resp *http.Response
		err  error
	}
	done := make(chan answer, 1)
	start := time.Now()
	go func() {
		resp, err := c.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		done <- answer{resp, err}
	}()
	select {
	case a := <-done:
		took = time.Since(start)
		if a.err != nil {
			return "error: " + a.err.Error(), took, true
		}
		return fmt.Sprintf("status %d", a.resp.StatusCode), took, true
	case <-time.After(bound):
		cancel()
		<-done
		return "still waiting", time.Since(start), false
	}
}

// TestH3AttackSlowRequests is row 26 through the gateway binary: a request
// body trickling 1 byte/s is cut by the route's request timeout, a body that
// stops after 1 byte is cut by the body idle timeout, a HEADERS frame
// trickling 1 byte/s is cut by the read-header timeout, each within 3× its
// timeout; a header section over 60 KiB (or over 100 fields) gets 431 and
// never reaches the backend. The gateway keeps serving and nothing is left
// running afterwards.
func TestH3AttackSlowRequests(t *testing.T) {
	t.Parallel()
	s := newH3aSetup(t)
	if err := s.probe(t, "/warm"); err != nil {
		t.Fatalf("before the attacks: %v", err)
	}
	baseG, baseFD := stallBaseline(t, s.g)

	trickle := func(w io.Writer, stop <-chan struct{}) {
		for i := 0; i < 120; i++ { // at most 2 minutes, far beyond any bound here
			if _, err := w.Write([]byte{'x'}); err != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Second):
			}
		}
	}

	t.Run("body trickling 1 byte per second is cut by the request timeout", func(t *testing.T) {
		bound := 3 * h3aRequestTimeout
		outcome, took, cut := s.slowBody(t, "/timed/trickle", bound, trickle)
		t.Logf("trickled body with a %v request timeout: %s after %v", h3aRequestTimeout, outcome, took)
		if !cut {
			t.Errorf("request whose body trickles 1 byte/s still open after %v (3× the route's %v request timeout): the gateway does not bound HTTP/3 request body reads",
				bound, h3aRequestTimeout)
		} else if outcome == "status 200" {
			t.Errorf("trickled body answered 200, want the request cut")
		}
	})

	t.Run("body stalled after 1 byte is cut by the body idle timeout", func(t *testing.T) {
		bound := 3 * h3aIdleTimeout
		outcome, took, cut := s.slowBody(t, "/stall", bound, func(w io.Writer, stop <-chan struct{}) {
			w.Write([]byte{'x'})
			<-stop
		})
		t.Logf("stalled body with a %v body idle timeout: %s after %v", h3aIdleTimeout, outcome, took)
		if !cut {
			t.Errorf("request whose body stalls after 1 byte still open after %v (3× the %v body idle timeout the TCP listener applies): HTTP/3 has no per-stream body read deadline",
				bound, h3aIdleTimeout)
		} else if outcome == "status 200" {
			t.Errorf("stalled body answered 200, want the request cut")
		}
	})

	t.Run("HEADERS frame trickling 1 byte per second is cut by the read-header timeout", func(t *testing.T) {
		if status, err := s.rawHeaders(t, false, 0); err != nil || status != "200" {
			t.Fatalf("HEADERS sent at once: status %q, %v", status, err)
		}
		bound := 3 * h3aReadHeaderTimeout
		type result struct {
			status string
			err    error
			took   time.Duration
		}
		got := make(chan result, 1)
		go func() {
			start := time.Now()
			status, err := s.rawHeaders(t, true, bound)
			got <- result{status, err, time.Since(start)}
		}()
		// Meanwhile other connections are served.
		for i := 0; i < 5; i++ {
			if err := s.probe(t, "/probe"); err != nil {
				t.Errorf("a normal HTTP/3 request while another stream trickles its HEADERS: %v", err)
			}
			time.Sleep(200 * time.Millisecond)
		}
		r := <-got
		t.Logf("HEADERS trickled 1 byte/s with a %v read-header timeout: status %q, %v after %v", h3aReadHeaderTimeout, r.status, r.err, r.took)
		switch {
		case errors.Is(r.err, errH3aStillOpen):
			t.Errorf("stream trickling its HEADERS frame still open after %v (3× the %v read-header timeout)", bound, h3aReadHeaderTimeout)
		case r.err == nil:
			t.Errorf("trickled HEADERS answered with status %q, want the stream reset", r.status)
		default:
			var se *quic.StreamError
			if !errors.As(r.err, &se) {
				t.Errorf("trickled HEADERS ended with %v, want only its stream reset", r.err)
			}
		}
	})

	t.Run("header section over the limit gets 431", func(t *testing.T) {
		c := s.client(t)
		for _, tc := range []struct {
			name string
			fill func(http.Header)
		}{
			{"80 KiB field", func(h http.Header) { h.Set("X-Big", strings.Repeat("a", 80<<10)) }},
			{"150 fields", func(h http.Header) {
				for i := 0; i < 150; i++ {
					h.Set("X-F"+strconv.Itoa(i), "v")
				}
			}},
		} {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url("/bomb/"+strings.ReplaceAll(tc.name, " ", "-")), nil)
			tc.fill(req.Header)
			resp, err := c.Do(req)
			if err != nil {
				// A refusal at the stream or connection level would
				// also do, but the gateway is expected to answer.
				t.Errorf("%s: %v, want 431", tc.name, err)
				cancel()
				continue
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			cancel()
			if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Errorf("%s: status %d, want 431", tc.name, resp.StatusCode)
			}
		}
		for _, e := range s.be.requests() {
			if strings.HasPrefix(e.Path, "/bomb/") {
				t.Errorf("the backend received the refused request %s", e.Path)
			}
		}
	})

	if err := s.probe(t, "/after"); err != nil {
		t.Errorf("after the attacks: %v", err)
	}
	stallBackToBaseline(t, s.g, baseG, baseFD, 30*time.Second, true)
}

var errH3aStillOpen = errors.New("stream still open")

// rawHeaders opens a QUIC connection with ALPN h3 (no control stream: the
// gateway may not need one to serve a request) and sends a GET as a
// hand-encoded HEADERS frame: at once with FIN, or 1 byte per second. It
// returns the :status of the answer, or the error that ended the stream;
// errH3aStillOpen when nothing ended it within bound.
func (s *h3aSetup) rawHeaders(t *testing.T, slow bool, bound time.Duration) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := quic.DialAddr(ctx, s.g.addr(s.port), s.tlsConfig(), &quic.Config{KeepAlivePeriod: 500 * time.Millisecond, HandshakeIdleTimeout: 5 * time.Second})
	if err != nil {
		return "", fmt.Errorf("dial: %w", err)
	}
	defer conn.CloseWithError(0, "")
	str, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return "", fmt.Errorf("open stream: %w", err)
	}
	// QPACK (RFC 9204): required insert count 0, base 0, then static
	// table references: :method GET (17), :scheme https (23), :path /
	// (1), and :authority (0) with a literal value.
	block := []byte{0x00, 0x00, 0xc0 | 17, 0xc0 | 23, 0xc0 | 1, 0x50, byte(len("h3a.test"))}
	block = append(block, "h3a.test"...)
	frame := quicvarint.Append(nil, 0x01) // HEADERS
	frame = quicvarint.Append(frame, uint64(len(block)))
	frame = append(frame, block...)

	type answer struct {
		status string
		err    error
	}
	got := make(chan answer, 1)
	go func() {
		st, err := h3aReadStatus(str)
		got <- answer{st, err}
	}()
	if !slow {
		if _, err := str.Write(frame); err != nil {
			return "", err
		}
		str.Close()
		select {
		case a := <-got:
			return a.status, a.err
		case <-time.After(10 * time.Second):
			return "", errors.New("no answer within 10 s")
		}
	}
	deadline := time.After(bound)
	writeErr := make(chan error, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		// Every byte but the last, one per second, bounded by the frame.
		for _, b := range frame[:len(frame)-1] {
			if _, err := str.Write([]byte{b}); err != nil {
				writeErr <- err
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Second):
			}
		}
	}()
	for {
		select {
		case a := <-got:
			return a.status, a.err
		case err := <-writeErr:
			return "", fmt.Errorf("write: %w", err)
		case <-conn.Context().Done():
			return "", fmt.Errorf("connection closed: %w", context.Cause(conn.Context()))
		case <-deadline:
			str.CancelWrite(0)
			return "", errH3aStillOpen
		}
	}
}

// h3aReadStatus reads frames from str until a HEADERS frame and returns
// the :status in it (a QPACK static reference, or a literal value).
func h3aReadStatus(str io.Reader) (string, error) {
	br := bufio.NewReader(str)
	for i := 0; i < 16; i++ {
		typ, err := quicvarint.Read(br)
		if err != nil {
			return "", err
		}
		n, err := quicvarint.Read(br)
		if err != nil {
			return "", err
		}
		if n > 1<<20 {
			return "", fmt.Errorf("frame of %d bytes", n)
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(br, payload); err != nil {
			return "", err
		}
		if typ != 0x01 {
			continue
		}
		if len(payload) < 3 {
			return "", fmt.Errorf("short HEADERS frame %x", payload)
		}
		b := payload[2]
		// Static table :status entries (RFC 9204 Appendix A).
		static := map[byte]string{24: "103", 25: "200", 26: "304", 27: "404", 28: "503", 63: "100", 64: "204", 65: "206",
			66: "302", 67: "400", 68: "403", 69: "421", 70: "425", 71: "500"}
		if b&0xc0 == 0xc0 { // indexed, static
			idx := b & 0x3f
			if st, ok := static[idx]; ok {
				return st, nil
			}
			return fmt.Sprintf("static#%d", idx), nil
		}
		// A literal with the static name :status (24 = 15 + 9 with a
		// 4-bit prefix), its value Huffman-coded or not.
		if b == 0x5f && len(payload) >= 5 && payload[3] == 0x09 {
			l := int(payload[4] & 0x7f)
			if len(payload) >= 5+l {
				v := payload[5 : 5+l]
				if payload[4]&0x80 == 0 {
					return string(v), nil
				}
				return hpack.HuffmanDecodeToString(v)
			}
		}
		return fmt.Sprintf("undecoded %x", payload[2:min(len(payload), 8)]), nil
	}
	return "", errors.New("no HEADERS frame")
}

// h3aDropConn is a client UDP socket that lets packets out only until the
// first packet comes back, then drops everything the client sends and
// calls onReply: the server is left with a handshake that never completes.
type h3aDropConn struct {
	net.PacketConn
	replied atomic.Bool
	onReply func()
}

func (c *h3aDropConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if c.replied.Load() {
		return len(p), nil
	}
	return c.PacketConn.WriteTo(p, addr)
}

func (c *h3aDropConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, addr, err := c.PacketConn.ReadFrom(p)
	if err == nil && c.replied.CompareAndSwap(false, true) && c.onReply != nil {
		c.onReply()
	}
	return n, addr, err
}

// halfOpenHandshake starts a QUIC handshake with addr and abandons it as
// soon as the server answers the Initial: no further packet reaches the
// server, not even a CONNECTION_CLOSE. It reports whether the server
// answered (within 3 s).
func halfOpenHandshake(addr *net.UDPAddr, tlsConf *tls.Config) (bool, error) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	dc := &h3aDropConn{PacketConn: pc, onReply: cancel}
	tr := &quic.Transport{Conn: dc}
	defer pc.Close()
	defer tr.Close()
	conn, err := tr.Dial(ctx, addr, tlsConf, &quic.Config{HandshakeIdleTimeout: 3 * time.Second})
	if err == nil {
		conn.CloseWithError(0, "") // dropped: the server never hears of it
	}
	return dc.replied.Load(), nil
}

// TestH3AttackHalfOpen is row 27: 200 QUIC handshakes that stop once the
// server answered the client's Initial. The gateway keeps answering over
// HTTP/3 during and after them, and its goroutines and open files return to
// the baseline (+20) once the handshake timeout (the read-header timeout,
// 2 s here) has passed.
func TestH3AttackHalfOpen(t *testing.T) {
	t.Parallel()
	s := newH3aSetup(t)
	if err := s.probe(t, "/warm"); err != nil {
		t.Fatalf("before the attack: %v", err)
	}
	baseG, baseFD := stallBaseline(t, s.g)
	udpAddr, err := net.ResolveUDPAddr("udp", s.g.addr(s.port))
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	var (
		wg       sync.WaitGroup
		sem      = make(chan struct{}, 50)
		answered atomic.Int32
		errs     atomic.Int32
		firstErr atomic.Value
	)
	probeErrs := make(chan error, 1)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			ok, err := halfOpenHandshake(udpAddr, s.tlsConfig())
			if err != nil {
				errs.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
			}
			if ok {
				answered.Add(1)
			}
		}()
		if i == n/2 {
			go func() { probeErrs <- s.probe(t, "/during") }()
		}
	}
	wg.Wait()
	peakG, _ := stallGauges(t, s.g)
	t.Logf("%d half-open handshakes: the gateway answered %d, holds %v goroutines right after (baseline %v); %d client errors (first: %v)",
		n, answered.Load(), peakG, baseG, errs.Load(), firstErr.Load())
	if errs.Load() > 0 {
		t.Fatalf("%d half-open handshakes could not be started: %v", errs.Load(), firstErr.Load())
	}
	if answered.Load() < n/2 {
		t.Errorf("the gateway answered only %d of %d Initials: the attack did not run as intended", answered.Load(), n)
	}
	if err := <-probeErrs; err != nil {
		t.Errorf("HTTP/3 request during the half-open handshakes: %v", err)
	}
	for i := 0; i < 3; i++ {
		if err := s.probe(t, fmt.Sprintf("/after-%d", i)); err != nil {
			t.Errorf("HTTP/3 request after the half-open handshakes: %v", err)
		}
	}
	stallBackToBaseline(t, s.g, baseG, baseFD, 30*time.Second, true)
}
