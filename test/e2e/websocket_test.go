package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/net/http2"
)

// wsEchoBackend is a gorilla/websocket echo server; /forbidden refuses the
// upgrade with 403.
func wsEchoBackend(t *testing.T) (port int) {
	t.Helper()
	up := websocket.Upgrader{ReadBufferSize: 4096, WriteBufferSize: 4096}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/forbidden" {
			http.Error(w, "no websockets here", http.StatusForbidden)
			return
		}
		hdr := http.Header{"X-Backend-Saw-Forwarded-For": {r.Header.Get("X-Forwarded-For")}}
		c, err := up.Upgrade(w, r, hdr)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetReadLimit(4 << 20)
		for {
			mt, msg, err := c.ReadMessage()
			if err != nil {
				if ce, ok := err.(*websocket.CloseError); ok {
					// Echo the close code back so the client can check it.
					c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(ce.Code, ce.Text), time.Now().Add(time.Second))
				}
				return
			}
			if err := c.WriteMessage(mt, msg); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().(*net.TCPAddr).Port
}

func wsDial(t *testing.T, url string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	return d.Dial(url, nil)
}

func echoOnce(t *testing.T, c *websocket.Conn, mt int, msg []byte) {
	t.Helper()
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := c.WriteMessage(mt, msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	gotType, got, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if gotType != mt || !bytes.Equal(got, msg) {
		t.Fatalf("echo mismatch: type %d len %d, want type %d len %d", gotType, len(got), mt, len(msg))
	}
}

// TestWebSocket proxies WebSocket connections (HTTP/1.1 Upgrade) to a
// gorilla/websocket echo server: text and binary messages up to 1 MiB,
// ping/pong, the close handshake with its code, a refused upgrade, and
// connections that stay open across config reloads.
func TestWebSocket(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	port := freePort(t, ip)
	wsPort := wsEchoBackend(t)
	other := newBackend(t, "other")
	base := gatewayYAML(ip, listener{name: "http", port: port}) + backendYAML("ws", wsPort) + other.yaml()
	route := func(extraPath string) string {
		r := simpleRoute("ws", nil, "ws")
		if extraPath != "" {
			r += fmt.Sprintf(`---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: extra
  namespace: default
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: %s}}]
    backendRefs: [{group: gateway.meshgate.dev, kind: Backend, name: other}]
`, extraPath)
		}
		return r
	}
	g := startGateway(t, ip, base+route(""))
	url := "ws://" + g.addr(port) + "/echo"

	t.Run("text, binary 1 MiB, ping/pong, close code", func(t *testing.T) {
		c, resp, err := wsDial(t, url)
		if err != nil {
			t.Fatalf("dial: %v (resp %v)", err, resp)
		}
		defer c.Close()
		if got := resp.Header.Get("X-Backend-Saw-Forwarded-For"); got == "" {
			t.Errorf("backend did not get X-Forwarded-For through the upgrade")
		}
		echoOnce(t, c, websocket.TextMessage, []byte("hello through meshgate"))
		big := make([]byte, 1<<20)
		rand.Read(big)
		echoOnce(t, c, websocket.BinaryMessage, big)

		pong := make(chan string, 1)
		c.SetPongHandler(func(s string) error { pong <- s; return nil })
		if err := c.WriteControl(websocket.PingMessage, []byte("p1"), time.Now().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		// Pong frames are read by the next ReadMessage; drive it with an echo.
		echoOnce(t, c, websocket.TextMessage, []byte("after ping"))
		select {
		case s := <-pong:
			if s != "p1" {
				t.Errorf("pong payload %q", s)
			}
		case <-time.After(5 * time.Second):
			t.Error("no pong")
		}

		if err := c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4001, "bye"), time.Now().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _, err = c.ReadMessage()
		ce, ok := err.(*websocket.CloseError)
		// gorilla's default close handler answers with the same code (and
		// no text) before the echo server sees the error.
		if !ok || ce.Code != 4001 {
			t.Errorf("close: %v, want code 4001 passed through both ways", err)
		}
	})

	t.Run("refused upgrade is relayed", func(t *testing.T) {
		_, resp, err := wsDial(t, "ws://"+g.addr(port)+"/forbidden")
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("want 403 from the backend, got err %v resp %v", err, resp)
		}
	})

	t.Run("100 connections survive 10 reloads", func(t *testing.T) {
		const n = 100
		conns := make([]*websocket.Conn, n)
		for i := range conns {
			c, _, err := wsDial(t, url)
			if err != nil {
				t.Fatalf("dial %d: %v", i, err)
			}
			defer c.Close()
			conns[i] = c
		}
		for reload := 0; reload < 10; reload++ {
			// Alternate between two configs that keep the WebSocket route.
			extra := ""
			if reload%2 == 0 {
				extra = fmt.Sprintf("/other-%d", reload)
			}
			before := g.applied()
			g.writeConfig(base + route(extra))
			g.waitLogCount("config applied", before+1)
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for i, c := range conns {
				wg.Add(1)
				go func() {
					defer wg.Done()
					msg := []byte(fmt.Sprintf("conn %d reload %d", i, reload))
					c.SetWriteDeadline(time.Now().Add(5 * time.Second))
					if err := c.WriteMessage(websocket.TextMessage, msg); err != nil {
						errs <- fmt.Errorf("conn %d write after reload %d: %w", i, reload, err)
						return
					}
					c.SetReadDeadline(time.Now().Add(5 * time.Second))
					if _, got, err := c.ReadMessage(); err != nil || !strings.EqualFold(string(got), string(msg)) {
						errs <- fmt.Errorf("conn %d after reload %d: %q %v", i, reload, got, err)
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		}
	})
}

// wsRoute is an HTTPRoute sending path prefix to a Backend.
func wsRoute(name, prefix, backendName string) string {
	return fmt.Sprintf(`---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: %s
  namespace: default
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: %s}}]
    backendRefs: [%s]
`, name, prefix, ref(backendName))
}

// waitClosed reads from c until it fails, which must happen within limit.
func waitClosed(t *testing.T, c *websocket.Conn, limit time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(limit))
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("connection still open after %v", limit)
			}
			return
		}
	}
}

// TestWebSocketLimits covers the tunnel bounds: a reload that removes a
// route closes its WebSockets after the grace while those of kept routes
// stay; idle tunnels close and busy ones do not; a maximum lifetime closes
// even busy ones; and a truncated frame or a vanished client leaves the
// gateway serving everybody else.
func TestWebSocketLimits(t *testing.T) {
	t.Parallel()
	wsPort := wsEchoBackend(t)

	t.Run("removed route closes after grace, kept route stays", func(t *testing.T) {
		t.Parallel()
		ip := newLoopbackIP(t)
		port := freePort(t, ip)
		base := gatewayYAML(ip, listener{name: "http", port: port}) + backendYAML("ws", wsPort)
		g := startGateway(t, ip, base+wsRoute("keep", "/keep", "ws")+wsRoute("gone", "/gone", "ws"),
			"--websocket-removed-route-grace=300ms")
		keep, _, err := wsDial(t, "ws://"+g.addr(port)+"/keep")
		if err != nil {
			t.Fatal(err)
		}
		defer keep.Close()
		gone, _, err := wsDial(t, "ws://"+g.addr(port)+"/gone")
		if err != nil {
			t.Fatal(err)
		}
		defer gone.Close()
		echoOnce(t, gone, websocket.TextMessage, []byte("before"))
		g.reload(base + wsRoute("keep", "/keep", "ws"))
		waitClosed(t, gone, 10*time.Second)
		echoOnce(t, keep, websocket.TextMessage, []byte("still here"))
		if e := g.findLog("tunnels of removed routes will close", nil); e == nil || e["count"] != float64(1) {
			t.Errorf("log line for the doomed tunnel: %v", e)
		}
		wantTunnelLog(t, g, "route_removed")
	})

	t.Run("idle tunnel closes, busy tunnel stays", func(t *testing.T) {
		t.Parallel()
		ip := newLoopbackIP(t)
		port := freePort(t, ip)
		g := startGateway(t, ip, gatewayYAML(ip, listener{name: "http", port: port})+backendYAML("ws", wsPort)+wsRoute("ws", "/", "ws"),
			"--websocket-idle-timeout=1s")
		idle, _, err := wsDial(t, "ws://"+g.addr(port)+"/idle")
		if err != nil {
			t.Fatal(err)
		}
		defer idle.Close()
		busy, _, err := wsDial(t, "ws://"+g.addr(port)+"/busy")
		if err != nil {
			t.Fatal(err)
		}
		defer busy.Close()
		done := make(chan struct{})
		go func() {
			defer close(done)
			waitClosed(t, idle, 10*time.Second)
		}()
		// Keep the busy one talking, in one direction at a time, until
		// the idle one is gone.
		for i := 0; i < 200; i++ {
			select {
			case <-done:
				echoOnce(t, busy, websocket.TextMessage, []byte("still busy"))
				wantTunnelLog(t, g, "idle_timeout")
				return
			case <-time.After(100 * time.Millisecond):
				echoOnce(t, busy, websocket.TextMessage, []byte(fmt.Sprint("tick ", i)))
			}
		}
		t.Fatal("idle tunnel never closed")
	})

	t.Run("max lifetime closes a busy tunnel", func(t *testing.T) {
		t.Parallel()
		ip := newLoopbackIP(t)
		port := freePort(t, ip)
		g := startGateway(t, ip, gatewayYAML(ip, listener{name: "http", port: port})+backendYAML("ws", wsPort)+wsRoute("ws", "/", "ws"),
			"--websocket-max-lifetime=500ms")
		c, _, err := wsDial(t, "ws://"+g.addr(port)+"/")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for i := 0; i < 200; i++ {
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if err := c.WriteMessage(websocket.TextMessage, []byte("x")); err != nil {
				wantTunnelLog(t, g, "max_lifetime")
				return
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, _, err := c.ReadMessage(); err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatal("read timed out instead of the tunnel closing")
				}
				wantTunnelLog(t, g, "max_lifetime")
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatal("tunnel still open after 200 exchanges over its 500ms lifetime")
	})

	t.Run("truncated frame and vanished client hurt nobody else", func(t *testing.T) {
		t.Parallel()
		ip := newLoopbackIP(t)
		port := freePort(t, ip)
		g := startGateway(t, ip, gatewayYAML(ip, listener{name: "http", port: port})+backendYAML("ws", wsPort)+wsRoute("ws", "/", "ws"))
		good, _, err := wsDial(t, "ws://"+g.addr(port)+"/good")
		if err != nil {
			t.Fatal(err)
		}
		defer good.Close()
		for i := 0; i < 20; i++ {
			raw := rawDial(t, g.addr(port))
			fmt.Fprintf(raw, "GET /bad HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
				"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
			br := bufio.NewReader(raw)
			line, err := br.ReadString('\n')
			if err != nil || !strings.Contains(line, "101") {
				t.Fatalf("handshake: %q %v", line, err)
			}
			// A masked binary frame header announcing 1000 bytes, then 3.
			raw.Write([]byte{0x82, 0xFE, 0x03, 0xE8, 1, 2, 3, 4, 'a', 'b', 'c'})
			raw.Close()
			echoOnce(t, good, websocket.TextMessage, []byte(fmt.Sprint("good ", i)))
		}
		if !g.running() {
			t.Fatal("gateway exited")
		}
		wantTunnelLog(t, g, "closed")
	})
}

// wsFrame is one masked client frame (RFC 6455 §5.2) with a short payload.
func wsFrame(opcode byte, payload []byte) []byte {
	mask := []byte{1, 2, 3, 4}
	f := []byte{0x80 | opcode, 0x80 | byte(len(payload))}
	f = append(f, mask...)
	for i, b := range payload {
		f = append(f, b^mask[i%4])
	}
	return f
}

// readWSFrame reads one unmasked server frame with a short payload.
func readWSFrame(r io.Reader) (opcode byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	payload = make([]byte, h[1]&0x7f)
	_, err = io.ReadFull(r, payload)
	return h[0] & 0x0f, payload, err
}

// TestWebSocketOverHTTP2 opens WebSockets with HTTP/2 extended CONNECT
// (RFC 8441), over TLS and over h2c, bridged to an HTTP/1.1 WebSocket
// backend: messages echo, and the close handshake passes through.
func TestWebSocketOverHTTP2(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	pTLS, pPlain := freePort(t, ip), freePort(t, ip)
	cert := newTestCert(t, "ws.test")
	wsPort := wsEchoBackend(t)
	g := startGateway(t, ip, gatewayYAML(ip,
		listener{name: "https", port: pTLS, protocol: "HTTPS", hostname: "ws.test", certs: []string{"ws-tls"}},
		listener{name: "http", port: pPlain},
	)+cert.secretYAML("ws-tls")+backendYAML("ws", wsPort)+wsRoute("ws", "/", "ws"))
	roots := x509.NewCertPool()
	roots.AddCert(cert.cert)

	for _, tc := range []struct {
		name, url string
		tr        *http2.Transport
	}{
		{"TLS", "https://ws.test:" + strconv.Itoa(pTLS) + "/chat", &http2.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "ws.test"},
			DialTLSContext: func(ctx context.Context, network, _ string, cfg *tls.Config) (net.Conn, error) {
				return (&tls.Dialer{Config: cfg}).DialContext(ctx, network, g.addr(pTLS))
			},
		}},
		{"h2c", "http://" + g.addr(pPlain) + "/chat", &http2.Transport{
			AllowHTTP: true,
			DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer tc.tr.CloseIdleConnections()
			pr, pw := io.Pipe()
			defer pw.Close()
			req, _ := http.NewRequest(http.MethodConnect, tc.url, pr)
			req.Header.Set(":protocol", "websocket")
			req.Header.Set("Sec-WebSocket-Version", "13")
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			resp, err := tc.tr.RoundTrip(req.WithContext(ctx))
			if err != nil {
				t.Fatalf("extended CONNECT: %v", err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want 200", resp.StatusCode)
			}
			if resp.Header.Get("Sec-Websocket-Accept") != "" || resp.Header.Get("Upgrade") != "" {
				t.Errorf("HTTP/1.1 upgrade headers leaked into the HTTP/2 response: %v", resp.Header)
			}
			for i := 0; i < 3; i++ {
				msg := []byte(fmt.Sprint("over h2 ", i))
				if _, err := pw.Write(wsFrame(1, msg)); err != nil {
					t.Fatal(err)
				}
				op, got, err := readWSFrame(resp.Body)
				if err != nil || op != 1 || !bytes.Equal(got, msg) {
					t.Fatalf("echo %d: opcode %d %q %v", i, op, got, err)
				}
			}
			// Close with 4002: the echo server answers with the same code.
			pw.Write(wsFrame(8, []byte{0x0f, 0xa2, 'b', 'y', 'e'}))
			op, got, err := readWSFrame(resp.Body)
			if err != nil || op != 8 || len(got) < 2 || int(got[0])<<8|int(got[1]) != 4002 {
				t.Fatalf("close: opcode %d payload %x %v, want close 4002", op, got, err)
			}
		})
	}
}

// wantTunnelLog waits for the gateway's log line saying a tunnel closed for
// reason.
func wantTunnelLog(t *testing.T, g *gateway, reason string) {
	t.Helper()
	ok := pollUntil(5*time.Second, func() bool {
		return g.findLog("tunnel closed", func(m map[string]any) bool { return m["reason"] == reason }) != nil
	})
	if !ok {
		t.Errorf("no \"tunnel closed\" log line with reason %s", reason)
	}
}
