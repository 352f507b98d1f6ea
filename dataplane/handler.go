package dataplane

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/meshgate/meshgate/acme"
	"github.com/meshgate/meshgate/filters"
	"github.com/meshgate/meshgate/grpcweb"
	"github.com/meshgate/meshgate/internal/hdrvals"
	"github.com/meshgate/meshgate/ir"
	"github.com/meshgate/meshgate/obs"
	"github.com/meshgate/meshgate/proxy"
	"github.com/meshgate/meshgate/ratelimit"
	"github.com/meshgate/meshgate/router"
	"github.com/meshgate/meshgate/server"
	mgtls "github.com/meshgate/meshgate/tls"
	"github.com/meshgate/meshgate/upstream"
)

// listenerHandler serves every request of one socket from the route table
// current when the request arrived.
type listenerHandler struct {
	addr string
	// acme answers HTTP-01 validations; nil without ACME.
	acme  *acme.Manager
	table atomic.Pointer[router.Table]
	// hostTLS are the per-host TLS settings, for the 421 a request
	// without SNI gets when its host has settings of its own.
	hostTLS   atomic.Pointer[mgtls.HostOptions]
	forwarder *proxy.Forwarder
	balancer  *upstream.Balancer
	forwarded *proxy.ForwardedPolicy
	// altSvc is the Alt-Svc value advertising this listener's HTTP/3,
	// nil when it has none.
	altSvc       atomic.Pointer[string]
	mirror       *mirrorer
	tunnels      *tunnelSet
	tunnelLimits TunnelLimits
	obs          *obs.Observers
	inflight     *[4]atomic.Int64
	underscores  UnderscorePolicy
	shedder      *loadShedder
	bodyIdle     time.Duration
	log          *slog.Logger
	limiter      *ratelimit.Limiter
	// debugFrom are the clients that may ask for the debug header.
	debugFrom []netip.Prefix
	// security are the socket's compiled SecurityPolicies (security.go).
	security atomic.Pointer[security]
	// identity, when set, forwards verified client certificates
	// (identity.go).
	identity atomic.Pointer[clientIdentity]
}

func (h *listenerHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 3 {
		// A new goroutine per request (HTTP/2 handlers run on pooled
		// goroutines that keep their stacks); see growStack.
		growStack()
	}
	if h.acme != nil && h.serveACMEChallenge(w, r) {
		return
	}
	if v := r.ProtoMajor; v >= 1 && v <= 3 && h.inflight != nil {
		h.inflight[0].Add(1) // started, ever (Dataplane.activity)
		h.inflight[v].Add(1)
		defer h.inflight[v].Add(-1)
	}
	o := h.startObserving(w, r)
	r = startDebug(o, r, h.debugFrom)
	var span obs.Span
	if h.obs.Tracer != nil {
		var ctx context.Context
		ctx, span = h.obs.Tracer.Start(r.Context(), r)
		r = r.WithContext(ctx)
		o.rec.TraceID = span.TraceID()
	}
	defer h.done(o, span)
	h.serveWeb(&o.rw, r, &o.rec, span)
}

// done reports the finished request, also when the handler aborted the
// response by panicking with http.ErrAbortHandler (re-raised after).
func (h *listenerHandler) done(o *observed, span obs.Span) {
	p := recover()
	if p != nil && o.rec.Reason == "" {
		o.rec.Reason = "aborted"
	}
	h.finish(o)
	if span != nil {
		span.End(&o.rec)
	}
	observedPool.Put(o)
	if p != nil {
		panic(p)
	}
}

// serveWeb turns browsers' gRPC-Web into plain gRPC, so routing, errors and
// upstreams are the same for both. finish writes the trailer frame; it is
// skipped when serve aborts the stream.
func (h *listenerHandler) serveWeb(w http.ResponseWriter, r *http.Request, rec *obs.Request, span obs.Span) {
	if grpcweb.Is(r) {
		rec.GRPC = true
		w, r, finish := grpcweb.Wrap(w, r)
		h.serve(w, r, rec, span)
		if err := finish(); err != nil {
			h.log.Debug("grpc-web response not finished", "path", r.URL.Path, "error", err.Error())
		}
		return
	}
	h.serve(w, r, rec, span)
}

func (h *listenerHandler) serve(w http.ResponseWriter, r *http.Request, rec *obs.Request, span obs.Span) {
	if r.ProtoMajor >= 2 && tooManyFields(r.Header) {
		h.fail(w, r, rec, http.StatusRequestHeaderFieldsTooLarge, "too_many_header_fields", nil)
		return
	}
	if h.shedder != nil && h.shedder.shedding.Load() {
		h.shedder.shed.Add(1)
		w.Header()["Connection"] = []string{"close"}
		h.fail(w, r, rec, http.StatusServiceUnavailable, "overloaded", nil)
		return
	}
	if r.Method == http.MethodConnect && !proxy.IsExtendedConnect(r) {
		// A plain CONNECT asks for a raw tunnel to any host: an open
		// proxy. TCP tunnels are TCPRoutes on their own listeners.
		h.fail(w, r, rec, http.StatusMethodNotAllowed, "connect_not_allowed", nil)
		return
	}
	if err := normalizeRequest(r); err != nil {
		h.fail(w, r, rec, http.StatusBadRequest, "ambiguous_path", err)
		return
	}
	rec.Path = r.URL.Path
	if h.underscores != UnderscoresAllow && dropUnderscoreHeaders(r.Header, h.underscores == UnderscoresReject) {
		h.fail(w, r, rec, http.StatusBadRequest, "underscore_header", nil)
		return
	}
	table := h.table.Load()
	if table == nil {
		h.fail(w, r, rec, http.StatusNotFound, "no_config", nil)
		return
	}
	if r.TLS != nil && (table.Misdirected(r.TLS.ServerName, r.Host) ||
		r.TLS.ServerName == "" && h.hostTLS.Load().Unnamed(r.Host)) {
		h.fail(w, r, rec, http.StatusMisdirectedRequest, "misdirected_request", nil)
		return
	}
	pre := h.beforeRouting(r, table) // SecurityPolicy of the listener (security.go)
	route, ok := table.Match(r)
	if ok {
		rec.Route, rec.Rule, rec.Gateway = route.IR.Name, route.IR.RuleIndex, route.Listener
	}
	if !ok {
		if !h.unmatched(w, r, rec, pre) {
			h.fail(w, r, rec, http.StatusNotFound, "no_route", nil)
		}
		return
	}
	// CORS: the gateway answers preflights itself; other requests from an
	// origin get the CORS headers, set now for the gateway's own answers
	// and again over the upstream's in writeHeader.
	cors, origin := route.CORS, ""
	if cors != nil {
		if filters.IsPreflight(r) {
			cors.ServePreflight(w, r)
			return
		}
		var hasOrigin bool
		if origin, hasOrigin = filters.Origin(r.Header); hasOrigin {
			cors.Apply(w.Header(), origin)
		} else {
			cors = nil
		}
	}
	if route = h.authorize(w, r, rec, pre, table, route); route == nil {
		return
	}
	if dr := route.IR.DirectResponse; dr != nil {
		h.fail(w, r, rec, dr.StatusCode, "direct_response", errString(dr.Body))
		return
	}
	prefix := route.MatchedPrefix()
	if route.Redirect != nil {
		rec.Reason = "redirect"
		route.Redirect.Serve(w, r, prefix)
		return
	}
	// The client's address, taken before Apply extends X-Forwarded-For:
	// from the pre-routing checks when they ran, else only if the route
	// uses it.
	var clientIP string
	switch {
	case pre != nil:
		clientIP = pre.clientIP
	case route.UsesClientIP:
		clientIP = h.forwarded.ClientIP(r.RemoteAddr, r.Header)
	}
	if len(route.IR.RateLimits) > 0 && !h.checkRateLimits(w, r, rec, route, clientIP) {
		return
	}
	if route.Fault != nil && !h.injectFault(w, r, rec, route.Fault) {
		return
	}

	// Order matters: hop-by-hop fields go first, so a client cannot name a
	// gateway-set header in Connection and have it removed.
	xconnect := proxy.IsExtendedConnect(r)
	upType := ""
	if r.ProtoMajor == 1 && r.ContentLength == 0 {
		// A protocol switch (WebSocket) tunnels the connection once the
		// upstream agrees; requests with bodies are not switched.
		upType = proxy.UpgradeType(r.Header)
		if !strings.EqualFold(upType, "websocket") {
			// Only WebSocket is tunnelled. Any other protocol switch
			// (h2c above all: "h2c smuggling" would reach the backend
			// past the routes) is served as a plain request, its
			// Upgrade removed with the other hop-by-hop fields.
			upType = ""
		}
	}
	proxy.RemoveHopByHop(r.Header)
	if proxy.IsGRPC(r.Header) {
		// "TE: trailers" is the one TE value HTTP/2 allows, and gRPC
		// servers may insist on it.
		r.Header["Te"] = []string{"trailers"}
	}
	host := r.Host
	// The forwarding fields go to the upstream client as lines, not into
	// the header map, unless something before the upstream write may read
	// or edit them: header filters that name them, session persistence,
	// a client identity header, a tunnel; a backend's filters that name
	// them, a hash balancer or an HTTP/2 upstream (below). A mirror gets
	// them as lines too.
	id := h.identity.Load()
	var fwd *proxy.ForwardedFields
	if id == nil && !editsForwarded(route.RequestHeaders) && route.Session == nil && upType == "" && !xconnect {
		fwd = new(proxy.ForwardedFields)
	}
	h.applyForwarded(w, r, fwd)
	if id != nil {
		id.apply(r) // client certificate identity (identity.go)
	}
	for _, f := range route.RequestHeaders {
		f.Apply(r.Header)
	}
	rewritten := false
	if route.Rewrite != nil {
		route.Rewrite.Apply(r, prefix)
		rewritten = true
	}
	var mirror *pendingMirror
	if len(route.Mirrors) > 0 && upType == "" && !xconnect {
		mirror = h.mirror.prepare(route, r, requestURI(r, rewritten), fwd)
	}
	b, prefer, sessionToken := pickBackend(route, r)
	if b == nil || b.IR.Target == nil {
		h.fail(w, r, rec, http.StatusInternalServerError, "no_valid_backend", nil)
		return
	}
	target := b.IR.Target
	if fwd != nil && (editsForwarded(b.RequestHeaders) || isHashLB(target.LoadBalancer) || target.Protocol != ir.BackendHTTP1) {
		fwd.AddTo(r.Header, hdrvals.Take(w, 4))
		fwd = nil
	}
	for _, f := range b.RequestHeaders {
		f.Apply(r.Header)
	}
	rec.Backend = target.Name
	in := upstream.PickInput{Prefer: prefer}
	if isHashLB(target.LoadBalancer) {
		in.Hash, in.HasHash = requestHash(r, target.LoadBalancer, clientIP)
	}

	if span != nil {
		span.Inject(r.Header)
	}
	ctx := r.Context()
	timeouts := route.IR.Timeouts
	if timeouts.Request > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeouts.Request)
		defer cancel()
	}
	grpc := proxy.IsGRPC(r.Header)
	rec.GRPC = rec.GRPC || grpc
	attempt := timeouts.BackendRequest
	if attempt == 0 && timeouts.Request == 0 && !grpc {
		// gRPC streams may rightly last for hours; their bound is the
		// client's grpc-timeout, below.
		attempt = proxy.DefaultUpstreamTimeout
	}
	var grpcDeadline time.Time
	if grpc {
		if d, ok := proxy.GRPCTimeout(r.Header.Get("Grpc-Timeout")); ok {
			grpcDeadline = time.Now().Add(d)
		}
	}
	// deadlineFrom bounds an attempt starting at now: its own timeout,
	// the client's grpc-timeout and the whole request's, whichever ends
	// first. Its slack, how late an HTTP/1.1 upstream connection's
	// deadline may pass, is 1/64 of the time left, at most 100 ms: a
	// timeout still ends within 2% of its length, and the request's own
	// timeout ends on time through ctx.
	deadlineFrom := func(now time.Time) (time.Time, time.Time, time.Duration) {
		var deadline time.Time
		if attempt > 0 {
			deadline = now.Add(attempt)
		}
		if !grpcDeadline.IsZero() && (deadline.IsZero() || grpcDeadline.Before(deadline)) {
			deadline = grpcDeadline
		}
		if d, ok := ctx.Deadline(); ok && (deadline.IsZero() || d.Before(deadline)) {
			deadline = d
		}
		if deadline.IsZero() {
			return now, deadline, 0
		}
		return now, deadline, max(0, min(deadline.Sub(now)/64, 100*time.Millisecond))
	}
	// A retry's attempt starts now; the first one counts from when the
	// request arrived, which saves a clock read per request.
	attemptDeadline := func() (now, deadline time.Time, slack time.Duration) { return deadlineFrom(time.Now()) }
	now, deadline, slack := deadlineFrom(rec.Start)
	if grpc && !deadline.IsZero() {
		// The upstream learns the time actually left, so it can give up
		// when the gateway will.
		r.Header["Grpc-Timeout"] = []string{proxy.FormatGRPCTimeout(time.Until(deadline))}
	}

	if r.ProtoMajor >= 2 && r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
		db := &deadlineBody{r: r.Body, rc: http.NewResponseController(w), idle: h.bodyIdle, deadline: deadline}
		defer db.end()
		r.Body = db
	}
	out := proxy.Outbound{
		Method:        r.Method,
		RequestURI:    requestURI(r, rewritten),
		Host:          r.Host,
		Header:        r.Header,
		Body:          r.Body,
		ContentLength: r.ContentLength,
		Deadline:      deadline,
		DeadlineSlack: slack,
		Now:           now,
		DialTimeout:   target.ConnectTimeout,
		IdleTimeout:   target.IdleTimeout,
	}
	if fwd != nil {
		out.Forwarded = *fwd
	}
	if cb := target.CircuitBreaker; cb != nil && cb.MaxConnections > 0 {
		out.AcquireConn = func(ctx context.Context) (func(), error) { return h.balancer.AcquireConn(ctx, target) }
	}
	if r.ContentLength == 0 {
		out.Body = nil
	}
	respFilters := route.ResponseHeaders
	backendResp := b.ResponseHeaders
	alt := h.altSvc.Load()
	if r.ProtoMajor >= 3 {
		alt = nil
	}
	session := route.Session
	if len(respFilters) == 0 && len(backendResp) == 0 && alt == nil && cors == nil && session == nil &&
		!rec.GRPC && (route.IR.Retry == nil || len(route.IR.Retry.GRPCCodes) == 0) {
		// Nothing reads or edits the upstream's response header (a retry
		// on status codes reads only the status): an HTTP/1.1 client's
		// writer takes it as header lines.
		out.RawHead = rawHeadSink(w)
	}
	var ep *ir.Endpoint
	writeHeader := func(status int) {
		rh := w.Header()
		if alt != nil {
			// The upstream's own Alt-Svc names the upstream, not us.
			rh["Alt-Svc"] = []string{*alt}
		}
		if cors != nil {
			cors.Apply(rh, origin)
		}
		for _, f := range respFilters {
			f.Apply(rh)
		}
		for _, f := range backendResp {
			f.Apply(rh)
		}
		if session != nil && ep != nil && (sessionToken == "" || ep.Address != prefer) {
			session.Issue(rh, filters.Token(target.Name, ep.Address), secureRequest(r))
		}
		w.WriteHeader(status)
	}
	setEndpoint := func(e *ir.Endpoint) { ep = e }
	var err error
	if upType != "" || xconnect {
		err = h.tunnel(ctx, w, r, rec, route, target, in, upType, xconnect, &out, writeHeader, setEndpoint)
	} else {
		err = h.forwardWithRetries(ctx, w, r, rec, target, in, &out, route.IR.Retry, writeHeader, attemptDeadline, setEndpoint)
		if mirror != nil {
			h.mirror.send(mirror)
		}
	}
	if errors.Is(err, upstream.ErrNoEndpoint) || errors.Is(err, upstream.ErrCircuitOpen) {
		h.pickFailed(w, r, rec, err)
		return
	}
	rec.UpstreamConnect = out.ConnectTime
	if !out.FirstByte.IsZero() {
		rec.UpstreamFirstByte = out.FirstByte.Sub(rec.Start)
	}
	if err != nil {
		h.upstreamFailed(ctx, w, r, rec, target, ep, host, err)
	}
}

// tunnel serves a protocol switch (WebSocket upgrade or extended CONNECT)
// to one endpoint, without retries. The Pick error it returns, as
// forwardWithRetries', is answered by serve through pickFailed.
func (h *listenerHandler) tunnel(ctx context.Context, w http.ResponseWriter, r *http.Request, rec *obs.Request, route *router.Route, target *ir.Backend,
	in upstream.PickInput, upType string, xconnect bool, out *proxy.Outbound, writeHeader func(int), setEndpoint func(*ir.Endpoint)) error {
	p, err := h.balancer.Pick(target, in)
	if err != nil {
		return err
	}
	ep := p.Endpoint
	setEndpoint(ep)
	rec.Endpoint = ep.Address
	rec.Upgrade = upType
	if xconnect {
		rec.Upgrade = "websocket"
	}
	routeName, upstreamAddr := route.IR.Name, ep.Address
	topts := proxy.TunnelOptions{
		IdleTimeout: h.tunnelLimits.IdleTimeout,
		MaxLifetime: h.tunnelLimits.MaxLifetime,
		Track: func(goAway func(string)) func() {
			return h.tunnels.add(h.addr, routeName, goAway)
		},
		OnEnd: func(reason string, toUpstream, toClient int64) {
			h.log.Debug("tunnel closed", "reason", reason, "route", routeName, "upstream", upstreamAddr,
				"path", r.URL.Path, "bytes_to_upstream", toUpstream, "bytes_to_client", toClient)
		},
	}
	if xconnect {
		err = h.forwarder.ExtendedConnect(ctx, target, ep, out, r.Body, w, writeHeader, topts)
	} else {
		err = h.forwarder.Upgrade(ctx, target, ep, upType, out, w, writeHeader, topts)
	}
	p.Done(outcomeOf(err, false, 0, ctx))
	return err
}

// upstreamFailed answers (or aborts) a request whose upstream exchange
// failed with err.
func (h *listenerHandler) upstreamFailed(ctx context.Context, w http.ResponseWriter, r *http.Request, rec *obs.Request, target *ir.Backend, ep *ir.Endpoint, host string, err error) {
	upAddr := ""
	if ep != nil {
		upAddr = ep.Address
	}
	if proxy.ResponseStarted(err) {
		rec.Reason = "upstream_reset"
		h.log.Warn("response aborted", "method", r.Method, "host", host, "path", r.URL.Path, "upstream", upAddr,
			"bytes_relayed", relayedBytes(w), "retries", rec.Retries, "error", err.Error())
		panic(http.ErrAbortHandler)
	}
	status, reason := proxy.StatusFor(err)
	if status == http.StatusGatewayTimeout && ctx.Err() == nil && r.Context().Err() != nil {
		status, reason = 499, "client_canceled"
	}
	rec.Reason = reason
	if reason == "upstream_timeout" {
		noteTimeoutStage(r, err)
	}
	var extra http.Header
	if reason == "circuit_open" {
		extra = circuitOpenHeaders
	}
	proxy.WriteErrorHeaders(w, r, h.log.With("upstream", upAddr, "backend", target.Name), status, reason, err, extra)
}

// pickFailed answers a request for which no endpoint could be chosen.
func (h *listenerHandler) pickFailed(w http.ResponseWriter, r *http.Request, rec *obs.Request, err error) {
	if errors.Is(err, upstream.ErrCircuitOpen) {
		rec.Reason = "circuit_open"
		proxy.WriteErrorHeaders(w, r, h.log, http.StatusServiceUnavailable, "circuit_open", err, circuitOpenHeaders)
		return
	}
	h.fail(w, r, rec, http.StatusServiceUnavailable, "no_healthy_upstream", err)
}

// requestURI is the origin-form target to send upstream.
func requestURI(r *http.Request, rewritten bool) string {
	if !rewritten && r.URL.Host == "" && strings.HasPrefix(r.RequestURI, "/") {
		return r.RequestURI
	}
	if r.Method == http.MethodOptions && r.RequestURI == "*" {
		return "*"
	}
	return r.URL.RequestURI()
}

// tooManyFields applies the HTTP/1 field limit to HTTP/2 requests, whose
// framing the HTTP/1 scan does not see.
func tooManyFields(h http.Header) bool {
	if len(h) <= server.MaxHeaderFields {
		n := 0
		for _, vs := range h {
			n += len(vs)
		}
		return n > server.MaxHeaderFields
	}
	return true
}

type errString string

func (e errString) Error() string { return string(e) }

var _ http.Handler = (*listenerHandler)(nil)

// editsForwarded reports whether any of mods removes, sets or adds one of
// the forwarding fields ForwardedPolicy sets.
func editsForwarded(mods []*filters.HeaderModifier) bool {
	for _, m := range mods {
		if m.Edits("X-Forwarded-For", "Forwarded", "X-Forwarded-Proto", "X-Forwarded-Host") {
			return true
		}
	}
	return false
}

// applyForwarded works out r's forwarding fields (ForwardedPolicy) with
// what the connection remembers of its last request (ForwardedMemo): into
// f when it is not nil (the upstream client writes them), else onto r's
// header. An HTTP/1.1 connection keeps a memo and value storage of its own
// (hdrvals.Source); an HTTP/2 connection's concurrent streams share an
// immutable memo (server.ConnInfo.SharedMemo); HTTP/3 streams keep none.
func (h *listenerHandler) applyForwarded(w http.ResponseWriter, r *http.Request, f *proxy.ForwardedFields) {
	tls := r.TLS != nil
	if src := hdrvals.Find(w); src != nil {
		slot := src.ConnMemo()
		m, ok := (*slot).(*proxy.ForwardedMemo)
		if !ok {
			m = new(proxy.ForwardedMemo)
			*slot = m
		}
		if f != nil {
			h.forwarded.ApplyTo(f, r.Header, r.RemoteAddr, r.Host, tls, m)
		} else {
			h.forwarded.Apply(r.Header, r.RemoteAddr, r.Host, tls, src.HeaderValues(4), m)
		}
		return
	}
	if slot := server.ConnInfoFrom(r.Context()).SharedMemo(); slot != nil {
		old, _ := slot.Load().(*proxy.ForwardedMemo)
		var m *proxy.ForwardedMemo
		if f != nil {
			m = h.forwarded.ApplySharedTo(f, r.Header, r.RemoteAddr, r.Host, tls, old)
		} else {
			m = h.forwarded.ApplyShared(r.Header, r.RemoteAddr, r.Host, tls, old)
		}
		if m != old {
			slot.Store(m)
		}
		return
	}
	if f != nil {
		h.forwarded.ApplyTo(f, r.Header, r.RemoteAddr, r.Host, tls, nil)
	} else {
		h.forwarded.Apply(r.Header, r.RemoteAddr, r.Host, tls, nil, nil)
	}
}

// rawHeadSink returns the writer under w that takes a response head as
// header lines (proxy.RawHeadSink: Meshgate's HTTP/1.1 server), or nil when
// w is anything but the plain recordingWriter over one: a wrapper may need
// to see the header (gRPC-Web, the debug header).
func rawHeadSink(w http.ResponseWriter) proxy.RawHeadSink {
	rw, ok := w.(*recordingWriter)
	if !ok || rw.debug != nil {
		return nil
	}
	s, _ := rw.w.(proxy.RawHeadSink)
	return s
}
