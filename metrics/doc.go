// Package metrics exports the gateway's Prometheus metrics on the admin
// listener's /metrics.
//
// Two kinds of data feed it, chosen by what they cost:
//
//   - Per-request facts (counts, latencies, sizes, why the gateway answered
//     itself) arrive as obs.Request records: Metrics is an obs.Sink and an
//     obs.ReloadSink. The children of every metric vector are cached per
//     label combination, so recording a request takes no locks and
//     allocates nothing once a combination has been seen.
//   - Gauges and counters the data plane keeps anyway (open connections,
//     WebSocket tunnels, TLS handshakes, certificate expiry, layer-4
//     outcomes, dropped mirrors, and per backend the balancer's endpoints
//     in rotation, ejections, in-flight requests, circuit breaker and
//     retry budget rejections, panic mode, and each health-checked
//     endpoint's state) are read from dataplane.Stats when Prometheus
//     scrapes, so they cost nothing per request.
//
// Names follow the Prometheus conventions: a meshgate_ prefix, base units
// (seconds, bytes) in the name, and _total on counters. Label values are
// bounded: no path, host or client labels; methods outside the standard set
// become "OTHER", unknown reasons "other", status codes become classes.
// Route, backend and listener names come from the configuration, so their
// number is that of the configured objects.
//
// Every Metrics has its own prometheus.Registry; nothing is registered with
// the client library's global default registry, so tests and several
// gateways in one process do not collide.
package metrics
