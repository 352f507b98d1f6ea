package e2e

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
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

	t.Run("connections survive reloads", func(t *testing.T) {
		const n = 20
		conns := make([]*websocket.Conn, n)
		for i := range conns {
			c, _, err := wsDial(t, url)
			if err != nil {
				t.Fatalf("dial %d: %v", i, err)
			}
			defer c.Close()
			conns[i] = c
		}
		for reload := 0; reload < 3; reload++ {
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
