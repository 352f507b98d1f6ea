package metrics

import (
	"sync"
	"testing"
	"time"

	"github.com/meshgate/meshgate/obs"
)

// okRequest is a routed, proxied request; cases change what they test.
func okRequest() obs.Request {
	return obs.Request{
		Start: time.Unix(1700000000, 0), Duration: 30 * time.Millisecond,
		Listener: "0.0.0.0:8080", Gateway: "default/gw/http",
		Route: "default/web", Rule: 0, Backend: "default/web-svc", Endpoint: "10.0.0.1:80",
		Method: "GET", Host: "example.com", Path: "/users/42", Proto: "HTTP/1.1", Client: "192.0.2.1:5555",
		Status: 200, BytesReceived: 100, BytesSent: 5000,
		UpstreamConnect: time.Millisecond, UpstreamFirstByte: 20 * time.Millisecond,
	}
}

func TestRequestsTotalLabels(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(r *obs.Request)
		series string
	}{
		{"routed", func(*obs.Request) {},
			`{backend="default/web-svc",code_class="2xx",grpc_status="",listener="default/gw/http",method="GET",proto="HTTP/1.1",route="default/web"}`},
		{"unknown method", func(r *obs.Request) { r.Method = "PROPFIND" },
			`{backend="default/web-svc",code_class="2xx",grpc_status="",listener="default/gw/http",method="OTHER",proto="HTTP/1.1",route="default/web"}`},
		{"methods are case-sensitive", func(r *obs.Request) { r.Method = "get" },
			`{backend="default/web-svc",code_class="2xx",grpc_status="",listener="default/gw/http",method="OTHER",proto="HTTP/1.1",route="default/web"}`},
		{"no route", func(r *obs.Request) {
			r.Gateway, r.Route, r.Rule, r.Backend, r.Status, r.Reason = "", "", -1, "", 404, "no_route"
		}, `{backend="none",code_class="4xx",grpc_status="",listener="none",method="GET",proto="HTTP/1.1",route="none"}`},
		{"aborted", func(r *obs.Request) { r.Status, r.Reason = 0, "upstream_reset" },
			`{backend="default/web-svc",code_class="aborted",grpc_status="",listener="default/gw/http",method="GET",proto="HTTP/1.1",route="default/web"}`},
		{"server error", func(r *obs.Request) { r.Status = 503 },
			`{backend="default/web-svc",code_class="5xx",grpc_status="",listener="default/gw/http",method="GET",proto="HTTP/1.1",route="default/web"}`},
		{"odd status", func(r *obs.Request) { r.Status = 799 },
			`{backend="default/web-svc",code_class="other",grpc_status="",listener="default/gw/http",method="GET",proto="HTTP/1.1",route="default/web"}`},
		{"websocket", func(r *obs.Request) { r.Status, r.Upgrade = 101, "websocket" },
			`{backend="default/web-svc",code_class="1xx",grpc_status="",listener="default/gw/http",method="GET",proto="HTTP/1.1",route="default/web"}`},
		{"grpc", func(r *obs.Request) { r.Method, r.Proto, r.GRPC, r.GRPCStatus = "POST", "HTTP/2.0", true, "14" },
			`{backend="default/web-svc",code_class="2xx",grpc_status="14",listener="default/gw/http",method="POST",proto="HTTP/2.0",route="default/web"}`},
		{"grpc without status", func(r *obs.Request) { r.Method, r.Proto, r.GRPC = "POST", "HTTP/2.0", true },
			`{backend="default/web-svc",code_class="2xx",grpc_status="none",listener="default/gw/http",method="POST",proto="HTTP/2.0",route="default/web"}`},
		{"grpc bogus status", func(r *obs.Request) { r.Proto, r.GRPC, r.GRPCStatus = "HTTP/3.0", true, "99" },
			`{backend="default/web-svc",code_class="2xx",grpc_status="other",listener="default/gw/http",method="GET",proto="HTTP/3.0",route="default/web"}`},
		{"unknown proto", func(r *obs.Request) { r.Proto = "HTTP/9" },
			`{backend="default/web-svc",code_class="2xx",grpc_status="",listener="default/gw/http",method="GET",proto="other",route="default/web"}`},
		{"invalid utf-8 name", func(r *obs.Request) { r.Route = "default/\xff" },
			`{backend="default/web-svc",code_class="2xx",grpc_status="",listener="default/gw/http",method="GET",proto="HTTP/1.1",route="default/�"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New(Options{})
			r := okRequest()
			tt.edit(&r)
			m.ObserveRequest(&r)
			m.ObserveRequest(&r)
			want := "meshgate_http_requests_total" + tt.series + " 2"
			if got := dump(t, m.Registry(), "meshgate_http_requests_total"); got != want {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
}

func TestGatewayErrors(t *testing.T) {
	tests := []struct {
		reason, backend string
		wantReason      string
		wantUpstream    bool
	}{
		{"no_route", "", "no_route", false},
		{"redirect", "", "redirect", false},
		{"upstream_timeout", "default/web-svc", "upstream_timeout", true},
		{"upstream_connect_failure", "default/web-svc", "upstream_connect_failure", true},
		{"no_healthy_upstream", "", "no_healthy_upstream", true},
		{"circuit_open", "default/web-svc", "circuit_open", true},
		{"rate_limited", "", "rate_limited", false},
		{"rate_limit_unavailable", "", "rate_limit_unavailable", false},
		{"fault_abort", "default/web-svc", "fault_abort", false},
		{"overloaded", "", "overloaded", false},
		{"ambiguous_path", "", "ambiguous_path", false},
		{"underscore_header", "", "underscore_header", false},
		{"connect_not_allowed", "", "connect_not_allowed", false},
		{"something_new", "default/web-svc", "other", false},
	}
	for _, tt := range tests {
		t.Run(tt.reason, func(t *testing.T) {
			m := New(Options{})
			r := okRequest()
			r.Reason, r.Backend, r.Status = tt.reason, tt.backend, 503
			m.ObserveRequest(&r)
			m.ObserveRequest(&r)
			for _, reason := range reasons {
				want := 0.0
				if reason == tt.wantReason {
					want = 2
				}
				got, ok := value(t, m.Registry(), "meshgate_gateway_errors_total", map[string]string{"reason": reason})
				if !ok || got != want {
					t.Errorf("gateway_errors_total{reason=%q} = %v (present %v), want %v", reason, got, ok, want)
				}
			}
			n := count(t, m.Registry(), "meshgate_upstream_errors_total")
			if !tt.wantUpstream {
				if n != 0 {
					t.Errorf("upstream_errors_total has %d series, want none", n)
				}
				return
			}
			got, ok := value(t, m.Registry(), "meshgate_upstream_errors_total",
				map[string]string{"backend": labelValue(tt.backend), "reason": tt.wantReason})
			if !ok || got != 2 || n != 1 {
				t.Errorf("upstream_errors_total = %v (present %v, %d series), want 2 in 1 series", got, ok, n)
			}
		})
	}
}

func TestRetries(t *testing.T) {
	m := New(Options{})
	r := okRequest()
	m.ObserveRequest(&r) // not retried: the series exists at 0
	if got := dump(t, m.Registry(), "meshgate_upstream_retries_total"); got != `meshgate_upstream_retries_total{backend="default/web-svc",route="default/web"} 0` {
		t.Errorf("before any retry: %s", got)
	}
	r.Retries = 2
	m.ObserveRequest(&r)
	r.Retries, r.Status, r.Reason = 1, 504, "upstream_timeout"
	m.ObserveRequest(&r)
	o := okRequest()
	o.Route, o.Backend, o.Retries = "default/api", "default/api-svc", 3
	m.ObserveRequest(&o)
	// Without a route or backend nothing can have been retried: no series.
	n := okRequest()
	n.Route, n.Backend, n.Status, n.Reason = "", "", 404, "no_route"
	m.ObserveRequest(&n)
	n = okRequest()
	n.Backend, n.Status, n.Reason = "", 500, "no_valid_backend"
	m.ObserveRequest(&n)
	want := `meshgate_upstream_retries_total{backend="default/api-svc",route="default/api"} 3
meshgate_upstream_retries_total{backend="default/web-svc",route="default/web"} 3`
	if got := dump(t, m.Registry(), "meshgate_upstream_retries_total"); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestRateLimited(t *testing.T) {
	m := New(Options{})
	r := okRequest()
	m.ObserveRequest(&r) // a route's series exist from its first request
	r.Backend, r.Status, r.Reason = "", 429, "rate_limited"
	m.ObserveRequest(&r)
	m.ObserveRequest(&r)
	r.Status, r.Reason = 503, "rate_limit_unavailable"
	m.ObserveRequest(&r)
	o := okRequest()
	o.Route, o.Status, o.Reason = "default/api", 503, "circuit_open"
	m.ObserveRequest(&o)
	n := okRequest()
	n.Route, n.Backend, n.Status, n.Reason = "", "", 404, "no_route"
	m.ObserveRequest(&n)
	want := `meshgate_rate_limited_requests_total{reason="rate_limit_unavailable",route="default/api"} 0
meshgate_rate_limited_requests_total{reason="rate_limit_unavailable",route="default/web"} 1
meshgate_rate_limited_requests_total{reason="rate_limited",route="default/api"} 0
meshgate_rate_limited_requests_total{reason="rate_limited",route="default/web"} 2`
	if got := dump(t, m.Registry(), "meshgate_rate_limited_requests_total"); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if v, _ := value(t, m.Registry(), "meshgate_gateway_errors_total", map[string]string{"reason": "rate_limited"}); v != 2 {
		t.Errorf("gateway_errors_total{reason=rate_limited} = %v, want 2", v)
	}
}

func TestHistograms(t *testing.T) {
	tests := []struct {
		name                           string
		edit                           func(r *obs.Request)
		wantDuration, wantTTFB, wantUp uint64
	}{
		{"proxied, new connection", func(*obs.Request) {}, 1, 1, 1},
		{"pooled connection", func(r *obs.Request) { r.UpstreamConnect = 0 }, 1, 1, 0},
		{"gateway answered", func(r *obs.Request) { r.UpstreamConnect, r.UpstreamFirstByte = 0, 0 }, 1, 0, 0},
		{"websocket tunnel", func(r *obs.Request) { r.Status, r.Upgrade, r.Duration = 101, "websocket", time.Hour }, 0, 1, 1},
		{"websocket over h2", func(r *obs.Request) { r.Status, r.Upgrade, r.Duration = 200, "websocket", time.Hour }, 0, 1, 1},
		{"websocket refused", func(r *obs.Request) { r.Status, r.Upgrade = 403, "websocket" }, 1, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New(Options{})
			r := okRequest()
			tt.edit(&r)
			m.ObserveRequest(&r)
			class := codeClasses[classOf(r.Status)]
			n, sum, _ := histogramOf(t, m.Registry(), "meshgate_http_request_duration_seconds",
				map[string]string{"listener": "default/gw/http", "route": "default/web", "code_class": class})
			if n != tt.wantDuration || (n == 1 && sum != r.Duration.Seconds()) {
				t.Errorf("request duration: count %d sum %v, want count %d sum %v", n, sum, tt.wantDuration, r.Duration.Seconds())
			}
			backend := map[string]string{"backend": "default/web-svc"}
			if n, sum, _ := histogramOf(t, m.Registry(), "meshgate_upstream_request_duration_seconds", backend); n != tt.wantTTFB || (n == 1 && sum != 0.02) {
				t.Errorf("upstream duration: count %d sum %v, want %d", n, sum, tt.wantTTFB)
			}
			if n, sum, _ := histogramOf(t, m.Registry(), "meshgate_upstream_connect_duration_seconds", backend); n != tt.wantUp || (n == 1 && sum != 0.001) {
				t.Errorf("connect duration: count %d sum %v, want %d", n, sum, tt.wantUp)
			}
			lr := map[string]string{"listener": "default/gw/http", "route": "default/web"}
			if n, sum, _ := histogramOf(t, m.Registry(), "meshgate_http_request_size_bytes", lr); n != 1 || sum != 100 {
				t.Errorf("request size: count %d sum %v, want 1 and 100", n, sum)
			}
			if n, sum, _ := histogramOf(t, m.Registry(), "meshgate_http_response_size_bytes", lr); n != 1 || sum != 5000 {
				t.Errorf("response size: count %d sum %v, want 1 and 5000", n, sum)
			}
		})
	}
}

// TestObserveRequestConcurrent is for -race: many goroutines record the
// same and different combinations while scrapes run.
func TestObserveRequestConcurrent(t *testing.T) {
	m := New(Options{})
	routes := []string{"a/r1", "a/r2", "a/r3"}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := okRequest()
			for i := range 300 {
				r.Route = routes[(g+i)%len(routes)]
				r.Reason = ""
				if i%7 == 0 {
					r.Reason = "upstream_timeout"
				}
				m.ObserveRequest(&r)
			}
		}()
	}
	for range 5 {
		if _, err := m.Registry().Gather(); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	total := 0.0
	for _, route := range routes {
		v, _ := value(t, m.Registry(), "meshgate_http_requests_total", map[string]string{
			"listener": "default/gw/http", "route": route, "backend": "default/web-svc", "method": "GET",
			"code_class": "2xx", "grpc_status": "", "proto": "HTTP/1.1"})
		total += v
	}
	if total != 8*300 {
		t.Errorf("requests counted %v, want %d", total, 8*300)
	}
}

func TestObserveRequestAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates; make test runs this test again without -race")
	}
	m := New(Options{})
	r := okRequest()
	r.Reason, r.Retries = "upstream_timeout", 2
	l := okRequest()
	l.Backend, l.Status, l.Reason = "", 429, "rate_limited"
	m.ObserveRequest(&r) // first sight creates the children
	m.ObserveRequest(&l)
	if n := testing.AllocsPerRun(100, func() { m.ObserveRequest(&r); m.ObserveRequest(&l) }); n != 0 {
		t.Errorf("ObserveRequest allocates %v times per request, want 0", n)
	}
}

// TestObserveRequestMemo: a record reused for requests with other labels
// (its memo then holds another series) counts each in its own series.
func TestObserveRequestMemo(t *testing.T) {
	m := New(Options{})
	var r obs.Request
	for _, st := range []int{200, 200, 503, 200, 503, 404} {
		r.Reset()
		ok := okRequest()
		r.Gateway, r.Route, r.Backend, r.Method, r.Proto, r.Status = ok.Gateway, ok.Route, ok.Backend, ok.Method, ok.Proto, st
		m.ObserveRequest(&r)
	}
	for class, want := range map[string]float64{"2xx": 3, "5xx": 2, "4xx": 1} {
		got, _ := value(t, m.Registry(), "meshgate_http_requests_total", map[string]string{
			"listener": "default/gw/http", "route": "default/web", "backend": "default/web-svc", "method": "GET",
			"code_class": class, "grpc_status": "", "proto": "HTTP/1.1"})
		if got != want {
			t.Errorf("%s requests %v, want %v", class, got, want)
		}
	}
}
