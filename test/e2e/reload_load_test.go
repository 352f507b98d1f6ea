package e2e

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
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/net/http2"
)

// Bounds of the load in TestZeroDropReloadsUnderLoad: every loop stops when
// the reloads are done, after loadMaxPerClient requests, or loadHardStop after
// it started, whichever comes first.
const (
	loadReloads      = 30
	loadH1Clients    = 8
	loadH2CClients   = 4
	loadH2TLSClients = 2
	loadWSConns      = 100
	loadTCPSessions  = 20
	loadMaxPerClient = 1 << 20
	loadHardStop     = 90 * time.Second
)

// loadStats counts one kind of traffic. Failures are counted, and the first
// few are kept to be reported.
type loadStats struct {
	kind      string
	closeEach bool         // each request asks for its connection to be closed
	sent      atomic.Int64 // requests, echoes or connections attempted
	ok        atomic.Int64
	connErr   atomic.Int64 // transport errors (dial, reset, EOF, timeout)
	badStatus atomic.Int64 // answered, but not 200 from the expected backend
	refused   atomic.Int64 // of connErr: ECONNREFUSED
	dials     atomic.Int64 // connections the clients opened
	// peerClosed counts connections of looping clients that the gateway
	// closed (a read failed before the client closed it).
	peerClosed atomic.Int64

	mu       sync.Mutex
	failures []string
}

func (s *loadStats) fail(err error, format string, args ...any) {
	if err != nil {
		s.connErr.Add(1)
		if errors.Is(err, syscall.ECONNREFUSED) {
			s.refused.Add(1)
		}
	} else {
		s.badStatus.Add(1)
	}
	s.mu.Lock()
	if len(s.failures) < 10 {
		msg := fmt.Sprintf(format, args...)
		if err != nil {
			msg += ": " + err.Error()
		}
		s.failures = append(s.failures, msg)
	}
	s.mu.Unlock()
}

func (s *loadStats) String() string {
	return fmt.Sprintf("%-9s sent=%d ok=%d conn_errors=%d bad_status=%d refused=%d connections=%d closed_by_gateway=%d",
		s.kind, s.sent.Load(), s.ok.Load(), s.connErr.Load(), s.badStatus.Load(), s.refused.Load(), s.dials.Load(), s.peerClosed.Load())
}

// fastBackend answers every request with 200, X-Backend: name and a short
// body, and keeps nothing: the load of this test would make newBackend's
// request log grow by the hundred thousand.
// watchedConn notes in st when the peer ends the connection: a read fails
// before the client closed it itself.
type watchedConn struct {
	net.Conn
	st       *loadStats
	byClient atomic.Bool
	noted    atomic.Bool
}

func (c *watchedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err != nil && !c.byClient.Load() && c.noted.CompareAndSwap(false, true) {
		c.st.peerClosed.Add(1)
		c.st.fail(err, "connection %v ended by the gateway", c.Conn.LocalAddr())
	}
	return n, err
}

func (c *watchedConn) Close() error {
	c.byClient.Store(true)
	return c.Conn.Close()
}

func fastBackend(t *testing.T, name string) int {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Backend", name)
		io.WriteString(w, "ok "+name+"\n")
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().(*net.TCPAddr).Port
}

// getLoop sends GETs for url with Host host through c, one at a time, until
// stop is closed (or the bounds above), counting each outcome as getOnce.
func getLoop(c *http.Client, url, host, want string, proto int, st *loadStats, stop <-chan struct{}, hardStop time.Time) {
	for i := 0; i < loadMaxPerClient && time.Now().Before(hardStop); i++ {
		select {
		case <-stop:
			return
		default:
		}
		getOnce(c, url, host, want, proto, st)
	}
}

// TestZeroDropReloadsUnderLoad applies 30 config reloads while HTTP/1.1,
// h2c and h2-over-TLS clients loop on a route the reloads do not touch,
// 100 WebSockets and 20 TCP sessions stay open and echo after every reload,
// and a prober keeps opening new connections on every listener. Each reload
// adds or removes a route and moves another route to a different backend.
// Nothing on the unchanged routes may fail, no connection may be refused
// or ended by the gateway (a keep-alive connection it closed would be
// hidden by the client's retry), every long-lived connection must be alive
// at the end, and each reload's
// change must be visible on the first request after it is applied.
//
// Not parallel: the load keeps the CPUs busy, and other e2e tests have
// wall-clock waits of their own.
func TestZeroDropReloadsUnderLoad(t *testing.T) {
	ip := newLoopbackIP(t)
	pHTTP, pHTTPS, pTCP := freePort(t, ip), freePort(t, ip), freePort(t, ip)
	cert := newTestCert(t, "stable.test")
	stablePort := fastBackend(t, "stable")
	wsPort := wsEchoBackend(t)
	tcpPort := tcpEcho(t, "tcp", nil)
	changed := []*backend{newBackend(t, "c0"), newBackend(t, "c1"), newBackend(t, "c2")}
	extra := newBackend(t, "extra")

	cfg := func(to string, withExtra bool) string {
		s := gatewayYAML(ip,
			listener{name: "http", port: pHTTP},
			listener{name: "https", port: pHTTPS, protocol: "HTTPS", certs: []string{"stable-tls"}},
			listener{name: "tcp", port: pTCP, protocol: "TCP"},
		) + cert.secretYAML("stable-tls") +
			backendYAML("stable", stablePort) + backendYAML("ws", wsPort) + backendYAML("tcp", tcpPort) +
			changed[0].yaml() + changed[1].yaml() + changed[2].yaml() + extra.yaml() +
			simpleRoute("stable", []string{"stable.test"}, "stable") +
			simpleRoute("ws", []string{"ws.test"}, "ws") +
			simpleRoute("changed", []string{"changed.test"}, to) +
			l4Route("TCPRoute", "tcp", "tcp", nil, "tcp")
		if withExtra {
			s += simpleRoute("extra", []string{"extra.test"}, "extra")
		}
		return s
	}
	// No access log: the harness parses the whole gateway output whenever
	// it waits for a log line, and this test sends a lot of requests.
	g := startGateway(t, ip, cfg("c0", false), "--access-log", "")
	check := newClient()
	defer check.CloseIdleConnections()
	if r := get(t, g.url(pHTTP, "/"), "stable.test"); r.status != http.StatusOK || r.header.Get("X-Backend") != "stable" {
		t.Fatalf("stable route before the load: %v", r)
	}
	if r := get(t, g.url(pHTTP, "/"), "changed.test"); r.backend() != "c0" {
		t.Fatalf("changed route before the reloads: %v", r)
	}

	roots := x509.NewCertPool()
	roots.AddCert(cert.cert)
	from := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}
	dialer := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: from}
	// The transports count the connections they open in st.dials; those
	// of the looping clients (watch) also note a connection the gateway
	// ends.
	dial := func(ctx context.Context, st *loadStats, watch bool, addr string, tlsCfg *tls.Config) (net.Conn, error) {
		st.dials.Add(1)
		c, err := dialer.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		if watch {
			c = &watchedConn{Conn: c, st: st}
		}
		if tlsCfg != nil {
			tc := tls.Client(c, tlsCfg)
			if err := tc.HandshakeContext(ctx); err != nil {
				c.Close()
				return nil, err
			}
			c = tc
		}
		return c, nil
	}
	h1Transport := func(st *loadStats, keepAlive bool) *http.Transport {
		return &http.Transport{
			DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
				return dial(ctx, st, keepAlive, addr, nil)
			},
			MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1, DisableCompression: true, DisableKeepAlives: !keepAlive,
		}
	}
	h2cTransport := func(st *loadStats) *http2.Transport {
		return &http2.Transport{
			AllowHTTP: true,
			DialTLSContext: func(ctx context.Context, _, addr string, _ *tls.Config) (net.Conn, error) {
				return dial(ctx, st, true, addr, nil)
			},
		}
	}
	h2TLSTransport := func(st *loadStats, watch bool) *http2.Transport {
		return &http2.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "stable.test"},
			DialTLSContext: func(ctx context.Context, _, addr string, cfg *tls.Config) (net.Conn, error) {
				return dial(ctx, st, watch, addr, cfg)
			},
		}
	}

	h1 := &loadStats{kind: "h1"}
	h2c := &loadStats{kind: "h2c"}
	h2tls := &loadStats{kind: "h2-tls"}
	fresh := &loadStats{kind: "new-conn", closeEach: true}
	wsStats := &loadStats{kind: "websocket"}
	tcpStats := &loadStats{kind: "tcp"}
	all := []*loadStats{h1, h2c, h2tls, fresh, wsStats, tcpStats}

	stop := make(chan struct{})
	hardStop := time.Now().Add(loadHardStop)
	var loaders sync.WaitGroup
	var stopOnce sync.Once
	stopLoad := func() {
		stopOnce.Do(func() { close(stop) })
		loaders.Wait()
	}
	defer stopLoad()

	// (a) HTTP/1.1 keep-alive clients, one connection each.
	for i := 0; i < loadH1Clients; i++ {
		tr := h1Transport(h1, true)
		c := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		loaders.Add(1)
		go func() {
			defer loaders.Done()
			defer tr.CloseIdleConnections()
			getLoop(c, g.url(pHTTP, "/h1"), "stable.test", "stable", 1, h1, stop, hardStop)
		}()
	}
	// (b) h2c with prior knowledge, one connection per client.
	for i := 0; i < loadH2CClients; i++ {
		tr := h2cTransport(h2c)
		loaders.Add(1)
		go func() {
			defer loaders.Done()
			defer tr.CloseIdleConnections()
			getLoop(&http.Client{Transport: tr}, g.url(pHTTP, "/h2c"), "stable.test", "stable", 2, h2c, stop, hardStop)
		}()
	}
	// HTTP/2 over TLS on the HTTPS listener.
	for i := 0; i < loadH2TLSClients; i++ {
		tr := h2TLSTransport(h2tls, true)
		loaders.Add(1)
		go func() {
			defer loaders.Done()
			defer tr.CloseIdleConnections()
			getLoop(&http.Client{Transport: tr}, "https://"+g.addr(pHTTPS)+"/h2", "stable.test", "stable", 2, h2tls, stop, hardStop)
		}()
	}
	// New connections on every listener, one after the other: an HTTP/1.1
	// request on a fresh connection, an h2 request on a fresh TLS
	// connection, and a fresh TCP session echoing one line.
	loaders.Add(1)
	go func() {
		defer loaders.Done()
		h1New := h1Transport(fresh, false)
		for i := 0; i < loadMaxPerClient && time.Now().Before(hardStop); i++ {
			select {
			case <-stop:
				return
			default:
			}
			switch i % 3 {
			case 0:
				getOnce(&http.Client{Transport: h1New}, g.url(pHTTP, "/new"), "stable.test", "stable", 1, fresh)
			case 1:
				tr := h2TLSTransport(fresh, false)
				getOnce(&http.Client{Transport: tr}, "https://"+g.addr(pHTTPS)+"/new", "stable.test", "stable", 2, fresh)
				tr.CloseIdleConnections()
			case 2:
				fresh.sent.Add(1)
				fresh.dials.Add(1)
				c, err := dialer.Dial("tcp", g.addr(pTCP))
				if err != nil {
					fresh.fail(err, "new TCP session")
					time.Sleep(10 * time.Millisecond)
					continue
				}
				line := fmt.Sprintf("fresh %d\n", i)
				c.SetDeadline(time.Now().Add(10 * time.Second))
				got, err := tcpEchoLine(c, bufio.NewReader(c), line)
				c.Close()
				switch {
				case err != nil:
					fresh.fail(err, "new TCP session echo")
				case got != "tcp: "+line:
					fresh.fail(nil, "new TCP session echo: %q, want %q", got, "tcp: "+line)
				default:
					fresh.ok.Add(1)
				}
			}
		}
	}()

	// (c) 100 WebSockets and (d) 20 TCP sessions, opened before the reloads.
	wsConns := make([]*websocket.Conn, loadWSConns)
	wsDialer := websocket.Dialer{HandshakeTimeout: 5 * time.Second, NetDial: func(network, addr string) (net.Conn, error) {
		return dialer.Dial(network, addr)
	}}
	for i := range wsConns {
		wsStats.sent.Add(1)
		wsStats.dials.Add(1)
		c, _, err := wsDialer.Dial("ws://"+g.addr(pHTTP)+"/echo", http.Header{"Host": {"ws.test"}})
		if err != nil {
			wsStats.fail(err, "WebSocket %d dial", i)
			t.Fatalf("WebSocket %d: dial: %v", i, err)
		}
		wsStats.ok.Add(1)
		defer c.Close()
		wsConns[i] = c
	}
	type tcpSession struct {
		c  net.Conn
		br *bufio.Reader
	}
	tcpConns := make([]tcpSession, loadTCPSessions)
	for i := range tcpConns {
		tcpStats.sent.Add(1)
		tcpStats.dials.Add(1)
		c, err := dialer.Dial("tcp", g.addr(pTCP))
		if err != nil {
			tcpStats.fail(err, "TCP session %d dial", i)
			t.Fatalf("TCP session %d: dial: %v", i, err)
		}
		tcpStats.ok.Add(1)
		defer c.Close()
		tcpConns[i] = tcpSession{c, bufio.NewReader(c)}
	}
	wsAlive := make([]bool, loadWSConns)
	tcpAlive := make([]bool, loadTCPSessions)
	for i := range wsAlive {
		wsAlive[i] = true
	}
	for i := range tcpAlive {
		tcpAlive[i] = true
	}
	// echoAll has every live WebSocket and TCP session echo one message,
	// concurrently; a session that fails once is dead for the rest of the
	// test.
	echoAll := func(round int) {
		var wg sync.WaitGroup
		for i, c := range wsConns {
			if !wsAlive[i] {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				wsStats.sent.Add(1)
				msg := fmt.Sprintf("ws %d round %d", i, round)
				c.SetWriteDeadline(time.Now().Add(10 * time.Second))
				if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
					wsStats.fail(err, "WebSocket %d round %d: write", i, round)
					wsAlive[i] = false
					return
				}
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, got, err := c.ReadMessage()
				switch {
				case err != nil:
					wsStats.fail(err, "WebSocket %d round %d: read", i, round)
					wsAlive[i] = false
				case string(got) != msg:
					wsStats.fail(nil, "WebSocket %d round %d: echo %q, want %q", i, round, got, msg)
				default:
					wsStats.ok.Add(1)
				}
			}()
		}
		for i, s := range tcpConns {
			if !tcpAlive[i] {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				tcpStats.sent.Add(1)
				line := fmt.Sprintf("tcp %d round %d\n", i, round)
				s.c.SetDeadline(time.Now().Add(10 * time.Second))
				got, err := tcpEchoLine(s.c, s.br, line)
				switch {
				case err != nil:
					tcpStats.fail(err, "TCP session %d round %d", i, round)
					tcpAlive[i] = false
				case got != "tcp: "+line:
					tcpStats.fail(nil, "TCP session %d round %d: %q, want %q", i, round, got, "tcp: "+line)
				default:
					tcpStats.ok.Add(1)
				}
			}()
		}
		wg.Wait()
	}
	echoAll(0)

	// Wait until every kind of looping client got an answer, so the
	// reloads happen under load.
	if !pollUntil(20*time.Second, func() bool {
		return h1.ok.Load() > 0 && h2c.ok.Load() > 0 && h2tls.ok.Load() > 0 && fresh.ok.Load() > 0
	}) {
		t.Fatalf("the load did not start within 20 s: %v %v %v %v", h1, h2c, h2tls, fresh)
	}
	okBefore := map[*loadStats]int64{h1: h1.ok.Load(), h2c: h2c.ok.Load(), h2tls: h2tls.ok.Load(), fresh: fresh.ok.Load()}

	start := time.Now()
	applied0 := g.applied()
	routeErrors := 0
	for r := 1; r <= loadReloads; r++ {
		to := changed[r%len(changed)].name
		withExtra := r%2 == 1
		g.reload(cfg(to, withExtra))

		// The first request after the apply sees the new config.
		if res, err := tryDo(check, request{url: g.url(pHTTP, "/changed"), host: "changed.test"}); err != nil {
			routeErrors++
			t.Errorf("reload %d: changed route: %v", r, err)
		} else if res.status != http.StatusOK || res.backend() != to {
			routeErrors++
			t.Errorf("reload %d: changed route: %v, want 200 from %s", r, res, to)
		}
		res, err := tryDo(check, request{url: g.url(pHTTP, "/extra"), host: "extra.test"})
		switch {
		case err != nil:
			routeErrors++
			t.Errorf("reload %d: extra route: %v", r, err)
		case withExtra && (res.status != http.StatusOK || res.backend() != "extra"):
			routeErrors++
			t.Errorf("reload %d added the extra route: %v, want 200 from extra", r, res)
		case !withExtra && res.status != http.StatusNotFound:
			routeErrors++
			t.Errorf("reload %d removed the extra route: %v, want 404", r, res)
		}
		echoAll(r)
	}
	reloadTime := time.Since(start)
	reloads := g.applied() - applied0
	okDuring := map[*loadStats]int64{}
	for st, n := range okBefore {
		okDuring[st] = st.ok.Load() - n
	}
	stopLoad()

	// One more echo on every long-lived connection after the load stopped.
	echoAll(loadReloads + 1)
	wsLive, tcpLive := 0, 0
	for _, a := range wsAlive {
		if a {
			wsLive++
		}
	}
	for _, a := range tcpAlive {
		if a {
			tcpLive++
		}
	}

	var sent, connErrs, badStatus, refused int64
	for _, st := range all {
		t.Logf("%v", st)
		sent += st.sent.Load()
		connErrs += st.connErr.Load()
		badStatus += st.badStatus.Load()
		refused += st.refused.Load()
		for _, f := range st.failures {
			t.Logf("  %s failure: %s", st.kind, f)
		}
	}
	t.Logf("reloads applied: %d in %v; total sent %d, connection errors %d, unexpected statuses %d, ECONNREFUSED %d; "+
		"answered during the reloads: h1 %d, h2c %d, h2-tls %d, new-conn %d; WebSockets alive %d/%d, TCP sessions alive %d/%d",
		reloads, reloadTime.Round(time.Millisecond), sent, connErrs, badStatus, refused,
		okDuring[h1], okDuring[h2c], okDuring[h2tls], okDuring[fresh], wsLive, loadWSConns, tcpLive, loadTCPSessions)

	if reloads != loadReloads {
		t.Errorf("%d configs applied, want %d", reloads, loadReloads)
	}
	if connErrs != 0 || badStatus != 0 {
		t.Errorf("%d connection errors and %d unexpected statuses on unchanged routes, want none", connErrs, badStatus)
	}
	if refused != 0 {
		t.Errorf("%d connections refused", refused)
	}
	if wsLive != loadWSConns || tcpLive != loadTCPSessions {
		t.Errorf("alive at the end: %d/%d WebSockets, %d/%d TCP sessions", wsLive, loadWSConns, tcpLive, loadTCPSessions)
	}
	// A keep-alive connection the gateway closed would not show as a
	// request error (the transports retry idempotent requests on a new
	// one); it counts in connErr through watchedConn. HTTP/2 clients must
	// have kept their one connection. (An HTTP/1.1 client may open another
	// by its own choice: Go's transport drops a connection whose request
	// write it did not see finish within 50 ms of the response, which a
	// busy machine can cause.)
	for _, c := range []struct {
		st   *loadStats
		want int
	}{{h2c, loadH2CClients}, {h2tls, loadH2TLSClients}} {
		if n := c.st.dials.Load(); n != int64(c.want) {
			t.Errorf("%s clients opened %d connections, want %d (one each, kept alive across the reloads)", c.st.kind, n, c.want)
		}
	}
	for st, n := range okDuring {
		if n == 0 {
			t.Errorf("no %s request was answered while the reloads ran: the load did not overlap them", st.kind)
		}
	}
	if routeErrors != 0 {
		t.Errorf("%d of %d reloads did not show their change on the first request", routeErrors, loadReloads)
	}
}

// getOnce sends one GET and counts its outcome in st: good when it gets
// 200 from backend want over HTTP major version proto.
func getOnce(c *http.Client, url, host, want string, proto int, st *loadStats) {
	st.sent.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Host = host
	req.Close = st.closeEach
	resp, err := c.Do(req)
	if err != nil {
		st.fail(err, "GET %s (Host %s)", url, host)
		time.Sleep(10 * time.Millisecond)
		return
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	switch {
	case err != nil:
		st.fail(err, "GET %s (Host %s): read body", url, host)
	case resp.StatusCode != http.StatusOK || resp.Header.Get("X-Backend") != want || resp.ProtoMajor != proto:
		st.fail(nil, "GET %s (Host %s): %d %s from %q, want 200 HTTP/%d from %q",
			url, host, resp.StatusCode, resp.Proto, resp.Header.Get("X-Backend"), proto, want)
	case resp.Close && !req.Close:
		st.fail(nil, "GET %s (Host %s): the gateway answered with Connection: close", url, host)
	default:
		st.ok.Add(1)
	}
}

// tcpEchoLine writes line (ending in \n) on c and reads one line back.
func tcpEchoLine(c net.Conn, br *bufio.Reader, line string) (string, error) {
	if _, err := io.WriteString(c, line); err != nil {
		return "", err
	}
	got, err := br.ReadString('\n')
	if err != nil {
		return got, err
	}
	return got, nil
}
