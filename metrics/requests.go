package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/puzpuzpuz/xsync/v4"

	"github.com/meshgate/meshgate/obs"
)

// requestMetrics are the per-request families and the cache of their
// children.
type requestMetrics struct {
	requests        *prometheus.CounterVec
	duration        *histogramVec
	requestSize     *histogramVec
	responseSize    *histogramVec
	upstreamLatency *histogramVec
	upstreamConnect *histogramVec
	upstreamErrors  *prometheus.CounterVec
	retries         *prometheus.CounterVec
	rateLimited     *prometheus.CounterVec
	// denied counts SecurityPolicy denials by policy, section and
	// reason; deniedBy caches its children per deniedKey.
	denied   *prometheus.CounterVec
	deniedBy *xsync.Map[deniedKey, prometheus.Counter]

	// gatewayErrors has one counter per known reason (and "other"),
	// created up front: a map read is all the hot path needs.
	gatewayErrors map[string]prometheus.Counter

	// children caches a *children per requestKey, and upstreamErrs a
	// prometheus.Counter per upstreamErrKey. The keys are written once
	// and then only read, from every core: a concurrent map whose reads
	// take no lock. xsync's rather than sync.Map, because sync.Map hashes
	// a struct key through its interface (the runtime walks the type's
	// fields): that was a thousand instructions, 3% of a proxied
	// request; xsync hashes with the compiler's hasher for the key type.
	children     *xsync.Map[requestKey, *children]
	upstreamErrs *xsync.Map[upstreamErrKey, prometheus.Counter]
}

// requestKey is one combination of raw request fields that decides every
// label of the per-request series. Method, class, gRPC status and proto
// are already bounded, so the cache grows only with configured names.
type requestKey struct {
	gateway, route, backend string
	method, grpc, proto     string
	class                   uint8
}

// same is k == o, at a fraction of the cost for a memo hit (obs.Same).
func (k *requestKey) same(o *requestKey) bool {
	return k.class == o.class && obs.Same(k.route, o.route) && obs.Same(k.backend, o.backend) &&
		obs.Same(k.gateway, o.gateway) && obs.Same(k.method, o.method) && obs.Same(k.proto, o.proto) &&
		obs.Same(k.grpc, o.grpc)
}

// children are the vector children one requestKey records into, looked up
// once per combination instead of hashing label values per request.
type children struct {
	requests        prometheus.Counter
	duration        *histogram
	requestSize     *histogram
	responseSize    *histogram
	upstreamLatency *histogram
	upstreamConnect *histogram
	// retries is nil without a route and backend (nothing to retry);
	// limited and limitDown (429 and fail-closed 503 of a rate limit) are
	// nil without a route. They are created with the other children so
	// their series exist, at 0, from a route's first request.
	retries            prometheus.Counter
	limited, limitDown prometheus.Counter
}

type upstreamErrKey struct{ backend, reason string }

// deniedKey is one SecurityPolicy section refusing for one reason; the
// policies are configured names, so the cache is bounded by the config.
type deniedKey struct{ policy, section, reason string }

func (rm *requestMetrics) init(m *Metrics) {
	rm.deniedBy = xsync.NewMap[deniedKey, prometheus.Counter]()
	rm.children = xsync.NewMap[requestKey, *children]()
	rm.upstreamErrs = xsync.NewMap[upstreamErrKey, prometheus.Counter]()
	rm.requests = m.newCounterVec("meshgate_http_requests_total",
		"HTTP requests completed, by Gateway listener, route, backend, method, status class, gRPC status and HTTP version.",
		"listener", "route", "backend", "method", "code_class", "grpc_status", "proto")
	rm.duration = m.newHistogramVec("meshgate_http_request_duration_seconds",
		"Time from receiving a request to completing its response (WebSocket tunnels excluded).",
		latencyBuckets, perSecond, "listener", "route", "code_class")
	rm.requestSize = m.newHistogramVec("meshgate_http_request_size_bytes",
		"Request body bytes received.", sizeBuckets, perByte, "listener", "route")
	rm.responseSize = m.newHistogramVec("meshgate_http_response_size_bytes",
		"Response body bytes sent.", sizeBuckets, perByte, "listener", "route")
	rm.upstreamLatency = m.newHistogramVec("meshgate_upstream_request_duration_seconds",
		"Time from receiving a request until the backend's response headers arrived.",
		latencyBuckets, perSecond, "backend")
	rm.upstreamConnect = m.newHistogramVec("meshgate_upstream_connect_duration_seconds",
		"Time to open a new upstream connection (pooled connections are not counted).",
		connectBuckets, perSecond, "backend")
	rm.upstreamErrors = m.newCounterVec("meshgate_upstream_errors_total",
		"Requests failed because of a backend: no healthy endpoint, connect failure, timeout, protocol error or reset.",
		"backend", "reason")
	rm.retries = m.newCounterVec("meshgate_upstream_retries_total",
		"Upstream attempts made again after a failed or retryable one (route retry policy), by route and backend.",
		"route", "backend")
	rm.rateLimited = m.newCounterVec("meshgate_rate_limited_requests_total",
		"Requests refused by a route's rate limit, by route and reason: rate_limited (429) or rate_limit_unavailable (503, the limit's store was unreachable and it fails closed).",
		"route", "reason")
	rm.denied = m.newCounterVec("meshgate_auth_denied_requests_total",
		"Requests refused by a SecurityPolicy (401 or 403), by policy (namespace/name), section (ipAccess, basicAuth, jwt, extAuth) and reason, so an alert can say which rule denied.",
		"policy", "section", "reason")
	ge := m.newCounterVec("meshgate_gateway_errors_total",
		"Requests the gateway answered or ended itself instead of a backend, by reason (redirect and direct_response are configured answers).",
		"reason")
	rm.gatewayErrors = make(map[string]prometheus.Counter, len(reasons))
	for _, r := range reasons {
		rm.gatewayErrors[r] = ge.WithLabelValues(r)
	}
}

// ObserveRequest records one finished request. It implements obs.Sink;
// once a label combination has been seen it takes no locks and allocates
// nothing.
func (m *Metrics) ObserveRequest(r *obs.Request) {
	rm := &m.req
	k := requestKey{
		gateway: r.Gateway, route: r.Route, backend: r.Backend,
		method: methodLabel(r.Method), grpc: grpcLabel(r.GRPC, r.GRPCStatus),
		proto: protoLabel(r.Proto), class: classOf(r.Status),
	}
	c := rm.lookupMemo(r.Memo(&m.memo), k)
	if c == nil {
		return
	}
	c.requests.Inc()
	if !isTunnel(r) {
		c.duration.observe(int64(r.Duration))
	}
	c.requestSize.observe(r.BytesReceived)
	c.responseSize.observe(r.BytesSent)
	if r.UpstreamFirstByte > 0 {
		c.upstreamLatency.observe(int64(r.UpstreamFirstByte))
	}
	if r.UpstreamConnect > 0 {
		c.upstreamConnect.observe(int64(r.UpstreamConnect))
	}
	if r.Retries > 0 && c.retries != nil {
		c.retries.Add(float64(r.Retries))
	}
	if r.Reason != "" {
		switch r.Reason {
		case "rate_limited":
			if c.limited != nil {
				c.limited.Inc()
			}
		case "rate_limit_unavailable":
			if c.limitDown != nil {
				c.limitDown.Inc()
			}
		}
		rm.gatewayError(r.Backend, r.Reason)
		if r.DeniedSection != "" {
			rm.deny(deniedKey{r.DeniedPolicy, r.DeniedSection, r.Reason})
		}
	}
}

// deny counts a SecurityPolicy denial.
func (rm *requestMetrics) deny(k deniedKey) {
	c, ok := rm.deniedBy.Load(k)
	if !ok {
		c, _ = rm.deniedBy.LoadOrStore(k, rm.denied.WithLabelValues(labelValue(k.policy), labelValue(k.section), labelValue(k.reason)))
	}
	c.Inc()
}

// isTunnel reports a request that became a WebSocket tunnel (101 on
// HTTP/1.1, 200 to an extended CONNECT): its duration is the tunnel's
// lifetime, which would swamp the latency histogram.
func isTunnel(r *obs.Request) bool {
	return r.Upgrade != "" && (r.Status == http.StatusSwitchingProtocols || r.Status == http.StatusOK)
}

// reqMemo is lookupMemo's entry in a record's memo slot.
type reqMemo struct {
	key requestKey
	c   *children
}

// lookupMemo is lookup through slot, the record's memo (obs.Request.Memo;
// nil for none): when the record's last request had the same labels, its
// children are taken from there, at a fraction of the map lookup's cost.
// Children are never removed, so a memo never goes stale.
func (rm *requestMetrics) lookupMemo(slot *any, k requestKey) *children {
	if slot == nil {
		return rm.lookup(k)
	}
	e, _ := (*slot).(*reqMemo)
	if e != nil && e.key.same(&k) {
		return e.c
	}
	c := rm.lookup(k)
	if c == nil {
		return nil
	}
	if e == nil {
		e = new(reqMemo)
		*slot = e
	}
	e.key, e.c = k, c
	return c
}

// lookup returns the cached children for k, creating them on first use.
func (rm *requestMetrics) lookup(k requestKey) *children {
	if c, ok := rm.children.Load(k); ok {
		return c
	}
	listener, route, backend := labelValue(k.gateway), labelValue(k.route), labelValue(k.backend)
	class := codeClasses[k.class]
	req, err := rm.requests.GetMetricWithLabelValues(listener, route, backend, k.method, class, k.grpc, k.proto)
	if err != nil {
		return nil // cannot happen: the values are bounded and valid UTF-8
	}
	c := &children{
		requests:        req,
		duration:        rm.duration.with(listener, route, class),
		requestSize:     rm.requestSize.with(listener, route),
		responseSize:    rm.responseSize.with(listener, route),
		upstreamLatency: rm.upstreamLatency.with(backend),
		upstreamConnect: rm.upstreamConnect.with(backend),
	}
	if k.route != "" {
		c.limited = rm.rateLimited.WithLabelValues(route, "rate_limited")
		c.limitDown = rm.rateLimited.WithLabelValues(route, "rate_limit_unavailable")
		if k.backend != "" {
			c.retries = rm.retries.WithLabelValues(route, backend)
		}
	}
	c, _ = rm.children.LoadOrStore(k, c)
	return c
}

// gatewayError counts a request the gateway ended itself, and by backend
// when the backend is to blame.
func (rm *requestMetrics) gatewayError(backend, reason string) {
	c, ok := rm.gatewayErrors[reason]
	if !ok {
		reason = "other"
		c = rm.gatewayErrors[reason]
	}
	c.Inc()
	if !upstreamReasons[reason] {
		return
	}
	k := upstreamErrKey{backend, reason}
	ue, ok := rm.upstreamErrs.Load(k)
	if !ok {
		ue, _ = rm.upstreamErrs.LoadOrStore(k, rm.upstreamErrors.WithLabelValues(labelValue(backend), reason))
	}
	ue.Inc()
}
