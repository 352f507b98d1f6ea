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
	}
}

// Describe implements prometheus.Collector.
func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.connections, c.tunnels, c.streams, c.shedding, c.shed, c.refused, c.tlsHandshakes, c.tlsErrors,
		c.certExpiry, c.mirrorDropped, c.l4Connections, c.l4Failures} {
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
	shedding := 0.0
	if st.Shedding {
		shedding = 1
	}
	gauge(c.shedding, shedding)
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
