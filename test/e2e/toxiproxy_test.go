package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// toxiproxyVersion is the toxiproxy that scripts/test-deps.sh builds (as
// toxiproxy-server, from github.com/Shopify/toxiproxy/v2/cmd/server).
const toxiproxyVersion = "v2.5.0"

// toxiTimeout is the request timeout of the route TestToxiproxyFaults uses.
const toxiTimeout = 2 * time.Second

// toxiBound is how long any exchange through a toxic may take, end to end:
// the route's timeout plus generous slack (the machine may be busy). It is
// an upper bound, not a performance target.
const toxiBound = toxiTimeout + 5*time.Second

// toxiBigSize is the size of the /big response body.
const toxiBigSize = 200 << 10

func toxiproxyPath(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("MESHGATE_TOOLS")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".cache", "meshgate")
	}
	p := filepath.Join(dir, "toxiproxy-server-"+toxiproxyVersion, "toxiproxy-server")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("toxiproxy-server not found at %s: run `make test-deps` (make test does it): %v", p, err)
	}
	return p
}

// toxiproxy is a running toxiproxy server and the address of its HTTP API.
type toxiproxy struct {
	api string // http://127.0.0.1:port
	c   *http.Client
}

// startToxiproxy runs the cached toxiproxy server with its API on a free
// loopback port and waits (at most 15 s) until the API answers. The process
// is killed when the test ends; its log is printed if the test failed.
func startToxiproxy(t *testing.T) *toxiproxy {
	t.Helper()
	bin := toxiproxyPath(t)
	port := freePort(t, "127.0.0.1")
	logs := &logBuffer{}
	cmd := exec.Command(bin, "-host", "127.0.0.1", "-port", strconv.Itoa(port))
	cmd.Env = append(os.Environ(), "LOG_LEVEL=info")
	cmd.Stdout = logs
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start toxiproxy: %v", err)
	}
	exited := make(chan struct{})
	var exitErr error
	go func() {
		exitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				t.Errorf("toxiproxy pid %d did not exit after SIGKILL", cmd.Process.Pid)
			}
		}
		if t.Failed() {
			t.Logf("toxiproxy log:\n%s", truncate(logs.String(), 20000))
		}
	})
	// Removing a toxic may take a while: toxiproxy gives each chunk a
	// bandwidth toxic still holds 5 s to reach a connection nobody reads
	// any more (the gateway cut the response), one chunk after another.
	tp := &toxiproxy{api: "http://127.0.0.1:" + strconv.Itoa(port), c: &http.Client{Timeout: 90 * time.Second}}
	var last string
	for i := 0; i < 300; i++ {
		select {
		case <-exited:
			t.Fatalf("toxiproxy exited before its API answered: %v\n%s", exitErr, logs.String())
		default:
		}
		resp, err := tp.c.Get(tp.api + "/version")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return tp
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("toxiproxy API not up after 15 s: %s", last)
	return nil
}

// call sends method path with body v (JSON, nil: none) to the API and
// fails the test unless the status is want.
func (tp *toxiproxy) call(t *testing.T, method, path string, v any, want int) {
	t.Helper()
	var body io.Reader
	if v != nil {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, tp.api+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := tp.c.Do(req)
	if err != nil {
		t.Fatalf("toxiproxy %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("toxiproxy %s %s: %d %s, want %d", method, path, resp.StatusCode, b, want)
	}
}

// addToxic adds a toxic of typ on the downstream (upstream to client)
// stream of proxy and returns the function that removes it again.
func (tp *toxiproxy) addToxic(t *testing.T, proxy, name, typ string, attrs map[string]any) (remove func()) {
	t.Helper()
	tp.call(t, http.MethodPost, "/proxies/"+proxy+"/toxics", map[string]any{
		"name": name, "type": typ, "stream": "downstream", "toxicity": 1.0, "attributes": attrs,
	}, http.StatusOK)
	return func() {
		t.Helper()
		tp.call(t, http.MethodDelete, "/proxies/"+proxy+"/toxics/"+name, nil, http.StatusNoContent)
	}
}

// TestToxiproxyFaults puts toxiproxy between one gateway and a normal
// backend and checks, one toxic at a time, that every request ends in a
// defined way within the route's timeout, that the request after the toxic
// is removed gets its own answer (nothing the toxic did is left in the
// gateway's connection pool), and that goroutines and open files return to
// their baseline afterwards.
func TestToxiproxyFaults(t *testing.T) {
	t.Parallel()
	tp := startToxiproxy(t)
	be := newBackend(t, "toxi")
	big := strings.Repeat("0123456789abcdef", toxiBigSize/16)
	be.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasPrefix(r.URL.Path, "/close") {
			// An echo after which the backend closes the connection.
			w.Header().Set("Connection", "close")
			return false
		}
		if !strings.HasPrefix(r.URL.Path, "/big") {
			return false
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("X-Backend", "toxi-big") // not an echo
		w.Header().Set("Content-Length", strconv.Itoa(len(big)))
		io.WriteString(w, big)
		return true
	})
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t, "127.0.0.1")))
	tp.call(t, http.MethodPost, "/proxies", map[string]any{
		"name": "meshgate", "listen": listen, "upstream": net.JoinHostPort("127.0.0.1", strconv.Itoa(be.port)), "enabled": true,
	}, http.StatusCreated)
	_, proxyPortS, _ := net.SplitHostPort(listen)
	proxyPort, _ := strconv.Atoi(proxyPortS)

	ip := newLoopbackIP(t)
	port := freePort(t, ip)
	const host = "toxi.test"
	cfg := gatewayYAML(ip, listener{name: "http", port: port}) + backendYAML("toxi", proxyPort) + fmt.Sprintf(`---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: toxi, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: ["%s"]
  rules:
  - timeouts: {request: %s}
    backendRefs: [%s]
`, host, toxiTimeout, ref("toxi"))
	g := startGateway(t, ip, cfg)

	client := newClient()
	defer client.CloseIdleConnections()
	// Faulty requests go on connections of their own, so the client never
	// silently resends one (see TestUpstreamFaults).
	oneShot := newClient()
	oneShot.Transport.(*http.Transport).DisableKeepAlives = true

	// own checks that r is the backend's complete echo of path.
	own := func(t *testing.T, what, path string, r faultResult) {
		t.Helper()
		var e echo
		if r.doErr != nil || r.bodyErr != nil || r.status != http.StatusOK || json.Unmarshal([]byte(r.body), &e) != nil || e.Path != path {
			t.Errorf("%s: got %v, want 200 and the backend's echo of %s", what, r, path)
		}
	}
	// wantLog waits (at most 5 s) for a "request failed" line for path
	// with reason.
	wantLog := func(t *testing.T, path, reason string) {
		t.Helper()
		ok := pollUntil(5*time.Second, func() bool {
			return g.findLog("request failed", func(m map[string]any) bool {
				return m["host"] == host && m["path"] == path && m["reason"] == reason
			}) != nil
		})
		if !ok {
			t.Errorf("no \"request failed\" log line with reason %s for %s", reason, path)
		}
	}

	// Warm up (through the proxy, no toxic), then take the baseline.
	var plain time.Duration
	for i := 0; i < 3; i++ {
		path := fmt.Sprintf("/warm-%d", i)
		r := fetch(client, "GET", g.url(port, path), host)
		own(t, "warm-up", path, r)
		plain = r.elapsed
	}
	if r := fetch(client, "GET", g.url(port, "/big-warm"), host); r.status != http.StatusOK || r.bodyErr != nil || r.body != big {
		t.Fatalf("/big without a toxic: %v (%d bytes)", r, len(r.body))
	}
	if t.Failed() {
		t.FailNow()
	}
	client.CloseIdleConnections()
	readGauges := func() (goroutines, fds float64) {
		code, body := g.adminBody("/metrics")
		if code != http.StatusOK {
			t.Fatalf("admin /metrics: %d", code)
		}
		gr, ok1 := metricValue(body, "go_goroutines")
		fd, ok2 := metricValue(body, "process_open_fds")
		if !ok1 || !ok2 {
			t.Fatalf("/metrics lacks go_goroutines or process_open_fds")
		}
		return gr, fd
	}
	var baseG, baseFD float64
	pollUntil(5*time.Second, func() bool {
		gr, fd := readGauges()
		settled := gr == baseG && fd == baseFD
		baseG, baseFD = gr, fd
		return settled
	})
	t.Logf("baseline: go_goroutines %v, process_open_fds %v; a plain request took %v", baseG, baseFD, plain.Round(time.Microsecond))

	cases := []struct {
		name  string
		typ   string
		attrs map[string]any
		path  string // of the request made with the toxic on
		check func(t *testing.T, path string, r faultResult)
	}{
		{
			name: "latency past the timeout", typ: "latency", attrs: map[string]any{"latency": 3000},
			path: "/latency-3s",
			check: func(t *testing.T, path string, r faultResult) {
				wantStatus(http.StatusGatewayTimeout)(t, r)
				if r.elapsed < toxiTimeout-300*time.Millisecond {
					t.Errorf("504 after %v, before the route's %v timeout", r.elapsed, toxiTimeout)
				}
				wantLog(t, path, "upstream_timeout")
			},
		},
		{
			name: "latency within the timeout", typ: "latency", attrs: map[string]any{"latency": 100},
			path: "/latency-100ms",
			check: func(t *testing.T, path string, r faultResult) {
				own(t, "with 100 ms latency", path, r)
				if r.elapsed < 100*time.Millisecond {
					t.Errorf("answered in %v, want at least the toxic's 100 ms", r.elapsed)
				}
			},
		},
		{
			// The connection to the proxy is accepted and the request
			// written; the reset comes as the backend's answer would
			// arrive, before any response byte. That is an upstream
			// protocol failure (502, reason upstream_protocol_error), like
			// TestUpstreamFaults' "reset before any response", not a
			// connect failure (503): the gateway did reach the upstream.
			name: "reset_peer", typ: "reset_peer", attrs: map[string]any{"timeout": 0},
			path: "/reset-peer",
			check: func(t *testing.T, path string, r faultResult) {
				wantStatus(http.StatusBadGateway)(t, r)
				wantLog(t, path, "upstream_protocol_error")
			},
		},
		{
			name: "timeout toxic holds the data", typ: "timeout", attrs: map[string]any{"timeout": 0},
			path: "/timeout",
			check: func(t *testing.T, path string, r faultResult) {
				wantStatus(http.StatusGatewayTimeout)(t, r)
				wantLog(t, path, "upstream_timeout")
			},
		},
		{
			// The response is cut after 2 KiB of the 200 KiB body's
			// stream: the client must be able to tell.
			name: "limit_data cuts the response", typ: "limit_data", attrs: map[string]any{"bytes": 2048},
			path: "/big-limit",
			check: func(t *testing.T, path string, r faultResult) {
				wantAborted(toxiBigSize)(t, r)
			},
		},
		{
			// The backend closes after its answer and the toxic holds the
			// close back 3 s: the answer is complete by its
			// Content-Length, so a gateway waiting for the close would run
			// into the route's 2 s timeout instead.
			name: "slow_close", typ: "slow_close", attrs: map[string]any{"delay": 3000},
			path: "/close-slow",
			check: func(t *testing.T, path string, r faultResult) {
				own(t, "with slow_close", path, r)
				for i := 0; i < 3; i++ {
					p := fmt.Sprintf("%s-%d", path, i)
					own(t, "keep-alive request with slow_close", p, fetch(client, "GET", g.url(port, p), host))
				}
				if b := fetch(oneShot, "GET", g.url(port, "/big-slow-close"), host); b.status != http.StatusOK || b.bodyErr != nil || b.body != big {
					t.Errorf("/big with slow_close: %v (%d bytes)", b, len(b.body))
				}
			},
		},
		{
			// 200 KiB at 1 KB/s takes minutes; the route's 2 s request
			// timeout must end it: 504 if it fires before the status
			// arrived, else the body is cut short.
			name: "bandwidth 1 KB/s on a large response", typ: "bandwidth", attrs: map[string]any{"rate": 1},
			path: "/big-bandwidth",
			check: func(t *testing.T, path string, r faultResult) {
				switch {
				case r.doErr == nil && r.bodyErr == nil && r.status == http.StatusGatewayTimeout:
				case r.doErr == nil && r.status == http.StatusOK && errors.Is(r.bodyErr, io.ErrUnexpectedEOF) && len(r.body) < toxiBigSize:
				default:
					t.Errorf("got %v (%d bytes), want 504, or 200 with a body cut short by an unexpected EOF", r, len(r.body))
				}
			},
		},
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			remove := tp.addToxic(t, "meshgate", tc.typ, tc.typ, tc.attrs)
			removed := false
			defer func() {
				if !removed {
					remove()
				}
			}()
			r := fetch(oneShot, "GET", g.url(port, tc.path), host)
			t.Logf("GET %s with %s %v: %v (%d body bytes)", tc.path, tc.typ, tc.attrs, r, len(r.body))
			if r.elapsed > toxiBound {
				t.Errorf("request took %v, want at most %v (route timeout %v + 5 s)", r.elapsed, toxiBound, toxiTimeout)
			}
			tc.check(t, tc.path, r)
			remove()
			removed = true

			// Without the toxic, the next requests get their own answers,
			// on the gateway's pooled connections to the proxy too.
			for k := 1; k <= 3; k++ {
				p := fmt.Sprintf("/after-%s-%d", tc.typ, k)
				f := fetch(client, "GET", g.url(port, p), host)
				own(t, "after removing the toxic", p, f)
				if f.elapsed > toxiBound {
					t.Errorf("GET %s after removing the toxic took %v", p, f.elapsed)
				}
			}
		})
	}

	// Leak check: whatever the toxics started has ended. A few idle pooled
	// connections to the proxy (one file each) fit in the margin.
	client.CloseIdleConnections()
	const margin = 20
	var gr, fd float64
	ok := pollUntil(30*time.Second, func() bool {
		gr, fd = readGauges()
		return gr <= baseG+margin && fd <= baseFD+margin
	})
	t.Logf("after the toxics: go_goroutines %v (baseline %v), process_open_fds %v (baseline %v)", gr, baseG, fd, baseFD)
	if !ok {
		t.Errorf("gateway did not return to baseline within 30 s: go_goroutines %v (baseline %v), process_open_fds %v (baseline %v), margin %d",
			gr, baseG, fd, baseFD, margin)
	}
	if !g.running() {
		t.Fatalf("gateway exited: %v", g.exitErr)
	}
}
