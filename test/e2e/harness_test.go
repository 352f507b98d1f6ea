// Package e2e runs the real gateway binary against real backends over
// loopback. TestMain builds ./cmd/gateway once; every test starts its own
// gateway process on its own loopback address (127.x.y.z), so tests run in
// parallel without sharing ports.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// gatewayBin is the gateway binary TestMain built.
var gatewayBin string

// moduleRoot is the folder holding the module's go.mod.
var moduleRoot string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	root, err := findModuleRoot()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	moduleRoot = root
	tmp, err := os.MkdirTemp("", "meshgate-e2e-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	gatewayBin = filepath.Join(tmp, "gateway")
	args := []string{"build"}
	if raceEnabled && os.Getenv("E2E_GATEWAY_NORACE") == "" {
		args = append(args, "-race")
	}
	args = append(args, "-o", gatewayBin, "./cmd/gateway")
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go %s: %v\n%s", strings.Join(args, " "), err, out)
		return 1
	}
	return m.Run()
}

func findModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err == nil {
		if gomod := strings.TrimSpace(string(out)); gomod != "" && gomod != os.DevNull {
			return filepath.Dir(gomod), nil
		}
	}
	abs, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(abs, "go.mod")); err != nil {
		return "", fmt.Errorf("cannot find the module root: %v", err)
	}
	return abs, nil
}

// ---------------------------------------------------------------------------
// Loopback addresses and ports.

var ipCounter atomic.Int32

// newLoopbackIP returns a loopback address no other test of this process
// uses. The middle octets come from the pid, so two e2e runs at the same
// time do not collide either.
func newLoopbackIP(t *testing.T) string {
	t.Helper()
	n := ipCounter.Add(1)
	if n > 250 {
		t.Fatal("out of loopback addresses")
	}
	pid := os.Getpid()
	return fmt.Sprintf("127.%d.%d.%d", 1+pid%250, (pid/250)%250, n)
}

// freePort returns a port that was free on ip a moment ago.
func freePort(t *testing.T, ip string) int {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("pick a free port on %s: %v", ip, err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// ---------------------------------------------------------------------------
// The gateway process.

// logBuffer collects the gateway's stderr (JSON lines).
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// entries parses the complete JSON log lines so far.
func (l *logBuffer) entries() []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(l.String()))
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

type gateway struct {
	t         *testing.T
	ip        string
	cfgPath   string
	adminAddr string
	cmd       *exec.Cmd
	logs      *logBuffer
	exited    chan struct{}
	exitErr   error
	// wasReady is set once /ready answered 200: a config was applied,
	// though its "config applied" line may not have been read yet.
	wasReady bool
}

// startGateway writes cfg to a file in a new temp folder, runs the gateway
// on it and waits until /ready answers 200. extra are more `gateway run`
// flags. The process is killed when the test ends; its log is printed if
// the test failed.
func startGateway(t *testing.T, ip, cfg string, extra ...string) *gateway {
	t.Helper()
	g := launchGateway(t, ip, cfg, extra...)
	g.waitReady()
	return g
}

// launchGateway is startGateway without waiting for /ready.
func launchGateway(t *testing.T, ip, cfg string, extra ...string) *gateway {
	t.Helper()
	dir := t.TempDir()
	g := &gateway{
		t:         t,
		ip:        ip,
		cfgPath:   filepath.Join(dir, "gateway.yaml"),
		adminAddr: net.JoinHostPort(ip, strconv.Itoa(freePort(t, ip))),
		logs:      &logBuffer{},
		exited:    make(chan struct{}),
	}
	args := []string{"run", "--admin-addr", g.adminAddr, "--log-level", "debug"}
	if cfg != "" {
		// No cfg: the config comes from elsewhere (--kubernetes in extra).
		if err := os.WriteFile(g.cfgPath, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--config", g.cfgPath)
	}
	args = append(args, extra...)
	g.cmd = exec.Command(gatewayBin, args...)
	g.cmd.Stdout = g.logs
	g.cmd.Stderr = g.logs
	if err := g.cmd.Start(); err != nil {
		t.Fatalf("start gateway: %v", err)
	}
	go func() {
		g.exitErr = g.cmd.Wait()
		close(g.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-g.exited:
		default:
			g.cmd.Process.Kill()
			select {
			case <-g.exited:
			case <-time.After(10 * time.Second):
				t.Errorf("gateway pid %d did not exit after SIGKILL", g.cmd.Process.Pid)
			}
		}
		logs := g.logs.String()
		if strings.Contains(logs, "WARNING: DATA RACE") {
			t.Errorf("the gateway reported a data race")
		}
		if t.Failed() {
			t.Logf("gateway %s (%s) log:\n%s", g.ip, strings.Join(args, " "), logs)
		}
	})
	return g
}

func (g *gateway) running() bool {
	select {
	case <-g.exited:
		return false
	default:
		return true
	}
}

// waitReady polls the admin /ready until it answers 200 (at most 15 s).
func (g *gateway) waitReady() {
	g.t.Helper()
	c := &http.Client{Timeout: time.Second}
	var last string
	for i := 0; i < 300; i++ {
		if !g.running() {
			g.t.Fatalf("gateway exited before it was ready: %v", g.exitErr)
		}
		resp, err := c.Get("http://" + g.adminAddr + "/ready")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				g.wasReady = true
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	g.t.Fatalf("gateway not ready after 15 s: last /ready: %s", last)
}

// adminGet returns the status of GET admin path.
func (g *gateway) adminGet(path string) int {
	g.t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + g.adminAddr + path)
	if err != nil {
		g.t.Fatalf("admin GET %s: %v", path, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// countLogs counts log entries whose msg is msg.
func (g *gateway) countLogs(msg string) int {
	n := 0
	for _, e := range g.logs.entries() {
		if e["msg"] == msg {
			n++
		}
	}
	return n
}

// findLog returns the first log entry with msg for which match is true.
func (g *gateway) findLog(msg string, match func(map[string]any) bool) map[string]any {
	for _, e := range g.logs.entries() {
		if e["msg"] == msg && (match == nil || match(e)) {
			return e
		}
	}
	return nil
}

// applied is how many configs the gateway applied so far.
func (g *gateway) applied() int { return g.countLogs("config applied") }

// waitLogCount waits (at most 10 s) until msg was logged at least n times.
func (g *gateway) waitLogCount(msg string, n int) {
	g.t.Helper()
	for i := 0; i < 500; i++ {
		if g.countLogs(msg) >= n {
			return
		}
		if !g.running() {
			g.t.Fatalf("gateway exited while waiting for %q: %v", msg, g.exitErr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	g.t.Fatalf("gateway did not log %q %d times within 10 s (got %d)", msg, n, g.countLogs(msg))
}

// writeConfig replaces the config file atomically (write aside, rename).
func (g *gateway) writeConfig(cfg string) {
	g.t.Helper()
	tmp := g.cfgPath + ".tmp"
	if err := os.WriteFile(tmp, []byte(cfg), 0o644); err != nil {
		g.t.Fatal(err)
	}
	if err := os.Rename(tmp, g.cfgPath); err != nil {
		g.t.Fatal(err)
	}
}

// reload writes cfg and waits until the gateway applied a new config.
func (g *gateway) reload(cfg string) {
	g.t.Helper()
	n := g.applied()
	if n == 0 && g.wasReady {
		// A config was applied whose log line is not read yet: it
		// must not pass for the reload's.
		n = 1
	}
	g.writeConfig(cfg)
	g.waitLogCount("config applied", n+1)
}

// addr is ip:port of a gateway listener.
func (g *gateway) addr(port int) string { return net.JoinHostPort(g.ip, strconv.Itoa(port)) }

// url is http://ip:port + path.
func (g *gateway) url(port int, path string) string { return "http://" + g.addr(port) + path }

// ---------------------------------------------------------------------------
// Backends.

// echo is what a backend answers: who it is and what it received.
type echo struct {
	Name     string      `json:"name"`
	Method   string      `json:"method"`
	Path     string      `json:"path"`
	RawQuery string      `json:"rawQuery"`
	Host     string      `json:"host"`
	Proto    string      `json:"proto"`
	Header   http.Header `json:"header"`
	Body     string      `json:"body,omitempty"`
	// TE is the request's Transfer-Encoding as the backend saw it, and
	// ContentLength its Content-Length (-1 when unknown).
	TE            []string `json:"te,omitempty"`
	ContentLength int64    `json:"contentLength"`
}

// backend is an HTTP/1.1 server on 127.0.0.1 that answers every request
// with an echo, tagged with its name in the body and the X-Backend header.
// A "delay" query parameter (a Go duration, at most 10 s) makes it wait
// before answering, or until the request is canceled.
type backend struct {
	name string
	srv  *httptest.Server
	port int

	mu   sync.Mutex
	seen []echo
	// hook, when set, runs first; returning true means it answered.
	hook func(w http.ResponseWriter, r *http.Request) bool
}

func newBackend(t *testing.T, name string) *backend {
	t.Helper()
	return startBackend(t, name, false)
}

// newH2CBackend is a backend that also speaks cleartext HTTP/2 with prior
// knowledge.
func newH2CBackend(t *testing.T, name string) *backend {
	t.Helper()
	return startBackend(t, name, true)
}

func startBackend(t *testing.T, name string, h2c bool) *backend {
	t.Helper()
	b := &backend{name: name}
	b.srv = httptest.NewUnstartedServer(http.HandlerFunc(b.serve))
	if h2c {
		p := &http.Protocols{}
		p.SetHTTP1(true)
		p.SetUnencryptedHTTP2(true)
		b.srv.Config.Protocols = p
	}
	b.srv.Start()
	t.Cleanup(b.srv.Close)
	b.port = b.srv.Listener.Addr().(*net.TCPAddr).Port
	return b
}

func (b *backend) serve(w http.ResponseWriter, r *http.Request) {
	e := echo{
		Name: b.name, Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery,
		Host: r.Host, Proto: r.Proto, Header: r.Header.Clone(),
		TE: r.TransferEncoding, ContentLength: r.ContentLength,
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	e.Body = string(body)
	b.mu.Lock()
	b.seen = append(b.seen, e)
	hook := b.hook
	b.mu.Unlock()
	if hook != nil && hook(w, r) {
		return
	}
	if d, err := time.ParseDuration(r.URL.Query().Get("delay")); err == nil && d > 0 {
		select {
		case <-time.After(min(d, 10*time.Second)):
		case <-r.Context().Done():
			return
		}
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Backend", b.name)
	h.Set("X-Backend-Remove", "backend")
	h.Set("X-Resp-Set", "backend")
	json.NewEncoder(w).Encode(e)
}

func (b *backend) setHook(h func(w http.ResponseWriter, r *http.Request) bool) {
	b.mu.Lock()
	b.hook = h
	b.mu.Unlock()
}

// requests returns a copy of the requests seen so far.
func (b *backend) requests() []echo {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]echo(nil), b.seen...)
}

// sawPath reports whether the backend received a request for path.
func (b *backend) sawPath(path string) bool {
	for _, e := range b.requests() {
		if e.Path == path {
			return true
		}
	}
	return false
}

// yaml is the Meshgate Backend object pointing at this server.
func (b *backend) yaml() string { return backendYAML(b.name, b.port) }

// ---------------------------------------------------------------------------
// Config builders.

// listener is one Gateway listener.
type listener struct {
	name     string
	port     int
	protocol string // HTTP (default) or HTTPS
	hostname string
	certs    []string // Secret names, for HTTPS
}

// gatewayYAML is a GatewayClass plus a Gateway "gw" in namespace default,
// bound on ip, with the given listeners.
func gatewayYAML(ip string, ls ...listener) string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: meshgate
spec:
  controllerName: gateway.meshgate.dev/controller
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gw
  namespace: default
spec:
  gatewayClassName: meshgate
  addresses:
  - type: IPAddress
    value: %s
  listeners:
`, ip)
	for _, l := range ls {
		proto := l.protocol
		if proto == "" {
			proto = "HTTP"
		}
		fmt.Fprintf(&b, "  - name: %s\n    protocol: %s\n    port: %d\n", l.name, proto, l.port)
		if l.hostname != "" {
			fmt.Fprintf(&b, "    hostname: %q\n", l.hostname)
		}
		if len(l.certs) > 0 {
			b.WriteString("    tls:\n      mode: Terminate\n      certificateRefs:\n")
			for _, c := range l.certs {
				fmt.Fprintf(&b, "      - name: %s\n", c)
			}
		}
	}
	return b.String()
}

// backendYAML is a Meshgate Backend with one endpoint on 127.0.0.1.
func backendYAML(name string, port int) string {
	return fmt.Sprintf(`---
apiVersion: gateway.meshgate.dev/v1alpha1
kind: Backend
metadata:
  name: %s
  namespace: default
spec:
  endpoints:
  - address: 127.0.0.1
    port: %d
`, name, port)
}

// ref is a backendRef to a Meshgate Backend, as a YAML flow mapping.
func ref(name string) string {
	return fmt.Sprintf("{group: gateway.meshgate.dev, kind: Backend, name: %s}", name)
}

// wref is ref with a weight.
func wref(name string, weight int) string {
	return fmt.Sprintf("{group: gateway.meshgate.dev, kind: Backend, name: %s, weight: %d}", name, weight)
}

// simpleRoute is an HTTPRoute on Gateway gw sending everything under
// hostnames (none: any) to one backend.
func simpleRoute(name string, hostnames []string, backendName string) string {
	hs := ""
	if len(hostnames) > 0 {
		hs = "  hostnames: [" + quoteAll(hostnames) + "]\n"
	}
	return fmt.Sprintf(`---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: %s
  namespace: default
spec:
  parentRefs:
  - name: gw
%s  rules:
  - backendRefs:
    - %s
`, name, hs, ref(backendName))
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

// indent prefixes every line of s with n spaces.
func indent(s string, n int) string {
	pad := strings.Repeat(" ", n)
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = pad + l
	}
	return strings.Join(lines, "\n")
}

// ---------------------------------------------------------------------------
// Clients.

// result is a response as the tests look at it.
type result struct {
	status int
	proto  string
	header http.Header
	body   string
	echo   *echo // nil when the body is not a backend echo
	reused bool  // the request went on a reused connection
}

func (r result) backend() string {
	if r.echo == nil {
		return ""
	}
	return r.echo.Name
}

func (r result) String() string {
	return fmt.Sprintf("%d %s backend=%q body=%q", r.status, r.proto, r.backend(), truncate(r.body, 300))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// newClient is an HTTP client that does not follow redirects and dials
// from 127.0.0.1.
func newClient() *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}}
	return &http.Client{
		Timeout: 20 * time.Second,
		Transport: &http.Transport{
			DialContext:         d.DialContext,
			MaxIdleConnsPerHost: 16,
			DisableCompression:  true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

var defaultClient = newClient()

// request describes one request for do.
type request struct {
	method string
	url    string
	host   string // Host header; empty: from url
	header http.Header
	body   string
}

// do sends req with c and reads the whole response.
func do(t *testing.T, c *http.Client, req request) result {
	t.Helper()
	r, err := tryDo(c, req)
	if err != nil {
		t.Fatalf("%s %s (Host %s): %v", req.method, req.url, req.host, err)
	}
	return r
}

func tryDo(c *http.Client, req request) (result, error) {
	method := req.method
	if method == "" {
		method = http.MethodGet
	}
	var body io.Reader
	if req.body != "" {
		body = strings.NewReader(req.body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var reused atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { reused.Store(i.Reused) },
	})
	hr, err := http.NewRequestWithContext(ctx, method, req.url, body)
	if err != nil {
		return result{}, err
	}
	for k, vs := range req.header {
		hr.Header[k] = vs
	}
	if req.host != "" {
		hr.Host = req.host
	}
	resp, err := c.Do(hr)
	if err != nil {
		return result{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return result{}, fmt.Errorf("read body: %w", err)
	}
	res := result{status: resp.StatusCode, proto: resp.Proto, header: resp.Header, body: string(b), reused: reused.Load()}
	var e echo
	if resp.Header.Get("X-Backend") != "" && json.Unmarshal(b, &e) == nil {
		res.echo = &e
	}
	return res, nil
}

// get is do for a GET of url with Host host.
func get(t *testing.T, url, host string) result {
	t.Helper()
	return do(t, defaultClient, request{url: url, host: host})
}

// rawDial opens a TCP connection from 127.0.0.1 to addr.
func rawDial(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// rawResult is the outcome of a raw exchange.
type rawResult struct {
	resp *http.Response
	body string
	echo *echo
	// closed is true when the server closed the connection after the
	// response; rest is anything it sent after the response.
	closed bool
	rest   string
	// bodyErr is a connection reset that cut the body short.
	bodyErr error
}

// readRaw reads one response from br (for a request with method).
func readRaw(t *testing.T, c net.Conn, br *bufio.Reader, method string) rawResult {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		// A reset right after an error response (the server closing
		// with unread request bytes) may cut the body; the status and
		// headers are what the tests look at then.
		t.Fatalf("read response body: %v", err)
	}
	rr := rawResult{resp: resp, body: string(b), bodyErr: err}
	var e echo
	if resp.Header.Get("X-Backend") != "" && json.Unmarshal(b, &e) == nil {
		rr.echo = &e
	}
	return rr
}

// rawExchange writes payload on a new connection to addr and reads one
// response. With waitClose it then checks whether the server closes the
// connection (waiting at most 3 s) and keeps anything more it sends.
func rawExchange(t *testing.T, addr, payload string, waitClose bool) rawResult {
	t.Helper()
	c := rawDial(t, addr)
	if _, err := io.WriteString(c, payload); err != nil {
		t.Fatalf("write: %v", err)
	}
	br := bufio.NewReader(c)
	rr := readRaw(t, c, br, strings.SplitN(payload, " ", 2)[0])
	if !waitClose {
		return rr
	}
	if rr.bodyErr != nil {
		rr.closed = true
		return rr
	}
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	rest, err := io.ReadAll(br)
	rr.rest = string(rest)
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		rr.closed = false
	default: // EOF or reset
		rr.closed = true
	}
	return rr
}

// waitRefused polls until connecting to addr is refused (at most 5 s).
func waitRefused(t *testing.T, addr string) {
	t.Helper()
	var last error
	for i := 0; i < 250; i++ {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			if errors.Is(err, syscall.ECONNREFUSED) {
				return
			}
			last = err
		} else {
			c.Close()
			last = nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s still accepts connections after 5 s (last error: %v)", addr, last)
}

// pollUntil retries f every 50 ms until it returns true, at most timeout.
func pollUntil(timeout time.Duration, f func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if f() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}
