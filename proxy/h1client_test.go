package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshgate/meshgate/internal/rawio"
)

// rawUpstream serves one canned response per connection read, for framings
// net/http would not produce.
func rawUpstream(t *testing.T, response string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.Read(buf); err != nil {
					return
				}
				io.WriteString(c, response)
			}()
		}
	}()
	return ln.Addr().String()
}

func forward(t *testing.T, c *H1Client, addr string, out *Outbound) (*httptest.ResponseRecorder, error) {
	t.Helper()
	rec := httptest.NewRecorder()
	if out.Header == nil {
		out.Header = http.Header{}
	}
	if out.Method == "" {
		out.Method = http.MethodGet
	}
	if out.RequestURI == "" {
		out.RequestURI = "/"
	}
	out.Host = "example.test"
	err := c.Forward(context.Background(), addr, out, rec, rec.WriteHeader)
	return rec, err
}

func TestH1ClientResponseFraming(t *testing.T) {
	tests := []struct {
		name     string
		response string
		method   string
		status   int
		body     string
		header   map[string]string // want; "" means absent
		errKind  *UpstreamErrorKind
	}{
		{name: "content-length", response: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello", status: 200, body: "hello", header: map[string]string{"X-A": "1", "Content-Length": "5"}},
		{name: "chunked with trailer", response: "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nX-T: 1\r\n\r\n", status: 201, body: "abcde", header: map[string]string{"Transfer-Encoding": ""}},
		{name: "close-delimited", response: "HTTP/1.0 200 OK\r\n\r\nuntil close", status: 200, body: "until close"},
		{name: "head has no body", method: "HEAD", response: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", status: 200, body: "", header: map[string]string{"Content-Length": "10"}},
		{name: "204 has no body", response: "HTTP/1.1 204 No Content\r\n\r\n", status: 204},
		{name: "100 continue is consumed", response: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", status: 200, body: "ok"},
		{name: "hop-by-hop and Connection-named fields dropped", response: "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\nKeep-Alive: timeout=5\r\nX-Kept: k\r\nContent-Length: 0\r\n\r\n", status: 200, header: map[string]string{"X-Secret": "", "Keep-Alive": "", "Connection": "", "X-Kept": "k"}},
		{name: "malformed status line", response: "HTTP/1.1 2x0 OK\r\n\r\n", errKind: ptr(ErrProtocol)},
		{name: "not http", response: "SSH-2.0-OpenSSH\r\n\r\n", errKind: ptr(ErrProtocol)},
		{name: "conflicting content-length", response: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", errKind: ptr(ErrProtocol)},
		{name: "unknown transfer-encoding", response: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", errKind: ptr(ErrProtocol)},
		{name: "header with CR injection", response: "HTTP/1.1 200 OK\r\nX-A: a\rb\r\n\r\n", errKind: ptr(ErrProtocol)},
		{name: "closed before answering", response: "", errKind: ptr(ErrProtocol)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr := rawUpstream(t, tc.response)
			var c H1Client
			defer c.CloseIdle()
			rec, err := forward(t, &c, addr, &Outbound{Method: tc.method})
			if tc.errKind != nil {
				var ue *UpstreamError
				if !errors.As(err, &ue) || ue.Kind != *tc.errKind {
					t.Fatalf("err = %v, want kind %d", err, *tc.errKind)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if rec.Code != tc.status || rec.Body.String() != tc.body {
				t.Errorf("got %d %q, want %d %q", rec.Code, rec.Body.String(), tc.status, tc.body)
			}
			for k, v := range tc.header {
				if got := rec.Header().Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestH1ClientReusesConnectionsAndRetriesStale(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Got", r.Method+"|"+r.RequestURI+"|"+r.Host+"|"+string(b)+"|"+strings.Join(r.TransferEncoding, ","))
	}))
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	var c H1Client
	defer c.CloseIdle()
	for i := 0; i < 5; i++ {
		rec, err := forward(t, &c, addr, &Outbound{RequestURI: "/x?y=1"})
		if err != nil || rec.Header().Get("X-Got") != "GET|/x?y=1|example.test||" {
			t.Fatalf("request %d: %v %q", i, err, rec.Header().Get("X-Got"))
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("5 sequential requests used %d connections, want 1", n)
	}
	// The upstream drops its idle connections; the next request must not
	// fail because of it.
	srv.CloseClientConnections()
	time.Sleep(50 * time.Millisecond)
	if _, err := forward(t, &c, addr, &Outbound{}); err != nil {
		t.Fatalf("after upstream closed idle connection: %v", err)
	}

	// Bodies: known length and chunked.
	rec, err := forward(t, &c, addr, &Outbound{Method: "POST", Body: strings.NewReader("abc"), ContentLength: 3})
	if err != nil || rec.Header().Get("X-Got") != "POST|/|example.test|abc|" {
		t.Errorf("content-length body: %v %q", err, rec.Header().Get("X-Got"))
	}
	rec, err = forward(t, &c, addr, &Outbound{Method: "POST", Body: strings.NewReader("streamed"), ContentLength: -1})
	if err != nil || rec.Header().Get("X-Got") != "POST|/|example.test|streamed|chunked" {
		t.Errorf("chunked body: %v %q", err, rec.Header().Get("X-Got"))
	}
}

func TestH1ClientErrors(t *testing.T) {
	// Nothing listens on a port we just released.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()

	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()

	var c H1Client
	defer c.CloseIdle()
	_, err := forward(t, &c, dead, &Outbound{})
	if st, _ := StatusFor(err); st != http.StatusServiceUnavailable {
		t.Errorf("connect refused: status %d (%v), want 503", st, err)
	}
	_, err = forward(t, &c, slow.Listener.Addr().String(), &Outbound{Deadline: time.Now().Add(100 * time.Millisecond)})
	if st, _ := StatusFor(err); st != http.StatusGatewayTimeout {
		t.Errorf("deadline: status %d (%v), want 504", st, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	rec := httptest.NewRecorder()
	err = c.Forward(ctx, slow.Listener.Addr().String(), &Outbound{Method: "GET", RequestURI: "/", Header: http.Header{}}, rec, rec.WriteHeader)
	if st, _ := StatusFor(err); st != 499 {
		t.Errorf("client canceled: status %d (%v), want 499", st, err)
	}
}

func BenchmarkH1ClientForward(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from backend\n")
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	var c H1Client
	defer c.CloseIdle()
	h := http.Header{"Accept": {"*/*"}, "User-Agent": {"bench"}}
	rec := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(rec.h)
		out := Outbound{Method: "GET", RequestURI: "/", Host: "x", Header: h}
		if err := c.Forward(context.Background(), addr, &out, rec, rec.WriteHeader); err != nil {
			b.Fatal(err)
		}
	}
}

type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}

// TestH1ClientStalePool covers a pool whose idle connections were all closed
// by the upstream (its keep-alive timeout): a GET retries on a new
// connection, not on the next stale one, and a POST, which may not be
// retried, is not sent on a connection that sat idle long enough to be
// checked first.
func TestH1ClientStalePool(t *testing.T) {
	const pooled = 4
	// Requests to /fill wait until pooled of them are in, so each holds
	// its own connection.
	var (
		mu      sync.Mutex
		arrived int
		release chan struct{}
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fill" {
			mu.Lock()
			if arrived++; arrived == pooled {
				close(release)
			}
			ch := release
			mu.Unlock()
			<-ch
		}
		io.Copy(io.Discard, r.Body)
		w.Write([]byte(r.Method))
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	var c H1Client
	defer c.CloseIdle()

	// stalePool fills the pool with connections the upstream then closes,
	// and waits until the closes reached this side.
	stalePool := func(t *testing.T, idleFor time.Duration) {
		t.Helper()
		mu.Lock()
		arrived, release = 0, make(chan struct{})
		mu.Unlock()
		errs := make(chan error, pooled)
		for i := 0; i < pooled; i++ {
			go func() {
				_, err := forward(t, &c, addr, &Outbound{RequestURI: "/fill"})
				errs <- err
			}()
		}
		for i := 0; i < pooled; i++ {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		p := c.pool(addr)
		p.mu.Lock()
		idle := append([]*upConn(nil), p.idle...)
		for _, uc := range p.idle {
			uc.lastUsed = time.Now().Add(-idleFor)
		}
		p.mu.Unlock()
		if len(idle) < pooled {
			t.Fatalf("%d pooled connections, want %d", len(idle), pooled)
		}
		srv.CloseClientConnections()
		deadline := time.Now().Add(5 * time.Second)
		for _, uc := range idle {
			for !rawio.PeerGone(uc.Conn) {
				if time.Now().After(deadline) {
					t.Fatal("upstream's close never arrived")
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	}

	t.Run("GET retried on a new connection", func(t *testing.T) {
		stalePool(t, 0)
		rec, err := forward(t, &c, addr, &Outbound{})
		if err != nil || rec.Body.String() != "GET" {
			t.Fatalf("GET after the upstream closed the pool: %v %q", err, rec.Body.String())
		}
	})
	t.Run("POST not sent on a checked stale connection", func(t *testing.T) {
		stalePool(t, 2*probeIdleAfter)
		rec, err := forward(t, &c, addr, &Outbound{Method: "POST", Body: strings.NewReader("abc"), ContentLength: 3})
		if err != nil || rec.Body.String() != "POST" {
			t.Fatalf("POST after the upstream closed the pool: %v %q", err, rec.Body.String())
		}
	})
	t.Run("live idle connection reused after the check", func(t *testing.T) {
		if _, err := forward(t, &c, addr, &Outbound{}); err != nil {
			t.Fatal(err)
		}
		p := c.pool(addr)
		p.mu.Lock()
		n := len(p.idle)
		for _, uc := range p.idle {
			uc.lastUsed = time.Now().Add(-2 * probeIdleAfter)
		}
		p.mu.Unlock()
		rec, err := forward(t, &c, addr, &Outbound{})
		if err != nil || rec.Body.String() != "GET" {
			t.Fatalf("GET on a live idle connection: %v %q", err, rec.Body.String())
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if len(p.idle) != n {
			t.Errorf("pool went from %d to %d idle connections: the checked one was not reused", n, len(p.idle))
		}
	})
}

// TestH1ClientDeadlineCleared: a pooled connection keeps no deadline from
// an earlier request; one without a deadline may take as long as it takes.
func TestH1ClientDeadlineCleared(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(300 * time.Millisecond)
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	var c H1Client
	defer c.CloseIdle()
	if _, err := forward(t, &c, addr, &Outbound{Deadline: time.Now().Add(100 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	// The same pooled connection; the first request's deadline has
	// passed by the time this answer comes.
	rec, err := forward(t, &c, addr, &Outbound{RequestURI: "/slow"})
	if err != nil || rec.Body.String() != "ok" {
		t.Fatalf("request without a deadline after one with: %v %q", err, rec.Body.String())
	}
	// And a deadline still applies after requests without one.
	_, err = forward(t, &c, addr, &Outbound{RequestURI: "/slow", Deadline: time.Now().Add(50 * time.Millisecond)})
	var ue *UpstreamError
	if !errors.As(err, &ue) || ue.Kind != ErrTimeout {
		t.Fatalf("request past its deadline: err = %v, want a timeout", err)
	}
}

// TestDeadlineCovers: a connection's deadline serves an exchange when it
// passes no earlier than wanted and at most slack later; none and some
// never stand for each other.
func TestDeadlineCovers(t *testing.T) {
	t0 := time.Unix(1000, 0)
	for _, tc := range []struct {
		name      string
		set, want time.Time
		slack     time.Duration
		covers    bool
	}{
		{"both none", time.Time{}, time.Time{}, 0, true},
		{"none set, one wanted", time.Time{}, t0, time.Second, false},
		{"one set, none wanted", t0, time.Time{}, time.Second, false},
		{"equal, no slack", t0, t0, 0, true},
		{"later within slack", t0.Add(50 * time.Millisecond), t0, 100 * time.Millisecond, true},
		{"at the slack's end", t0.Add(100 * time.Millisecond), t0, 100 * time.Millisecond, true},
		{"past the slack", t0.Add(101 * time.Millisecond), t0, 100 * time.Millisecond, false},
		{"earlier than wanted", t0.Add(-time.Nanosecond), t0, time.Second, false},
		{"later, no slack", t0.Add(time.Nanosecond), t0, 0, false},
	} {
		if got := deadlineCovers(tc.set, tc.want, tc.slack); got != tc.covers {
			t.Errorf("%s: deadlineCovers = %v, want %v", tc.name, got, tc.covers)
		}
	}
}

// TestH1ClientDeadlineSlack: a pooled connection keeps its deadline while
// it covers the next exchange's within the slack, is re-armed slack late
// when not, and the deadline still ends a slow exchange.
func TestH1ClientDeadlineSlack(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(time.Second)
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	var c H1Client
	defer c.CloseIdle()
	pooled := func() time.Time {
		t.Helper()
		p := c.pool(addr)
		p.mu.Lock()
		defer p.mu.Unlock()
		if len(p.idle) != 1 {
			t.Fatalf("%d pooled connections, want 1", len(p.idle))
		}
		return p.idle[0].deadline
	}
	const slack = 100 * time.Millisecond
	d1 := time.Now().Add(10 * time.Second)
	if _, err := forward(t, &c, addr, &Outbound{Deadline: d1, DeadlineSlack: slack}); err != nil {
		t.Fatal(err)
	}
	if got := pooled(); !got.Equal(d1.Add(slack)) {
		t.Fatalf("first exchange set deadline %v, want %v (slack late)", got, d1.Add(slack))
	}
	// 60 ms later wanted: still covered, kept.
	if _, err := forward(t, &c, addr, &Outbound{Deadline: d1.Add(60 * time.Millisecond), DeadlineSlack: slack}); err != nil {
		t.Fatal(err)
	}
	if got := pooled(); !got.Equal(d1.Add(slack)) {
		t.Errorf("covered exchange moved the deadline to %v, want %v kept", got, d1.Add(slack))
	}
	// 150 ms later wanted: the kept one would end too early, re-armed.
	d3 := d1.Add(150 * time.Millisecond)
	if _, err := forward(t, &c, addr, &Outbound{Deadline: d3, DeadlineSlack: slack}); err != nil {
		t.Fatal(err)
	}
	if got := pooled(); !got.Equal(d3.Add(slack)) {
		t.Errorf("uncovered exchange left deadline %v, want %v", got, d3.Add(slack))
	}
	// An earlier deadline than the one in force is set, and it ends the
	// exchange: kept, the exchange would have had its answer.
	_, err := forward(t, &c, addr, &Outbound{RequestURI: "/slow", Deadline: time.Now().Add(50 * time.Millisecond), DeadlineSlack: 10 * time.Millisecond})
	var ue *UpstreamError
	if !errors.As(err, &ue) || ue.Kind != ErrTimeout {
		t.Fatalf("slow exchange: err = %v, want a timeout", err)
	}
}

// TestH1ClientLargeRequestHead: a request head larger than the connection's
// write buffer (built in its free space, then grown) arrives whole, with its
// body, and the connection carries the next request.
func TestH1ClientLargeRequestHead(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Got", strconv.Itoa(len(r.Header.Get("X-Big")))+"|"+r.Header.Get("X-After")+"|"+string(b))
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	var c H1Client
	defer c.CloseIdle()
	big := strings.Repeat("b", 6000)
	for i, want := range []string{"6000|after|abc", "6000|after|abc"} {
		rec, err := forward(t, &c, addr, &Outbound{
			Method: "POST", Body: strings.NewReader("abc"), ContentLength: 3,
			Header: http.Header{"X-Big": {big}, "X-After": {"after"}},
		})
		if err != nil || rec.Header().Get("X-Got") != want {
			t.Fatalf("request %d: %v, upstream got %q, want %q", i, err, rec.Header().Get("X-Got"), want)
		}
	}
}

// TestH1ClientForwardedLines: Outbound.Forwarded's fields are sent as header
// lines after the header's, an empty one not at all (the header's own copy
// goes instead).
func TestH1ClientForwardedLines(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var got []string
		for _, k := range []string{"X-Forwarded-For", "Forwarded", "X-Forwarded-Proto", "X-Forwarded-Host"} {
			got = append(got, k+"="+strings.Join(r.Header.Values(k), "|"))
		}
		w.Header().Set("X-Got", strings.Join(got, " "))
	}))
	defer srv.Close()
	var c H1Client
	defer c.CloseIdle()
	rec, err := forward(t, &c, srv.Listener.Addr().String(), &Outbound{
		Header:    http.Header{"X-Forwarded-Proto": {"https"}},
		Forwarded: ForwardedFields{For: "192.0.2.1, 10.0.0.1", Forwarded: "for=10.0.0.1", Host: "example.com"},
	})
	want := "X-Forwarded-For=192.0.2.1, 10.0.0.1 Forwarded=for=10.0.0.1 X-Forwarded-Proto=https X-Forwarded-Host=example.com"
	if err != nil || rec.Header().Get("X-Got") != want {
		t.Fatalf("upstream got %q (%v), want %q", rec.Header().Get("X-Got"), err, want)
	}
}

// TestH1ClientBodyWithHeadOrAfter: a Content-Length body is relayed whole
// whether it came in with the head (taken straight from the read buffer),
// after it, partly with it or larger than the buffer; bytes behind a body
// keep the connection out of the pool.
func TestH1ClientBodyWithHeadOrAfter(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns atomic.Int32
	large := strings.Repeat("L", 10<<10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					c.SetReadDeadline(time.Now().Add(5 * time.Second))
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					body := "hello"
					if req.URL.Path == "/large" {
						body = large
					}
					head := "HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
					switch req.URL.Path {
					case "/after":
						io.WriteString(c, head)
						time.Sleep(20 * time.Millisecond)
						io.WriteString(c, body)
					case "/partial":
						io.WriteString(c, head+body[:2])
						time.Sleep(20 * time.Millisecond)
						io.WriteString(c, body[2:])
					case "/extra":
						io.WriteString(c, head+body+"junk")
					default:
						io.WriteString(c, head+body)
					}
				}
			}()
		}
	}()
	addr := ln.Addr().String()
	var c H1Client
	defer c.CloseIdle()
	if _, err := forward(t, &c, addr, &Outbound{RequestURI: "/with"}); err != nil {
		t.Fatal(err) // the pooled connection the cases start with
	}
	for _, tc := range []struct {
		path, body string
		newConn    bool // the next request needs a new connection
	}{
		{"/with", "hello", false},
		{"/after", "hello", false},
		{"/partial", "hello", false},
		{"/large", large, false},
		{"/extra", "hello", true},
		{"/with", "hello", false},
	} {
		before := conns.Load()
		rec, err := forward(t, &c, addr, &Outbound{RequestURI: tc.path})
		if err != nil || rec.Body.String() != tc.body {
			t.Fatalf("%s: %v, body of %d bytes, want %d", tc.path, err, rec.Body.Len(), len(tc.body))
		}
		if _, err := forward(t, &c, addr, &Outbound{RequestURI: "/with"}); err != nil {
			t.Fatal(err)
		}
		if got := conns.Load() - before; (got > 0) != tc.newConn {
			t.Errorf("%s: %d new connections for the next request, want new: %v", tc.path, got, tc.newConn)
		}
	}
}

// TestH1ClientNowAndConnectTime: the pool judges idle connections by the
// caller's Outbound.Now, and ConnectTime counts only a new connection.
func TestH1ClientNowAndConnectTime(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	c := H1Client{IdleTimeout: time.Minute}
	defer c.CloseIdle()

	tests := []struct {
		name      string
		now       time.Time // Outbound.Now; zero: the client reads the clock
		wantConns int32     // connections the server has seen after it
		dialed    bool      // ConnectTime > 0
	}{
		{"first request dials", time.Time{}, 1, true},
		{"pooled, clock read", time.Time{}, 1, false},
		{"pooled, caller's now", time.Now(), 1, false},
		// Judged by the caller's clock, the pooled connection sat idle
		// past the idle timeout: closed, and a new one dialed.
		{"caller's now past the idle timeout", time.Now().Add(2 * time.Minute), 2, true},
	}
	for _, tt := range tests {
		out := &Outbound{Now: tt.now}
		rec, err := forward(t, &c, addr, out)
		if err != nil || rec.Body.String() != "ok" {
			t.Fatalf("%s: %v, body %q", tt.name, err, rec.Body.String())
		}
		if got := conns.Load(); got != tt.wantConns {
			t.Errorf("%s: server saw %d connections, want %d", tt.name, got, tt.wantConns)
		}
		if got := out.ConnectTime > 0; got != tt.dialed {
			t.Errorf("%s: ConnectTime %v, want dialed=%v", tt.name, out.ConnectTime, tt.dialed)
		}
	}
}

func TestSinceNow(t *testing.T) {
	if got := sinceNow(time.Time{}); time.Since(got) < 0 || time.Since(got) > time.Minute {
		t.Errorf("sinceNow(zero) = %v, want about now", got)
	}
	start := time.Now()
	time.Sleep(10 * time.Millisecond)
	got := sinceNow(start)
	if d := got.Sub(start); d < 10*time.Millisecond || d > time.Minute {
		t.Errorf("sinceNow(start) is %v after start, want at least the 10ms slept", d)
	}
	if d := time.Since(got); d < 0 || d > time.Minute {
		t.Errorf("sinceNow(start) is %v before now", d)
	}
	if got.Round(0) == got {
		t.Error("sinceNow(start) lost the monotonic reading")
	}
}
