package e2e

// Header bombs, host confusion and chunk framing tricks through the real
// gateway (docs/reliability.md rows 7, 8 and 4). Every test here is named
// TestHeadersBomb* so that `go test ./test/e2e -run HeadersBomb` runs the
// whole file.

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// hbH2CClient is an HTTP/2 client with prior knowledge that sends exactly
// the header fields a request carries (no Accept-Encoding of its own).
func hbH2CClient(t *testing.T) *http.Client {
	tr := &http2.Transport{
		AllowHTTP:          true,
		DisableCompression: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}}
			return d.DialContext(ctx, network, addr)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// hbFields is n header fields (User-Agent and X-F-1 ...), the whole of a
// Go client's request header.
func hbFields(n int) http.Header {
	h := http.Header{"User-Agent": {"hbomb"}}
	for i := 1; i < n; i++ {
		h.Set("X-F-"+strconv.Itoa(i), "v")
	}
	return h
}

// hbRefused sends payload on a new connection and reads one response; the
// status, and whether the gateway closed the connection after it.
func hbRefused(t *testing.T, addr, payload string) (int, bool) {
	t.Helper()
	c := rawDial(t, addr)
	go func() {
		// The gateway may answer and close before it read everything.
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, payload)
	}()
	br := bufio.NewReader(c)
	rr := readRaw(t, c, br, "GET")
	if rr.bodyErr != nil {
		return rr.resp.StatusCode, true
	}
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err := io.ReadAll(br)
	var ne net.Error
	return rr.resp.StatusCode, !(err != nil && errors.As(err, &ne) && ne.Timeout())
}

// hbCookieFields is an HTTP/1 request with n Cookie fields of one tiny
// cookie each.
func hbCookieFields(path string, n int) string {
	return "GET " + path + " HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("Cookie: a=\r\n", n) + "\r\n"
}

// hbCookieLine is an HTTP/1 request with n tiny cookies in one field.
func hbCookieLine(path string, n int) (req, cookie string) {
	cookie = strings.TrimSuffix(strings.Repeat("a=; ", n), " ")
	return "GET " + path + " HTTP/1.1\r\nHost: x\r\nCookie: " + cookie + "\r\nConnection: close\r\n\r\n", cookie
}

// TestHeadersBomb is row 7: header field counts and sizes past the limits
// (60 KiB, 100 fields) on HTTP/1 and HTTP/2, the 7000-tiny-cookies request
// (CVE-2025-58186), and the gateway's memory across 1000 refused requests.
func TestHeadersBomb(t *testing.T) {
	t.Parallel()
	s := newAtkSetup(t, "hbomb")
	plain := s.g.addr(s.plain)

	t.Run("HTTP/2 header field count", func(t *testing.T) {
		c := hbH2CClient(t)
		for _, tc := range []struct {
			fields int
			ok     bool
		}{{100, true}, {101, false}, {150, false}} {
			path := fmt.Sprintf("/h2-fields-%d", tc.fields)
			req, err := http.NewRequest(http.MethodGet, s.g.url(s.plain, path), nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Host = s.host
			req.Header = hbFields(tc.fields)
			resp, err := c.Do(req)
			status := 0
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				status = resp.StatusCode
			}
			switch {
			case tc.ok && (err != nil || status != http.StatusOK):
				t.Errorf("HTTP/2, %d header fields: %d %v, want 200", tc.fields, status, err)
			case !tc.ok && err == nil && status != http.StatusRequestHeaderFieldsTooLarge:
				t.Errorf("HTTP/2, %d header fields: status %d, want 431 or a stream reset", tc.fields, status)
			case !tc.ok:
				t.Logf("HTTP/2, %d header fields: status %d, error %v", tc.fields, status, err)
			}
			if got := s.countPaths(path); got != map[bool]int{true: 1, false: 0}[tc.ok] {
				t.Errorf("HTTP/2, %d header fields: the backend saw %d requests", tc.fields, got)
			}
		}
	})

	t.Run("HTTP/2 7000 cookie crumbs", func(t *testing.T) {
		// RFC 9113 8.2.3 lets a client split Cookie into one field per
		// cookie; 7000 of them decode to ~280 KiB of header list.
		h := h2aDial(t, plain, h2aDialOpts{})
		path := "/h2-cookies"
		fields := h2aGetFields(s.host, path)
		for i := 0; i < 7000; i++ {
			fields = append(fields, [2]string{"cookie", "a="})
		}
		if err := h.request(1, nil, fields...); err != nil {
			t.Fatalf("send: %v", err)
		}
		out := h.waitOutcome(1, 10*time.Second)
		t.Logf("HTTP/2, 7000 cookie crumbs: %s", out)
		if out != "status 431" && !strings.HasPrefix(out, "reset ") && !strings.HasPrefix(out, "GOAWAY ") {
			t.Errorf("HTTP/2, 7000 cookie crumbs: %q, want status 431, a stream reset or GOAWAY", out)
		}
		if n := s.countPaths(path); n != 0 {
			t.Errorf("the backend saw %d requests with 7000 cookie crumbs", n)
		}
	})

	t.Run("HTTP/1 7000 Cookie fields", func(t *testing.T) {
		status, closed := hbRefused(t, plain, hbCookieFields("/h1-cookie-fields", 7000))
		if status != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("7000 Cookie fields: status %d, want 431", status)
		}
		if !closed {
			t.Error("7000 Cookie fields: connection still open after the 431")
		}
		if n := s.countPaths("/h1-cookie-fields"); n != 0 {
			t.Errorf("the backend saw %d requests with 7000 Cookie fields", n)
		}
	})

	t.Run("HTTP/1 7000 cookies in one field", func(t *testing.T) {
		// 28 KB: under both limits, so it is served, and the cookie
		// string reaches the backend as sent (the gateway parses no
		// cookies, so nothing is multiplied).
		req, cookie := hbCookieLine("/h1-cookie-line", 7000)
		rr := rawExchange(t, plain, strings.Replace(req, "Host: x", "Host: "+s.host, 1), false)
		if rr.resp.StatusCode != http.StatusOK || rr.echo == nil {
			t.Fatalf("7000 cookies in one field (%d bytes): %d, want 200 from the backend", len(cookie), rr.resp.StatusCode)
		}
		if got := rr.echo.Header.Get("Cookie"); got != cookie {
			t.Errorf("backend Cookie field differs from the one sent (%d bytes, sent %d)", len(got), len(cookie))
		}
	})

	t.Run("HTTP/1 16000 cookies in one field", func(t *testing.T) {
		req, _ := hbCookieLine("/h1-cookie-line-big", 16000) // 64 KB
		status, closed := hbRefused(t, plain, req)
		if status != http.StatusRequestHeaderFieldsTooLarge || !closed {
			t.Errorf("16000 cookies in one field: status %d closed %v, want 431 and a close", status, closed)
		}
	})

	t.Run("memory across 1000 refused requests", func(t *testing.T) {
		payloads := []string{
			hbCookieFields("/rss-cookies", 7000),
			"GET /rss-big HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 80<<10) + "\r\n\r\n",
			confManyFieldsE2E(150),
		}
		send := func(n int) (bad int, first string) {
			var mu sync.Mutex
			var wg sync.WaitGroup
			const workers = 4
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					for i := w; i < n; i += workers {
						status, err := hbSendRefused(plain, payloads[i%len(payloads)])
						if err != nil || status != http.StatusRequestHeaderFieldsTooLarge {
							mu.Lock()
							if bad++; first == "" {
								first = fmt.Sprintf("request %d: status %d, error %v", i, status, err)
							}
							mu.Unlock()
						}
					}
				}(w)
			}
			wg.Wait()
			return bad, first
		}
		// Warm up so the baseline has the buffers and pools a refused
		// request uses.
		if bad, first := send(60); bad > 0 {
			t.Fatalf("warm-up: %d of 60 oversized requests not answered 431; first: %s", bad, first)
		}
		before := atkRSS(t, s.g)
		bad, first := send(1000)
		after := atkRSS(t, s.g)
		allow := float64(50 << 20)
		if raceEnabled && os.Getenv("E2E_GATEWAY_NORACE") == "" {
			allow = 400 << 20 // the gateway was built with -race (see atkMemAllowance)
		}
		t.Logf("RSS %.1f MiB before, %.1f MiB after 1000 oversized-header requests (allowance +%.0f MiB)", before/(1<<20), after/(1<<20), allow/(1<<20))
		if bad > 0 {
			t.Errorf("%d of 1000 oversized requests not answered 431; first: %s", bad, first)
		}
		if after-before > allow {
			t.Errorf("RSS grew by %.1f MiB across 1000 refused requests, allowance %.0f MiB", (after-before)/(1<<20), allow/(1<<20))
		}
		if n := s.countPaths("/rss-"); n != 0 {
			t.Errorf("the backend saw %d oversized requests", n)
		}
	})

	s.checkAlive(t)
}

// confManyFieldsE2E is a request with n header fields, Host included.
func confManyFieldsE2E(n int) string {
	var b strings.Builder
	b.WriteString("GET /rss-fields HTTP/1.1\r\nHost: x\r\n")
	for i := 1; i < n; i++ {
		fmt.Fprintf(&b, "X-Field-%d: %d\r\n", i, i)
	}
	b.WriteString("\r\n")
	return b.String()
}

// hbSendRefused sends payload on a new connection and returns the status
// of the answer; it does not wait for the close.
func hbSendRefused(addr, payload string) (int, error) {
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	go io.WriteString(c, payload)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestHeadersBombHostConfusion is row 8: the absolute-form target decides
// both the route and the Host the backend gets (RFC 9112 3.2.2), whatever
// the Host field says; a route with 150 hostnames matches its last one; a
// trailing dot, upper case and a port route like the canonical name.
func TestHeadersBombHostConfusion(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	port := freePort(t, ip)
	a, b, many := newBackend(t, "a"), newBackend(t, "b"), newBackend(t, "many")
	var hostnames []string
	for i := 0; i < 150; i++ {
		hostnames = append(hostnames, fmt.Sprintf("h%d.many.test", i))
	}
	g := startGateway(t, ip, gatewayYAML(ip, listener{name: "http", port: port})+a.yaml()+b.yaml()+many.yaml()+
		simpleRoute("a", []string{"a.test"}, "a")+simpleRoute("b", []string{"b.test"}, "b")+simpleRoute("many", hostnames, "many"))
	addr := g.addr(port)
	p := strconv.Itoa(port)

	for _, tc := range []struct {
		name, target, host string
		backend            string // "" for 404
		upstreamHost       string // Host the backend must see; "" skips the check
	}{
		{"absolute-form a.test, Host b.test", "http://a.test/x", "b.test", "a", "a.test"},
		{"absolute-form b.test, Host a.test", "http://b.test/x", "a.test", "b", "b.test"},
		{"absolute-form with case and port, Host b.test", "http://A.Test:" + p + "/x", "b.test", "a", "A.Test:" + p},
		{"absolute-form with trailing dot, Host b.test", "http://a.test./x", "b.test", "a", "a.test."},
		{"absolute-form unknown host, Host a.test", "http://c.test/x", "a.test", "", ""},
		{"Host a.test", "/x", "a.test", "a", "a.test"},
		{"Host upper case", "/x", "A.TEST", "a", "A.TEST"},
		{"Host trailing dot", "/x", "a.test.", "a", "a.test."},
		{"Host mixed case, trailing dot and port", "/x", "A.Test.:" + p, "a", "A.Test.:" + p},
		{"150 hostnames: first", "/x", "h0.many.test", "many", "h0.many.test"},
		{"150 hostnames: 101st", "/x", "h100.many.test", "many", ""},
		{"150 hostnames: last", "/x", "h149.many.test", "many", "h149.many.test"},
		{"150 hostnames: last, upper case and trailing dot", "/x", "H149.MANY.TEST.", "many", ""},
		{"150 hostnames: last, absolute-form, Host a.test", "http://h149.many.test/x", "a.test", "many", "h149.many.test"},
		{"150 hostnames: one past the last", "/x", "h150.many.test", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rr := rawExchange(t, addr, "GET "+tc.target+" HTTP/1.1\r\nHost: "+tc.host+"\r\nConnection: close\r\n\r\n", false)
			if tc.backend == "" {
				if rr.resp.StatusCode != http.StatusNotFound {
					t.Errorf("GET %s Host %s: %d %q, want 404", tc.target, tc.host, rr.resp.StatusCode, truncate(rr.body, 200))
				}
				return
			}
			if rr.echo == nil || rr.echo.Name != tc.backend {
				t.Fatalf("GET %s Host %s: %d %q, want backend %s", tc.target, tc.host, rr.resp.StatusCode, truncate(rr.body, 200), tc.backend)
			}
			if tc.upstreamHost != "" && rr.echo.Host != tc.upstreamHost {
				t.Errorf("GET %s Host %s: routed to %s but the backend got Host %q, want %q", tc.target, tc.host, tc.backend, rr.echo.Host, tc.upstreamHost)
			}
			if rr.echo.Path != "/x" {
				t.Errorf("backend path %q", rr.echo.Path)
			}
		})
	}
}

// hbBodyBackend records, per path, whether the body it got was complete.
type hbBodyBackend struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen map[string][]bool // path -> body read completed, per request
}

func newHBBodyBackend(t *testing.T) *hbBodyBackend {
	b := &hbBodyBackend{seen: map[string][]bool{}}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.Copy(io.Discard, io.LimitReader(r.Body, 64<<20))
		b.mu.Lock()
		b.seen[r.URL.Path] = append(b.seen[r.URL.Path], err == nil)
		b.mu.Unlock()
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Backend", "body")
		io.WriteString(w, "ok")
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *hbBodyBackend) results(path string) []bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]bool(nil), b.seen[path]...)
}

// TestHeadersBombChunkFraming is row 4 through the gateway: a chunked
// body the gateway cannot frame gets 400 (a client error, not 502), the
// backend never receives a complete body, and nothing after it on the
// connection is served.
func TestHeadersBombChunkFraming(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	port := freePort(t, ip)
	be := newHBBodyBackend(t)
	bePort := be.srv.Listener.Addr().(*net.TCPAddr).Port
	g := startGateway(t, ip, gatewayYAML(ip, listener{name: "http", port: port})+backendYAML("body", bePort)+simpleRoute("all", nil, "body"))
	addr := g.addr(port)

	chunked := func(path, body string) string {
		return "POST " + path + " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body
	}
	never := "GET /never HTTP/1.1\r\nHost: x\r\n\r\n"

	t.Run("valid chunked body is forwarded whole", func(t *testing.T) {
		rr := rawExchange(t, addr, chunked("/valid", "5;ext=1\r\nhello\r\n0\r\n\r\n"), false)
		if rr.resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d %q", rr.resp.StatusCode, rr.body)
		}
		if got := be.results("/valid"); len(got) != 1 || !got[0] {
			t.Errorf("backend saw %v for /valid, want one complete body", got)
		}
	})

	for _, tc := range []struct{ name, path, body string }{
		{"bare LF after the chunk size", "/bare-lf", "5\nhello\r\n0\r\n\r\n"},
		{"LF inside a chunk extension", "/lf-ext", "5;ext=a\nb\r\nhello\r\n0\r\n\r\n"},
		{"17-hex-digit chunk size", "/size17", "10000000000000005\r\nhello\r\n0\r\n\r\n"},
		{"17-hex-digit chunk size, leading zeros", "/size17z", "00000000000000005\r\nhello\r\n0\r\n\r\n"},
		{"1 MiB chunk extension", "/ext-huge", "5;" + strings.Repeat("e", 1<<20) + "\r\nhello\r\n0\r\n\r\n"},
		{"2 MiB of 3 KB chunk extensions", "/ext-many", "5\r\nhello\r\n" + strings.Repeat("1;"+strings.Repeat("e", 3000)+"\r\nx\r\n", 700) + "0\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := rawDial(t, addr)
			go func() {
				c.SetWriteDeadline(time.Now().Add(10 * time.Second))
				io.WriteString(c, chunked(tc.path, tc.body)+never)
			}()
			br := bufio.NewReader(c)
			rr := readRaw(t, c, br, "POST")
			if rr.resp.StatusCode != http.StatusBadRequest {
				t.Errorf("status %d %q, want 400", rr.resp.StatusCode, truncate(rr.body, 200))
			}
			if rr.bodyErr == nil {
				c.SetReadDeadline(time.Now().Add(3 * time.Second))
				rest, err := io.ReadAll(br)
				var ne net.Error
				if err != nil && errors.As(err, &ne) && ne.Timeout() {
					t.Error("connection still open after the framing error")
				}
				if len(rest) > 0 {
					t.Errorf("more after the 400: %q", truncate(string(rest), 200))
				}
			}
			for _, ok := range be.results(tc.path) {
				if ok {
					t.Errorf("the backend received a complete body for %s", tc.path)
				}
			}
			if len(be.results("/never")) != 0 {
				t.Error("the request after the broken body reached the backend")
			}
		})
	}
}
