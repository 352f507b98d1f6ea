package admin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshgate/meshgate/dataplane"
	"github.com/meshgate/meshgate/healthcheck"
	"github.com/meshgate/meshgate/upstream"
)

func TestHandler(t *testing.T) {
	var ready atomic.Bool
	h := Handler(Options{Ready: ready.Load})
	tests := []struct {
		name  string
		path  string
		ready bool
		want  int
	}{
		{"healthz before config", "/healthz", false, 200},
		{"ready before config", "/ready", false, 503},
		{"ready after config", "/ready", true, 200},
		{"unknown path", "/nope", true, 404},
		{"pprof off by default", "/debug/pprof/", true, 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ready.Store(tc.ready)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
			if rec.Code != tc.want {
				t.Fatalf("GET %s = %d, want %d", tc.path, rec.Code, tc.want)
			}
		})
	}
}

func TestUpstreams(t *testing.T) {
	checked := time.Unix(1700000000, 0).UTC()
	h := Handler(Options{Upstreams: func() dataplane.Stats {
		return dataplane.Stats{Backends: []upstream.BackendStats{
			{Name: "default/api", Endpoints: 3, Healthy: 1, Ejected: 1, InFlight: 4, RetriesInFlight: 1, Connections: 6,
				PendingConnections: 2, BreakerRejections: 7, RetryBudgetRejections: 8, Ejections: 9, Panic: true},
			{Name: "default/web", Endpoints: 2, Healthy: 2},
		}, Health: []healthcheck.EndpointStatus{
			{Backend: "default/api", Address: "10.0.0.1:80", Type: "HTTP", Healthy: true, LastCheck: checked, ConsecutiveSuccesses: 3},
			{Backend: "default/api", Address: "10.0.0.2:80", Type: "HTTP", LastError: "connection refused", LastCheck: checked, ConsecutiveFailures: 2},
			{Backend: "default/new", Address: "10.0.0.9:80", Type: "TCP"},
		}}
	}})
	get := func(target string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
		return rec
	}

	rec := get("/upstreams")
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("GET /upstreams = %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	var got struct {
		Backends []map[string]any `json:"backends"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, rec.Body)
	}
	if len(got.Backends) != 3 {
		t.Fatalf("%d backends, want 3:\n%s", len(got.Backends), rec.Body)
	}
	api := got.Backends[0]
	want := map[string]any{
		"name": "default/api", "endpoints": 3.0, "healthy": 1.0, "ejected": 1.0, "panic": true, "inFlight": 4.0,
		"retriesInFlight": 1.0, "connections": 6.0, "pendingConnections": 2.0, "circuitBreakerRejections": 7.0,
		"retryBudgetRejections": 8.0, "ejections": 9.0,
	}
	for k, v := range want {
		if api[k] != v {
			t.Errorf("default/api %s = %v, want %v", k, api[k], v)
		}
	}
	checks, _ := api["healthChecks"].([]any)
	if len(checks) != 2 {
		t.Fatalf("default/api has %d health checks, want 2:\n%s", len(checks), rec.Body)
	}
	down := checks[1].(map[string]any)
	if down["address"] != "10.0.0.2:80" || down["healthy"] != false || down["lastError"] != "connection refused" || down["consecutiveFailures"] != 2.0 {
		t.Errorf("failing endpoint: %v", down)
	}
	if web := got.Backends[2]; web["name"] != "default/web" || web["healthChecks"] != nil {
		t.Errorf("default/web without health checks: %v", web)
	}
	// Health-checked before the balancer knows it: still listed.
	if n := got.Backends[1]; n["name"] != "default/new" || len(n["healthChecks"].([]any)) != 1 {
		t.Errorf("health-checked only backend: %v", n)
	}

	rec = get("/upstreams?backend=default/web")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"default/web"`) || strings.Contains(rec.Body.String(), `"default/api"`) {
		t.Errorf("?backend=default/web = %d\n%s", rec.Code, rec.Body)
	}
	if rec = get("/upstreams?backend=nope"); rec.Code != 404 {
		t.Errorf("?backend=nope = %d, want 404", rec.Code)
	}
	rec = httptest.NewRecorder()
	Handler(Options{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/upstreams", nil))
	if rec.Code != 404 {
		t.Errorf("/upstreams without Options.Upstreams = %d, want 404", rec.Code)
	}
}

func TestUpstreamsEmpty(t *testing.T) {
	h := Handler(Options{Upstreams: func() dataplane.Stats { return dataplane.Stats{} }})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/upstreams", nil))
	if rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != "{\n  \"backends\": []\n}" {
		t.Errorf("empty /upstreams = %d %q", rec.Code, rec.Body)
	}
}
