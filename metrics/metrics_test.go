package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

func TestNames(t *testing.T) {
	names := New(Options{}).Names()
	if !slices.IsSorted(names) {
		t.Error("Names is not sorted")
	}
	must := []string{
		"meshgate_http_requests_total",
		"meshgate_http_request_duration_seconds_bucket",
		"meshgate_http_request_duration_seconds_sum",
		"meshgate_http_request_duration_seconds_count",
		"meshgate_upstream_request_duration_seconds_bucket",
		"meshgate_upstream_connect_duration_seconds_bucket",
		"meshgate_http_request_size_bytes_bucket",
		"meshgate_http_response_size_bytes_bucket",
		"meshgate_gateway_errors_total",
		"meshgate_upstream_errors_total",
		"meshgate_upstream_retries_total",
		"meshgate_rate_limited_requests_total",
		"meshgate_config_reloads_total",
		"meshgate_config_generation",
		"meshgate_config_reload_duration_seconds_bucket",
		"meshgate_config_last_reload_success_timestamp_seconds",
		// Stats families are listed even without a Stats func.
		"meshgate_connections_active",
		"meshgate_websocket_tunnels_active",
		"meshgate_tls_handshakes_total",
		"meshgate_tls_handshake_errors_total",
		"meshgate_certificate_expiry_timestamp_seconds",
		"meshgate_mirror_dropped_total",
		"meshgate_l4_connections_total",
		"meshgate_l4_connection_failures_total",
		"meshgate_backend_endpoints",
		"meshgate_backend_requests_active",
		"meshgate_backend_retries_active",
		"meshgate_backend_connections_active",
		"meshgate_backend_connections_pending",
		"meshgate_backend_circuit_breaker_rejections_total",
		"meshgate_backend_retry_budget_rejections_total",
		"meshgate_backend_ejections_total",
		"meshgate_backend_panic",
		"meshgate_endpoint_healthy",
		"go_goroutines",
		"go_gc_duration_seconds",
		"go_gc_duration_seconds_count",
		"promhttp_metric_handler_requests_total",
	}
	if runtime.GOOS == "linux" {
		must = append(must, "process_cpu_seconds_total", "process_open_fds")
	}
	for _, n := range must {
		if _, ok := slices.BinarySearch(names, n); !ok {
			t.Errorf("Names lacks %s", n)
		}
	}
	// A classic histogram has no series under its bare name.
	for _, n := range []string{"meshgate_http_request_duration_seconds", "meshgate_config_reload_duration_seconds"} {
		if _, ok := slices.BinarySearch(names, n); ok {
			t.Errorf("Names lists %s, which selects no series", n)
		}
	}
}

// TestNamingConventions runs the client library's linter (units, _total,
// help text) over everything the gateway exports.
func TestNamingConventions(t *testing.T) {
	m := New(Options{Stats: fakeStats})
	r := okRequest()
	r.Reason = "upstream_timeout"
	m.ObserveRequest(&r)
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "meshgate_") {
			t.Errorf("%s: %s", p.Metric, p.Text)
		}
	}
}

func TestHandler(t *testing.T) {
	m := New(Options{Stats: fakeStats})
	r := okRequest()
	m.ObserveRequest(&r)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for _, s := range []string{
		`meshgate_http_requests_total{backend="default/web-svc"`,
		`meshgate_connections_active{listener=":8080",protocol="h1"} 3`,
		"go_goroutines ",
	} {
		if !strings.Contains(string(body), s) {
			t.Errorf("scrape lacks %q", s)
		}
	}
	for _, s := range []string{"example.com", "/users/42", "192.0.2.1"} {
		if strings.Contains(string(body), s) {
			t.Errorf("scrape leaks per-request value %q", s)
		}
	}
}

// TestSeparateRegistries: two Metrics in one process do not collide, and
// nothing lands in the client library's default registry.
func TestSeparateRegistries(t *testing.T) {
	a, b := New(Options{Stats: fakeStats}), New(Options{})
	r := okRequest()
	a.ObserveRequest(&r)
	if n := count(t, b.Registry(), "meshgate_http_requests_total"); n != 0 {
		t.Errorf("second Metrics sees %d request series", n)
	}
}
