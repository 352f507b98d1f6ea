package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestSecurity covers request smuggling (CL+TE), header count and size
// limits, slow headers, hop-by-hop removal, X-Forwarded-* handling for
// untrusted and trusted peers, and Host preservation.
func TestSecurity(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	port, pNarrow := freePort(t, ip), freePort(t, ip)
	be := newBackend(t, "sec")
	// "narrow" serves only Host only.test, so other hosts get a 404 there.
	g := startGateway(t, ip, gatewayYAML(ip,
		listener{name: "http", port: port},
		listener{name: "narrow", port: pNarrow, hostname: "only.test"},
	)+be.yaml()+simpleRoute("all", nil, "sec"), "--read-header-timeout", "1s")
	addr := g.addr(port)

	ipT := newLoopbackIP(t)
	portT := freePort(t, ipT)
	beT := newBackend(t, "sec-trusted")
	gT := startGateway(t, ipT, gatewayYAML(ipT, listener{name: "http", port: portT})+beT.yaml()+simpleRoute("all", nil, "sec-trusted"),
		"--trusted-proxies", "127.0.0.1/32")
	addrT := gT.addr(portT)

	t.Run("CL+TE is refused and the connection closed", func(t *testing.T) {
		payload := "POST /smuggle-front HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
		rr := rawExchange(t, addr, payload, true)
		if rr.resp.StatusCode != http.StatusBadRequest {
			t.Errorf("status %d, want 400 (body %q)", rr.resp.StatusCode, rr.body)
		}
		if !rr.closed {
			t.Errorf("connection still open after the 400 (response header %v)", rr.resp.Header)
		}
		if rr.rest != "" {
			t.Errorf("the gateway sent more after the 400 (a smuggled response?): %q", truncate(rr.rest, 300))
		}
		// The connection is closed, so nothing more can come of it.
		for _, p := range []string{"/smuggled", "/smuggle-front"} {
			if be.sawPath(p) {
				t.Errorf("the backend received %s", p)
			}
		}
	})

	t.Run("CL+TE behind an Upgrade request is still refused", func(t *testing.T) {
		// An Upgrade request the gateway does not upgrade is an ordinary
		// request: the requests after it on the connection are parsed and
		// checked like any other, so a CL+TE request behind it is refused.
		payload := "GET /upgrade HTTP/1.1\r\nHost: nothing.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n" +
			"POST /front-after-upgrade HTTP/1.1\r\nHost: only.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"0\r\n\r\nGET /smuggled-after-upgrade HTTP/1.1\r\nHost: only.test\r\n\r\n"
		rr := rawExchange(t, g.addr(pNarrow), payload, true)
		if rr.resp.StatusCode != http.StatusNotFound {
			t.Errorf("status %d, want 404 (body %q)", rr.resp.StatusCode, rr.body)
		}
		if !rr.closed {
			t.Errorf("connection still open after the refused CL+TE request")
		}
		if !strings.Contains(rr.rest, "400 Bad Request") || strings.Count(rr.rest, "HTTP/1.1 ") != 1 {
			t.Errorf("after the 404, want exactly one 400 for the CL+TE request; got %q", truncate(rr.rest, 300))
		}
		for _, p := range []string{"/front-after-upgrade", "/smuggled-after-upgrade"} {
			if be.sawPath(p) {
				t.Errorf("the backend received %s (a CL+TE request the gateway should have refused)", p)
			}
		}
	})

	t.Run("header field count", func(t *testing.T) {
		tests := []struct {
			fields int // including Host
			want   int
		}{
			{100, http.StatusOK},
			{101, http.StatusRequestHeaderFieldsTooLarge},
			{150, http.StatusRequestHeaderFieldsTooLarge},
		}
		for _, tc := range tests {
			t.Run(fmt.Sprint(tc.fields), func(t *testing.T) {
				t.Parallel()
				// Host counts as a field too.
				var b strings.Builder
				b.WriteString("GET /fields HTTP/1.1\r\nHost: x\r\n")
				for i := 1; i < tc.fields; i++ {
					fmt.Fprintf(&b, "X-F-%d: v\r\n", i)
				}
				b.WriteString("\r\n")
				rr := rawExchange(t, addr, b.String(), tc.want != http.StatusOK)
				if rr.resp.StatusCode != tc.want {
					t.Fatalf("%d header fields: status %d, want %d", tc.fields, rr.resp.StatusCode, tc.want)
				}
				if tc.want != http.StatusOK && !rr.closed {
					t.Errorf("connection still open after %d (response header %v)", tc.want, rr.resp.Header)
				}
			})
		}
	})

	t.Run("header block size", func(t *testing.T) {
		tests := []struct {
			name  string
			bytes int // size of one header value
			want  int
		}{
			{"30 KiB", 30 << 10, http.StatusOK},
			{"61 KiB", 61 << 10, http.StatusRequestHeaderFieldsTooLarge},
			{"80 KiB", 80 << 10, http.StatusRequestHeaderFieldsTooLarge},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				payload := "GET /big HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", tc.bytes) + "\r\nConnection: close\r\n\r\n"
				rr := rawExchange(t, addr, payload, false)
				if rr.resp.StatusCode != tc.want {
					t.Fatalf("header block of %d bytes: status %d, want %d", len(payload), rr.resp.StatusCode, tc.want)
				}
			})
		}
	})

	t.Run("slow headers are cut off", func(t *testing.T) {
		c := rawDial(t, addr)
		io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: x\r\n")
		c.SetReadDeadline(time.Now().Add(8 * time.Second))
		_, err := io.ReadAll(c)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("connection with unfinished headers still open after 8 s (read-header-timeout 1s)")
		}
	})

	t.Run("Connection cannot remove X-Forwarded-For", func(t *testing.T) {
		rr := rawExchange(t, addr, "GET /conn-xff HTTP/1.1\r\nHost: x\r\nConnection: X-Forwarded-For, X-Forwarded-Proto, Forwarded\r\n\r\n", false)
		if rr.echo == nil {
			t.Fatalf("status %d body %q", rr.resp.StatusCode, rr.body)
		}
		h := rr.echo.Header
		if got := h.Values("X-Forwarded-For"); strings.Join(got, ",") != "127.0.0.1" {
			t.Errorf("backend X-Forwarded-For %q, want [127.0.0.1]", got)
		}
		if got := h.Get("X-Forwarded-Proto"); got != "http" {
			t.Errorf("backend X-Forwarded-Proto %q, want http", got)
		}
		if got := h.Get("Forwarded"); !strings.Contains(got, "for=127.0.0.1") {
			t.Errorf("backend Forwarded %q, want for=127.0.0.1", got)
		}
	})

	forwarded := "GET /xff HTTP/1.1\r\nHost: xff.test\r\nX-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.test\r\nForwarded: for=203.0.113.9\r\n\r\n"
	t.Run("untrusted client X-Forwarded-* replaced", func(t *testing.T) {
		rr := rawExchange(t, addr, forwarded, false)
		if rr.echo == nil {
			t.Fatalf("status %d body %q", rr.resp.StatusCode, rr.body)
		}
		h := rr.echo.Header
		if got := h.Values("X-Forwarded-For"); strings.Join(got, ",") != "127.0.0.1" {
			t.Errorf("X-Forwarded-For %q, want [127.0.0.1]", got)
		}
		if got := h.Values("X-Forwarded-Proto"); strings.Join(got, ",") != "http" {
			t.Errorf("X-Forwarded-Proto %q, want [http]", got)
		}
		if got := h.Values("X-Forwarded-Host"); strings.Join(got, ",") != "xff.test" {
			t.Errorf("X-Forwarded-Host %q, want [xff.test]", got)
		}
		if got := h.Get("Forwarded"); strings.Contains(got, "203.0.113.9") {
			t.Errorf("Forwarded %q keeps the client's claim", got)
		}
	})
	t.Run("trusted proxy X-Forwarded-For appended", func(t *testing.T) {
		rr := rawExchange(t, addrT, forwarded, false)
		if rr.echo == nil {
			t.Fatalf("status %d body %q", rr.resp.StatusCode, rr.body)
		}
		h := rr.echo.Header
		if got := strings.Join(h.Values("X-Forwarded-For"), ", "); got != "203.0.113.9, 127.0.0.1" {
			t.Errorf("X-Forwarded-For %q, want \"203.0.113.9, 127.0.0.1\"", got)
		}
		if got := h.Get("X-Forwarded-Proto"); got != "https" {
			t.Errorf("X-Forwarded-Proto %q, want the trusted proxy's https", got)
		}
		if got := h.Get("Forwarded"); !strings.HasPrefix(got, "for=203.0.113.9") || !strings.Contains(got, "for=127.0.0.1") {
			t.Errorf("Forwarded %q, want the prior element then for=127.0.0.1", got)
		}
	})

	t.Run("hop-by-hop headers not forwarded", func(t *testing.T) {
		rr := rawExchange(t, addr, "GET /hop HTTP/1.1\r\nHost: x\r\n"+
			"Connection: keep-alive, X-Hop\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\n"+
			"Proxy-Connection: keep-alive\r\nUpgrade: websocket\r\nTE: trailers\r\nX-End-To-End: kept\r\n\r\n", false)
		if rr.echo == nil {
			t.Fatalf("status %d body %q", rr.resp.StatusCode, rr.body)
		}
		h := rr.echo.Header
		for _, k := range []string{"Connection", "X-Hop", "Keep-Alive", "Proxy-Connection", "Upgrade", "Te"} {
			if v, ok := h[k]; ok {
				t.Errorf("backend received hop-by-hop %s: %q", k, v)
			}
		}
		if got := h.Get("X-End-To-End"); got != "kept" {
			t.Errorf("X-End-To-End %q, want kept", got)
		}
	})

	t.Run("Host preserved", func(t *testing.T) {
		for _, host := range []string{"preserved.example:1234", "Preserved.Example", "x"} {
			rr := rawExchange(t, addr, "GET /host HTTP/1.1\r\nHost: "+host+"\r\n\r\n", false)
			if rr.echo == nil {
				t.Fatalf("status %d body %q", rr.resp.StatusCode, rr.body)
			}
			if rr.echo.Host != host {
				t.Errorf("backend saw Host %q, want %q", rr.echo.Host, host)
			}
		}
	})

	t.Run("keep-alive connection serves several requests", func(t *testing.T) {
		c := rawDial(t, addr)
		br := bufio.NewReader(c)
		for i := 0; i < 3; i++ {
			fmt.Fprintf(c, "GET /ka/%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
			rr := readRaw(t, c, br, "GET")
			if rr.echo == nil || rr.echo.Path != fmt.Sprintf("/ka/%d", i) {
				t.Fatalf("request %d: status %d body %q", i, rr.resp.StatusCode, rr.body)
			}
		}
	})
}
