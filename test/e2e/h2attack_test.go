package e2e

// HTTP/2 attacks against the real binary on raw connections (x/net/http2
// Framer + hpack), rows 19-21 and 23 of docs/reliability.md: rapid reset,
// CONTINUATION floods, control-frame floods from a client that never
// reads, and HTTP/2 -> HTTP/1 downgrade smuggling. Every attack is bounded
// in frames and in time, and only ever talks to loopback.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// ---------------------------------------------------------------------------
// A raw HTTP/2 client.

// h2aConn is a raw HTTP/2 client connection. Frames are written through a
// buffered writer the test flushes; unless it was opened with noRead, a
// reader goroutine answers SETTINGS, returns flow-control credit and
// records what the server sends (responses, resets, GOAWAY, the end of
// the connection).
type h2aConn struct {
	t    *testing.T
	conn net.Conn
	bw   *bufio.Writer
	fr   *http2.Framer

	wmu    sync.Mutex // fr writes, bw, enc
	enc    *hpack.Encoder
	encBuf bytes.Buffer

	mu        sync.Mutex
	statuses  map[uint32]string        // :status of response HEADERS by stream
	resets    map[uint32]http2.ErrCode // RST_STREAM by stream
	goAway    *http2.ErrCode
	goAwayAt  time.Time
	goAwayMsg string
	endErr    error     // why the reader stopped
	endAt     time.Time // when it stopped
	done      chan struct{}
	// settled is closed once the server's first SETTINGS frame has been
	// acknowledged: from then on the reader writes nothing unless the
	// server sends DATA or PING, so an attack's header block is never
	// interleaved with another frame.
	settled chan struct{}
	// changed gets a value (without blocking) on every recorded event.
	changed chan struct{}
}

// h2aDialOpts says how to open an h2aConn.
type h2aDialOpts struct {
	tls    *tls.Config // nil: cleartext prior knowledge (h2c)
	noRead bool        // never read from the connection
	// rcvBuf, when > 0, shrinks the socket's receive buffer (set before
	// connecting so the window scale stays small too).
	rcvBuf int
}

// h2aDial connects to addr, sends the client preface and an empty
// SETTINGS frame.
func h2aDial(t *testing.T, addr string, o h2aDialOpts) *h2aConn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}}
	if o.rcvBuf > 0 {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, o.rcvBuf)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	raw, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	conn := raw
	if o.tls != nil {
		tc := tls.Client(raw, o.tls)
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		if err := tc.Handshake(); err != nil {
			raw.Close()
			t.Fatalf("TLS handshake with %s: %v", addr, err)
		}
		tc.SetDeadline(time.Time{})
		if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
			raw.Close()
			t.Fatalf("ALPN %q, want h2", p)
		}
		conn = tc
	}
	t.Cleanup(func() { conn.Close() })
	c := &h2aConn{
		t: t, conn: conn, bw: bufio.NewWriterSize(conn, 64<<10),
		statuses: map[uint32]string{}, resets: map[uint32]http2.ErrCode{},
		done: make(chan struct{}), changed: make(chan struct{}, 1), settled: make(chan struct{}),
	}
	c.fr = http2.NewFramer(c.bw, conn)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.fr.MaxHeaderListSize = 1 << 20
	c.enc = hpack.NewEncoder(&c.encBuf)
	conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c.bw, http2.ClientPreface); err != nil {
		t.Fatalf("write preface: %v", err)
	}
	if err := c.fr.WriteSettings(); err != nil {
		t.Fatalf("write SETTINGS: %v", err)
	}
	if err := c.bw.Flush(); err != nil {
		t.Fatalf("flush preface: %v", err)
	}
	conn.SetWriteDeadline(time.Time{})
	if o.noRead {
		close(c.done)
		return c
	}
	go c.readLoop()
	select {
	case <-c.settled:
	case <-c.done:
		t.Fatalf("connection to %s ended before the server's SETTINGS: %v", addr, c.endErr)
	case <-time.After(5 * time.Second):
		t.Fatalf("no SETTINGS from %s within 5 s", addr)
	}
	return c
}

func (c *h2aConn) notify() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

func (c *h2aConn) readLoop() {
	defer close(c.done)
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			c.mu.Lock()
			c.endErr, c.endAt = err, time.Now()
			c.mu.Unlock()
			c.notify()
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				c.locked(func() error { return c.fr.WriteSettingsAck() })
				select {
				case <-c.settled:
				default:
					close(c.settled)
				}
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				data := f.Data
				c.locked(func() error { return c.fr.WritePing(true, data) })
			}
		case *http2.DataFrame:
			if n := uint32(len(f.Data())); n > 0 {
				// Give the credit back on the connection, so responses
				// of streams we never read cannot stall the others.
				c.locked(func() error { return c.fr.WriteWindowUpdate(0, n) })
			}
		case *http2.MetaHeadersFrame:
			if s := f.PseudoValue("status"); s != "" {
				c.mu.Lock()
				if _, ok := c.statuses[f.StreamID]; !ok {
					c.statuses[f.StreamID] = s
				}
				c.mu.Unlock()
				c.notify()
			}
		case *http2.RSTStreamFrame:
			c.mu.Lock()
			c.resets[f.StreamID] = f.ErrCode
			c.mu.Unlock()
			c.notify()
		case *http2.GoAwayFrame:
			c.mu.Lock()
			if c.goAway == nil {
				code := f.ErrCode
				c.goAway, c.goAwayAt, c.goAwayMsg = &code, time.Now(), string(f.DebugData())
			}
			c.mu.Unlock()
			c.notify()
		}
	}
}

// locked runs a write under the write lock and flushes; errors are
// ignored (the connection may be gone, which the reader records).
func (c *h2aConn) locked(f func() error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if f() == nil {
		c.bw.Flush()
	}
}

// headerBlock hpack-encodes fields, in order. Call with wmu held.
func (c *h2aConn) headerBlock(fields ...[2]string) []byte {
	c.encBuf.Reset()
	for _, f := range fields {
		c.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	return append([]byte(nil), c.encBuf.Bytes()...)
}

// request sends one request: HEADERS (plus DATA when body is not nil),
// flushed.
func (c *h2aConn) request(id uint32, body []byte, fields ...[2]string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	block := c.headerBlock(fields...)
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndHeaders: true, EndStream: body == nil}); err != nil {
		return err
	}
	if body != nil {
		if err := c.fr.WriteData(id, true, body); err != nil {
			return err
		}
	}
	return c.bw.Flush()
}

// closed reports whether the server ended the connection (GOAWAY or
// EOF/reset), and how.
func (c *h2aConn) closed() (bool, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.goAway != nil:
		return true, fmt.Sprintf("GOAWAY %v %q", *c.goAway, c.goAwayMsg)
	case c.endErr != nil:
		return true, "connection ended: " + c.endErr.Error()
	}
	return false, ""
}

// closedAt is when the server ended the connection (GOAWAY or end of
// stream, whichever came first); zero if it did not.
func (c *h2aConn) closedAt() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.goAway != nil:
		return c.goAwayAt
	case c.endErr != nil:
		return c.endAt
	}
	return time.Time{}
}

// waitClosed waits at most d for the server to end the connection.
func (c *h2aConn) waitClosed(d time.Duration) (bool, string) {
	deadline := time.After(d)
	for {
		if ok, how := c.closed(); ok {
			return true, how
		}
		select {
		case <-c.changed:
		case <-c.done:
		case <-deadline:
			return c.closed()
		}
	}
}

// outcome is how the server answered stream id so far: "status NNN",
// "reset CODE", the connection's end, or "" when nothing yet.
func (c *h2aConn) outcome(id uint32) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.statuses[id]; ok {
		return "status " + s
	}
	if code, ok := c.resets[id]; ok {
		return "reset " + code.String()
	}
	if c.goAway != nil {
		return fmt.Sprintf("GOAWAY %v %q", *c.goAway, c.goAwayMsg)
	}
	if c.endErr != nil {
		return "connection ended: " + c.endErr.Error()
	}
	return ""
}

// waitOutcome waits at most d for an outcome of stream id.
func (c *h2aConn) waitOutcome(id uint32, d time.Duration) string {
	deadline := time.After(d)
	for {
		if o := c.outcome(id); o != "" {
			return o
		}
		select {
		case <-c.changed:
		case <-c.done:
		case <-deadline:
			return c.outcome(id)
		}
	}
}

// h2aConnGone reports whether a write error means the peer closed or reset
// the connection (as opposed to a write that timed out).
func h2aConnGone(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF)
}

// ---------------------------------------------------------------------------
// Shared helpers for the attack tests (also used by slowclient_test.go).

// atkSetup is a gateway with a cleartext (h2c) and an HTTPS listener in
// front of one HTTP/1.1 backend.
type atkSetup struct {
	g            *gateway
	be           *backend
	plain, https int
	host         string
	tlsCfg       *tls.Config // ALPN h2, trusting the listener's certificate
}

func newAtkSetup(t *testing.T, name string, extra ...string) *atkSetup {
	t.Helper()
	ip := newLoopbackIP(t)
	s := &atkSetup{plain: freePort(t, ip), https: freePort(t, ip), host: name + ".test"}
	cert := newTestCert(t, s.host)
	s.be = newBackend(t, name)
	s.g = startGateway(t, ip, gatewayYAML(ip,
		listener{name: "http", port: s.plain},
		listener{name: "https", port: s.https, protocol: "HTTPS", certs: []string{name + "-tls"}},
	)+cert.secretYAML(name+"-tls")+s.be.yaml()+simpleRoute("all", nil, name), extra...)
	roots := x509.NewCertPool()
	roots.AddCert(cert.cert)
	s.tlsCfg = &tls.Config{RootCAs: roots, ServerName: s.host, NextProtos: []string{"h2"}}
	return s
}

// h2cClient is an HTTP/2 client with prior knowledge to addr (its own
// connection pool).
func atkH2CClient(t *testing.T) *http.Client {
	tr := &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}}
			return d.DialContext(ctx, network, addr)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// atkTLSClient is an HTTPS client (ALPN h2) for the setup's listener.
func (s *atkSetup) atkTLSClient(t *testing.T) *http.Client {
	addr := s.g.addr(s.https)
	tr := &http.Transport{
		TLSClientConfig:   s.tlsCfg.Clone(),
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}}
			return d.DialContext(ctx, network, addr)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// atkProbe sends GET url (Host host) with c every interval until stop is
// closed, at most max times, and counts the answers.
type atkProbe struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	firstErr   string
	done       chan struct{}
}

func startAtkProbe(c *http.Client, url, host string, interval time.Duration, max int, stop <-chan struct{}) *atkProbe {
	p := &atkProbe{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for i := 0; i < max; i++ {
			select {
			case <-stop:
				return
			default:
			}
			r, err := tryDo(c, request{url: url, host: host})
			if err == nil && r.status == http.StatusOK && r.echo != nil {
				p.ok.Add(1)
			} else {
				p.failed.Add(1)
				p.mu.Lock()
				if p.firstErr == "" {
					if err != nil {
						p.firstErr = err.Error()
					} else {
						p.firstErr = r.String()
					}
				}
				p.mu.Unlock()
			}
			select {
			case <-stop:
				return
			case <-time.After(interval):
			}
		}
	}()
	return p
}

// check waits for the probe to end and fails t unless every request
// succeeded (and there were some).
func (p *atkProbe) check(t *testing.T, what string) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Errorf("%s: probe did not stop", what)
		return
	}
	ok, failed := p.ok.Load(), p.failed.Load()
	t.Logf("%s: %d probe requests succeeded, %d failed", what, ok, failed)
	if failed > 0 {
		t.Errorf("%s: %d of %d probe requests failed during the attack; first: %s", what, failed, ok+failed, p.firstErr)
	}
	if ok == 0 {
		t.Errorf("%s: no probe request succeeded", what)
	}
}

// atkMetric sums the samples of metric name (labels ignored unless every
// one of want appears in the sample's label set) from the admin /metrics.
func atkMetric(t *testing.T, g *gateway, name string, want ...string) float64 {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + g.adminAddr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	sum, found := 0.0, false
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		labels := ""
		switch {
		case strings.HasPrefix(rest, "{"):
			end := strings.Index(rest, "}")
			if end < 0 {
				continue
			}
			labels, rest = rest[:end+1], rest[end+1:]
		case strings.HasPrefix(rest, " "):
		default:
			continue // a longer metric name
		}
		match := true
		for _, w := range want {
			if !strings.Contains(labels, w) {
				match = false
			}
		}
		if !match {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err != nil {
			continue
		}
		sum += v
		found = true
	}
	if !found {
		t.Fatalf("/metrics has no %s sample with %v", name, want)
	}
	return sum
}

// atkRSS is the gateway's resident memory as it reports it.
func atkRSS(t *testing.T, g *gateway) float64 {
	t.Helper()
	return atkMetric(t, g, "process_resident_memory_bytes")
}

// atkMemAllowance is how much the gateway's resident memory may grow
// during an attack: 100 MiB. A gateway built with -race (go test -race
// builds it so) keeps shadow memory that the race detector's documentation
// puts at 5-10x the program's, so it gets four times as much.
func atkMemAllowance() float64 {
	if raceEnabled && os.Getenv("E2E_GATEWAY_NORACE") == "" {
		return 400 << 20
	}
	return 100 << 20
}

// atkConns is the gateway's open connections of protocol (h1, h2) on
// listener addr.
func atkConns(t *testing.T, g *gateway, addr, protocol string) float64 {
	t.Helper()
	return atkMetric(t, g, "meshgate_connections_active", `listener="`+addr+`"`, `protocol="`+protocol+`"`)
}

// checkAlive fails t unless the gateway still runs and serves a request.
func (s *atkSetup) checkAlive(t *testing.T) {
	t.Helper()
	if !s.g.running() {
		t.Fatalf("the gateway exited: %v", s.g.exitErr)
	}
	if code := s.g.adminGet("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz %d after the attack", code)
	}
	r, err := tryDo(newClient(), request{url: s.g.url(s.plain, "/after-attack"), host: s.host})
	if err != nil || r.status != http.StatusOK {
		t.Errorf("a fresh request after the attack: %v %v", r, err)
	}
}

func (s *atkSetup) countPaths(prefix string) int {
	n := 0
	for _, e := range s.be.requests() {
		if strings.HasPrefix(e.Path, prefix) {
			n++
		}
	}
	return n
}

func h2aGetFields(host, path string) [][2]string {
	return [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", host}, {":path", path}}
}

// ---------------------------------------------------------------------------
// Row 19: rapid reset.

// TestH2AttackRapidReset opens streams and cancels them at once (HEADERS +
// RST_STREAM) 20,000 times on one connection (CVE-2023-44487). The
// gateway must stay up, the backend must see far fewer requests than
// streams, and another client's requests keep succeeding meanwhile.
func TestH2AttackRapidReset(t *testing.T) {
	t.Parallel()
	s := newAtkSetup(t, "rapidreset")
	for _, mode := range []string{"h2c", "tls"} {
		t.Run(mode, func(t *testing.T) {
			const streams = 20000
			prefix := "/rr-" + mode + "/"
			addr, o := s.g.addr(s.plain), h2aDialOpts{}
			scheme := "http"
			if mode == "tls" {
				addr, o.tls, scheme = s.g.addr(s.https), s.tlsCfg.Clone(), "https"
			}

			stop := make(chan struct{})
			probe := startAtkProbe(atkH2CClient(t), s.g.url(s.plain, "/legit"), s.host, 20*time.Millisecond, 3000, stop)

			c := h2aDial(t, addr, o)
			start := time.Now()
			sent := 0
			var writeErr error
			c.wmu.Lock()
			for i := 0; i < streams && time.Since(start) < 30*time.Second; i++ {
				id := uint32(2*i + 1)
				c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
				block := c.headerBlock([2]string{":method", "GET"}, [2]string{":scheme", scheme},
					[2]string{":authority", s.host}, [2]string{":path", prefix + strconv.Itoa(i)})
				if writeErr = c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true}); writeErr != nil {
					break
				}
				if writeErr = c.fr.WriteRSTStream(id, http2.ErrCodeCancel); writeErr != nil {
					break
				}
				sent++
				if i%100 == 99 {
					if writeErr = c.bw.Flush(); writeErr != nil {
						break
					}
					if ok, _ := c.closed(); ok {
						break
					}
				}
			}
			if writeErr == nil {
				writeErr = c.bw.Flush()
			}
			c.wmu.Unlock()
			attack := time.Since(start)
			// Let handlers that started finish (or give up) before
			// counting what reached the backend.
			time.Sleep(2 * time.Second)
			close(stop)
			probe.check(t, "legitimate h2c client")

			closed, how := c.closed()
			reached := s.countPaths(prefix)
			t.Logf("rapid reset over %s: %d streams opened and reset in %v (write error: %v); backend saw %d of them; gateway closed the abusive connection: %v %s",
				mode, sent, attack.Round(time.Millisecond), writeErr, reached, closed, how)
			if sent < 1000 && !closed {
				t.Fatalf("only %d streams sent and the connection was not closed by the gateway (write error %v)", sent, writeErr)
			}
			// "Far fewer": at most a tenth of the streams may have been
			// forwarded before their reset arrived.
			if reached > sent/10 {
				t.Errorf("backend saw %d requests for %d reset streams (want at most %d): canceled streams still go upstream", reached, sent, sent/10)
			}
			s.checkAlive(t)
		})
	}
}

// ---------------------------------------------------------------------------
// Row 20: CONTINUATION floods.

// TestH2AttackContinuation covers CVE-2023-45288: (a) a header block
// continued far past the 60 KiB header limit must end the connection
// quickly; (b) a header block never finished, continued by empty
// CONTINUATION frames, must be cut within a bound derived from the
// read-header timeout (2 s here; the check allows 10 s).
func TestH2AttackContinuation(t *testing.T) {
	t.Parallel()
	const readHeaderTimeout = 2 * time.Second
	s := newAtkSetup(t, "continuation", "--read-header-timeout", readHeaderTimeout.String())

	// filler is an hpack block of never-indexed literal fields, 4 KiB
	// values, 1 MiB in all: far past the 60 KiB limit.
	var filler bytes.Buffer
	fenc := hpack.NewEncoder(&filler)
	for i := 0; filler.Len() < 1<<20; i++ {
		fenc.WriteField(hpack.HeaderField{Name: "x-fill-" + strconv.Itoa(i), Value: strings.Repeat("f", 4096), Sensitive: true})
	}

	for _, mode := range []string{"h2c", "tls"} {
		t.Run("oversized header block/"+mode, func(t *testing.T) {
			addr, o := s.g.addr(s.plain), h2aDialOpts{}
			if mode == "tls" {
				addr, o.tls = s.g.addr(s.https), s.tlsCfg.Clone()
			}
			path := "/cont-big-" + mode
			c := h2aDial(t, addr, o)
			start := time.Now()
			frames := 0
			var writeErr error
			c.wmu.Lock()
			block := c.headerBlock(h2aGetFields(s.host, path)...)
			c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
			writeErr = c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block, EndStream: true, EndHeaders: false})
			rest := filler.Bytes()
			for writeErr == nil && len(rest) > 0 && time.Since(start) < 10*time.Second {
				n := min(len(rest), 16<<10)
				last := n == len(rest)
				c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
				if writeErr = c.fr.WriteContinuation(1, last, rest[:n]); writeErr != nil {
					break
				}
				frames++
				rest = rest[n:]
				if writeErr = c.bw.Flush(); writeErr != nil {
					break
				}
				if ok, _ := c.closed(); ok {
					break
				}
			}
			c.wmu.Unlock()
			closed, how := c.waitClosed(5 * time.Second)
			t.Logf("%d CONTINUATION frames of 16 KiB written (write error %v); %s after %v", frames, writeErr, how, c.closedAt().Sub(start).Round(time.Millisecond))
			if !closed {
				t.Fatalf("connection still open 5 s after a %d KiB header block (limit 60 KiB)", (len(block)+frames*(16<<10))>>10)
			}
			if got := c.closedAt().Sub(start); got > 5*time.Second {
				t.Errorf("closed only after %v", got)
			}
			if frames > 16 {
				// 60 KiB is under four 16 KiB frames; allow for what
				// the socket buffers took before the gateway gave up.
				t.Logf("note: %d frames (%d KiB) accepted before the connection ended", frames, frames*16)
			}
			if n := s.countPaths(path); n != 0 {
				t.Errorf("backend saw %d requests for the oversized header block", n)
			}
			s.checkAlive(t)
		})
	}

	for _, pace := range []struct {
		name  string
		batch int           // empty frames per write
		gap   time.Duration // pause between writes
	}{
		{"flood", 1000, time.Millisecond},
		{"trickle", 1, 50 * time.Millisecond},
	} {
		t.Run("empty CONTINUATION frames forever/"+pace.name, func(t *testing.T) {
			path := "/cont-empty-" + pace.name
			c := h2aDial(t, s.g.addr(s.plain), h2aDialOpts{})
			start := time.Now()
			const limit = 15 * time.Second
			frames := 0
			var writeErr error
			c.wmu.Lock()
			block := c.headerBlock(h2aGetFields(s.host, path)...)
			c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
			writeErr = c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block, EndStream: true, EndHeaders: false})
			c.wmu.Unlock()
			for writeErr == nil && frames < 30_000_000 && time.Since(start) < limit {
				c.wmu.Lock()
				c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
				for i := 0; i < pace.batch && writeErr == nil; i++ {
					writeErr = c.fr.WriteContinuation(1, false, nil)
					frames++
				}
				if writeErr == nil {
					writeErr = c.bw.Flush()
				}
				c.wmu.Unlock()
				if ok, _ := c.closed(); ok {
					break
				}
				if pace.gap > 0 {
					time.Sleep(pace.gap)
				}
			}
			closed, how := c.waitClosed(2 * time.Second)
			at := c.closedAt()
			if !closed && h2aConnGone(writeErr) {
				closed, how, at = true, "write failed: "+writeErr.Error(), time.Now()
			}
			elapsed := time.Since(start)
			if !closed {
				t.Fatalf("connection sending an unfinished header block (%d empty CONTINUATION frames, %s) still open after %v (write error %v); read-header timeout %v",
					frames, pace.name, elapsed.Round(time.Millisecond), writeErr, readHeaderTimeout)
			}
			t.Logf("%d empty CONTINUATION frames written in %v (write error %v); closed: %s after %v",
				frames, elapsed.Round(time.Millisecond), writeErr, how, at.Sub(start).Round(time.Millisecond))
			if got := at.Sub(start); got > 5*readHeaderTimeout {
				t.Errorf("connection with an unfinished header block closed after %v, want within %v (read-header timeout %v)",
					got, 5*readHeaderTimeout, readHeaderTimeout)
			}
			if n := s.countPaths(path); n != 0 {
				t.Errorf("backend saw %d requests for an unfinished header block", n)
			}
		})
	}
	s.checkAlive(t)
}

// ---------------------------------------------------------------------------
// Row 21: control-frame floods from a client that never reads.

// TestH2AttackControlFloods sends PING and SETTINGS frames as fast as it
// can on connections it never reads from (small receive buffer), so the
// gateway's acknowledgements pile up. The gateway must close those
// connections, keep its memory bounded and serve other clients.
func TestH2AttackControlFloods(t *testing.T) {
	t.Parallel()
	s := newAtkSetup(t, "ctlflood")
	plain := s.g.addr(s.plain)
	// Warm up so the baseline includes the pools a request needs, then
	// close the warm-up connection: the cleartext listener's h2 gauge
	// must count only the attacker from here on.
	warm := atkH2CClient(t)
	for i := 0; i < 3; i++ {
		if r := do(t, warm, request{url: s.g.url(s.plain, "/warm"), host: s.host}); r.status != 200 {
			t.Fatalf("warm-up: %v", r)
		}
	}
	warm.Transport.(*http2.Transport).CloseIdleConnections()
	if !pollUntil(10*time.Second, func() bool { return atkConns(t, s.g, plain, "h2") == 0 }) {
		t.Fatalf("the warm-up HTTP/2 connection is still counted open")
	}
	base := atkRSS(t, s.g)

	floods := []struct {
		name  string
		frame func(fr *http2.Framer, i int) error
	}{
		{"PING", func(fr *http2.Framer, i int) error {
			var data [8]byte
			copy(data[:], strconv.Itoa(i))
			return fr.WritePing(false, data)
		}},
		{"SETTINGS", func(fr *http2.Framer, i int) error {
			return fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: uint32(100 + i%2)})
		}},
	}
	for _, f := range floods {
		t.Run(f.name, func(t *testing.T) {
			// The victims: HTTP/1.1 on the same listener and HTTP/2 over
			// TLS, so the h2 gauge of the cleartext listener counts only
			// the attacker.
			stop := make(chan struct{})
			p1 := startAtkProbe(newClient(), s.g.url(s.plain, "/victim-h1"), s.host, 20*time.Millisecond, 3000, stop)
			p2 := startAtkProbe(s.atkTLSClient(t), "https://"+s.host+":"+strconv.Itoa(s.https)+"/victim-h2", "", 20*time.Millisecond, 3000, stop)

			c := h2aDial(t, plain, h2aDialOpts{noRead: true, rcvBuf: 4096})
			if !pollUntil(5*time.Second, func() bool { return atkConns(t, s.g, plain, "h2") == 1 }) {
				t.Fatalf("the attacker's connection is not counted as an open h2 connection")
			}
			start := time.Now()
			const maxFrames, limit = 3_000_000, 20 * time.Second
			frames := 0
			var writeErr error
			for frames < maxFrames && time.Since(start) < limit {
				c.conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
				for i := 0; i < 1000 && writeErr == nil; i++ {
					writeErr = f.frame(c.fr, frames)
					frames++
				}
				if writeErr == nil {
					writeErr = c.bw.Flush()
				}
				if writeErr != nil {
					break
				}
			}
			elapsed := time.Since(start)
			var ne net.Error
			blocked := errors.As(writeErr, &ne) && ne.Timeout()
			t.Logf("%s flood: %d frames in %v, never reading; write ended with %v", f.name, frames, elapsed.Round(time.Millisecond), writeErr)

			// Closed? Still without reading: the gateway's own count of
			// HTTP/2 connections on the cleartext listener must drop to 0.
			gone := pollUntil(15*time.Second, func() bool { return atkConns(t, s.g, plain, "h2") == 0 })
			rss := atkRSS(t, s.g)
			// The victims keep going for at least 2 s from the flood's start.
			time.Sleep(time.Until(start.Add(2 * time.Second)))
			close(stop)
			p1.check(t, "HTTP/1.1 client during the "+f.name+" flood")
			p2.check(t, "HTTP/2 TLS client during the "+f.name+" flood")
			t.Logf("gateway RSS %.1f MiB before the floods, %.1f MiB after the %s flood", base/(1<<20), rss/(1<<20), f.name)
			if !gone {
				t.Errorf("%s flood from a client that never reads: the gateway still has the connection open %v after the flood started (writes blocked: %v)",
					f.name, time.Since(start).Round(time.Second), blocked)
			}
			if rss-base > atkMemAllowance() {
				t.Errorf("gateway RSS grew by %.1f MiB during the %s flood (allowed %.0f MiB)", (rss-base)/(1<<20), f.name, atkMemAllowance()/(1<<20))
			}
			c.conn.Close()
			s.checkAlive(t)
		})
	}
}

// ---------------------------------------------------------------------------
// Row 23: HTTP/2 -> HTTP/1 downgrade smuggling (and row 24: plain CONNECT).

// TestH2AttackDowngradeSmuggling sends HTTP/2 requests that would smuggle
// a second request (or inject header lines) if the gateway wrote them to
// its HTTP/1.1 backend as they are. Each must be refused (stream reset,
// connection error or 400), and the backend must never see a smuggled
// request; it may see at most the front request of a case whose headers
// are valid.
func TestH2AttackDowngradeSmuggling(t *testing.T) {
	t.Parallel()
	s := newAtkSetup(t, "downgrade")
	smuggled := "GET /smuggled HTTP/1.1\r\nHost: " + s.host + "\r\n\r\n"
	cases := []struct {
		name   string
		path   string
		extra  [][2]string // fields after the pseudo-headers
		method string
		body   []byte
		// frontMax is how many times the backend may see the case's own
		// path (a valid head whose body the gateway refuses midway).
		frontMax int
		// fields, when set, replaces the usual pseudo-header fields.
		fields func(scheme, path string) [][2]string
		// okStatus is a refusal status accepted besides 400.
		okStatus string
	}{
		{name: "transfer-encoding chunked", path: "te", method: "POST",
			extra: [][2]string{{"transfer-encoding", "chunked"}}, body: []byte("0\r\n\r\n" + smuggled)},
		{name: "connection keep-alive", path: "conn",
			extra: [][2]string{{"connection", "keep-alive"}}},
		{name: "keep-alive and upgrade fields", path: "ka",
			extra: [][2]string{{"keep-alive", "timeout=5"}, {"upgrade", "h2c"}}},
		{name: "CR LF in a header value", path: "crlf",
			extra: [][2]string{{"x-inject", "a\r\nTransfer-Encoding: chunked"}}},
		{name: "LF in a header value", path: "lf",
			extra: [][2]string{{"x-inject", "a\nContent-Length: 0\n\n" + strings.ReplaceAll(smuggled, "\r", "")}}},
		{name: "NUL in a header value", path: "nul",
			extra: [][2]string{{"x-inject", "a\x00b"}}},
		{name: "CR LF in a header name", path: "crlf-name",
			extra: [][2]string{{"x-a\r\ntransfer-encoding", "chunked"}}},
		{name: "uppercase header name", path: "upper",
			extra: [][2]string{{"X-Upper", "1"}}},
		{name: "content-length smaller than DATA", path: "cl", method: "POST", frontMax: 1,
			extra: [][2]string{{"content-length", "5"}}, body: []byte("hello" + smuggled)},
		{name: "space in :path", path: "space HTTP/1.1\r\nHost: x\r\n\r\nGET /smuggled"},
		{name: "plain space in :path", path: "sp ace"},
		// Row 24: a plain (not extended) CONNECT must not become a tunnel,
		// nor a request on a pooled HTTP/1.1 upstream connection.
		{name: "CONNECT with a body", path: "connect", okStatus: "status 405",
			fields: func(_, _ string) [][2]string {
				return [][2]string{{":method", "CONNECT"}, {":authority", "internal.test:22"}}
			}, body: []byte(smuggled)},
	}
	for _, mode := range []string{"h2c", "tls"} {
		t.Run(mode, func(t *testing.T) {
			addr, o, scheme := s.g.addr(s.plain), h2aDialOpts{}, "http"
			if mode == "tls" {
				addr, o.tls, scheme = s.g.addr(s.https), s.tlsCfg.Clone(), "https"
			}
			for i, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					method := tc.method
					if method == "" {
						method = "GET"
					}
					// A path no other case (or mode) shares a prefix with.
					front := fmt.Sprintf("/dg-%s-%02d-", mode, i)
					path := front + tc.path
					fields := append([][2]string{{":method", method}, {":scheme", scheme}, {":authority", s.host}, {":path", path}}, tc.extra...)
					if tc.fields != nil {
						fields = tc.fields(scheme, path)
					}
					c := h2aDial(t, addr, o)
					if err := c.request(1, tc.body, fields...); err != nil {
						t.Fatalf("write request: %v", err)
					}
					got := c.waitOutcome(1, 5*time.Second)
					refused := strings.HasPrefix(got, "reset ") || strings.HasPrefix(got, "GOAWAY") ||
						strings.HasPrefix(got, "connection ended") || got == "status 400" || (tc.okStatus != "" && got == tc.okStatus)
					if !refused {
						t.Errorf("%s: got %q, want a stream reset, connection error or 400", tc.name, got)
					} else {
						t.Logf("%s: %s", tc.name, got)
					}
					// Anything forwarded would have arrived by now; give a
					// refused body's stream a moment more.
					time.Sleep(100 * time.Millisecond)
					if n := s.countPaths(front); n > tc.frontMax {
						t.Errorf("%s: backend saw the request %d times (allowed %d)", tc.name, n, tc.frontMax)
					}
				})
			}
		})
	}
	// Nothing smuggled arrived, and the pooled upstream connections still
	// carry ordinary requests correctly.
	for _, e := range s.be.requests() {
		if e.Method == http.MethodConnect || strings.Contains(e.Host, "internal.test") {
			t.Errorf("backend received the CONNECT request: %s %s Host %s", e.Method, e.Path, e.Host)
		}
		if strings.Contains(e.Path, "smuggled") || e.Header.Get("X-Inject") != "" || e.Header.Get("X-Upper") != "" {
			t.Errorf("backend received a smuggled or injected request: %s %s %v", e.Method, e.Path, e.Header)
		}
	}
	c := atkH2CClient(t)
	for i := 0; i < 5; i++ {
		path := "/dg-after-" + strconv.Itoa(i)
		r := do(t, c, request{url: s.g.url(s.plain, path), host: s.host})
		if r.status != http.StatusOK || r.echo == nil || r.echo.Path != path {
			t.Fatalf("ordinary request after the smuggling attempts: %v", r)
		}
	}
	if n := s.countPaths("/smuggled"); n != 0 {
		t.Errorf("backend saw /smuggled %d times", n)
	}
}
