package dataplane

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/meshgate/meshgate/filters"
	"github.com/meshgate/meshgate/ir"
	"github.com/meshgate/meshgate/obs"
	"github.com/meshgate/meshgate/proxy"
	"github.com/meshgate/meshgate/retry"
	"github.com/meshgate/meshgate/router"
	"github.com/meshgate/meshgate/upstream"
)

// Traffic policies on the request path: rate limits and injected faults run
// before anything is forwarded; the backend and endpoint are then chosen
// (session persistence, consistent hashing, health, breaker), and failed
// attempts are retried within the route's retry policy and budget.

// overloadedHeader marks a 503 the circuit breaker answered, so a client
// (or an operator reading a trace) can tell it from an upstream's own 503.
const overloadedHeader = "X-Meshgate-Overloaded"

var circuitOpenHeaders = http.Header{overloadedHeader: {"circuit-breaker"}}

// checkRateLimits applies the route's rate limits in order. It answers and
// returns false when one is exhausted (429) or its Redis is unreachable and
// the limit fails closed (503).
func (h *listenerHandler) checkRateLimits(w http.ResponseWriter, r *http.Request, rec *obs.Request, route *router.Route, clientIP string) bool {
	if h.limiter == nil {
		return true
	}
	for _, rl := range route.IR.RateLimits {
		key, ok := rateLimitKey(rl, r, clientIP, route.IR.Name)
		if !ok {
			continue
		}
		d := h.limiter.Allow(r.Context(), rl, key)
		if d.Allowed {
			if d.Err != nil {
				h.log.Warn("global rate limit unavailable, failing open", "limit", rl.Name, "error", d.Err.Error())
			}
			continue
		}
		if d.Err != nil {
			h.fail(w, r, rec, http.StatusServiceUnavailable, "rate_limit_unavailable", d.Err)
			return false
		}
		extra := http.Header{}
		d.SetHeaders(extra)
		rec.Reason = "rate_limited"
		proxy.WriteErrorHeaders(w, r, nil, http.StatusTooManyRequests, "rate_limited", nil, extra)
		return false
	}
	return true
}

// rateLimitKey is what rl counts r by; ok is false when the rule does not
// apply (a header key the request lacks). Counts are per route, so a
// policy attached to a Gateway limits each of its routes separately.
func rateLimitKey(rl *ir.RateLimit, r *http.Request, clientIP, route string) (string, bool) {
	switch rl.Key {
	case ir.RateLimitRoute:
		return route, true
	case ir.RateLimitHeader:
		v := r.Header.Get(rl.Header)
		return route + "|" + v, v != ""
	default:
		// Identity falls back to the client address until
		// authentication sets one.
		return route + "|" + clientIP, true
	}
}

// injectFault applies the route's FaultInjection: it returns false when the
// request was aborted (or the client left during the delay).
func (h *listenerHandler) injectFault(w http.ResponseWriter, r *http.Request, rec *obs.Request, f *filters.Fault) bool {
	d := f.Decide(r.Header, rand.Uint64())
	if d.Delay > 0 {
		t := time.NewTimer(d.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			rec.Reason = "client_canceled"
			return false
		}
	}
	if d.Abort == 0 && d.GRPCStatus < 0 {
		return true
	}
	rec.Reason = "fault_abort"
	if proxy.IsGRPC(r.Header) {
		code := d.GRPCStatus
		if code < 0 {
			code = proxy.GRPCStatusFor(d.Abort)
		}
		proxy.WriteGRPCStatus(w, code, "fault injected", nil)
		return false
	}
	status := d.Abort
	if status == 0 {
		status = filters.HTTPStatusForGRPC(d.GRPCStatus)
	}
	proxy.WriteErrorHeaders(w, r, nil, status, "fault_abort", nil, nil)
	return false
}

// requestHash is the consistent-hashing key of r for lb.
func requestHash(r *http.Request, lb *ir.LoadBalancer, clientIP string) (uint64, bool) {
	switch lb.HashOn {
	case ir.HashHeader:
		if v := r.Header.Get(lb.HashName); v != "" {
			return upstream.HashString(v), true
		}
	case ir.HashCookie:
		if c, err := r.Cookie(lb.HashName); err == nil && c.Value != "" {
			return upstream.HashString(c.Value), true
		}
	case ir.HashSourceIP:
		return upstream.HashString(clientIP), true
	}
	return 0, false
}

// retryWriter stands between the forwarder and the client while a response
// may still be thrown away for a retry: a retryable status is not written,
// and the body of such a response is refused, which ends that attempt.
type retryWriter struct {
	http.ResponseWriter
	// discard is set once the attempt's answer was judged retryable;
	// status is the answer's status.
	discard bool
	status  int
}

var errRetryDiscard = errors.New("response discarded for a retry")

func (rw *retryWriter) Write(p []byte) (int, error) {
	if rw.discard {
		return 0, errRetryDiscard
	}
	return rw.ResponseWriter.Write(p)
}

func (rw *retryWriter) Flush() {
	if !rw.discard {
		http.NewResponseController(rw.ResponseWriter).Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (rw *retryWriter) Unwrap() http.ResponseWriter { return rw.ResponseWriter }

// forwardWithRetries sends the request to endpoints of target until an
// answer comes back that the route's retry policy does not retry, or the
// attempts, budget or time run out. The response goes to w through
// writeHeader; onPick learns each attempt's endpoint before it is sent. It
// returns the last attempt's error, nil once a response was relayed, or the
// balancer's error (upstream.ErrNoEndpoint, upstream.ErrCircuitOpen) when no
// endpoint could be chosen.
func (h *listenerHandler) forwardWithRetries(ctx context.Context, w http.ResponseWriter, r *http.Request, rec *obs.Request,
	target *ir.Backend, in upstream.PickInput, out *proxy.Outbound, policy *ir.Retry, writeHeader func(int), newDeadline func() (now, deadline time.Time, slack time.Duration), onPick func(*ir.Endpoint)) error {
	var body *retry.Body
	retrying := policy != nil && policy.Attempts > 0
	if retrying && out.Body != nil {
		body = retry.BufferBody(out.Body, out.ContentLength, retry.DefaultMaxBody)
		defer body.Release()
		out.Body = body.Reader()
		if body.Replayable() && out.ContentLength < 0 {
			out.ContentLength = int64(body.Len())
		}
	}
	retrying = retrying && retry.Replayable(r.Method, body == nil || body.Replayable(), policy)
	var rw *retryWriter
	if retrying {
		rw = &retryWriter{ResponseWriter: w}
	}
	var releaseRetry func()
	defer func() {
		if releaseRetry != nil {
			releaseRetry()
		}
	}()
	// status is the current attempt's upstream status, for outlier
	// detection, whether the answer was relayed or discarded.
	var status int
	relay := func(s int) {
		status = s
		writeHeader(s)
	}
	for attempt := 0; ; attempt++ {
		p, err := h.balancer.Pick(target, in)
		if err != nil {
			return err
		}
		ep := p.Endpoint
		rec.Endpoint = ep.Address
		onPick(ep)
		status = 0
		dst := w
		wh := relay
		if rw != nil && attempt < policy.Attempts {
			rw.discard, rw.status = false, 0
			dst = rw
			wh = func(s int) {
				status = s
				rw.status = s
				if h.wantRetry(policy, attempt, s, rw.Header(), target, &releaseRetry) {
					rw.discard = true
					return
				}
				writeHeader(s)
			}
		}
		err = h.forwarder.Forward(ctx, target, ep, out, dst, wh)
		discarded := rw != nil && dst == rw && rw.discard
		p.Done(outcomeOf(err, discarded, status, ctx))
		if !discarded {
			if err == nil || rw == nil || attempt >= policy.Attempts || !h.retryableError(policy, attempt, err, ctx, target, &releaseRetry) {
				return err
			}
		}
		// Another attempt: forget this one's answer, header lines
		// included.
		clear(w.Header())
		if out.RawHead != nil {
			out.RawHead.SetRawHeader(nil, -1, false)
		}
		rec.Retries++
		in.Avoid = ep.Address
		in.Prefer = ""
		if d := retry.Backoff(policy, attempt, rand.Uint64()); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return &proxy.UpstreamError{Kind: proxy.ErrTimeout, Err: ctx.Err()}
			}
		}
		if body != nil {
			out.Body = body.Reader()
		}
		out.Now, out.Deadline, out.DeadlineSlack = newDeadline()
		out.ConnectTime, out.FirstByte = 0, time.Time{}
	}
}

// wantRetry decides, when an attempt's status arrives, whether to throw
// the answer away and retry: the status (or a trailers-only gRPC status) is
// one the policy names and the retry budget has room.
func (h *listenerHandler) wantRetry(policy *ir.Retry, attempt, status int, hdr http.Header, target *ir.Backend, release *func()) bool {
	res := retry.Result{Status: status, GRPCStatus: -1}
	if v := hdr["Grpc-Status"]; len(v) == 1 && status == http.StatusOK {
		res.GRPCStatus = atoiOr(v[0], -1)
	}
	if !retry.ShouldRetry(policy, attempt, res) {
		return false
	}
	return h.takeRetry(policy, target, release)
}

// retryableError decides whether a failed attempt is retried.
func (h *listenerHandler) retryableError(policy *ir.Retry, attempt int, err error, ctx context.Context, target *ir.Backend, release *func()) bool {
	if ctx.Err() != nil || proxy.ResponseStarted(err) {
		return false
	}
	var ue *proxy.UpstreamError
	if !errors.As(err, &ue) {
		return false
	}
	res := retry.Result{GRPCStatus: -1}
	switch ue.Kind {
	case proxy.ErrConnect:
		res.ConnectFailure = true
	case proxy.ErrProtocol:
		res.Reset = true
	case proxy.ErrTimeout:
		res.Timeout = true
	default:
		return false
	}
	if !retry.ShouldRetry(policy, attempt, res) {
		return false
	}
	return h.takeRetry(policy, target, release)
}

// takeRetry reserves a slot in the backend's retry budget, held until the
// request ends.
func (h *listenerHandler) takeRetry(policy *ir.Retry, target *ir.Backend, release *func()) bool {
	if *release != nil {
		return true // this request already holds one
	}
	if policy.BudgetPercent <= 0 && policy.MinRetryConcurrency <= 0 {
		// A budget of 0% with no minimum allows no retry. The translator
		// always fills both fields (defaults included), but the balancer
		// reads two zeros as "unset" and would apply its defaults.
		return false
	}
	rel, ok := h.balancer.AcquireRetry(target, policy)
	if !ok {
		return false
	}
	*release = rel
	return true
}

// outcomeOf is what an attempt tells outlier detection about its endpoint;
// status is the attempt's upstream status, 0 when unknown.
func outcomeOf(err error, discarded bool, status int, ctx context.Context) upstream.Outcome {
	if discarded || (err == nil && status != 0) {
		return upstream.Outcome{Status: status, GatewayError: status == 502 || status == 503 || status == 504}
	}
	if err == nil {
		return upstream.Outcome{Status: http.StatusOK}
	}
	var ue *proxy.UpstreamError
	if errors.As(err, &ue) {
		switch ue.Kind {
		case proxy.ErrCanceled, proxy.ErrRequestBody, proxy.ErrOverloaded:
			return upstream.Outcome{Local: true}
		case proxy.ErrTimeout:
			if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return upstream.Outcome{Local: true}
			}
		}
		return upstream.Outcome{GatewayError: true}
	}
	if proxy.ResponseStarted(err) {
		return upstream.Outcome{GatewayError: true}
	}
	return upstream.Outcome{Local: true}
}

func atoiOr(s string, def int) int {
	n := 0
	if s == "" || len(s) > 3 {
		return def
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return def
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// pickBackend chooses the backendRef for r: the one its session names
// when the route keeps sessions and the token is current, otherwise by
// weight. prefer is the session's endpoint; token the session token the
// request carried ("" when none or stale).
func pickBackend(route *router.Route, r *http.Request) (b *router.Backend, prefer, token string) {
	if route.Session != nil {
		if tok, ok := route.Session.Lookup(r); ok {
			if i, addr, ok := route.Sessions.Resolve(tok); ok && i < len(route.Backends) {
				return &route.Backends[i], addr, tok
			}
		}
	}
	return route.Pick(), "", ""
}

// isHashLB reports whether lb needs a request hash.
func isHashLB(lb *ir.LoadBalancer) bool {
	return lb != nil && (lb.Type == ir.LBRingHash || lb.Type == ir.LBMaglev)
}

// hasBody reports whether r carries a request body to forward.
func hasBody(r *http.Request) bool {
	return r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody
}

// secureRequest reports whether a session cookie should be Secure.
func secureRequest(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

var _ io.Writer = (*retryWriter)(nil)
