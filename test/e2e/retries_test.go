package e2e

import (
	"bufio"
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

// retryTimeout is the request timeout of every route of TestRetries.
const retryTimeout = 5 * time.Second

// retryBound is how long one case may take end to end: the route's timeout
// plus slack. It is an upper bound (no case may wait on a retry loop or a
// hung upstream past its timeout), not a performance target.
const retryBound = retryTimeout + 5*time.Second

// retryUpstream is a raw TCP server on 127.0.0.1 that numbers the
// connections it accepts (from 1) and records every request line it reads,
// so a test can count the gateway's attempts. serve scripts connection n.
type retryUpstream struct {
	ln   net.Listener
	port int
	done chan struct{}
	// idleClosed gets a value each time a script closes a connection it
	// had answered on, while the gateway holds it idle.
	idleClosed chan int

	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	accepted int
	lines    []string // "n METHOD /path", n the connection's number
	wg       sync.WaitGroup
}

func newRetryUpstream(t *testing.T, serve func(u *retryUpstream, n int, c net.Conn, br *bufio.Reader)) *retryUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &retryUpstream{
		ln: ln, port: ln.Addr().(*net.TCPAddr).Port, done: make(chan struct{}),
		idleClosed: make(chan int, 16), conns: map[net.Conn]struct{}{},
	}
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
			u.accepted++
			n := u.accepted
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
				serve(u, n, c, bufio.NewReader(c))
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

// read reads one request on connection n, body included (at most 1 MiB),
// within 10 s, and records its request line.
func (u *retryUpstream) read(n int, c net.Conn, br *bufio.Reader) (*http.Request, error) {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, err
	}
	u.mu.Lock()
	u.lines = append(u.lines, fmt.Sprintf("%d %s %s", n, req.Method, req.URL.Path))
	u.mu.Unlock()
	_, err = io.Copy(io.Discard, io.LimitReader(req.Body, 1<<20))
	req.Body.Close()
	c.SetReadDeadline(time.Time{})
	return req, err
}

// answer writes a keep-alive 200 whose body names path.
func (u *retryUpstream) answer(c net.Conn, path string) error {
	_, err := io.WriteString(c, ownRetryAnswer(path))
	return err
}

func ownRetryAnswer(path string) string {
	body := "own:" + path
	return "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}

// stats returns the connections accepted and the request lines read.
func (u *retryUpstream) stats() (int, []string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.accepted, append([]string(nil), u.lines...)
}

// countMethod counts the recorded request lines with method.
func countMethod(lines []string, method string) int {
	n := 0
	for _, l := range lines {
		if f := strings.Fields(l); len(f) == 3 && f[1] == method {
			n++
		}
	}
	return n
}

// resetConn closes c with a TCP RST instead of a FIN.
func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// serveAll answers every request on the connection until it ends.
func serveAll(u *retryUpstream, n int, c net.Conn, br *bufio.Reader) {
	for {
		req, err := u.read(n, c, br)
		if err != nil || u.answer(c, req.URL.Path) != nil {
			return
		}
	}
}

// warmThenIdleClose serves connection 1 for one request, then closes it as
// a server whose keep-alive timer fired would (a FIN, nothing read), and
// serves every later connection normally.
func warmThenIdleClose(u *retryUpstream, n int, c net.Conn, br *bufio.Reader) {
	if n > 1 {
		serveAll(u, n, c, br)
		return
	}
	req, err := u.read(n, c, br)
	if err != nil || u.answer(c, req.URL.Path) != nil {
		return
	}
	c.Close()
	u.idleClosed <- n
}

// retryResp is the client's view of one exchange with the gateway.
type retryResp struct {
	status  int
	body    string
	elapsed time.Duration
}

// retrySend sends one request on a new connection to the gateway (with
// Connection: close, so no client-side retry can blur the count) and reads
// the answer within 15 s.
func retrySend(t *testing.T, addr, host, method, path, body string) retryResp {
	t.Helper()
	start := time.Now()
	c := rawDial(t, addr)
	c.SetDeadline(time.Now().Add(15 * time.Second))
	req := method + " " + path + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n"
	if body != "" || method == http.MethodPost {
		req += "Content-Length: " + strconv.Itoa(len(body)) + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"+body); err != nil {
		t.Fatalf("%s %s: write: %v", method, path, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%s %s: read response: %v", method, path, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return retryResp{status: resp.StatusCode, body: string(b), elapsed: time.Since(start)}
}

// waitIdleClosed waits (at most 10 s) until u closed an answered
// connection while the gateway holds it idle.
func waitIdleClosed(t *testing.T, u *retryUpstream) {
	t.Helper()
	select {
	case <-u.idleClosed:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream did not close its idle connection within 10 s")
	}
}

// waitPooled waits (at most 10 s) until the gateway logged its access-log
// line for path: the request's handler has returned, so the upstream
// connection it used is back in the gateway's pool.
func waitPooled(t *testing.T, g *gateway, path string) {
	t.Helper()
	ok := pollUntil(10*time.Second, func() bool {
		for _, e := range g.logs.entries() {
			if e["path"] == path && e["status"] != nil {
				return true
			}
		}
		return false
	})
	if !ok {
		t.Fatalf("no access-log line for %s within 10 s", path)
	}
}

// TestRetries pins reliability row 33 as it stands with no retry policy:
// the gateway makes one attempt per request, except that a bodyless request
// that fails on a reused pooled connection before any response byte is
// tried once more on a new connection. Each upstream is a raw TCP server
// that counts connections and request lines, so attempts are counted, not
// inferred from the status.
func TestRetries(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	port := freePort(t, ip)

	type tcase struct {
		name  string
		serve func(u *retryUpstream, n int, c net.Conn, br *bufio.Reader)
		run   func(t *testing.T, g *gateway, host string, u *retryUpstream)
	}
	addr := net.JoinHostPort(ip, strconv.Itoa(port))
	cases := []tcase{
		{
			name: "post-body-reset-after-read",
			serve: func(u *retryUpstream, n int, c net.Conn, br *bufio.Reader) {
				if _, err := u.read(n, c, br); err == nil {
					resetConn(c)
				}
			},
			run: func(t *testing.T, g *gateway, host string, u *retryUpstream) {
				r := retrySend(t, addr, host, http.MethodPost, "/order", "item=1&qty=2")
				conns, lines := u.stats()
				if r.status != http.StatusBadGateway || !strings.Contains(r.body, "upstream_protocol_error") {
					t.Errorf("got %d %q, want the gateway's 502 (upstream_protocol_error)", r.status, r.body)
				}
				if conns != 1 || len(lines) != 1 || lines[0] != "1 POST /order" {
					t.Errorf("upstream saw %d connections and requests %q, want exactly one attempt [1 POST /order]", conns, lines)
				}
				if r.elapsed > retryBound {
					t.Errorf("took %v, over the bound %v", r.elapsed, retryBound)
				}
			},
		},
		{
			name: "get-fresh-reset-before-response",
			serve: func(u *retryUpstream, n int, c net.Conn, br *bufio.Reader) {
				if _, err := u.read(n, c, br); err == nil {
					resetConn(c)
				}
			},
			run: func(t *testing.T, g *gateway, host string, u *retryUpstream) {
				r := retrySend(t, addr, host, http.MethodGet, "/fresh", "")
				conns, lines := u.stats()
				if r.status != http.StatusBadGateway {
					t.Errorf("got %d %q, want the gateway's 502", r.status, r.body)
				}
				if conns != 1 || len(lines) != 1 || lines[0] != "1 GET /fresh" {
					t.Errorf("upstream saw %d connections and requests %q, want exactly one attempt [1 GET /fresh] (no retry on a fresh connection)", conns, lines)
				}
				if r.elapsed > retryBound {
					t.Errorf("took %v, over the bound %v", r.elapsed, retryBound)
				}
			},
		},
		{
			// A clean close (FIN) with no response byte is what a stale
			// pooled connection looks like; on a fresh one it still must
			// not be retried.
			name: "get-fresh-closed-before-response",
			serve: func(u *retryUpstream, n int, c net.Conn, br *bufio.Reader) {
				u.read(n, c, br)
			},
			run: func(t *testing.T, g *gateway, host string, u *retryUpstream) {
				r := retrySend(t, addr, host, http.MethodGet, "/fresh-fin", "")
				conns, lines := u.stats()
				if r.status != http.StatusBadGateway {
					t.Errorf("got %d %q, want the gateway's 502", r.status, r.body)
				}
				if conns != 1 || len(lines) != 1 || lines[0] != "1 GET /fresh-fin" {
					t.Errorf("upstream saw %d connections and requests %q, want exactly one attempt [1 GET /fresh-fin]", conns, lines)
				}
				if r.elapsed > retryBound {
					t.Errorf("took %v, over the bound %v", r.elapsed, retryBound)
				}
			},
		},
		{
			name:  "get-stale-pooled-retried-once",
			serve: warmThenIdleClose,
			run: func(t *testing.T, g *gateway, host string, u *retryUpstream) {
				if r := retrySend(t, addr, host, http.MethodGet, "/warm-get", ""); r.status != http.StatusOK {
					t.Fatalf("warm-up got %d %q, want 200", r.status, r.body)
				}
				waitPooled(t, g, "/warm-get")
				waitIdleClosed(t, u)
				r := retrySend(t, addr, host, http.MethodGet, "/stale-get", "")
				conns, lines := u.stats()
				if r.status != http.StatusOK || r.body != "own:/stale-get" {
					t.Errorf("got %d %q, want 200 own:/stale-get (retried on a new connection)", r.status, r.body)
				}
				want := []string{"1 GET /warm-get", "2 GET /stale-get"}
				if conns != 2 || strings.Join(lines, ",") != strings.Join(want, ",") {
					t.Errorf("upstream saw %d connections and requests %q, want 2 connections and %q", conns, lines, want)
				}
				if r.elapsed > retryBound {
					t.Errorf("took %v, over the bound %v", r.elapsed, retryBound)
				}
			},
		},
		{
			name:  "post-body-stale-pooled-not-retried",
			serve: warmThenIdleClose,
			run: func(t *testing.T, g *gateway, host string, u *retryUpstream) {
				if r := retrySend(t, addr, host, http.MethodGet, "/warm-post", ""); r.status != http.StatusOK {
					t.Fatalf("warm-up got %d %q, want 200", r.status, r.body)
				}
				waitPooled(t, g, "/warm-post")
				waitIdleClosed(t, u)
				r := retrySend(t, addr, host, http.MethodPost, "/stale-post", "item=1&qty=2")
				conns, lines := u.stats()
				// The body went into a connection the upstream had
				// closed, so the gateway cannot know it was not acted on
				// and must not send it again.
				if r.status != http.StatusBadGateway {
					t.Errorf("got %d %q, want the gateway's 502 (a request with a body is never retried)", r.status, r.body)
				}
				if n := countMethod(lines, http.MethodPost); n > 1 {
					t.Errorf("upstream saw %d POST request lines %q, want at most one", n, lines)
				}
				if conns != 1 {
					t.Errorf("upstream accepted %d connections, want 1 (no new connection for a retry); requests %q", conns, lines)
				}
				if r.elapsed > retryBound {
					t.Errorf("took %v, over the bound %v", r.elapsed, retryBound)
				}
			},
		},
		{
			// The gateway cannot tell a connection the upstream closed
			// while idle from one it closed after reading (and perhaps
			// acting on) the request: both fail with EOF before any
			// response byte. Only an idempotent request may be sent
			// twice then (RFC 9110 section 9.2.2); a bodyless POST is
			// not one.
			name: "post-bodyless-stale-pooled-read-then-closed",
			serve: func(u *retryUpstream, n int, c net.Conn, br *bufio.Reader) {
				if n > 1 {
					serveAll(u, n, c, br)
					return
				}
				req, err := u.read(n, c, br)
				if err != nil || u.answer(c, req.URL.Path) != nil {
					return
				}
				u.read(n, c, br) // the POST: read, then closed unanswered
			},
			run: func(t *testing.T, g *gateway, host string, u *retryUpstream) {
				if r := retrySend(t, addr, host, http.MethodGet, "/warm-empty", ""); r.status != http.StatusOK {
					t.Fatalf("warm-up got %d %q, want 200", r.status, r.body)
				}
				waitPooled(t, g, "/warm-empty")
				r := retrySend(t, addr, host, http.MethodPost, "/charge", "")
				conns, lines := u.stats()
				if n := countMethod(lines, http.MethodPost); n != 1 {
					t.Errorf("upstream saw %d POST attempts (%d connections, requests %q), want exactly one: a non-idempotent request was retried", n, conns, lines)
				}
				if r.status != http.StatusBadGateway {
					t.Errorf("got %d %q, want the gateway's 502", r.status, r.body)
				}
				if r.elapsed > retryBound {
					t.Errorf("took %v, over the bound %v", r.elapsed, retryBound)
				}
			},
		},
	}

	var cfg strings.Builder
	cfg.WriteString(gatewayYAML(ip, listener{name: "http", port: port}))
	ups := make([]*retryUpstream, len(cases))
	for i, tc := range cases {
		ups[i] = newRetryUpstream(t, tc.serve)
		cfg.WriteString(backendYAML("retry-"+tc.name, ups[i].port))
		fmt.Fprintf(&cfg, `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: retry-%s
  namespace: default
spec:
  parentRefs:
  - name: gw
  hostnames: ["%s.retries.test"]
  rules:
  - timeouts: {request: %s}
    backendRefs: [%s]
`, tc.name, tc.name, retryTimeout, ref("retry-"+tc.name))
	}
	g := startGateway(t, ip, cfg.String())

	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, g, tc.name+".retries.test", ups[i])
		})
	}
}
