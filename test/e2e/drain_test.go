package e2e

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/net/http2"
)

// TestShutdownReadinessFirst: on SIGTERM with --shutdown-delay, /ready
// fails at once while requests are still served (so a load balancer stops
// sending before anything is refused), then the gateway drains and exits 0.
func TestShutdownReadinessFirst(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	p := freePort(t, ip)
	be := newBackend(t, "drain")
	g := startGateway(t, ip, gatewayYAML(ip, listener{name: "http", port: p})+be.yaml()+simpleRoute("drain", nil, "drain"),
		"--shutdown-delay=2s")
	if code := g.adminGet("/ready"); code != 200 {
		t.Fatalf("/ready before SIGTERM: %d", code)
	}
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !pollUntil(2*time.Second, func() bool { return g.adminGet("/ready") == http.StatusServiceUnavailable }) {
		t.Fatal("/ready did not turn 503 after SIGTERM")
	}
	// Still serving new connections during the delay.
	for i := 0; i < 5; i++ {
		if r := get(t, g.url(p, "/during"), ""); r.status != 200 {
			t.Fatalf("request during the shutdown delay: %v", r)
		}
	}
	select {
	case <-g.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("gateway did not exit after the delay and drain")
	}
	if g.exitErr != nil {
		t.Fatalf("exit: %v, want 0", g.exitErr)
	}
}

// TestShutdownClosesWebSocketsGoingAway: a WebSocket still open at the end
// of the drain gets a close frame 1001 ("going away"), and an HTTP/2
// request in flight at SIGTERM completes.
func TestShutdownClosesWebSocketsGoingAway(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	p := freePort(t, ip)
	wsPort := wsEchoBackend(t)
	be := newH2CBackend(t, "slow")
	g := startGateway(t, ip, gatewayYAML(ip, listener{name: "http", port: p})+backendYAML("ws", wsPort)+be.yaml()+
		wsRoute("ws", "/ws", "ws")+wsRoute("slow", "/slow", "slow"), "--drain-timeout=2s")
	c, _, err := wsDial(t, "ws://"+g.addr(p)+"/ws")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	echoOnce(t, c, websocket.TextMessage, []byte("before shutdown"))

	tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
	defer tr.CloseIdleConnections()
	inflight := make(chan result, 1)
	go func() {
		r, err := tryDo(&http.Client{Transport: tr, Timeout: 10 * time.Second}, request{url: g.url(p, "/slow?delay=1s")})
		if err != nil {
			r.status = -1
		}
		inflight <- r
	}()
	time.Sleep(300 * time.Millisecond) // the request is at the backend
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if r := <-inflight; r.status != http.StatusOK {
		t.Errorf("HTTP/2 request in flight at SIGTERM: %v, want 200", r)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err = c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
		t.Fatalf("WebSocket at the end of the drain: %v, want close 1001 (going away)", err)
	}
	select {
	case <-g.exited:
	case <-time.After(15 * time.Second):
		t.Fatal("gateway did not exit")
	}
}
