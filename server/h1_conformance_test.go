package server

// HTTP/1.1 wire conformance of the Listener, end to end: raw bytes over a
// TCP (or TLS) connection in, raw bytes out. Only the package's public API
// is used (Listen, Serve, SetTLS, Shutdown, Addr, ConnInfoFrom), so the
// file pins behaviour, not an implementation: any HTTP/1 server behind the
// Listener must pass it.
//
// Comment markers on rows:
//   - "current net/http behaviour differs": net/http's own server answers
//     otherwise; the expectation written is the one a gateway needs.
//   - "current behaviour differs": the Listener of today fails the row; the
//     expectation is the intended behaviour.
//   - "Pinned": one of several acceptable answers, chosen and kept stable.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// confEcho is what the test handler reports about the request it got.
type confEcho struct {
	Method           string      `json:"method"`
	Host             string      `json:"host"`
	Path             string      `json:"path"`
	RawPath          string      `json:"raw_path"`
	RawQuery         string      `json:"raw_query"`
	RequestURI       string      `json:"request_uri"`
	Proto            string      `json:"proto"`
	Header           http.Header `json:"header"`
	ContentLength    int64       `json:"content_length"`
	TransferEncoding []string    `json:"transfer_encoding"`
	Body             string      `json:"body"`
	TLS              bool        `json:"tls"`
}

const confBigSize = 100 << 10

// confBigBody is the /big response: 100 KiB of a pattern that shows
// misplaced or lost bytes.
var confBigBody = func() []byte {
	b := make([]byte, confBigSize)
	for i := range b {
		b[i] = "0123456789abcdefghijklmnopqrstuvwxyz"[i%36]
	}
	return b
}()

// confServer is a running Listener with the test handler.
type confServer struct {
	l     *Listener
	addr  string
	calls atomic.Int64 // handler invocations
	// entered gets a value when /block or /flush starts; release lets
	// them go on.
	entered     chan string
	release     chan struct{}
	releaseOnce sync.Once
}

func (s *confServer) releaseAll() { s.releaseOnce.Do(func() { close(s.release) }) }

// wait holds a handler until the test releases it, for at most 5 s.
func (s *confServer) wait() {
	select {
	case <-s.release:
	case <-time.After(5 * time.Second):
	}
}

func (s *confServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.calls.Add(1)
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, "/status/"):
		code, err := strconv.Atoi(strings.TrimPrefix(p, "/status/"))
		if err != nil {
			code = http.StatusTeapot
		}
		w.WriteHeader(code)
		if code != http.StatusNoContent && code != http.StatusNotModified {
			io.WriteString(w, "status body")
		}
	case p == "/nobody":
		// Nothing at all: no header, no body.
	case p == "/small":
		io.WriteString(w, "hello")
	case p == "/cl":
		w.Header().Set("Content-Length", "5")
		io.WriteString(w, "hello")
	case p == "/short-cl":
		// Promises more than it writes.
		w.Header().Set("Content-Length", "100")
		io.WriteString(w, "0123456789")
	case p == "/big":
		for off := 0; off < len(confBigBody); off += 1000 {
			w.Write(confBigBody[off:min(off+1000, len(confBigBody))])
		}
	case p == "/headers":
		w.Header().Set("X-One", "1")
		w.Header().Add("Set-Cookie", "a=1")
		w.Header().Add("Set-Cookie", "b=2")
		w.Header().Set("Content-Type", "text/x-test")
		io.WriteString(w, "h")
	case p == "/inject":
		w.Header().Set("X-Inj", "a\r\nX-Evil: 1")
		w.Header().Set("X-Ok", "ok")
		io.WriteString(w, "i")
	case p == "/over-cl":
		// Writes more than it promised: the extra bytes must not go out.
		w.Header().Set("Content-Length", "5")
		io.WriteString(w, "hello")
		io.WriteString(w, " world")
	case p == "/trailer":
		w.Header().Set("Trailer", "X-Checksum")
		io.WriteString(w, "body")
		w.(http.Flusher).Flush()
		io.WriteString(w, " more")
		w.Header().Set("X-Checksum", "abc")
	case p == "/close-me":
		// What the dataplane does to refuse a request.
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, "refused")
	case p == "/noread":
		io.WriteString(w, "noread")
	case p == "/flush":
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		s.entered <- p
		s.wait()
		io.WriteString(w, "second\n")
	case p == "/block":
		s.entered <- p
		s.wait()
		io.WriteString(w, "done")
	case p == "/abort-mid":
		w.Write(confBigBody[:10<<10])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	case p == "/panic-abort":
		panic(http.ErrAbortHandler)
	case p == "/panic":
		panic("test handler panic")
	default:
		body, err := io.ReadAll(r.Body)
		if err != nil {
			// A proxy that cannot read the request body refuses it.
			w.Header().Set("X-Body-Error", err.Error())
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		ci := ConnInfoFrom(r.Context())
		e := confEcho{
			Method: r.Method, Host: r.Host, Path: r.URL.Path, RawPath: r.URL.RawPath,
			RawQuery: r.URL.RawQuery, RequestURI: r.RequestURI, Proto: r.Proto,
			Header: r.Header.Clone(), ContentLength: r.ContentLength,
			TransferEncoding: r.TransferEncoding, Body: string(body),
			TLS: ci != nil && ci.TLS != nil,
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(&e)
	}
}

func confLogger() *slog.Logger {
	if os.Getenv("CONF_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startConf starts a Listener on a loopback port; the test's cleanup shuts
// it down.
func startConf(t *testing.T, limits Limits) *confServer {
	t.Helper()
	s := &confServer{entered: make(chan string, 16), release: make(chan struct{})}
	s.l = serveTest(t, s, limits)
	s.addr = s.l.Addr().String()
	// Cleanups run last first: handlers blocked in wait are released
	// before serveTest's Shutdown waits for them.
	t.Cleanup(s.releaseAll)
	return s
}

// serveTest starts a listener on a loopback port serving h, shut down when
// the test ends.
func serveTest(tb testing.TB, h http.Handler, limits Limits) *Listener {
	tb.Helper()
	l, err := Listen("127.0.0.1:0", h, limits, confLogger())
	if err != nil {
		tb.Fatal(err)
	}
	l.Serve()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		l.Shutdown(ctx)
	})
	return l
}

// confConn is a raw client connection. Every read and write has a deadline.
type confConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialConf(t *testing.T, addr string) *confConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return wrapConf(t, c)
}

func wrapConf(t *testing.T, c net.Conn) *confConn {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	return &confConn{t: t, c: c, br: bufio.NewReader(c)}
}

// write sends raw bytes in the background: the server may answer (and
// close) before it has read them all, which must not block the test.
func (cc *confConn) write(raw string) {
	go func() {
		cc.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(cc.c, raw)
	}()
}

// writeNow sends raw bytes and fails the test on error.
func (cc *confConn) writeNow(raw string) {
	cc.t.Helper()
	cc.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(cc.c, raw); err != nil {
		cc.t.Fatalf("write: %v", err)
	}
}

// read reads one response to a request with method; body holds what could
// be read of it and bodyErr why it ended early.
func (cc *confConn) read(method string) (resp *http.Response, body []byte, bodyErr error) {
	cc.t.Helper()
	cc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(cc.br, &http.Request{Method: method})
	if err != nil {
		cc.t.Fatalf("reading %s response: %v", method, err)
	}
	body, bodyErr = io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, body, bodyErr
}

// closed reports whether the server closed the connection within d. Bytes
// arriving after the last response are an error of their own.
func (cc *confConn) closed(d time.Duration) bool {
	cc.t.Helper()
	cc.c.SetReadDeadline(time.Now().Add(d))
	var extra []byte
	buf := make([]byte, 4096)
	for {
		n, err := cc.br.Read(buf)
		extra = append(extra, buf[:n]...)
		if err != nil {
			if len(extra) > 0 {
				cc.t.Errorf("unexpected %d bytes after the last response: %q", len(extra), confTrim(extra))
			}
			var ne net.Error
			return !(errors.As(err, &ne) && ne.Timeout())
		}
	}
}

// reusable sends another request on the connection and checks its answer.
func (cc *confConn) reusable() bool {
	cc.t.Helper()
	cc.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(cc.c, "GET /again HTTP/1.1\r\nHost: again.test\r\n\r\n"); err != nil {
		cc.t.Errorf("second request: write: %v", err)
		return false
	}
	cc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(cc.br, nil)
	if err != nil {
		cc.t.Errorf("second request: %v", err)
		return false
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 || !strings.Contains(string(b), `"path":"/again"`) {
		cc.t.Errorf("second request: %d %q %v", resp.StatusCode, confTrim(b), err)
		return false
	}
	return true
}

func confTrim(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}

func confEchoOf(t *testing.T, body []byte) *confEcho {
	t.Helper()
	var e confEcho
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("response is not an echo: %v: %q", err, confTrim(body))
	}
	return &e
}

// Header expectations: a value, or one of these.
const (
	hdrAbsent  = "<absent>"
	hdrPresent = "<present>"
)

type confWant struct {
	method string // of the request this answers; "" is GET
	status int
	proto  string            // "" is HTTP/1.1
	header map[string]string // canonical name -> value, hdrAbsent or hdrPresent
	// body is the exact body; bodyAny skips the check.
	body    string
	bodyAny bool
	// bodyErr: the body ends early (truncated framing).
	bodyErr bool
	// chunked: the response used chunked framing.
	chunked *bool
	// trailer: response trailer fields after the body.
	trailer map[string]string
	echo    func(t *testing.T, e *confEcho)
}

type confAfter int

const (
	keepsOpen confAfter = iota
	closes
	// eitherWay: closing is fine; if the connection stays open it must
	// carry another request.
	eitherWay
)

type confRow struct {
	name   string
	limits Limits
	req    string
	// closeWrite half-closes the client side after req.
	closeWrite bool
	want       []confWant
	after      confAfter
	// calls is the number of handler calls the request bytes cause; -1
	// does not check.
	calls int64
}

var (
	confYes = confPtr(true)
	confNo  = confPtr(false)
)

func confPtr[T any](v T) *T { return &v }

func confGet(path string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: example.test\r\n\r\n"
}

func confPost(path, extra, body string) string {
	return "POST " + path + " HTTP/1.1\r\nHost: example.test\r\n" + extra + "Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}

// manyFields is a header block of n fields, Host included.
func confManyFields(n int) string {
	var b strings.Builder
	b.WriteString("GET / HTTP/1.1\r\nHost: example.test\r\n")
	for i := 1; i < n; i++ {
		fmt.Fprintf(&b, "X-Field-%d: %d\r\n", i, i)
	}
	b.WriteString("\r\n")
	return b.String()
}

func confEchoPath(path string) func(t *testing.T, e *confEcho) {
	return func(t *testing.T, e *confEcho) {
		if e.Path != path {
			t.Errorf("handler saw path %q, want %q", e.Path, path)
		}
	}
}

// refused is the answer to a request the server must not pass on.
func confRefused(status int) []confWant {
	return []confWant{{status: status, bodyAny: true, header: map[string]string{"Connection": "close"}}}
}

func confRows() []confRow {
	bigHeader := "GET / HTTP/1.1\r\nHost: example.test\r\n" + strings.Repeat("X-Big: "+strings.Repeat("b", 4000)+"\r\n", 16) + "\r\n"
	return []confRow{
		// 1. Connection management.
		{name: "GET keep-alive", req: confGet("/a?q=1"), calls: 1, after: keepsOpen,
			want: []confWant{{status: 200, bodyAny: true,
				header: map[string]string{"Date": hdrPresent, "Content-Type": "application/json", "Connection": hdrAbsent, "Content-Length": hdrPresent},
				echo: func(t *testing.T, e *confEcho) {
					if e.Method != "GET" || e.Proto != "HTTP/1.1" || e.Host != "example.test" || e.Path != "/a" || e.RawQuery != "q=1" || e.RequestURI != "/a?q=1" {
						t.Errorf("echo %+v", e)
					}
					if e.ContentLength != 0 || len(e.TransferEncoding) != 0 || e.Body != "" || e.TLS {
						t.Errorf("body fields %d %v %q tls %v", e.ContentLength, e.TransferEncoding, e.Body, e.TLS)
					}
					if _, ok := e.Header["Host"]; ok {
						t.Error("Host in r.Header")
					}
				}}}},
		{name: "two requests pipelined in one write", req: confGet("/one") + confGet("/two"), calls: 2,
			want: []confWant{{status: 200, bodyAny: true, echo: confEchoPath("/one")}, {status: 200, bodyAny: true, echo: confEchoPath("/two")}}},
		{name: "pipelined POST, HEAD and GET", req: confPost("/p", "", "hello") + "HEAD /cl HTTP/1.1\r\nHost: x\r\n\r\n" + confGet("/g"), calls: 3,
			want: []confWant{
				{status: 200, bodyAny: true, echo: func(t *testing.T, e *confEcho) {
					if e.Body != "hello" || e.Path != "/p" {
						t.Errorf("path %q body %q", e.Path, e.Body)
					}
				}},
				{method: "HEAD", status: 200, body: "", header: map[string]string{"Content-Length": "5"}},
				{status: 200, bodyAny: true, echo: confEchoPath("/g")}}},
		{name: "HTTP/1.0 without keep-alive closes", req: "GET /ten HTTP/1.0\r\n\r\n", calls: 1, after: closes,
			want: []confWant{{status: 200, proto: "HTTP/1.0", bodyAny: true, header: map[string]string{"Content-Length": hdrPresent}, echo: func(t *testing.T, e *confEcho) {
				if e.Proto != "HTTP/1.0" || e.Host != "" || e.Path != "/ten" {
					t.Errorf("proto %q host %q path %q", e.Proto, e.Host, e.Path)
				}
			}}}},
		{name: "HTTP/1.0 keep-alive is kept", req: "GET /ten HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", calls: 1,
			want: []confWant{{status: 200, proto: "HTTP/1.0", bodyAny: true,
				header: map[string]string{"Connection": "keep-alive", "Content-Length": hdrPresent}}}},
		{name: "HTTP/1.0 keep-alive with a body of unknown length closes", req: "GET /big HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", after: closes, calls: 1,
			want: []confWant{{status: 200, proto: "HTTP/1.0", body: string(confBigBody), chunked: confNo,
				header: map[string]string{"Content-Length": hdrAbsent, "Transfer-Encoding": hdrAbsent}}}},
		{name: "client Connection: close", req: "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", after: closes, calls: 1,
			want: []confWant{{status: 200, bodyAny: true, header: map[string]string{"Connection": "close"}}}},
		{name: "client Connection: close among other tokens", req: "GET / HTTP/1.1\r\nHost: x\r\nConnection: X-Foo, Close\r\nX-Foo: 1\r\n\r\n", after: closes, calls: 1,
			want: []confWant{{status: 200, bodyAny: true, header: map[string]string{"Connection": "close"}}}},
		{name: "handler Connection: close ends the connection", req: confGet("/close-me") + confGet("/never"), after: closes, calls: 1,
			want: []confWant{{status: 400, body: "refused", header: map[string]string{"Connection": "close"}}}},
		// RFC 9112 2.2 (SHOULD). net/http answers 400.
		{name: "empty lines before the request line are ignored", req: "\r\n\r\n" + confGet("/after-blank"), calls: 1,
			want: []confWant{{status: 200, bodyAny: true, echo: confEchoPath("/after-blank")}}},
		{name: "bare LF line endings accepted", req: "GET /lf HTTP/1.1\nHost: x\nX-A: 1\n\n", calls: 1,
			want: []confWant{{status: 200, bodyAny: true, echo: func(t *testing.T, e *confEcho) {
				if e.Path != "/lf" || e.Header.Get("X-A") != "1" || e.Host != "x" {
					t.Errorf("echo %+v", e)
				}
			}}}},

		// 2. Request targets and request line.
		{name: "origin-form with query", req: confGet("/a/b?x=1&y=%20"), calls: 1,
			want: []confWant{{status: 200, bodyAny: true, echo: func(t *testing.T, e *confEcho) {
				if e.Path != "/a/b" || e.RawQuery != "x=1&y=%20" || e.RequestURI != "/a/b?x=1&y=%20" {
					t.Errorf("path %q query %q uri %q", e.Path, e.RawQuery, e.RequestURI)
				}
			}}}},
		{name: "absolute-form target", req: "GET http://example.com/a?b=1 HTTP/1.1\r\nHost: other.test\r\n\r\n", calls: 1,
			want: []confWant{{status: 200, bodyAny: true, echo: func(t *testing.T, e *confEcho) {
				if e.Host != "example.com" || e.Path != "/a" || e.RawQuery != "b=1" || e.RequestURI != "http://example.com/a?b=1" {
					t.Errorf("host %q path %q query %q uri %q", e.Host, e.Path, e.RawQuery, e.RequestURI)
				}
			}}}},
		// Pinned: passed to the handler. net/http answers OPTIONS * itself
		// (200, empty body) without calling the handler.
		{name: "OPTIONS *", req: "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", calls: 1,
			want: []confWant{{status: 200, bodyAny: true, echo: func(t *testing.T, e *confEcho) {
				if e.Method != "OPTIONS" || e.Path != "*" || e.RequestURI != "*" {
					t.Errorf("method %q path %q uri %q", e.Method, e.Path, e.RequestURI)
				}
			}}}},
		{name: "percent-encoded slash decoded, raw path kept", req: confGet("/a%2Fb%20c"), calls: 1,
			want: []confWant{{status: 200, bodyAny: true, echo: func(t *testing.T, e *confEcho) {
				if e.Path != "/a/b c" || e.RawPath != "/a%2Fb%20c" || e.RequestURI != "/a%2Fb%20c" {
					t.Errorf("path %q raw %q uri %q", e.Path, e.RawPath, e.RequestURI)
				}
			}}}},
		{name: "lowercase method is a valid token", req: "get /lc HTTP/1.1\r\nHost: x\r\n\r\n", calls: 1,
			want: []confWant{{status: 200, bodyAny: true, echo: func(t *testing.T, e *confEcho) {
				if e.Method != "get" {
					t.Errorf("method %q", e.Method)
				}
			}}}},
		{name: "double space in request line", req: "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", calls: 0, after: closes, want: confRefused(400)},
		{name: "missing version", req: "GET /\r\nHost: x\r\n\r\n", calls: 0, after: closes, want: confRefused(400)},
		{name: "HTTP/2.0 version on HTTP/1", req: "GET / HTTP/2.0\r\nHost: x\r\n\r\n", calls: 0, after: closes, want: confRefused(505)},
		{name: "method with a non-token byte", req: "G(T / HTTP/1.1\r\nHost: x\r\n\r\n", calls: 0, after: closes, want: confRefused(400)},
		{name: "garbage request line", req: "HELLO\r\n\r\n", calls: 0, after: closes, want: confRefused(400)},
		{name: "URI over 64 KiB", req: "GET /" + strings.Repeat("u", 65<<10) + " HTTP/1.1\r\nHost: x\r\n\r\n", calls: 0, after: closes,
			// Pinned: 414 (net/http answers 431 for any oversized head).
			want: confRefused(414)},
		{name: "CONNECT is refused", req: "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", calls: 0, after: closes,
			// Pinned: no tunnels. net/http passes CONNECT to the handler.
			want: confRefused(405)},

		// 3. Host.
		{name: "missing Host on HTTP/1.1", req: "GET / HTTP/1.1\r\n\r\n", calls: 0, after: closes, want: confRefused(400)},
		{name: "two Host fields", req: "GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n", calls: 0, after: closes, want: confRefused(400)},
		{name: "Host with a space", req: "GET / HTTP/1.1\r\nHost: a b.test\r\n\r\n", calls: 0, after: closes, want: confRefused(400)},
		{name: "Host with a slash", req: "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", calls: 0, after: closes, want: confRefused(400)},
		{name: "Host with port and IPv6 literal accepted", req: "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", calls: 1,
			want: []confWant{{status: 200, bodyAny: true, echo: func(t *testing.T, e *confEcho) {
				if e.Host != "[::1]:8080" {
					t.Errorf("host %q", e.Host)
				}
			}}}},

		// 4. Header fields.
		// RFC 9112 5.2 allows 400 or unfolding; pinned 400. net/http
		// unfolds.
		{name: "obs-fold", req: "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n folded\r\n\r\n", calls: 0, after: closes, want: confRefused(400)},
		{name: "space before colon", req: "GET / HTTP/1.1\r\nHost: x\r\nX-A : 1\r\n\r\n", calls: 0, after: closes, want: confRefused(400)},
		{name: "line without colon", req: "GET / HTTP/1.1\r\nHost: x\r\nnocolon\r\n\r\n", calls: 0, after: closes, want: confRefused(400)},
		{name: "empty field name", req: "GET / HTTP/1.1\r\nHost: x\r\n: v\r\n\r\n", calls: 0, after: closes, want: confRefused(400)},
		{name: "NUL in a value", req: "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", calls: 0, after: closes, want: confRefused(400)},
		{name: "bare CR in a value", req: "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", calls: 0, after: closes, want: confRefused(400)},
		{name: "non-token byte in a name", req: "GET / HTTP/1.1\r\nHost: x\r\nX(A): 1\r\n\r\n", calls: 0, after: closes, want: confRefused(400)},
		{name: "100 fields accepted", req: confManyFields(100), calls: 1,
			want: []confWant{{status: 200, bodyAny: true, echo: func(t *testing.T, e *confEcho) {
				if e.Header.Get("X-Field-99") != "99" || len(e.Header) != 99 {
					t.Errorf("%d fields, X-Field-99 %q", len(e.Header), e.Header.Get("X-Field-99"))
				}
			}}}},
		// net/http has no field-count limit: with it, the handler had to
		// apply MaxHeaderFields.
		{name: "101 fields: 431", req: confManyFields(101), calls: 0, after: closes, want: confRefused(431)},
		// 64 KiB of fields. net/http accepts it: it allows MaxHeaderBytes
		// plus 4 KiB of slack.
		{name: "header block over 60 KiB: 431", req: bigHeader, calls: 0, after: closes, want: confRefused(431)},
		{name: "header block under MaxHeaderBytes", limits: Limits{MaxHeaderBytes: 80 << 10}, req: bigHeader, calls: 1,
			want: []confWant{{status: 200, bodyAny: true, echo: func(t *testing.T, e *confEcho) {
				if len(e.Header["X-Big"]) != 16 {
					t.Errorf("%d X-Big values", len(e.Header["X-Big"]))
				}
			}}}},
		{name: "underscore in a name accepted", req: "GET / HTTP/1.1\r\nHost: x\r\nX_Under: u\r\n\r\n", calls: 1,
			want: []confWant{{status: 200, bodyAny: true, echo: func(t *testing.T, e *confEcho) {
				if e.Header.Get("X_Under") != "u" {
					t.Errorf("header %v", e.Header)
				}
			}}}},
		{name: "value whitespace trimmed, repeated fields kept in order", req: "GET / HTTP/1.1\r\nHost: x\r\nX-A: \t a b \t\r\nx-m: 1\r\nX-M: 2\r\n\r\n", calls: 1,
			want: []confWant{{status: 200, bodyAny: true, echo: func(t *testing.T, e *confEcho) {
				if e.Header.Get("X-A") != "a b" || strings.Join(e.Header["X-M"], ",") != "1,2" {
					t.Errorf("X-A %q X-M %q", e.Header.Get("X-A"), e.Header["X-M"])
				}
			}}}},
		{name: "unsupported Expect: 417", req: "GET / HTTP/1.1\r\nHost: x\r\nExpect: magic\r\n\r\n", calls: 0, after: closes, want: confRefused(417)},

		// 5. Request bodies.
		{name: "Content-Length body read fully", req: confPost("/p", "", "hello world") + confGet("/next"), calls: 2,
			want: []confWant{{status: 200, bodyAny: true, echo: func(t *testing.T, e *confEcho) {
				if e.Body != "hello world" || e.ContentLength != 11 || len(e.TransferEncoding) != 0 {
					t.Errorf("body %q length %d te %v", e.Body, e.ContentLength, e.TransferEncoding)
				}
			}}, {status: 200, bodyAny: true, echo: confEchoPath("/next")}}},
		{name: "Content-Length with plus sign", req: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello", calls: 0, after: closes, want: confRefused(400)},
		{name: "negative Content-Length", req: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\nhello", calls: 0, after: closes, want: confRefused(400)},
		{name: "non-numeric Content-Length", req: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5x\r\n\r\nhello", calls: 0, after: closes, want: confRefused(400)},
		{name: "Content-Length over 63 bits", req: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\nhello", calls: 0, after: closes, want: confRefused(400)},
		{name: "two different Content-Length", req: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", calls: 0, after: closes, want: confRefused(400)},
		{name: "Content-Length list in one field", req: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello", calls: 0, after: closes, want: confRefused(400)},
		{name: "identical duplicate Content-Length accepted", req: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello" + confGet("/next"), calls: 2,
			want: []confWant{{status: 200, bodyAny: true, echo: func(t *testing.T, e *confEcho) {
				if e.Body != "hello" || e.ContentLength != 5 {
					t.Errorf("body %q length %d", e.Body, e.ContentLength)
				}
			}}, {status: 200, bodyAny: true, echo: confEchoPath("/next")}}},
		{name: "chunked body with extensions and trailer", calls: 2,
			req: "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-Trailer\r\n\r\n" +
				"5;ext=1;name=\"q\"\r\nhello\r\n6\r\n world\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n" + confGet("/next"),
			want: []confWant{{status: 200, bodyAny: true, echo: func(t *testing.T, e *confEcho) {
				if e.Body != "hello world0123456789" || e.ContentLength != -1 || strings.Join(e.TransferEncoding, ",") != "chunked" {
					t.Errorf("body %q length %d te %v", e.Body, e.ContentLength, e.TransferEncoding)
				}
			}}, {status: 200, bodyAny: true, echo: confEchoPath("/next")}}},
		{name: "chunked coding name is case-insensitive", req: "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", calls: 1,
			want: []confWant{{status: 200, bodyAny: true, echo: func(t *testing.T, e *confEcho) {
				if e.Body != "abc" {
					t.Errorf("body %q", e.Body)
				}
			}}}},
		{name: "chunked with a bad size line", req: "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n" + confGet("/never"),
			// The handler sees a read error (and answers 400 itself); the
			// framing is lost, so the connection must end.
			calls: 1, after: closes, want: []confWant{{status: 400, bodyAny: true, header: map[string]string{"X-Body-Error": hdrPresent}}}},
		{name: "chunked body cut short by the client", req: "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", closeWrite: true,
			calls: 1, after: closes, want: []confWant{{status: 400, bodyAny: true, header: map[string]string{"X-Body-Error": hdrPresent}}}},
		{name: "Content-Length body cut short by the client", req: confPost("/p", "", "hello")[:60], closeWrite: true,
			calls: 1, after: closes, want: []confWant{{status: 400, bodyAny: true, header: map[string]string{"X-Body-Error": hdrPresent}}}},
		{name: "Transfer-Encoding gzip, chunked: 501", req: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", calls: 0, after: closes, want: confRefused(501)},
		{name: "Transfer-Encoding identity: 501", req: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n", calls: 0, after: closes, want: confRefused(501)},
		{name: "unknown Transfer-Encoding: 501", req: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: foo\r\n\r\n", calls: 0, after: closes, want: confRefused(501)},
		{name: "two Transfer-Encoding fields", req: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", calls: 0, after: closes,
			// Pinned 400; net/http answers 501 ("too many transfer encodings").
			want: confRefused(400)},
		{name: "Content-Length and Transfer-Encoding: refused, pipelined request never served", calls: 0, after: closes,
			// current net/http behaviour differs: net/http drops
			// Content-Length, serves the chunked body and keeps the
			// connection (RFC 9112 6.1 lets a server do that, but a
			// gateway must not: that is request smuggling's opening).
			req:  "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + confGet("/smuggled"),
			want: confRefused(400)},
		{name: "Transfer-Encoding then Content-Length: refused", calls: 0, after: closes,
			// current net/http behaviour differs: as above.
			req:  "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n" + confGet("/smuggled"),
			want: confRefused(400)},
		{name: "Transfer-Encoding in HTTP/1.0: refused", calls: 0, after: closes,
			// RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding has
			// faulty framing. current net/http behaviour differs: it
			// ignores the field and reads no body, so the chunk bytes
			// become the next "request".
			req:  "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
			want: confRefused(400)},
		{name: "unread Content-Length body discarded, next request served", req: confPost("/noread", "", "ignored body") + confGet("/next"), calls: 2,
			want: []confWant{{status: 200, body: "noread"}, {status: 200, bodyAny: true, echo: confEchoPath("/next")}}},
		{name: "unread chunked body discarded, next request served", calls: 2,
			req:  "POST /noread HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\n\r\n" + confGet("/next"),
			want: []confWant{{status: 200, body: "noread"}, {status: 200, bodyAny: true, echo: confEchoPath("/next")}}},
		{name: "unread body over 256 KiB: answered, then closed", req: confPost("/noread", "", strings.Repeat("z", 300<<10)), calls: 1, after: closes,
			want: []confWant{{status: 200, body: "noread", header: map[string]string{"Connection": "close"}}}},

		// 6. Responses.
		{name: "handler Content-Length sent as is", req: confGet("/cl"), calls: 1,
			want: []confWant{{status: 200, body: "hello", chunked: confNo, header: map[string]string{"Content-Length": "5"}}}},
		{name: "small body gets a Content-Length", req: confGet("/small"), calls: 1,
			want: []confWant{{status: 200, body: "hello", chunked: confNo, header: map[string]string{"Content-Length": "5", "Transfer-Encoding": hdrAbsent}}}},
		{name: "large body of unknown length is chunked", req: confGet("/big") + confGet("/next"), calls: 2,
			want: []confWant{{status: 200, body: string(confBigBody), chunked: confYes, header: map[string]string{"Content-Length": hdrAbsent}},
				{status: 200, bodyAny: true, echo: confEchoPath("/next")}}},
		{name: "HEAD with handler Content-Length", req: "HEAD /cl HTTP/1.1\r\nHost: x\r\n\r\n" + confGet("/next"), calls: 2,
			want: []confWant{{method: "HEAD", status: 200, body: "", header: map[string]string{"Content-Length": "5"}},
				{status: 200, bodyAny: true, echo: confEchoPath("/next")}}},
		{name: "HEAD with small body", req: "HEAD /small HTTP/1.1\r\nHost: x\r\n\r\n" + confGet("/next"), calls: 2,
			want: []confWant{{method: "HEAD", status: 200, body: "", header: map[string]string{"Content-Length": "5"}},
				{status: 200, bodyAny: true, echo: confEchoPath("/next")}}},
		{name: "HEAD with large body sends no body bytes", req: "HEAD /big HTTP/1.1\r\nHost: x\r\n\r\n" + confGet("/next"), calls: 2,
			// Content-Length may be absent or 102400; no body either way.
			want: []confWant{{method: "HEAD", status: 200, body: "", header: map[string]string{"Transfer-Encoding": hdrAbsent}},
				{status: 200, bodyAny: true, echo: confEchoPath("/next")}}},
		{name: "204 has no body", req: confGet("/status/204") + confGet("/next"), calls: 2,
			want: []confWant{{status: 204, body: "", header: map[string]string{"Content-Length": hdrAbsent, "Transfer-Encoding": hdrAbsent}},
				{status: 200, bodyAny: true, echo: confEchoPath("/next")}}},
		{name: "304 has no body", req: confGet("/status/304") + confGet("/next"), calls: 2,
			want: []confWant{{status: 304, body: "", header: map[string]string{"Transfer-Encoding": hdrAbsent}},
				{status: 200, bodyAny: true, echo: confEchoPath("/next")}}},
		{name: "status code and body passed through", req: confGet("/status/503"), calls: 1,
			want: []confWant{{status: 503, body: "status body", header: map[string]string{"Content-Length": "11"}}}},
		{name: "handler writing nothing: 200, Content-Length 0", req: confGet("/nobody") + confGet("/next"), calls: 2,
			want: []confWant{{status: 200, body: "", header: map[string]string{"Content-Length": "0", "Transfer-Encoding": hdrAbsent, "Date": hdrPresent}},
				{status: 200, bodyAny: true, echo: confEchoPath("/next")}}},
		{name: "handler headers arrive", req: confGet("/headers"), calls: 1,
			want: []confWant{{status: 200, body: "h", header: map[string]string{"X-One": "1", "Content-Type": "text/x-test", "Set-Cookie": "a=1,b=2"}}}},
		{name: "handler writing more than its Content-Length: extra bytes dropped", req: confGet("/over-cl"), calls: 1, after: eitherWay,
			// Pinned: the connection stays usable (net/http closes it).
			want: []confWant{{status: 200, body: "hello", header: map[string]string{"Content-Length": "5"}}}},
		{name: "CR LF in a handler header value cannot inject a field", req: confGet("/inject") + confGet("/next"), calls: 2,
			// The value may be dropped or sanitised, never split.
			want: []confWant{{status: 200, body: "i", header: map[string]string{"X-Evil": hdrAbsent, "X-Ok": "ok"}},
				{status: 200, bodyAny: true, echo: confEchoPath("/next")}}},
		{name: "declared response trailers are sent", req: confGet("/trailer") + confGet("/next"), calls: 2,
			// A declared Trailer forces a chunked body so the fields set
			// after the headers (an h2c upstream's Grpc-Status, copied by
			// proxy/forward.go) can follow the last chunk.
			want: []confWant{{status: 200, body: "body more", chunked: confYes, trailer: map[string]string{"X-Checksum": "abc"}},
				{status: 200, bodyAny: true, echo: confEchoPath("/next")}}},
		{name: "POST without Content-Length or Transfer-Encoding has no body", req: "POST /p HTTP/1.1\r\nHost: x\r\n\r\n" + confGet("/next"), calls: 2,
			want: []confWant{{status: 200, bodyAny: true, echo: func(t *testing.T, e *confEcho) {
				if e.Body != "" || e.ContentLength != 0 || e.Method != "POST" {
					t.Errorf("method %q body %q length %d", e.Method, e.Body, e.ContentLength)
				}
			}}, {status: 200, bodyAny: true, echo: confEchoPath("/next")}}},
		{name: "handler writing less than its Content-Length: truncated, closed", req: confGet("/short-cl") + confGet("/never"), calls: 1, after: closes,
			want: []confWant{{status: 200, bodyErr: true, header: map[string]string{"Content-Length": "100"}}}},
		{name: "ErrAbortHandler after the headers went out: truncated, closed", req: confGet("/abort-mid") + confGet("/never"), calls: 1, after: closes,
			// The client must see a broken body, never a clean end.
			want: []confWant{{status: 200, bodyErr: true, chunked: confYes}}},
	}
}

// TestH1Conformance runs every row twice: as a connection's first request,
// and after one answered request on the same connection, where plain TCP
// connections read their requests inside the socket's read loop
// (h1loop.go) instead.
func TestH1Conformance(t *testing.T) {
	for _, kept := range []bool{false, true} {
		for _, tc := range confRows() {
			name := "first/" + tc.name
			if kept {
				name = "kept-alive/" + tc.name
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				runConfRow(t, tc, kept)
			})
		}
	}
}

func runConfRow(t *testing.T, tc confRow, kept bool) {
	s := startConf(t, tc.limits)
	cc := dialConf(t, s.addr)
	if kept {
		cc.write(confGet("/warm-up"))
		checkConfResponse(t, cc, -1, confWant{status: 200, bodyAny: true})
		if t.Failed() {
			return
		}
		if tc.calls >= 0 {
			tc.calls++
		}
	}
	if tc.closeWrite {
		cc.writeNow(tc.req)
		cc.c.(*net.TCPConn).CloseWrite()
	} else {
		cc.write(tc.req)
	}
	for i, w := range tc.want {
		checkConfResponse(t, cc, i, w)
		if t.Failed() {
			return
		}
	}
	closed := cc.closed(300 * time.Millisecond)
	if tc.after == closes && !closed {
		if !cc.closed(2 * time.Second) {
			t.Error("connection still open, want it closed")
		}
	}
	if tc.after == keepsOpen {
		if closed {
			t.Error("connection closed, want it kept open")
		}
	}
	if tc.calls >= 0 {
		if got := s.calls.Load(); got != tc.calls {
			t.Errorf("handler called %d times, want %d", got, tc.calls)
		}
	}
	if tc.after != closes && !closed {
		cc.reusable()
	}
}

func checkConfResponse(t *testing.T, cc *confConn, i int, w confWant) {
	t.Helper()
	method := w.method
	if method == "" {
		method = "GET"
	}
	resp, body, bodyErr := cc.read(method)
	where := fmt.Sprintf("response %d", i+1)
	if resp.StatusCode != w.status {
		t.Errorf("%s: status %d, want %d (body %q)", where, resp.StatusCode, w.status, confTrim(body))
	}
	proto := w.proto
	if proto == "" {
		proto = "HTTP/1.1"
	}
	if resp.Proto != proto {
		t.Errorf("%s: proto %s, want %s", where, resp.Proto, proto)
	}
	for k, v := range w.header {
		got, ok := resp.Header[k]
		switch k {
		// ReadResponse moves these out of the header map.
		case "Transfer-Encoding":
			got, ok = resp.TransferEncoding, len(resp.TransferEncoding) > 0
		case "Connection":
			if resp.Close && !ok {
				got, ok = []string{"close"}, true
			}
		}
		switch v {
		case hdrAbsent:
			if ok {
				t.Errorf("%s: %s = %q, want none", where, k, got)
			}
		case hdrPresent:
			if !ok {
				t.Errorf("%s: no %s", where, k)
			}
		default:
			if !strings.EqualFold(strings.Join(got, ","), v) {
				t.Errorf("%s: %s = %q, want %q", where, k, got, v)
			}
		}
	}
	if w.chunked != nil {
		if isChunked := len(resp.TransferEncoding) > 0 && resp.TransferEncoding[0] == "chunked"; isChunked != *w.chunked {
			t.Errorf("%s: chunked %v, want %v", where, isChunked, *w.chunked)
		}
	}
	if w.bodyErr {
		if bodyErr == nil {
			t.Errorf("%s: body of %d bytes ended cleanly, want a truncated body", where, len(body))
		}
		return
	}
	if bodyErr != nil {
		t.Errorf("%s: reading body: %v", where, bodyErr)
	}
	if !w.bodyAny && string(body) != w.body {
		t.Errorf("%s: body %q (%d bytes), want %q (%d bytes)", where, confTrim(body), len(body), confTrim([]byte(w.body)), len(w.body))
	}
	for k, v := range w.trailer {
		if got := resp.Trailer.Get(k); got != v {
			t.Errorf("%s: trailer %s = %q, want %q (trailers %v)", where, k, got, v, resp.Trailer)
		}
	}
	if w.echo != nil {
		w.echo(t, confEchoOf(t, body))
	}
}

// 100-continue: the server sends the interim response when the handler
// first reads the body, and never when it does not.
func TestH1ExpectContinue(t *testing.T) {
	t.Parallel()
	t.Run("body read", func(t *testing.T) {
		t.Parallel()
		s := startConf(t, Limits{})
		cc := dialConf(t, s.addr)
		cc.writeNow("POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
		resp, _, _ := cc.read("POST")
		if resp.StatusCode != http.StatusContinue || resp.Proto != "HTTP/1.1" {
			t.Fatalf("interim response %d %s, want 100 HTTP/1.1", resp.StatusCode, resp.Proto)
		}
		cc.writeNow("hello")
		resp, body, err := cc.read("POST")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("final response %d %v", resp.StatusCode, err)
		}
		if e := confEchoOf(t, body); e.Body != "hello" {
			t.Errorf("body %q", e.Body)
		}
		if _, ok := confEchoOf(t, body).Header["Expect"]; !ok {
			t.Error("handler did not see Expect")
		}
		cc.reusable()
	})
	t.Run("body not read", func(t *testing.T) {
		t.Parallel()
		s := startConf(t, Limits{})
		cc := dialConf(t, s.addr)
		cc.writeNow("POST /noread HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
		resp, body, err := cc.read("POST")
		if resp.StatusCode != 200 || string(body) != "noread" || err != nil {
			t.Fatalf("response %d %q %v, want the final 200 without 100 Continue", resp.StatusCode, body, err)
		}
		// The body was never asked for, so the connection cannot tell
		// whether it comes: it must close. (net/http announces the close
		// but then waits for the body that never comes.)
		if !resp.Close {
			t.Error("response does not announce Connection: close")
		}
		if !cc.closed(2 * time.Second) {
			t.Error("connection still open")
		}
	})
}

// Flush sends what was written so far while the handler keeps running.
func TestH1Flush(t *testing.T) {
	t.Parallel()
	s := startConf(t, Limits{})
	cc := dialConf(t, s.addr)
	cc.writeNow(confGet("/flush"))
	select {
	case <-s.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("handler did not start")
	}
	resp, err := http.ReadResponse(cc.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.ContentLength != -1 || len(resp.TransferEncoding) == 0 {
		t.Errorf("status %d length %d te %v, want streamed 200", resp.StatusCode, resp.ContentLength, resp.TransferEncoding)
	}
	first := make([]byte, len("first\n"))
	if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "first\n" {
		t.Fatalf("first part %q %v (before the handler finished)", first, err)
	}
	s.releaseAll()
	rest, err := io.ReadAll(resp.Body)
	if err != nil || string(rest) != "second\n" {
		t.Fatalf("rest %q %v", rest, err)
	}
	cc.reusable()
}

// A handler panic ends the connection; the server keeps serving others.
func TestH1HandlerPanic(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"/panic-abort", "/panic"} {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			s := startConf(t, Limits{})
			cc := dialConf(t, s.addr)
			cc.write(confGet(path) + confGet("/never"))
			// Pinned: a panic before anything was sent gets a 500 with
			// Connection: close. (net/http closes without an answer.)
			// Either way no response may follow and the connection ends.
			cc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(cc.br, nil)
			if err == nil {
				io.ReadAll(resp.Body)
				if resp.StatusCode != 500 || !resp.Close {
					t.Errorf("answer %d close %v, want 500 with Connection: close (or none)", resp.StatusCode, resp.Close)
				}
			}
			if !cc.closed(2 * time.Second) {
				t.Error("connection still open after a panic")
			}
			if got := s.calls.Load(); got != 1 {
				t.Errorf("handler called %d times, want 1", got)
			}
			if !dialConf(t, s.addr).reusable() {
				t.Error("server does not serve a new connection after a panic")
			}
		})
	}
}

// A client that stops in the middle of its head is cut off; one that is
// idle between requests too. Only generous upper bounds are asserted.
func TestH1Timeouts(t *testing.T) {
	t.Parallel()
	// readToEnd waits for the server to close, accepting a 408 (or 400)
	// on the way.
	readToEnd := func(t *testing.T, cc *confConn) {
		t.Helper()
		cc.c.SetReadDeadline(time.Now().Add(2 * time.Second))
		b, err := io.ReadAll(cc.br)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection still open after 2 s (read %q)", b)
		}
		if len(b) > 0 && !bytes.HasPrefix(b, []byte("HTTP/1.1 408 ")) && !bytes.HasPrefix(b, []byte("HTTP/1.1 400 ")) {
			t.Errorf("unexpected answer %q", confTrim(b))
		}
	}
	t.Run("partial head on a new connection", func(t *testing.T) {
		t.Parallel()
		s := startConf(t, Limits{ReadHeaderTimeout: 300 * time.Millisecond})
		cc := dialConf(t, s.addr)
		cc.writeNow("GET / HTTP/1.1\r\nHost: x\r\n")
		readToEnd(t, cc)
		if s.calls.Load() != 0 {
			t.Error("handler called")
		}
	})
	t.Run("partial head on a kept-alive connection", func(t *testing.T) {
		t.Parallel()
		// The idle timeout is long: the header timeout must apply from
		// the head's first byte.
		s := startConf(t, Limits{ReadHeaderTimeout: 300 * time.Millisecond, IdleTimeout: time.Minute})
		cc := dialConf(t, s.addr)
		cc.writeNow(confGet("/first"))
		if resp, _, _ := cc.read("GET"); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		cc.writeNow("GET /second HTTP/1.1\r\nHo")
		readToEnd(t, cc)
	})
	t.Run("connection silent from the start", func(t *testing.T) {
		t.Parallel()
		s := startConf(t, Limits{ReadHeaderTimeout: 300 * time.Millisecond, IdleTimeout: 300 * time.Millisecond})
		cc := dialConf(t, s.addr)
		readToEnd(t, cc)
	})
	t.Run("idle keep-alive connection", func(t *testing.T) {
		t.Parallel()
		s := startConf(t, Limits{IdleTimeout: 300 * time.Millisecond})
		cc := dialConf(t, s.addr)
		cc.writeNow(confGet("/first"))
		if resp, _, _ := cc.read("GET"); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		readToEnd(t, cc)
	})
	t.Run("slow body is not cut by the header timeout", func(t *testing.T) {
		t.Parallel()
		s := startConf(t, Limits{ReadHeaderTimeout: 200 * time.Millisecond})
		cc := dialConf(t, s.addr)
		cc.writeNow("POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello")
		time.Sleep(600 * time.Millisecond)
		cc.writeNow("world")
		resp, body, err := cc.read("POST")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("status %d %v", resp.StatusCode, err)
		}
		if e := confEchoOf(t, body); e.Body != "helloworld" {
			t.Errorf("body %q", e.Body)
		}
	})
}

// HTTP/2 with prior knowledge shares the cleartext port.
func TestH2CPriorKnowledge(t *testing.T) {
	t.Parallel()
	s := startConf(t, Limits{})
	tr := &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	resp, err := client.Post("http://"+s.addr+"/h2c?x=1", "text/plain", strings.NewReader("h2 body"))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || resp.Proto != "HTTP/2.0" {
		t.Fatalf("%s %d %v", resp.Proto, resp.StatusCode, err)
	}
	e := confEchoOf(t, body)
	if e.Proto != "HTTP/2.0" || e.Path != "/h2c" || e.RawQuery != "x=1" || e.Body != "h2 body" || e.TLS {
		t.Errorf("echo %+v", e)
	}
	// The same listener still speaks HTTP/1.1.
	if !dialConf(t, s.addr).reusable() {
		t.Error("HTTP/1.1 after h2c")
	}
}

func confCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "conformance.test"},
		DNSNames:              []string{"conformance.test"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
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
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// TLS: ALPN picks HTTP/1.1 or HTTP/2 on one port; handlers learn the
// connection is TLS from ConnInfo.
func TestTLSH1AndH2(t *testing.T) {
	t.Parallel()
	cert, pool := confCert(t)
	s := startConf(t, Limits{})
	s.l.SetTLS(&tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}})

	t.Run("http/1.1", func(t *testing.T) {
		for _, alpn := range [][]string{{"http/1.1"}, nil} {
			d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 2 * time.Second}, Config: &tls.Config{RootCAs: pool, ServerName: "conformance.test", NextProtos: alpn}}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			c, err := d.DialContext(ctx, "tcp", s.addr)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			if p := c.(*tls.Conn).ConnectionState().NegotiatedProtocol; p != strings.Join(alpn, "") {
				t.Errorf("ALPN %v: negotiated %q", alpn, p)
			}
			cc := wrapConf(t, c)
			cc.writeNow(confPost("/tls", "", "secret"))
			resp, body, err := cc.read("POST")
			if err != nil || resp.StatusCode != 200 || resp.Proto != "HTTP/1.1" {
				t.Fatalf("%s %d %v", resp.Proto, resp.StatusCode, err)
			}
			if e := confEchoOf(t, body); !e.TLS || e.Proto != "HTTP/1.1" || e.Body != "secret" {
				t.Errorf("ALPN %v: echo %+v", alpn, e)
			}
			cc.reusable()
		}
	})
	t.Run("h2", func(t *testing.T) {
		tr := &http2.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "conformance.test", NextProtos: []string{"h2"}}}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
		resp, err := client.Get("https://" + s.addr + "/tls-h2")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || resp.Proto != "HTTP/2.0" {
			t.Fatalf("%s %d %v", resp.Proto, resp.StatusCode, err)
		}
		if e := confEchoOf(t, body); !e.TLS || e.Proto != "HTTP/2.0" {
			t.Errorf("echo %+v", e)
		}
	})
	t.Run("plain HTTP on the TLS port is not served", func(t *testing.T) {
		cc := dialConf(t, s.addr)
		cc.write(confGet("/plain"))
		cc.c.SetReadDeadline(time.Now().Add(3 * time.Second))
		b, _ := io.ReadAll(cc.br)
		if bytes.Contains(b, []byte(`"path":"/plain"`)) {
			t.Error("cleartext request served on a TLS listener")
		}
	})
}

// Shutdown: in-flight requests finish, idle connections close, new ones are
// refused.
func TestShutdownH1(t *testing.T) {
	t.Parallel()
	s := startConf(t, Limits{})
	busy := dialConf(t, s.addr)
	busy.writeNow(confGet("/block"))
	select {
	case <-s.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("handler did not start")
	}
	idle := dialConf(t, s.addr)
	idle.writeNow(confGet("/idle"))
	if resp, _, _ := idle.read("GET"); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- s.l.Shutdown(ctx)
	}()

	if !idle.closed(2 * time.Second) {
		t.Error("idle keep-alive connection not closed by Shutdown")
	}
	refused := false
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err != nil {
			refused = true
			break
		}
		c.Close()
	}
	if !refused {
		t.Error("new connections still accepted during Shutdown")
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned (%v) while a request was in flight", err)
	default:
	}

	s.releaseAll()
	resp, body, err := busy.read("GET")
	if err != nil || resp.StatusCode != 200 || string(body) != "done" {
		t.Fatalf("in-flight request: %d %q %v", resp.StatusCode, body, err)
	}
	if !resp.Close {
		t.Error("response during Shutdown does not announce Connection: close")
	}
	if !busy.closed(2 * time.Second) {
		t.Error("connection still open after its last response")
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return")
	}
}
