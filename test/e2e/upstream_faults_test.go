package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// faultTimeout is the request timeout of every route of TestUpstreamFaults.
const faultTimeout = 2 * time.Second

// faultBound is how long any faulty exchange may take, end to end: the
// route's timeout plus generous slack. It is an upper bound, not a
// performance target.
const faultBound = faultTimeout + 5*time.Second

// faultUpstream is a raw TCP server on 127.0.0.1 whose per-connection
// behaviour a test scripts. Every goroutine and connection it made is gone
// when the test ends.
type faultUpstream struct {
	ln   net.Listener
	port int
	done chan struct{}

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	n     int // connections accepted
	wg    sync.WaitGroup
}

func newFaultUpstream(t *testing.T, serve func(u *faultUpstream, c net.Conn, br *bufio.Reader)) *faultUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &faultUpstream{ln: ln, port: ln.Addr().(*net.TCPAddr).Port, done: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.mu.Lock()
			u.conns[c] = struct{}{}
			u.n++
			u.mu.Unlock()
			u.wg.Add(1)
			go func() {
				defer u.wg.Done()
				defer func() {
					c.Close()
					u.mu.Lock()
					delete(u.conns, c)
					u.mu.Unlock()
				}()
				serve(u, c, bufio.NewReader(c))
			}()
		}
	}()
	t.Cleanup(func() {
		close(u.done)
		ln.Close()
		u.mu.Lock()
		for c := range u.conns {
			c.Close()
		}
		u.mu.Unlock()
		u.wg.Wait()
	})
	return u
}

// accepted is how many connections the upstream accepted so far.
func (u *faultUpstream) accepted() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.n
}

// open is how many of the upstream's connections are open now.
func (u *faultUpstream) open() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.conns)
}

// sleep waits d, or less when the test is over; false then.
func (u *faultUpstream) sleep(d time.Duration) bool {
	select {
	case <-time.After(d):
		return true
	case <-u.done:
		return false
	}
}

// hold keeps c open without answering until the peer closes it or the test
// ends (at most 20 s), reading and dropping whatever comes.
func (u *faultUpstream) hold(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	io.Copy(io.Discard, c)
}

// readFaultRequest reads one request head (and drops any body) within 10 s.
func readFaultRequest(c net.Conn, br *bufio.Reader) (*http.Request, error) {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, io.LimitReader(req.Body, 1<<20))
	req.Body.Close()
	c.SetReadDeadline(time.Time{})
	return req, nil
}

// ownAnswer is the well-formed answer to a request for path: its body names
// the path, so a response meant for another request is recognised.
func ownAnswer(path string) string {
	body := "own:" + path
	return "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}

// scripted serves keep-alive connections that answer every request with
// ownAnswer, except requests for /fault, which get fault. fault returns
// whether to keep serving the connection afterwards.
func scripted(fault func(u *faultUpstream, c net.Conn, br *bufio.Reader) (keep bool)) func(*faultUpstream, net.Conn, *bufio.Reader) {
	return func(u *faultUpstream, c net.Conn, br *bufio.Reader) {
		for i := 0; i < 1000; i++ {
			req, err := readFaultRequest(c, br)
			if err != nil {
				return
			}
			if req.URL.Path == "/fault" {
				if !fault(u, c, br) {
					return
				}
				continue
			}
			if _, err := io.WriteString(c, ownAnswer(req.URL.Path)); err != nil {
				return
			}
		}
	}
}

// writeAndClose sends s, then closes normally (FIN).
func writeAndClose(s string) func(*faultUpstream, net.Conn, *bufio.Reader) bool {
	return func(u *faultUpstream, c net.Conn, br *bufio.Reader) bool {
		io.WriteString(c, s)
		return false
	}
}

// writeAndHold sends s, then neither answers nor closes.
func writeAndHold(s string) func(*faultUpstream, net.Conn, *bufio.Reader) bool {
	return func(u *faultUpstream, c net.Conn, br *bufio.Reader) bool {
		io.WriteString(c, s)
		u.hold(c)
		return false
	}
}

// writeAndKeep sends s and keeps serving the connection.
func writeAndKeep(s string) func(*faultUpstream, net.Conn, *bufio.Reader) bool {
	return func(u *faultUpstream, c net.Conn, br *bufio.Reader) bool {
		_, err := io.WriteString(c, s)
		return err == nil
	}
}

// reset closes c with an RST instead of a FIN.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// faultResult is what the client saw.
type faultResult struct {
	status  int
	header  http.Header
	body    string
	doErr   error // no response at all
	bodyErr error // the body was cut short
	elapsed time.Duration
}

func (r faultResult) String() string {
	return fmt.Sprintf("status=%d body=%q doErr=%v bodyErr=%v in %v", r.status, truncate(r.body, 200), r.doErr, r.bodyErr, r.elapsed.Round(time.Millisecond))
}

// fetch sends method url with Host host and reads the whole answer, within
// 20 s whatever the gateway does.
func fetch(c *http.Client, method, url, host string) faultResult {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return faultResult{doErr: err}
	}
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		return faultResult{doErr: err, elapsed: time.Since(start)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return faultResult{status: resp.StatusCode, header: resp.Header, body: string(b), bodyErr: err, elapsed: time.Since(start)}
}

// wantStatus accepts a complete response with one of codes.
func wantStatus(codes ...int) func(*testing.T, faultResult) {
	return func(t *testing.T, r faultResult) {
		t.Helper()
		if r.doErr != nil || r.bodyErr != nil {
			t.Fatalf("got %v, want a complete response with status %v", r, codes)
		}
		for _, c := range codes {
			if r.status == c {
				return
			}
		}
		t.Fatalf("got %v, want status %v", r, codes)
	}
}

// wantAborted wants the response an HTTP/1.1 client can tell was cut
// short: the upstream's status and headers, then fewer than full body bytes
// and an unexpected EOF. No response at all is wrong too: the gateway had
// already relayed the status, and a client that sees a connection close
// before any response may take it for a stale keep-alive connection and
// send the request again.
func wantAborted(full int) func(*testing.T, faultResult) {
	return func(t *testing.T, r faultResult) {
		t.Helper()
		switch {
		case r.doErr != nil:
			t.Errorf("got %v: the connection closed before any response, want status 200 then a body cut short", r)
		case r.bodyErr == nil:
			t.Errorf("got %v: a truncated upstream response reached the client as a complete one", r)
		case r.status != http.StatusOK || !errors.Is(r.bodyErr, io.ErrUnexpectedEOF) || len(r.body) >= full:
			t.Errorf("got %v, want status 200, fewer than %d body bytes and an unexpected EOF", r, full)
		}
	}
}

// metricValue is the value of the unlabelled sample name in a Prometheus
// text exposition.
func metricValue(body, name string) (float64, bool) {
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}

// TestUpstreamFaults points one gateway at upstreams that misbehave in
// scripted ways (one upstream and one route per case) and checks that every
// request ends in a defined way within its timeout, that the gateway keeps
// serving other traffic, that a later request to the same upstream gets its
// own answer (no response crosses between requests through the connection
// pool), and that nothing leaks: goroutines and open files return to their
// baseline.
func TestUpstreamFaults(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	port := freePort(t, ip)
	// The healthy upstream is scripted too, so that the connections the
	// gateway keeps pooled to it can be counted.
	healthy := newFaultUpstream(t, scripted(writeAndKeep(ownAnswer("/fault"))))

	// smuggled is a complete response hidden where the gateway must not
	// take it for the answer to a later request.
	const smuggled = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 8\r\n\r\nSMUGGLED"
	chunkedHello := "5\r\nhello\r\n0\r\n\r\n"
	// A Content-Length body that, read as chunked, ends at once and leaves
	// smuggled behind.
	clHidesResponse := "0\r\n\r\n" + smuggled
	var bigHeaders strings.Builder
	bigHeaders.WriteString("HTTP/1.1 200 OK\r\n")
	for i := 0; i < 100; i++ { // 100 fields (under the 200-field cap) of ~700 bytes: ~70 KiB
		fmt.Fprintf(&bigHeaders, "X-Big-%03d: %s\r\n", i, strings.Repeat("b", 690))
	}
	bigHeaders.WriteString("Content-Length: 2\r\n\r\nok")
	continues := strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", 1000)

	cases := []struct {
		name string
		slug string // backend, route and hostname
		// serve scripts each upstream connection; nil: nothing listens.
		serve  func(*faultUpstream, net.Conn, *bufio.Reader)
		tls    bool   // the Backend says TLS, the upstream speaks plain TCP
		method string // of the faulty request; GET when empty
		check  func(*testing.T, faultResult)
		// fresh: later requests to the same upstream must get their own
		// answers.
		fresh bool
		// logReason: a "request failed" log line with this reason is
		// expected.
		logReason string
	}{
		{
			name: "connection refused", slug: "refused",
			check: wantStatus(http.StatusServiceUnavailable), logReason: "upstream_connect_failure",
		},
		{
			name: "reset before any response", slug: "reset-before",
			serve: scripted(func(u *faultUpstream, c net.Conn, br *bufio.Reader) bool {
				reset(c)
				return false
			}),
			check: wantStatus(http.StatusBadGateway), fresh: true, logReason: "upstream_protocol_error",
		},
		{
			name: "never responds", slug: "hang",
			serve: scripted(func(u *faultUpstream, c net.Conn, br *bufio.Reader) bool {
				u.hold(c)
				return false
			}),
			check: wantStatus(http.StatusGatewayTimeout), fresh: true, logReason: "upstream_timeout",
		},
		{
			name: "status line dripped past the timeout", slug: "drip",
			serve: scripted(func(u *faultUpstream, c net.Conn, br *bufio.Reader) bool {
				resp := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
				for i := 0; i < len(resp); i++ {
					if _, err := c.Write([]byte{resp[i]}); err != nil || !u.sleep(200*time.Millisecond) {
						return false
					}
				}
				return false
			}),
			check: wantStatus(http.StatusGatewayTimeout), fresh: true, logReason: "upstream_timeout",
		},
		{
			name: "reset after headers mid-body", slug: "reset-mid-body",
			serve: scripted(func(u *faultUpstream, c net.Conn, br *bufio.Reader) bool {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n0123456789")
				u.sleep(300 * time.Millisecond)
				reset(c)
				return false
			}),
			check: wantAborted(1000), fresh: true,
		},
		{
			name: "status code not digits", slug: "status-abc",
			serve: scripted(writeAndClose("HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n")),
			check: wantStatus(http.StatusBadGateway), fresh: true, logReason: "upstream_protocol_error",
		},
		{
			name: "protocol name wrong", slug: "status-httz",
			serve: scripted(writeAndClose("HTTZ/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")),
			check: wantStatus(http.StatusBadGateway), fresh: true, logReason: "upstream_protocol_error",
		},
		{
			name: "garbage instead of a response", slug: "garbage",
			serve: scripted(writeAndClose("\x00\x01\x02\xff\xfe garbage \x7f\r\n\r\n")),
			check: wantStatus(http.StatusBadGateway), fresh: true, logReason: "upstream_protocol_error",
		},
		{
			name: "response headers over 64 KiB", slug: "big-headers",
			serve: scripted(writeAndClose(bigHeaders.String())),
			check: wantStatus(http.StatusBadGateway), fresh: true, logReason: "upstream_protocol_error",
		},
		{
			// The gateway's handling (proxy/h1parse.go): Transfer-Encoding
			// overrides Content-Length, which is dropped (RFC 9112 §6.3),
			// or it refuses with 502. Either way the client never sees the
			// upstream's Content-Length next to a differently framed body.
			name: "Content-Length and Transfer-Encoding, consistent", slug: "cl-te",
			serve: scripted(writeAndKeep("HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(chunkedHello)) +
				"\r\nTransfer-Encoding: chunked\r\n\r\n" + chunkedHello)),
			check: func(t *testing.T, r faultResult) {
				wantStatus(http.StatusOK, http.StatusBadGateway)(t, r)
				if r.status == http.StatusOK {
					if r.body != "hello" {
						t.Errorf("got %v, want the chunked body %q", r, "hello")
					}
					if cl := r.header.Get("Content-Length"); cl != "" && cl != "5" {
						t.Errorf("client got Content-Length %s for a 5-byte body", cl)
					}
				}
			},
			fresh: true,
		},
		{
			// Framed by Content-Length (as an upstream that let an
			// application set Transfer-Encoding would), the body hides a
			// second response after an empty chunked body. The connection
			// must not be reused after such a response (RFC 9112 §6.3:
			// "ought to be handled as an error").
			name: "Content-Length and Transfer-Encoding, body hides a response", slug: "cl-te-smuggle",
			serve: scripted(writeAndKeep("HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(clHidesResponse)) +
				"\r\nTransfer-Encoding: chunked\r\n\r\n" + clHidesResponse)),
			check: func(t *testing.T, r faultResult) {
				wantStatus(http.StatusOK, http.StatusBadGateway)(t, r)
				if strings.Contains(r.body, "SMUGGLED") {
					t.Errorf("got %v", r)
				}
			},
			fresh: true,
		},
		{
			name: "two different Content-Length values", slug: "two-cl",
			serve: scripted(writeAndKeep("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!")),
			check: wantStatus(http.StatusBadGateway), fresh: true, logReason: "upstream_protocol_error",
		},
		{
			name: "1000 100-Continue responses then nothing", slug: "continue-flood",
			serve: scripted(writeAndHold(continues)),
			check: wantStatus(http.StatusBadGateway, http.StatusGatewayTimeout), fresh: true,
		},
		{
			name: "204 with a body that is a second response", slug: "no-content-body",
			serve: scripted(writeAndKeep("HTTP/1.1 204 No Content\r\nContent-Length: " + strconv.Itoa(len(smuggled)) + "\r\n\r\n" + smuggled)),
			check: func(t *testing.T, r faultResult) {
				wantStatus(http.StatusNoContent, http.StatusBadGateway)(t, r)
				if r.body != "" && r.status == http.StatusNoContent {
					t.Errorf("204 with a body: %v", r)
				}
			},
			fresh: true,
		},
		{
			name: "304 followed by a second response", slug: "not-modified-body",
			serve: scripted(writeAndKeep("HTTP/1.1 304 Not Modified\r\nEtag: \"x\"\r\n\r\n" + smuggled)),
			check: func(t *testing.T, r faultResult) {
				wantStatus(http.StatusNotModified, http.StatusBadGateway)(t, r)
				if r.body != "" && r.status == http.StatusNotModified {
					t.Errorf("304 with a body: %v", r)
				}
			},
			fresh: true,
		},
		{
			name: "HEAD answered with a body that is a second response", slug: "head-body", method: http.MethodHead,
			serve: scripted(writeAndKeep("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + smuggled)),
			check: wantStatus(http.StatusOK, http.StatusBadGateway), fresh: true,
		},
		{
			name: "short body then close", slug: "short-close",
			serve: scripted(writeAndClose("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: 100\r\n\r\nshort")),
			check: wantAborted(100), fresh: true,
		},
		{
			name: "TLS Backend, plain TCP upstream", slug: "tls-plain", tls: true,
			serve: func(u *faultUpstream, c net.Conn, br *bufio.Reader) {
				// Whatever arrives (a ClientHello) gets a plain HTTP answer.
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				buf := make([]byte, 4096)
				c.Read(buf)
				io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
			},
			check: wantStatus(http.StatusServiceUnavailable), logReason: "upstream_connect_failure",
		},
	}

	ca := newTestCert(t, "x.test")
	cfg := gatewayYAML(ip, listener{name: "http", port: port}) + backendYAML("healthy", healthy.port) + simpleRoute("healthy", []string{"healthy.test"}, "healthy")
	ups := make([]*faultUpstream, len(cases))
	for i, tc := range cases {
		var upPort int
		name := "f-" + tc.slug
		switch {
		case tc.serve == nil:
			// Nothing listens on a loopback address of its own, so the
			// connection is refused: a port freed on 127.0.0.1 could be
			// taken again by another upstream of this test.
			cfg += strings.Replace(backendYAML(name, 80), "address: 127.0.0.1", "address: "+newLoopbackIP(t), 1)
		case tc.tls:
			ups[i] = newFaultUpstream(t, tc.serve)
			upPort = ups[i].port
			cfg += tlsBackendYAML(name, upPort, "", "x.test", name+"-ca", ca)
		default:
			ups[i] = newFaultUpstream(t, tc.serve)
			upPort = ups[i].port
			cfg += backendYAML(name, upPort)
		}
		cfg += fmt.Sprintf(`---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: %s, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: ["%s.faults.test"]
  rules:
  - timeouts: {request: %s}
    backendRefs: [%s]
`, name, tc.slug, faultTimeout, ref(name))
	}
	g := startGateway(t, ip, cfg)
	client := newClient()
	defer client.CloseIdleConnections()
	// The faulty requests go on connections of their own: a client may
	// silently resend a request whose reused connection closed before any
	// response, which would hide what the gateway sent.
	oneShot := newClient()
	oneShot.Transport.(*http.Transport).DisableKeepAlives = true
	// pooled counts the upstream connections still open: the gateway may
	// rightly keep them idle in its pool, one file each.
	pooled := func() int {
		n := healthy.open()
		for _, u := range ups {
			if u != nil {
				n += u.open()
			}
		}
		return n
	}

	// Warm up, then take the baseline.
	for i := 0; i < 3; i++ {
		if r := fetch(client, "GET", g.url(port, "/warm"), "healthy.test"); r.status != http.StatusOK || r.body != "own:/warm" {
			t.Fatalf("healthy backend before the faults: %v", r)
		}
	}
	client.CloseIdleConnections()
	readGauges := func() (goroutines, fds float64) {
		code, body := g.adminBody("/metrics")
		if code != http.StatusOK {
			t.Fatalf("admin /metrics: %d", code)
		}
		gr, ok1 := metricValue(body, "go_goroutines")
		fd, ok2 := metricValue(body, "process_open_fds")
		if !ok1 || !ok2 {
			t.Fatalf("/metrics lacks go_goroutines or process_open_fds")
		}
		return gr, fd
	}
	var baseG, baseFD float64
	basePooled := 0
	pollUntil(5*time.Second, func() bool { // let connection goroutines of the warm-up end
		gr, fd := readGauges()
		settled := gr == baseG && fd == baseFD
		baseG, baseFD, basePooled = gr, fd, pooled()
		return settled
	})
	t.Logf("baseline: go_goroutines %v, process_open_fds %v (%d upstream connections)", baseG, baseFD, basePooled)

	t.Run("cases", func(t *testing.T) {
		for i, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				host := tc.slug + ".faults.test"
				method := tc.method
				if method == "" {
					method = http.MethodGet
				}
				r := fetch(oneShot, method, g.url(port, "/fault"), host)
				t.Logf("%s /fault: %v", method, r)
				if r.elapsed > faultBound {
					t.Errorf("request took %v, want at most %v (route timeout %v + 5 s)", r.elapsed, faultBound, faultTimeout)
				}
				tc.check(t, r)

				if tc.logReason != "" {
					ok := pollUntil(5*time.Second, func() bool {
						return g.findLog("request failed", func(m map[string]any) bool {
							return m["host"] == host && m["reason"] == tc.logReason
						}) != nil
					})
					if !ok {
						t.Errorf("no \"request failed\" log line with reason %s for host %s", tc.logReason, host)
					}
				}

				// The same gateway still serves a healthy backend.
				if h := fetch(client, "GET", g.url(port, "/after-"+tc.slug), "healthy.test"); h.status != http.StatusOK || h.bodyErr != nil ||
					h.body != "own:/after-"+tc.slug {
					t.Errorf("healthy backend after the fault: %v", h)
				}

				if !tc.fresh {
					return
				}
				// Later requests to the same upstream get their own
				// answers: nothing left over from the fault is taken for
				// them.
				for k := 1; k <= 3; k++ {
					path := fmt.Sprintf("/fresh-%d", k)
					f := fetch(client, "GET", g.url(port, path), host)
					if f.status != http.StatusOK || f.bodyErr != nil || f.body != "own:"+path {
						t.Errorf("request %d after the fault got %v, want 200 %q (upstream connections so far: %d)",
							k, f, "own:"+path, ups[i].accepted())
					}
				}
				t.Logf("the upstream accepted %d connection(s) for the faulty request and 3 later ones", ups[i].accepted())
			})
		}
	})

	// Leak check: everything the faults started has ended. Idle pooled
	// upstream connections (one file each, no goroutine) are allowed for.
	client.CloseIdleConnections()
	const margin = 20
	var gr, fd float64
	var extra int
	ok := pollUntil(30*time.Second, func() bool {
		gr, fd = readGauges()
		extra = max(pooled()-basePooled, 0)
		return gr <= baseG+margin && fd <= baseFD+float64(extra)+margin
	})
	t.Logf("after the faults: go_goroutines %v (baseline %v), process_open_fds %v (baseline %v, %d more upstream connections open)", gr, baseG, fd, baseFD, extra)
	if !ok {
		t.Errorf("gateway did not return to baseline within 30 s: go_goroutines %v (baseline %v), process_open_fds %v (baseline %v + %d pooled upstream connections), margin %d",
			gr, baseG, fd, baseFD, extra, margin)
	}
	if !g.running() {
		t.Fatalf("gateway exited: %v", g.exitErr)
	}
}
