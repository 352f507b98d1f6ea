package metrics

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshgate/meshgate/dataplane"
)

// statsCollector turns a dataplane.Stats snapshot into metrics at scrape
// time. The data plane keeps these numbers anyway (atomics per listener),
// so reading them on demand is cheaper than updating Prometheus children
// on every connection.
type statsCollector struct {
	stats func() dataplane.Stats

	connections, tunnels      *prometheus.Desc
	streams                   *prometheus.Desc
	shedding, shed, refused   *prometheus.Desc
	tlsHandshakes, tlsErrors  *prometheus.Desc
	certExpiry, mirrorDropped *prometheus.Desc
	l4Connections, l4Failures *prometheus.Desc

	// From the balancer and health checks (Stats.Backends, Stats.Health).
	backendEndpoints, backendRequests, backendRetries *prometheus.Desc
	backendConnections, backendPending                *prometheus.Desc
	breakerRejections, budgetRejections, ejections    *prometheus.Desc
	backendPanic, endpointHealthy                     *prometheus.Desc
}

func newStatsCollector(stats func() dataplane.Stats) *statsCollector {
	return &statsCollector{
		stats: stats,
		connections: prometheus.NewDesc("meshgate_connections_active",
			"Open client connections by listener address and protocol (h1, h2, tcp, tls; udp counts live UDP sessions).",
			[]string{"listener", "protocol"}, nil),
		streams: prometheus.NewDesc("meshgate_http_streams_active",
			"HTTP requests in flight by protocol (h1, h2, h3); on HTTP/2 and HTTP/3 each is a stream.",
			[]string{"protocol"}, nil),
		shedding: prometheus.NewDesc("meshgate_overload_shedding",
			"1 while the process holds more memory than --memory-limit and new requests get 503.", nil, nil),
		shed: prometheus.NewDesc("meshgate_overload_shed_requests_total",
			"Requests answered 503 because memory was over --memory-limit.", nil, nil),
		refused: prometheus.NewDesc("meshgate_connections_refused_total",
			"Connections closed at once because the listener was at --max-connections.", []string{"listener"}, nil),
		tunnels: prometheus.NewDesc("meshgate_websocket_tunnels_active",
			"Open WebSocket (Upgrade and extended CONNECT) tunnels.", nil, nil),
		tlsHandshakes: prometheus.NewDesc("meshgate_tls_handshakes_total",
			"Completed TLS handshakes on HTTPS listeners, by listener address.", []string{"listener"}, nil),
		tlsErrors: prometheus.NewDesc("meshgate_tls_handshake_errors_total",
			"Failed TLS handshakes on HTTPS listeners, by listener address.", []string{"listener"}, nil),
		certExpiry: prometheus.NewDesc("meshgate_certificate_expiry_timestamp_seconds",
			"Unix time the served certificate expires, by listener address and certificate source.",
			[]string{"listener", "certificate"}, nil),
		mirrorDropped: prometheus.NewDesc("meshgate_mirror_dropped_total",
			"Mirrored request copies not sent because the mirror queue was full.", nil, nil),
		l4Connections: prometheus.NewDesc("meshgate_l4_connections_total",
			"Accepted TCP and TLS connections and created UDP sessions on layer-4 listeners.",
			[]string{"listener", "protocol"}, nil),
		l4Failures: prometheus.NewDesc("meshgate_l4_connection_failures_total",
			"Layer-4 connections (or UDP sessions and datagrams) that ended badly, by listener address and reason.",
			[]string{"listener", "reason"}, nil),
		backendEndpoints: prometheus.NewDesc("meshgate_backend_endpoints",
			"Endpoints of a backend by state: total in the config, healthy (in rotation: not ejected, not failing health checks), ejected by outlier detection.",
			[]string{"backend", "state"}, nil),
		backendRequests: prometheus.NewDesc("meshgate_backend_requests_active",
			"Requests in flight to a backend (what the circuit breaker's maxRequests caps).", []string{"backend"}, nil),
		backendRetries: prometheus.NewDesc("meshgate_backend_retries_active",
			"Requests holding a retry slot of a backend (what maxRetries and the retry budget cap).", []string{"backend"}, nil),
		backendConnections: prometheus.NewDesc("meshgate_backend_connections_active",
			"Upstream connections holding a connection slot of a backend (counted only when its circuit breaker sets maxConnections).",
			[]string{"backend"}, nil),
		backendPending: prometheus.NewDesc("meshgate_backend_connections_pending",
			"Requests waiting for a connection slot of a backend (maxPendingRequests caps them).", []string{"backend"}, nil),
		breakerRejections: prometheus.NewDesc("meshgate_backend_circuit_breaker_rejections_total",
			"Requests, retries and connection waits refused by a backend's circuit breaker caps.", []string{"backend"}, nil),
		budgetRejections: prometheus.NewDesc("meshgate_backend_retry_budget_rejections_total",
			"Retries not made because the backend's retry budget was spent.", []string{"backend"}, nil),
		ejections: prometheus.NewDesc("meshgate_backend_ejections_total",
			"Endpoints ejected from a backend's rotation by outlier detection.", []string{"backend"}, nil),
		backendPanic: prometheus.NewDesc("meshgate_backend_panic",
			"1 while a backend is in panic mode: too few endpoints are healthy (panicThreshold), so all of them take traffic.",
			[]string{"backend"}, nil),
		endpointHealthy: prometheus.NewDesc("meshgate_endpoint_healthy",
			"1 while an actively health-checked endpoint passes its checks, 0 while it fails them.",
			[]string{"backend", "endpoint"}, nil),
	}
}

// families lists what the collector exports, for Names.
func (c *statsCollector) families() []family {
	return []family{
		{"meshgate_connections_active", gaugeKind},
		{"meshgate_websocket_tunnels_active", gaugeKind},
		{"meshgate_http_streams_active", gaugeKind},
		{"meshgate_overload_shedding", gaugeKind},
		{"meshgate_overload_shed_requests_total", counterKind},
		{"meshgate_connections_refused_total", counterKind},
		{"meshgate_tls_handshakes_total", counterKind},
		{"meshgate_tls_handshake_errors_total", counterKind},
		{"meshgate_certificate_expiry_timestamp_seconds", gaugeKind},
		{"meshgate_mirror_dropped_total", counterKind},
		{"meshgate_l4_connections_total", counterKind},
		{"meshgate_l4_connection_failures_total", counterKind},
		{"meshgate_backend_endpoints", gaugeKind},
		{"meshgate_backend_requests_active", gaugeKind},
		{"meshgate_backend_retries_active", gaugeKind},
		{"meshgate_backend_connections_active", gaugeKind},
		{"meshgate_backend_connections_pending", gaugeKind},
		{"meshgate_backend_circuit_breaker_rejections_total", counterKind},
		{"meshgate_backend_retry_budget_rejections_total", counterKind},
		{"meshgate_backend_ejections_total", counterKind},
		{"meshgate_backend_panic", gaugeKind},
		{"meshgate_endpoint_healthy", gaugeKind},
	}
}

// Describe implements prometheus.Collector.
func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.connections, c.tunnels, c.streams, c.shedding, c.shed, c.refused, c.tlsHandshakes, c.tlsErrors,
		c.certExpiry, c.mirrorDropped, c.l4Connections, c.l4Failures,
		c.backendEndpoints, c.backendRequests, c.backendRetries, c.backendConnections, c.backendPending,
		c.breakerRejections, c.budgetRejections, c.ejections, c.backendPanic, c.endpointHealthy} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: one Stats call per scrape.
func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.stats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}

	gauge(c.tunnels, float64(st.Tunnels))
	gauge(c.shedding, boolValue(st.Shedding))
	counter(c.shed, st.Shed)
	for addr, hs := range st.HTTP {
		counter(c.refused, hs.Refused, labelValue(addr))
	}
	for _, p := range []string{"h1", "h2", "h3"} {
		if st.Streams != nil {
			gauge(c.streams, float64(st.Streams[p]), p)
		}
	}
	counter(c.mirrorDropped, st.MirrorsDropped)

	// A listener with a certificate is an HTTPS listener: it gets TLS
	// series even before its first handshake, so rate() starts at 0.
	hasCert := map[string]bool{}
	seen := map[[2]string]bool{}
	for _, ce := range st.Certificates {
		hasCert[ce.Listener] = true
		// Two certificates of one name on one listener would make the
		// whole scrape fail as a duplicate series; keep the first.
		k := [2]string{ce.Listener, ce.Name}
		if seen[k] {
			continue
		}
		seen[k] = true
		gauge(c.certExpiry, float64(ce.NotAfter.UnixNano())/1e9, labelValue(ce.Listener), labelValue(ce.Name))
	}

	for addr, s := range st.HTTP {
		gauge(c.connections, float64(s.H1), addr, "h1")
		gauge(c.connections, float64(s.H2), addr, "h2")
		if hasCert[addr] || s.TLSHandshakes > 0 || s.TLSHandshakeErrors > 0 {
			counter(c.tlsHandshakes, s.TLSHandshakes, addr)
			counter(c.tlsErrors, s.TLSHandshakeErrors, addr)
		}
	}

	// Backend names are unique in Stats.Backends and (backend, address)
	// pairs in Stats.Health; the seen sets only guard the scrape against
	// a duplicate, which would fail it whole.
	seenBackend := map[string]bool{}
	for _, b := range st.Backends {
		name := labelValue(b.Name)
		if seenBackend[name] {
			continue
		}
		seenBackend[name] = true
		gauge(c.backendEndpoints, float64(b.Endpoints), name, "total")
		gauge(c.backendEndpoints, float64(b.Healthy), name, "healthy")
		gauge(c.backendEndpoints, float64(b.Ejected), name, "ejected")
		gauge(c.backendRequests, float64(b.InFlight), name)
		gauge(c.backendRetries, float64(b.RetriesInFlight), name)
		gauge(c.backendConnections, float64(b.Connections), name)
		gauge(c.backendPending, float64(b.PendingConnections), name)
		counter(c.breakerRejections, b.BreakerRejections, name)
		counter(c.budgetRejections, b.RetryBudgetRejections, name)
		counter(c.ejections, b.Ejections, name)
		gauge(c.backendPanic, boolValue(b.Panic), name)
	}
	seenEndpoint := map[[2]string]bool{}
	for _, h := range st.Health {
		k := [2]string{labelValue(h.Backend), labelValue(h.Address)}
		if seenEndpoint[k] {
			continue
		}
		seenEndpoint[k] = true
		gauge(c.endpointHealthy, boolValue(h.Healthy), k[0], k[1])
	}

	for addr, s := range st.L4 {
		proto := strings.ToLower(string(s.Protocol))
		if proto == "" {
			proto = "unknown"
		}
		counter(c.l4Connections, s.Accepted, addr, proto)
		fail := func(reason string, v uint64) { counter(c.l4Failures, v, addr, reason) }
		fail("no_route", s.NoRoute)
		fail("no_backend", s.NoBackend)
		fail("connect_failed", s.ConnectFailed)
		if proto == "udp" {
			gauge(c.connections, float64(s.UDPSessionsActive), addr, proto)
			fail("udp_expired", s.UDPSessionsExpired)
			fail("udp_dropped", s.UDPSessionsDropped)
			continue
		}
		gauge(c.connections, float64(s.Active), addr, proto)
		fail("idle_timeout", s.IdleTimeouts)
		if proto == "tls" {
			fail("sni_error", s.SNIErrors)
			fail("handshake_error", s.HandshakeErrors)
		}
	}
}

// boolValue is a gauge's value for a condition: 1 when it holds.
func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
