package e2e

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// reloadSetup is a gateway serving Host reload.test from backend "a", with
// backend "b" defined but unused, and a function making the config that
// routes to another backend.
type reloadSetup struct {
	g    *gateway
	port int
	a, b *backend
	cfg  func(to string, extra ...string) string
}

func newReloadSetup(t *testing.T) *reloadSetup {
	t.Helper()
	ip := newLoopbackIP(t)
	s := &reloadSetup{port: freePort(t, ip), a: newBackend(t, "a"), b: newBackend(t, "b")}
	s.cfg = func(to string, extra ...string) string {
		return gatewayYAML(ip, listener{name: "http", port: s.port}) + s.a.yaml() + s.b.yaml() +
			simpleRoute("main", []string{"reload.test"}, to) + strings.Join(extra, "")
	}
	s.g = startGateway(t, ip, s.cfg("a"))
	// The first config's log line may still be on its way to the
	// harness: tests compare applied() before and after a reload.
	s.g.waitLogCount("config applied", 1)
	return s
}

func (s *reloadSetup) get(t *testing.T, path string) result {
	t.Helper()
	return get(t, s.g.url(s.port, path), "reload.test")
}

// TestReload covers the files provider's hot reload.
func TestReload(t *testing.T) {
	t.Parallel()

	t.Run("new backend seen after rewrite", func(t *testing.T) {
		t.Parallel()
		s := newReloadSetup(t)
		if r := s.get(t, "/"); r.backend() != "a" {
			t.Fatalf("before reload: %v", r)
		}
		s.g.writeConfig(s.cfg("b"))
		var last result
		if !pollUntil(5*time.Second, func() bool {
			last = s.get(t, "/")
			return last.backend() == "b"
		}) {
			t.Fatalf("backend b not seen within 5 s of the rewrite; last: %v", last)
		}
	})

	t.Run("keep-alive connection survives and sees the new config", func(t *testing.T) {
		t.Parallel()
		s := newReloadSetup(t)
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1, IdleConnTimeout: time.Minute}}
		defer c.CloseIdleConnections()
		r1 := do(t, c, request{url: s.g.url(s.port, "/ka"), host: "reload.test"})
		if r1.backend() != "a" {
			t.Fatalf("before reload: %v", r1)
		}
		s.g.reload(s.cfg("b"))
		r2 := do(t, c, request{url: s.g.url(s.port, "/ka"), host: "reload.test"})
		if !r2.reused {
			t.Errorf("the request after the reload did not reuse the keep-alive connection")
		}
		if r2.backend() != "b" {
			t.Errorf("after reload on the old connection: %v, want backend b", r2)
		}
	})

	t.Run("in-flight request completes across a reload", func(t *testing.T) {
		t.Parallel()
		s := newReloadSetup(t)
		release := make(chan struct{})
		s.a.setHook(func(w http.ResponseWriter, r *http.Request) bool {
			if r.URL.Path != "/slow" {
				return false
			}
			// Sleep until the test has seen the reload, at most 10 s.
			select {
			case <-release:
			case <-time.After(10 * time.Second):
			}
			return false
		})
		done := make(chan result, 1)
		errc := make(chan error, 1)
		go func() {
			r, err := tryDo(defaultClient, request{url: s.g.url(s.port, "/slow"), host: "reload.test"})
			if err != nil {
				errc <- err
				return
			}
			done <- r
		}()
		if !pollUntil(5*time.Second, func() bool { return s.a.sawPath("/slow") }) {
			close(release)
			t.Fatal("the slow request did not reach backend a")
		}
		s.g.reload(s.cfg("b"))
		if r := s.get(t, "/"); r.backend() != "b" {
			close(release)
			t.Fatalf("new request after the reload: %v, want backend b", r)
		}
		close(release)
		select {
		case r := <-done:
			if r.status != http.StatusOK || r.backend() != "a" {
				t.Fatalf("in-flight request: %v, want 200 from a", r)
			}
		case err := <-errc:
			t.Fatalf("in-flight request failed: %v", err)
		case <-time.After(15 * time.Second):
			t.Fatal("in-flight request did not complete")
		}
	})

	t.Run("unparsable file keeps the old config", func(t *testing.T) {
		t.Parallel()
		s := newReloadSetup(t)
		rejected := s.g.countLogs("config rejected; previous config stays in force")
		applied := s.g.applied()
		s.g.writeConfig(s.cfg("b") + "---\nkind: [unclosed\n  : : :\n")
		s.g.waitLogCount("config rejected; previous config stays in force", rejected+1)
		if r := s.get(t, "/"); r.status != http.StatusOK || r.backend() != "a" {
			t.Fatalf("after a broken file: %v, want the old config (backend a)", r)
		}
		if st := s.g.adminGet("/ready"); st != http.StatusOK {
			t.Fatalf("/ready %d after a broken file, want 200", st)
		}
		if n := s.g.applied(); n != applied {
			t.Fatalf("a config was applied from the broken file (%d -> %d)", applied, n)
		}
		s.g.reload(s.cfg("b"))
		if r := s.get(t, "/"); r.backend() != "b" {
			t.Fatalf("after fixing the file: %v, want backend b", r)
		}
	})

	t.Run("invalid objects rejected, valid ones applied", func(t *testing.T) {
		t.Parallel()
		s := newReloadSetup(t)
		badRegex := `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: bad-regex
  namespace: default
spec:
  parentRefs: [{name: gw}]
  hostnames: ["reload.test"]
  rules:
  - matches: [{path: {type: RegularExpression, value: "/bad/(unclosed"}}]
    backendRefs: [` + ref("b") + `]
`
		badField := `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: bad-field
  namespace: default
spec:
  parentRefs: [{name: gw}]
  hostnames: ["reload.test"]
  rules:
  - matches: [{path: {type: PathPrefix, value: /field}}]
    bogusField: 1
    backendRefs: [` + ref("b") + `]
`
		good := `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: good
  namespace: default
spec:
  parentRefs: [{name: gw}]
  hostnames: ["reload.test"]
  rules:
  - matches: [{path: {type: PathPrefix, value: /good}}]
    backendRefs: [` + ref("b") + `]
`
		s.g.reload(s.cfg("a", badRegex, badField, good))
		if r := s.get(t, "/good/x"); r.backend() != "b" {
			t.Errorf("valid route of the same reload: %v, want backend b", r)
		}
		if r := s.get(t, "/bad/x"); r.backend() == "b" {
			t.Errorf("route with an invalid regex serves: %v", r)
		}
		if r := s.get(t, "/field"); r.backend() == "b" {
			t.Errorf("route with an unknown field serves: %v", r)
		}
		if r := s.get(t, "/"); r.backend() != "a" {
			t.Errorf("unchanged route: %v, want backend a", r)
		}
		for _, name := range []string{"bad-regex", "bad-field"} {
			if s.g.findLog("object rejected", func(e map[string]any) bool { return e["name"] == name }) == nil {
				t.Errorf("no \"object rejected\" log for HTTPRoute %s", name)
			}
		}
		if st := s.g.adminGet("/ready"); st != http.StatusOK {
			t.Errorf("/ready %d, want 200", st)
		}
	})

	t.Run("listener ports added and removed", func(t *testing.T) {
		t.Parallel()
		ip := newLoopbackIP(t)
		pKeep, pGone, pNew := freePort(t, ip), freePort(t, ip), freePort(t, ip)
		a, b := newBackend(t, "a"), newBackend(t, "b")
		cfg := func(to string, ls ...listener) string {
			return gatewayYAML(ip, ls...) + a.yaml() + b.yaml() + simpleRoute("main", nil, to)
		}
		g := startGateway(t, ip, cfg("a", listener{name: "keep", port: pKeep}, listener{name: "gone", port: pGone}))
		if r := get(t, g.url(pGone, "/"), "ports.test"); r.backend() != "a" {
			t.Fatalf("port to be removed, before: %v", r)
		}
		// A keep-alive connection on the port that stays.
		conn := rawDial(t, g.addr(pKeep))
		br := bufio.NewReader(conn)
		send := func(i int) rawResult {
			t.Helper()
			if _, err := fmt.Fprintf(conn, "GET /conn/%d HTTP/1.1\r\nHost: ports.test\r\n\r\n", i); err != nil {
				t.Fatalf("write on the kept connection: %v", err)
			}
			return readRaw(t, conn, br, "GET")
		}
		if rr := send(1); rr.echo == nil || rr.echo.Name != "a" {
			t.Fatalf("kept connection before: %d %q", rr.resp.StatusCode, rr.body)
		}

		g.reload(cfg("b", listener{name: "keep", port: pKeep}, listener{name: "new", port: pNew}))

		if rr := send(2); rr.echo == nil || rr.echo.Name != "b" {
			t.Errorf("kept connection after the reload: %d %q, want backend b", rr.resp.StatusCode, rr.body)
		}
		waitRefused(t, g.addr(pGone))
		var last result
		if !pollUntil(5*time.Second, func() bool {
			r, err := tryDo(defaultClient, request{url: g.url(pNew, "/"), host: "ports.test"})
			last = r
			return err == nil && r.backend() == "b"
		}) {
			t.Errorf("added port does not serve within 5 s; last %v", last)
		}
		// The kept socket itself was never closed: new connections work.
		if r := get(t, g.url(pKeep, "/"), "ports.test"); r.backend() != "b" {
			t.Errorf("kept port, new connection: %v", r)
		}
		var d net.Dialer
		if c, err := d.Dial("tcp", g.addr(pGone)); err == nil {
			c.Close()
			t.Errorf("removed port accepts connections again")
		}
	})

	t.Run("in-flight request on a removed port completes", func(t *testing.T) {
		t.Parallel()
		ip := newLoopbackIP(t)
		pKeep, pGone := freePort(t, ip), freePort(t, ip)
		a := newBackend(t, "a")
		cfg := func(ls ...listener) string {
			return gatewayYAML(ip, ls...) + a.yaml() + simpleRoute("main", nil, "a")
		}
		g := startGateway(t, ip, cfg(listener{name: "keep", port: pKeep}, listener{name: "gone", port: pGone}))
		release := make(chan struct{})
		a.setHook(func(w http.ResponseWriter, r *http.Request) bool {
			if r.URL.Path == "/slow" {
				select {
				case <-release:
				case <-time.After(10 * time.Second):
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
			r, err := tryDo(newClient(), request{url: g.url(pGone, "/slow"), host: "x"})
			done <- outcome{r, err}
		}()
		if !pollUntil(5*time.Second, func() bool { return a.sawPath("/slow") }) {
			close(release)
			t.Fatal("the slow request did not reach the backend")
		}
		g.reload(cfg(listener{name: "keep", port: pKeep}))
		waitRefused(t, g.addr(pGone))
		close(release)
		select {
		case o := <-done:
			if o.err != nil || o.r.status != http.StatusOK || o.r.backend() != "a" {
				t.Fatalf("in-flight request on the removed port: %v %v, want 200 from a", o.r, o.err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("in-flight request did not complete")
		}
	})

	t.Run("certificate rotation", func(t *testing.T) {
		t.Parallel()
		ip := newLoopbackIP(t)
		port := freePort(t, ip)
		a := newBackend(t, "a")
		c1, c2 := newTestCert(t, "rotate.test"), newTestCert(t, "rotate.test")
		cfg := func(c testCert) string {
			return gatewayYAML(ip, listener{name: "https", port: port, protocol: "HTTPS", certs: []string{"rotate"}}) +
				c.secretYAML("rotate") + a.yaml() + simpleRoute("main", nil, "a")
		}
		g := startGateway(t, ip, cfg(c1))
		peer := func() *x509.Certificate {
			t.Helper()
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", g.addr(port),
				&tls.Config{ServerName: "rotate.test", InsecureSkipVerify: true})
			if err != nil {
				t.Fatalf("TLS handshake: %v", err)
			}
			defer conn.Close()
			return conn.ConnectionState().PeerCertificates[0]
		}
		if !peer().Equal(c1.cert) {
			t.Fatal("first certificate not served")
		}
		g.reload(cfg(c2))
		if !peer().Equal(c2.cert) {
			t.Fatal("rotated certificate not served after the reload")
		}
	})
}
