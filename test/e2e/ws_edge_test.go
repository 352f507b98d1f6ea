package e2e

// WebSocket edge cases through the gateway, row 28 of docs/reliability.md:
// a 101 that switches to another protocol than asked, a refused upgrade with
// a request pipelined behind it, and a frame announcing a 2^63-byte payload.

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// wseBackend is a raw HTTP/1.1 upstream that records every byte each
// connection brings and every request head it parses:
//
//	/wrong-upgrade  101 with "Upgrade: h2c", then a few bytes
//	/refuse         403, keep-alive
//	/ws             101 websocket, then echoes raw bytes
//	anything else   200 "plain <path>", keep-alive
type wseBackend struct {
	port int

	mu    sync.Mutex
	conns []*wseConn
}

// wseConn is what one upstream connection carried.
type wseConn struct {
	mu       sync.Mutex
	raw      bytes.Buffer
	requests []*http.Request
}

func (c *wseConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.raw.Write(p)
}

func (c *wseConn) snapshot() (raw string, reqs []*http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.raw.String(), append([]*http.Request(nil), c.requests...)
}

const wseTunnelBytes = "TUNNEL-BYTES-FROM-BACKEND"

func newWSEBackend(t *testing.T) *wseBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &wseBackend{port: ln.Addr().(*net.TCPAddr).Port}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	var live sync.Map
	t.Cleanup(func() {
		live.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			rec := &wseConn{}
			b.mu.Lock()
			b.conns = append(b.conns, rec)
			b.mu.Unlock()
			live.Store(c, true)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer live.Delete(c)
				defer c.Close()
				b.serve(c, rec)
			}()
		}
	}()
	return b
}

func (b *wseBackend) serve(c net.Conn, rec *wseConn) {
	br := bufio.NewReader(io.TeeReader(c, rec))
	for i := 0; i < 100; i++ {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		rec.mu.Lock()
		rec.requests = append(rec.requests, req)
		rec.mu.Unlock()
		switch req.URL.Path {
		case "/wrong-upgrade":
			fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n%s", wseTunnelBytes)
			io.Copy(io.Discard, br)
			return
		case "/refuse":
			fmt.Fprint(c, "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nforbidden")
		case "/ws":
			h := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
			fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
				base64.StdEncoding.EncodeToString(h[:]))
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			io.Copy(c, br) // the frames, untouched
			return
		default:
			body := "plain " + req.URL.Path
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Backend: wse\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		}
		io.Copy(io.Discard, req.Body)
	}
}

// connections returns the upstream connections so far.
func (b *wseBackend) connections() []*wseConn {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*wseConn(nil), b.conns...)
}

// sawRaw reports whether any upstream connection carried s.
func (b *wseBackend) sawRaw(s string) bool {
	for _, c := range b.connections() {
		if raw, _ := c.snapshot(); strings.Contains(raw, s) {
			return true
		}
	}
	return false
}

// wseUpgradeHead is an HTTP/1.1 WebSocket upgrade request for path.
func wseUpgradeHead(path, host string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
}

// wseRest reads what the gateway sends after a response until it closes
// the connection (closed true) or 3 s pass.
func wseRest(c net.Conn, br *bufio.Reader) (rest string, closed bool) {
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	b, err := io.ReadAll(br)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return string(b), false
	}
	return string(b), true
}

// TestWSEdge is row 28: the gateway opens a tunnel only on a 101 that
// switches to the protocol asked for (502 otherwise, and none of the
// upstream's bytes reach the client); a request pipelined behind an upgrade
// the upstream refused (403, keep-alive) is never written raw onto the
// upstream connection: the gateway either parses and routes it like any
// request or closes the connection; and a frame announcing a 2^63-byte
// payload goes through the tunnel untouched, since frames are not parsed,
// with the gateway still serving afterwards.
func TestWSEdge(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	port := freePort(t, ip)
	be := newWSEBackend(t)
	g := startGateway(t, ip, gatewayYAML(ip, listener{name: "http", port: port})+backendYAML("wse", be.port)+
		simpleRoute("ws", []string{"ws.test"}, "wse"))
	addr := g.addr(port)

	t.Run("101 with a different Upgrade is a 502, not a tunnel", func(t *testing.T) {
		c := rawDial(t, addr)
		io.WriteString(c, wseUpgradeHead("/wrong-upgrade", "ws.test"))
		br := bufio.NewReader(c)
		rr := readRaw(t, c, br, "GET")
		t.Logf("response %d %q", rr.resp.StatusCode, rr.body)
		if rr.resp.StatusCode != http.StatusBadGateway {
			t.Errorf("status %d, want 502", rr.resp.StatusCode)
		}
		// The client connection is still plain HTTP (or closed), never
		// a tunnel to that upstream.
		io.WriteString(c, "GET /after-502 HTTP/1.1\r\nHost: ws.test\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		next := ""
		if resp, err := http.ReadResponse(br, &http.Request{Method: "GET"}); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			next = string(b)
			t.Logf("next request on the connection: %d %q", resp.StatusCode, next)
			if resp.StatusCode != http.StatusOK || next != "plain /after-502" {
				t.Errorf("next request on the connection: %d %q, want 200 %q", resp.StatusCode, next, "plain /after-502")
			}
		} else {
			t.Logf("the gateway closed the connection after the 502 (%v)", err)
		}
		if strings.Contains(rr.body+next, wseTunnelBytes) {
			t.Errorf("the upstream's bytes after its 101 reached the client")
		}
		if !be.sawRaw("GET /wrong-upgrade ") {
			t.Fatal("the upstream never got the upgrade request")
		}
	})

	t.Run("request pipelined after a refused upgrade is not smuggled", func(t *testing.T) {
		for _, tc := range []struct {
			name, host, path string
			// want is the answer the pipelined request may get if the
			// gateway parses it instead of closing.
			want int
		}{
			{"to an unrouted host", "nowhere.test", "/smuggled", http.StatusNotFound},
			{"to the same route", "ws.test", "/pipelined", http.StatusOK},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c := rawDial(t, addr)
				io.WriteString(c, wseUpgradeHead("/refuse", "ws.test")+"GET "+tc.path+" HTTP/1.1\r\nHost: "+tc.host+"\r\n\r\n")
				br := bufio.NewReader(c)
				first := readRaw(t, c, br, "GET")
				if first.resp.StatusCode != http.StatusForbidden || first.body != "forbidden" {
					t.Fatalf("refused upgrade: %d %q, want the upstream's 403", first.resp.StatusCode, first.body)
				}
				var second *rawResult
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				if resp, err := http.ReadResponse(br, &http.Request{Method: "GET"}); err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					second = &rawResult{resp: resp, body: string(b)}
				}
				rest, closed := wseRest(c, br)
				if second != nil {
					t.Logf("pipelined request answered %d %q by the gateway; then closed=%v %q", second.resp.StatusCode, second.body, closed, rest)
					if second.resp.StatusCode != tc.want {
						t.Errorf("pipelined %s %s: status %d, want %d (or the connection closed)", tc.host, tc.path, second.resp.StatusCode, tc.want)
					}
				} else {
					t.Logf("connection closed after the 403 (closed=%v %q); pipelined request not served", closed, rest)
				}
				for _, uc := range be.connections() {
					raw, reqs := uc.snapshot()
					if len(reqs) > 0 && reqs[0].URL.Path == "/refuse" {
						// The upgrade's own upstream connection carries
						// nothing but the upgrade request.
						if len(reqs) != 1 || !strings.HasSuffix(raw, "\r\n\r\n") || strings.Count(raw, " HTTP/1.1\r\n") != 1 {
							t.Errorf("the refused upgrade's upstream connection carried more than its request: %q", raw)
						}
					}
					for _, r := range reqs {
						if r.URL.Path == tc.path && r.Header.Get("X-Forwarded-For") == "" {
							t.Errorf("the upstream got %s raw, without the gateway's X-Forwarded-For: smuggled", tc.path)
						}
					}
				}
				if tc.want == http.StatusNotFound && be.sawRaw(tc.path) {
					t.Errorf("the upstream saw the request line for %s, which no route allows", tc.path)
				}
			})
		}
	})

	t.Run("frame announcing 2^63 bytes passes through untouched", func(t *testing.T) {
		c := rawDial(t, addr)
		io.WriteString(c, wseUpgradeHead("/ws", "ws.test"))
		br := bufio.NewReader(c)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade: %v %v", resp, err)
		}
		mask := []byte{0x11, 0x22, 0x33, 0x44}
		frames := [][]byte{
			// FIN+binary, masked, 64-bit length 2^63 (most significant
			// bit set, which RFC 6455 forbids), then a few bytes.
			append(append([]byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0}, mask...), "only a few bytes"...),
			// 2^63 - 1.
			append(append([]byte{0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, mask...), "and more"...),
		}
		var sent []byte
		for i, f := range frames {
			if _, err := c.Write(f); err != nil {
				t.Fatalf("frame %d: %v", i, err)
			}
			sent = append(sent, f...)
			got := make([]byte, len(f))
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.ReadFull(br, got); err != nil {
				t.Fatalf("frame %d echo: %v", i, err)
			}
			if !bytes.Equal(got, f) {
				t.Fatalf("frame %d came back as %x, want %x", i, got, f)
			}
		}
		if !be.sawRaw(string(sent)) {
			t.Errorf("the upstream did not receive the frames byte for byte")
		}
		c.Close()
		if !g.running() {
			t.Fatalf("gateway exited: %v", g.exitErr)
		}
		if r := get(t, g.url(port, "/still-up"), "ws.test"); r.status != http.StatusOK || r.body != "plain /still-up" {
			t.Errorf("after the frames: %v", r)
		}
	})
}
