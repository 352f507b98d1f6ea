package healthcheck

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/meshgate/meshgate/ir"
)

// waitFor polls cond until it holds or a 5 s deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type event struct {
	backend, address string
	healthy          bool
}

type recorder struct {
	mu     sync.Mutex
	events []event
	// onReport, when set, runs inside SetHealth.
	onReport func(event)
}

func (r *recorder) SetHealth(backend, address string, healthy bool) {
	e := event{backend, address, healthy}
	r.mu.Lock()
	r.events = append(r.events, e)
	f := r.onReport
	r.mu.Unlock()
	if f != nil {
		f(e)
	}
}

func (r *recorder) get() []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event(nil), r.events...)
}

func statusOf(c *Checker, backend, address string) (EndpointStatus, bool) {
	for _, s := range c.Status() {
		if s.Backend == backend && s.Address == address {
			return s, true
		}
	}
	return EndpointStatus{}, false
}

// probeOnce runs a single probe of b's first endpoint.
func probeOnce(c *Checker, b *ir.Backend) error {
	l := c.newLoop(loopKey{b.Name, b.Endpoints[0].Address}, settingsOf(b))
	if l.transport != nil {
		defer l.transport.CloseIdleConnections()
	}
	return c.probe(context.Background(), l)
}

func backend(name string, hc *ir.HealthCheck, addrs ...string) *ir.Backend {
	b := &ir.Backend{Name: name, Protocol: ir.BackendHTTP1, HealthCheck: hc}
	for _, a := range addrs {
		b.Endpoints = append(b.Endpoints, ir.Endpoint{Address: a})
	}
	return b
}

// refusedAddr returns a loopback address nothing listens on.
func refusedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// silentServer accepts connections and never answers.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String()
}

func TestStateObserve(t *testing.T) {
	fail := errors.New("boom")
	tests := []struct {
		name       string
		results    []error
		healthyN   int
		unhealthyN int
		wantFlips  []int // indexes of results that flip health
		wantHealth bool
	}{
		{"all good", []error{nil, nil, nil}, 1, 3, nil, true},
		{"two failures stay healthy", []error{fail, fail}, 1, 3, nil, true},
		{"third failure flips", []error{fail, fail, fail, fail}, 1, 3, []int{2}, false},
		{"success resets failures", []error{fail, fail, nil, fail, fail}, 1, 3, nil, true},
		{"recover after one", []error{fail, nil}, 1, 1, []int{0, 1}, true},
		{"recover after two", []error{fail, nil, fail, nil, nil, nil}, 2, 1, []int{0, 4}, true},
		{"unhealthy stays", []error{fail, fail, fail}, 1, 1, []int{0}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := state{healthy: true}
			var flips []int
			for i, err := range tt.results {
				if s.observe(err, time.Now(), tt.healthyN, tt.unhealthyN) {
					flips = append(flips, i)
				}
			}
			if fmt.Sprint(flips) != fmt.Sprint(tt.wantFlips) || s.healthy != tt.wantHealth {
				t.Errorf("flips %v healthy %v, want %v %v", flips, s.healthy, tt.wantFlips, tt.wantHealth)
			}
		})
	}
}

func TestSettingsByValue(t *testing.T) {
	base := func() *ir.Backend {
		return &ir.Backend{
			Name:        "b",
			Protocol:    ir.BackendHTTP1,
			HealthCheck: &ir.HealthCheck{Type: ir.HealthHTTP, ExpectedStatuses: []int{204, 200}},
			TLS:         &ir.UpstreamTLS{ServerName: "x", CAPEM: []byte("pem")},
		}
	}
	tests := []struct {
		name  string
		edit  func(*ir.Backend)
		equal bool
	}{
		{"fresh copy", func(*ir.Backend) {}, true},
		{"explicit defaults", func(b *ir.Backend) {
			b.HealthCheck.Interval = DefaultInterval
			b.HealthCheck.Timeout = DefaultTimeout
			b.HealthCheck.HealthyThreshold = DefaultHealthyThreshold
			b.HealthCheck.UnhealthyThreshold = DefaultUnhealthyThreshold
			b.HealthCheck.Path = "/"
		}, true},
		{"statuses reordered", func(b *ir.Backend) { b.HealthCheck.ExpectedStatuses = []int{200, 204} }, true},
		{"endpoints differ", func(b *ir.Backend) { b.Endpoints = []ir.Endpoint{{Address: "1.2.3.4:1"}} }, true},
		{"interval", func(b *ir.Backend) { b.HealthCheck.Interval = time.Second }, false},
		{"path", func(b *ir.Backend) { b.HealthCheck.Path = "/healthz" }, false},
		{"statuses", func(b *ir.Backend) { b.HealthCheck.ExpectedStatuses = []int{200} }, false},
		{"type", func(b *ir.Backend) { b.HealthCheck.Type = ir.HealthTCP }, false},
		{"CA", func(b *ir.Backend) { b.TLS.CAPEM = []byte("other") }, false},
		{"no TLS", func(b *ir.Backend) { b.TLS = nil }, false},
		{"protocol", func(b *ir.Backend) { b.Protocol = ir.BackendH2C }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := base()
			tt.edit(b)
			if got := settingsOf(base()) == settingsOf(b); got != tt.equal {
				t.Errorf("equal = %v, want %v", got, tt.equal)
			}
		})
	}
}

func TestProbeHTTP(t *testing.T) {
	var gotUA, gotHost, gotPath atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotUA.Store(r.UserAgent())
		gotHost.Store(r.Host)
		gotPath.Store(r.URL.RequestURI())
		code := 200
		fmt.Sscanf(strings.TrimPrefix(r.URL.Path, "/"), "%d", &code)
		w.WriteHeader(code)
		w.Write([]byte(strings.Repeat("x", 64<<10))) // more than is read
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()

	tests := []struct {
		name     string
		path     string
		host     string
		expected []int
		healthy  bool
		wantHost string
		wantPath string
	}{
		{"default path 200", "", "", nil, true, addr, "/"},
		{"503 unhealthy", "/503", "", nil, false, addr, "/503"},
		{"302 healthy by default", "/302", "", nil, true, addr, "/302"},
		{"399 healthy by default", "/399", "", nil, true, addr, "/399"},
		{"404 unhealthy by default", "/404", "", nil, false, addr, "/404"},
		{"404 expected", "/404", "", []int{200, 404}, true, addr, "/404"},
		{"200 not expected", "/200", "", []int{204}, false, addr, "/200"},
		{"host header and query", "/200?probe=1", "svc.example", nil, true, "svc.example", "/200?probe=1"},
		{"path without slash", "204", "", nil, true, addr, "/204"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hc := &ir.HealthCheck{Type: ir.HealthHTTP, Path: tt.path, Host: tt.host, ExpectedStatuses: tt.expected}
			err := probeOnce(&Checker{}, backend("b", hc, addr))
			if (err == nil) != tt.healthy {
				t.Fatalf("probe error %v, want healthy %v", err, tt.healthy)
			}
			if ua := gotUA.Load(); ua != UserAgent {
				t.Errorf("User-Agent %q", ua)
			}
			if h := gotHost.Load(); h != tt.wantHost {
				t.Errorf("Host %q, want %q", h, tt.wantHost)
			}
			if p := gotPath.Load(); p != tt.wantPath {
				t.Errorf("path %q, want %q", p, tt.wantPath)
			}
		})
	}
}

func TestProbeHTTPH2C(t *testing.T) {
	var proto atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto.Store(int32(r.ProtoMajor))
	}))
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	defer srv.Close()
	b := backend("b", &ir.HealthCheck{Type: ir.HealthHTTP}, srv.Listener.Addr().String())
	b.Protocol = ir.BackendH2C
	if err := probeOnce(&Checker{}, b); err != nil {
		t.Fatal(err)
	}
	if proto.Load() != 2 {
		t.Errorf("probe spoke HTTP/%d, want 2", proto.Load())
	}
}

func TestProbeTimeout(t *testing.T) {
	addr := silentServer(t)
	for _, typ := range []ir.HealthCheckType{ir.HealthHTTP, ir.HealthGRPC} {
		t.Run(string(typ), func(t *testing.T) {
			b := backend("b", &ir.HealthCheck{Type: typ, Timeout: 50 * time.Millisecond}, addr)
			done := make(chan error, 1)
			go func() { done <- probeOnce(&Checker{}, b) }()
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("probe of a silent server succeeded")
				}
			case <-time.After(5 * time.Second):
				t.Fatal("probe not bounded by its timeout")
			}
		})
	}
}

func TestProbeHTTPTLS(t *testing.T) {
	var proto atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto.Store(int32(r.ProtoMajor))
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})

	tests := []struct {
		name      string
		tls       *ir.UpstreamTLS
		protocol  ir.BackendProtocol
		healthy   bool
		wantProto int32
	}{
		{"test CA", &ir.UpstreamTLS{ServerName: "example.com", CAPEM: caPEM}, ir.BackendHTTP1, true, 1},
		{"test CA h2", &ir.UpstreamTLS{ServerName: "example.com", CAPEM: caPEM}, ir.BackendH2C, true, 2},
		{"wrong server name", &ir.UpstreamTLS{ServerName: "other.test", CAPEM: caPEM}, ir.BackendHTTP1, false, 0},
		{"system roots", &ir.UpstreamTLS{ServerName: "example.com"}, ir.BackendHTTP1, false, 0},
		{"bad CA", &ir.UpstreamTLS{ServerName: "example.com", CAPEM: []byte("junk")}, ir.BackendHTTP1, false, 0},
		{"plaintext to TLS", nil, ir.BackendHTTP1, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proto.Store(0)
			b := backend("b", &ir.HealthCheck{Type: ir.HealthHTTP}, addr)
			b.TLS = tt.tls
			b.Protocol = tt.protocol
			err := probeOnce(&Checker{}, b)
			if (err == nil) != tt.healthy {
				t.Fatalf("probe error %v, want healthy %v", err, tt.healthy)
			}
			if tt.healthy && proto.Load() != tt.wantProto {
				t.Errorf("probe spoke HTTP/%d, want %d", proto.Load(), tt.wantProto)
			}
		})
	}
}

func TestProbeTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	tests := []struct {
		name    string
		addr    string
		healthy bool
	}{
		{"accepting", ln.Addr().String(), true},
		{"refused", refusedAddr(t), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := probeOnce(&Checker{}, backend("b", &ir.HealthCheck{Type: ir.HealthTCP}, tt.addr))
			if (err == nil) != tt.healthy {
				t.Fatalf("probe error %v, want healthy %v", err, tt.healthy)
			}
		})
	}
}

// grpcServer serves the standard health service: "" and "up" SERVING,
// "down" NOT_SERVING.
func grpcServer(t *testing.T, opts ...grpc.ServerOption) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(opts...)
	hs := health.NewServer()
	hs.SetServingStatus("up", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("down", healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(s, hs)
	go s.Serve(ln)
	t.Cleanup(s.Stop)
	return ln.Addr().String()
}

func TestProbeGRPC(t *testing.T) {
	plain := grpcServer(t)
	tlsSrv := httptest.NewTLSServer(http.NotFoundHandler()) // for its test certificate
	tlsSrv.Close()
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw})
	secure := grpcServer(t, grpc.Creds(credentials.NewServerTLSFromCert(&tlsSrv.TLS.Certificates[0])))

	goodTLS := &ir.UpstreamTLS{ServerName: "example.com", CAPEM: caPEM}
	tests := []struct {
		name    string
		addr    string
		service string
		tls     *ir.UpstreamTLS
		healthy bool
		errHas  string
	}{
		{"server SERVING", plain, "", nil, true, ""},
		{"service SERVING", plain, "up", nil, true, ""},
		{"NOT_SERVING", plain, "down", nil, false, "NOT_SERVING"},
		{"unknown service", plain, "nope", nil, false, "NotFound"},
		{"refused", refusedAddr(t), "", nil, false, ""},
		{"TLS SERVING", secure, "up", goodTLS, true, ""},
		{"TLS NOT_SERVING", secure, "down", goodTLS, false, "NOT_SERVING"},
		{"TLS wrong name", secure, "", &ir.UpstreamTLS{ServerName: "other.test", CAPEM: caPEM}, false, ""},
		{"h2c to TLS server", secure, "", nil, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := backend("b", &ir.HealthCheck{Type: ir.HealthGRPC, GRPCService: tt.service}, tt.addr)
			b.Protocol = ir.BackendH2C
			b.TLS = tt.tls
			err := probeOnce(&Checker{}, b)
			if (err == nil) != tt.healthy {
				t.Fatalf("probe error %v, want healthy %v", err, tt.healthy)
			}
			if err != nil && !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("error %q does not mention %q", err, tt.errHas)
			}
		})
	}
}

func TestThresholds(t *testing.T) {
	var failing atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()

	rec := &recorder{}
	c := &Checker{Reporter: rec}
	defer c.Close()
	// The status seen by the reporter at each transition.
	var atReport []EndpointStatus
	var mu sync.Mutex
	rec.onReport = func(event) {
		s, _ := statusOf(c, "b", addr)
		mu.Lock()
		atReport = append(atReport, s)
		mu.Unlock()
	}
	c.Update(context.Background(), []*ir.Backend{backend("b", &ir.HealthCheck{
		Type: ir.HealthHTTP, Interval: 10 * time.Millisecond, Timeout: time.Second,
		HealthyThreshold: 2, UnhealthyThreshold: 3,
	}, addr)})

	waitFor(t, "successful probes", func() bool {
		s, _ := statusOf(c, "b", addr)
		return s.ConsecutiveSuccesses >= 3
	})
	if ev := rec.get(); len(ev) != 0 {
		t.Fatalf("a healthy endpoint reported %v", ev)
	}

	failing.Store(true)
	waitFor(t, "unhealthy report", func() bool { return len(rec.get()) == 1 })
	waitFor(t, "more failures", func() bool {
		s, _ := statusOf(c, "b", addr)
		return s.ConsecutiveFailures >= 6
	})
	failing.Store(false)
	waitFor(t, "healthy report", func() bool { return len(rec.get()) == 2 })
	waitFor(t, "more successes", func() bool {
		s, _ := statusOf(c, "b", addr)
		return s.ConsecutiveSuccesses >= 5
	})

	want := []event{{"b", addr, false}, {"b", addr, true}}
	if got := rec.get(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if s := atReport[0]; s.Healthy || s.ConsecutiveFailures != 3 || !strings.Contains(s.LastError, "503") {
		t.Errorf("at unhealthy report: %+v", s)
	}
	if s := atReport[1]; !s.Healthy || s.ConsecutiveSuccesses != 2 || s.LastError != "" {
		t.Errorf("at healthy report: %+v", s)
	}
}

func TestUpdate(t *testing.T) {
	bad := refusedAddr(t)
	bad2 := refusedAddr(t)
	hc := func() *ir.HealthCheck {
		return &ir.HealthCheck{Type: ir.HealthTCP, Interval: 10 * time.Millisecond,
			Timeout: time.Second, UnhealthyThreshold: 2}
	}
	rec := &recorder{}
	c := &Checker{Reporter: rec}
	defer c.Close()
	loopOf := func(b, a string) *loop {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.loops[loopKey{b, a}]
	}
	failures := func(b, a string) int {
		s, _ := statusOf(c, b, a)
		return s.ConsecutiveFailures
	}

	c.Update(context.Background(), []*ir.Backend{
		backend("a", hc(), bad, bad2),
		backend("b", hc(), bad),
		backend("plain", nil, bad), // no health check: no loop
	})
	if got := len(c.Status()); got != 3 {
		t.Fatalf("%d loops, want 3: %+v", got, c.Status())
	}
	waitFor(t, "failures", func() bool { return failures("a", bad) >= 4 && failures("b", bad) >= 4 })
	waitFor(t, "unhealthy reports", func() bool { return len(rec.get()) == 3 })
	la, lb := loopOf("a", bad), loopOf("b", bad)

	// Same settings in new values, one endpoint of "a" dropped, "b"
	// changed: "a"'s remaining loop keeps running with its counters.
	n := failures("a", bad)
	changed := hc()
	changed.Path = "/x" // irrelevant to TCP but a settings change all the same
	c.Update(context.Background(), []*ir.Backend{
		backend("a", hc(), bad),
		backend("a", &ir.HealthCheck{Type: ir.HealthHTTP}, bad), // duplicate name: first wins
		backend("b", changed, bad),
	})
	if loopOf("a", bad) != la {
		t.Error("unchanged loop was restarted")
	}
	if got := failures("a", bad); got < n {
		t.Errorf("kept loop's failures went from %d to %d", n, got)
	}
	if loopOf("a", bad2) != nil {
		t.Error("removed endpoint still has a loop")
	}
	if l := loopOf("b", bad); l == nil || l == lb {
		t.Error("changed health check did not restart the loop")
	}
	select {
	case <-lb.done:
	default:
		t.Error("replaced loop still running")
	}
	// Stopped unhealthy loops withdraw their report.
	ev := rec.get()[3:]
	if len(ev) != 2 || !ev[0].healthy || !ev[1].healthy {
		t.Errorf("withdrawals %v", ev)
	}
	waitFor(t, "restarted loop unhealthy again", func() bool {
		s, _ := statusOf(c, "b", bad)
		return !s.Healthy
	})

	c.Update(context.Background(), nil)
	if s := c.Status(); len(s) != 0 {
		t.Errorf("loops left after removing every backend: %+v", s)
	}
	select {
	case <-la.done:
	default:
		t.Error("removed loop still running")
	}
}

func TestCloseStopsEverything(t *testing.T) {
	httpSrv := httptest.NewServer(http.NotFoundHandler())
	defer httpSrv.Close()
	grpcAddr := grpcServer(t)
	silent := silentServer(t)
	refused := refusedAddr(t)
	runtime.GC()
	before := runtime.NumGoroutine()

	backends := []*ir.Backend{}
	for i := range 20 {
		iv, to := 10*time.Millisecond, 100*time.Millisecond
		backends = append(backends,
			backend(fmt.Sprint("http", i), &ir.HealthCheck{Type: ir.HealthHTTP, Interval: iv, Timeout: to}, httpSrv.Listener.Addr().String(), silent),
			backend(fmt.Sprint("grpc", i), &ir.HealthCheck{Type: ir.HealthGRPC, Interval: iv, Timeout: to}, grpcAddr, refused),
			backend(fmt.Sprint("tcp", i), &ir.HealthCheck{Type: ir.HealthTCP, Interval: iv, Timeout: to}, refused, silent),
		)
	}
	settled := func(what string) {
		t.Helper()
		waitFor(t, what, func() bool { return runtime.NumGoroutine() <= before })
	}

	c := &Checker{Reporter: &recorder{}}
	c.Update(context.Background(), backends)
	waitFor(t, "every endpoint probed", func() bool {
		st := c.Status()
		for _, s := range st {
			if s.LastCheck.IsZero() {
				return false
			}
		}
		return len(st) == 120
	})
	if runtime.NumGoroutine() < before+120 {
		t.Fatalf("%d goroutines, want one per loop over %d", runtime.NumGoroutine(), before)
	}
	c.Update(context.Background(), nil)
	settled("goroutines after removing every backend")

	c.Update(context.Background(), backends)
	c.Close()
	if s := c.Status(); len(s) != 0 {
		t.Errorf("loops left after Close: %+v", s)
	}
	settled("goroutines after Close")
	c.Update(context.Background(), backends) // after Close: nothing starts
	if s := c.Status(); len(s) != 0 {
		t.Errorf("Update after Close started loops: %+v", s)
	}
}
