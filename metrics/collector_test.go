package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/meshgate/meshgate/dataplane"
	"github.com/meshgate/meshgate/healthcheck"
	"github.com/meshgate/meshgate/ir"
	"github.com/meshgate/meshgate/l4"
	"github.com/meshgate/meshgate/server"
	"github.com/meshgate/meshgate/upstream"
)

func fakeStats() dataplane.Stats {
	exp := time.Unix(1800000000, 0)
	return dataplane.Stats{
		HTTP: map[string]server.Stats{
			":8080": {H1: 3, H2: 1, Refused: 2},
			":8443": {H1: 2, H2: 5, TLSHandshakes: 40, TLSHandshakeErrors: 2},
		},
		L4: map[string]dataplane.L4Stats{
			":5432": {Protocol: ir.ProtocolTCP, Stats: l4.Stats{Accepted: 10, Active: 2, NoRoute: 1, NoBackend: 2, ConnectFailed: 3, IdleTimeouts: 4}},
			":9443": {Protocol: ir.ProtocolTLS, Stats: l4.Stats{Accepted: 7, Active: 1, SNIErrors: 5, HandshakeErrors: 6}},
			":53":   {Protocol: ir.ProtocolUDP, Stats: l4.Stats{Accepted: 20, UDPSessionsActive: 4, UDPSessionsExpired: 8, UDPSessionsDropped: 9}},
		},
		Tunnels:        6,
		Streams:        map[string]int64{"h1": 3, "h2": 7},
		Shedding:       true,
		Shed:           5,
		MirrorsDropped: 11,
		Certificates: []dataplane.CertExpiry{
			{Name: "secret/default/tls", Listener: ":8443", NotAfter: exp},
			{Name: "secret/default/tls", Listener: ":8443", NotAfter: exp}, // duplicate: dropped
			{Name: "secret/default/other", Listener: ":8443", NotAfter: exp.Add(time.Hour)},
		},
		Backends: []upstream.BackendStats{
			{Name: "default/api", Endpoints: 3, Healthy: 1, Ejected: 1, InFlight: 4, RetriesInFlight: 1, Connections: 6,
				PendingConnections: 2, BreakerRejections: 7, RetryBudgetRejections: 8, Ejections: 9, Panic: true},
			{Name: "default/web", Endpoints: 2, Healthy: 2},
		},
		Health: []healthcheck.EndpointStatus{
			{Backend: "default/api", Address: "10.0.0.1:80", Healthy: true},
			{Backend: "default/api", Address: "10.0.0.2:80", Healthy: false, LastError: "connection refused"},
			{Backend: "default/api", Address: "10.0.0.2:80", Healthy: true}, // duplicate: dropped
		},
	}
}

func TestStatsCollector(t *testing.T) {
	m := New(Options{Stats: fakeStats})
	want := `
meshgate_backend_circuit_breaker_rejections_total{backend="default/api"} 7
meshgate_backend_circuit_breaker_rejections_total{backend="default/web"} 0
meshgate_backend_connections_active{backend="default/api"} 6
meshgate_backend_connections_active{backend="default/web"} 0
meshgate_backend_connections_pending{backend="default/api"} 2
meshgate_backend_connections_pending{backend="default/web"} 0
meshgate_backend_ejections_total{backend="default/api"} 9
meshgate_backend_ejections_total{backend="default/web"} 0
meshgate_backend_endpoints{backend="default/api",state="ejected"} 1
meshgate_backend_endpoints{backend="default/api",state="healthy"} 1
meshgate_backend_endpoints{backend="default/api",state="total"} 3
meshgate_backend_endpoints{backend="default/web",state="ejected"} 0
meshgate_backend_endpoints{backend="default/web",state="healthy"} 2
meshgate_backend_endpoints{backend="default/web",state="total"} 2
meshgate_backend_panic{backend="default/api"} 1
meshgate_backend_panic{backend="default/web"} 0
meshgate_backend_requests_active{backend="default/api"} 4
meshgate_backend_requests_active{backend="default/web"} 0
meshgate_backend_retries_active{backend="default/api"} 1
meshgate_backend_retries_active{backend="default/web"} 0
meshgate_backend_retry_budget_rejections_total{backend="default/api"} 8
meshgate_backend_retry_budget_rejections_total{backend="default/web"} 0
meshgate_certificate_expiry_timestamp_seconds{certificate="secret/default/other",listener=":8443"} 1.8000036e+09
meshgate_certificate_expiry_timestamp_seconds{certificate="secret/default/tls",listener=":8443"} 1.8e+09
meshgate_connections_active{listener=":53",protocol="udp"} 4
meshgate_connections_active{listener=":5432",protocol="tcp"} 2
meshgate_connections_active{listener=":8080",protocol="h1"} 3
meshgate_connections_active{listener=":8080",protocol="h2"} 1
meshgate_connections_active{listener=":8443",protocol="h1"} 2
meshgate_connections_active{listener=":8443",protocol="h2"} 5
meshgate_connections_active{listener=":9443",protocol="tls"} 1
meshgate_connections_refused_total{listener=":8080"} 2
meshgate_connections_refused_total{listener=":8443"} 0
meshgate_endpoint_healthy{backend="default/api",endpoint="10.0.0.1:80"} 1
meshgate_endpoint_healthy{backend="default/api",endpoint="10.0.0.2:80"} 0
meshgate_http_streams_active{protocol="h1"} 3
meshgate_http_streams_active{protocol="h2"} 7
meshgate_http_streams_active{protocol="h3"} 0
meshgate_l4_connection_failures_total{listener=":53",reason="connect_failed"} 0
meshgate_l4_connection_failures_total{listener=":53",reason="no_backend"} 0
meshgate_l4_connection_failures_total{listener=":53",reason="no_route"} 0
meshgate_l4_connection_failures_total{listener=":53",reason="udp_dropped"} 9
meshgate_l4_connection_failures_total{listener=":53",reason="udp_expired"} 8
meshgate_l4_connection_failures_total{listener=":5432",reason="connect_failed"} 3
meshgate_l4_connection_failures_total{listener=":5432",reason="idle_timeout"} 4
meshgate_l4_connection_failures_total{listener=":5432",reason="no_backend"} 2
meshgate_l4_connection_failures_total{listener=":5432",reason="no_route"} 1
meshgate_l4_connection_failures_total{listener=":9443",reason="connect_failed"} 0
meshgate_l4_connection_failures_total{listener=":9443",reason="handshake_error"} 6
meshgate_l4_connection_failures_total{listener=":9443",reason="idle_timeout"} 0
meshgate_l4_connection_failures_total{listener=":9443",reason="no_backend"} 0
meshgate_l4_connection_failures_total{listener=":9443",reason="no_route"} 0
meshgate_l4_connection_failures_total{listener=":9443",reason="sni_error"} 5
meshgate_l4_connections_total{listener=":53",protocol="udp"} 20
meshgate_l4_connections_total{listener=":5432",protocol="tcp"} 10
meshgate_l4_connections_total{listener=":9443",protocol="tls"} 7
meshgate_mirror_dropped_total 11
meshgate_overload_shed_requests_total 5
meshgate_overload_shedding 1
meshgate_tls_handshake_errors_total{listener=":8443"} 2
meshgate_tls_handshakes_total{listener=":8443"} 40
meshgate_websocket_tunnels_active 6
`
	names := []string{}
	for _, f := range newStatsCollector(nil).families() {
		names = append(names, f.name)
	}
	if got := dump(t, m.Registry(), names...); got != strings.TrimSpace(want) {
		t.Errorf("got:\n%s\nwant:\n%s", got, strings.TrimSpace(want))
	}
}

func TestStatsCollectorEmpty(t *testing.T) {
	m := New(Options{Stats: func() dataplane.Stats { return dataplane.Stats{} }})
	want := `
meshgate_mirror_dropped_total 0
meshgate_overload_shed_requests_total 0
meshgate_overload_shedding 0
meshgate_websocket_tunnels_active 0
`
	names := []string{}
	for _, f := range newStatsCollector(nil).families() {
		names = append(names, f.name)
	}
	if got := dump(t, m.Registry(), names...); got != strings.TrimSpace(want) {
		t.Errorf("got:\n%s\nwant:\n%s", got, strings.TrimSpace(want))
	}
}

func TestNoStatsFunc(t *testing.T) {
	m := New(Options{})
	for _, f := range newStatsCollector(nil).families() {
		if n := count(t, m.Registry(), f.name); n != 0 {
			t.Errorf("without Stats: %d series of %s, want none", n, f.name)
		}
	}
}
