package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// TestSIGTERM checks graceful shutdown: with a request in flight, SIGTERM
// stops new connections at once, lets the request finish with 200 and the
// process exits 0 within the drain timeout.
func TestSIGTERM(t *testing.T) {
	t.Parallel()
	t.Run("in-flight request completes", testSIGTERMInFlight)
	t.Run("idle connections do not hold up the drain", testSIGTERMIdle)
}

func testSIGTERMInFlight(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	port := freePort(t, ip)
	be := newBackend(t, "drain")
	const drain = 5 * time.Second
	g := startGateway(t, ip, gatewayYAML(ip, listener{name: "http", port: port})+be.yaml()+simpleRoute("all", nil, "drain"),
		"--drain-timeout", drain.String())

	release := make(chan struct{})
	released := false
	releaseOnce := func() {
		if !released {
			released = true
			close(release)
		}
	}
	defer releaseOnce()
	// The slow request: it waits until the test has checked that new
	// connections are refused (at most 1 s), so it is in flight when the
	// signal arrives.
	be.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/slow" {
			select {
			case <-release:
			case <-time.After(time.Second):
			}
		}
		return false
	})
	type outcome struct {
		r   result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		c := newClient()
		r, err := tryDo(c, request{url: g.url(port, "/slow"), host: "drain.test"})
		done <- outcome{r, err}
	}()
	if !pollUntil(5*time.Second, func() bool { return be.sawPath("/slow") }) {
		t.Fatal("the slow request did not reach the backend")
	}

	start := time.Now()
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	g.waitLogCount("shutting down: draining in-flight requests", 1)
	waitRefused(t, g.addr(port))
	select {
	case o := <-done:
		t.Logf("note: the slow request finished before new connections were refused: %v %v", o.r, o.err)
		done <- o
	default:
	}
	releaseOnce()

	select {
	case o := <-done:
		if o.err != nil {
			t.Fatalf("in-flight request failed: %v", o.err)
		}
		if o.r.status != http.StatusOK || o.r.backend() != "drain" {
			t.Fatalf("in-flight request: %v, want 200 from the backend", o.r)
		}
	case <-time.After(drain + 5*time.Second):
		t.Fatal("in-flight request did not complete")
	}

	// The drain timeout bounds the shutdown; allow 1 s for the process to
	// exit after it.
	select {
	case <-g.exited:
	case <-time.After(time.Until(start.Add(drain + time.Second))):
		t.Fatalf("gateway still running %v after SIGTERM (drain timeout %v)", time.Since(start), drain)
	}
	if g.exitErr != nil {
		t.Fatalf("gateway exit: %v, want status 0", g.exitErr)
	}
	if e := g.findLog("drain cut short", nil); e != nil {
		t.Errorf("drain was cut short: %v", e)
	}
	if g.findLog("stopped", nil) == nil {
		t.Errorf("no \"stopped\" log")
	}
}

func testSIGTERMIdle(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	pPlain, pTLS := freePort(t, ip), freePort(t, ip)
	be := newBackend(t, "idle")
	cert := newTestCert(t, "idle.test")
	const drain = 5 * time.Second
	g := startGateway(t, ip, gatewayYAML(ip,
		listener{name: "http", port: pPlain},
		listener{name: "https", port: pTLS, protocol: "HTTPS", certs: []string{"idle-tls"}},
	)+cert.secretYAML("idle-tls")+be.yaml()+simpleRoute("all", nil, "idle"), "--drain-timeout", drain.String())

	roots := x509.NewCertPool()
	roots.AddCert(cert.cert)
	dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, g.addr(pTLS))
	}
	h1 := newClient()
	h2 := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: dial, TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true,
	}}
	h2c := &http.Client{Timeout: 10 * time.Second, Transport: &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}}
	defer h1.CloseIdleConnections()
	defer h2.CloseIdleConnections()
	defer h2c.CloseIdleConnections()
	// One request each leaves an idle HTTP/1.1, HTTP/2 (TLS) and h2c
	// connection open.
	for _, tc := range []struct {
		c     *http.Client
		url   string
		proto string
	}{
		{h1, g.url(pPlain, "/"), "HTTP/1.1"},
		{h2, "https://idle.test:" + strconv.Itoa(pTLS) + "/", "HTTP/2.0"},
		{h2c, g.url(pPlain, "/"), "HTTP/2.0"},
	} {
		r := do(t, tc.c, request{url: tc.url})
		if r.status != http.StatusOK || r.proto != tc.proto {
			t.Fatalf("GET %s: %v, want 200 over %s", tc.url, r, tc.proto)
		}
	}

	start := time.Now()
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.exited:
	case <-time.After(drain + 5*time.Second):
		t.Fatalf("gateway still running %v after SIGTERM", time.Since(start))
	}
	if g.exitErr != nil {
		t.Fatalf("gateway exit: %v, want status 0", g.exitErr)
	}
	if e := g.findLog("drain cut short", nil); e != nil {
		t.Errorf("idle connections held the drain until its timeout: %v", e)
	}
}
