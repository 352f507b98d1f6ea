package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/http2"

	"github.com/meshgate/meshgate/internal/rawio"
	"github.com/meshgate/meshgate/ir"
)

// DefaultUpstreamTimeout bounds a request to an upstream when the route sets
// no timeout, so a stuck upstream cannot hold a request forever.
const DefaultUpstreamTimeout = 15 * time.Second

// Forwarder sends requests to upstream endpoints with the client each
// backend's protocol needs.
//
// Build it with NewForwarder: the zero value has no h2c transport and would
// send h2c backends HTTP/1.1.
type Forwarder struct {
	H1  H1Client
	h2c *http2.Transport
	tls upstreamTLS
}

// NewForwarder returns a Forwarder with its h2c transport set up.
func NewForwarder() *Forwarder {
	return &Forwarder{h2c: &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			return dialH2(ctx, network, addr)
		},
		// A busy backend's stream limit opens another connection rather
		// than queueing requests behind long-lived streams.
		StrictMaxConcurrentStreams: false,
		ReadIdleTimeout:            30 * time.Second,
	}}
}

// dialH2 opens the TCP connection under an HTTP/2 upstream connection
// (h2c, or TLS on top), with raw reads and writes as for HTTP/1.1.
func dialH2(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return rawio.Wrap(conn), nil
}

// Close releases pooled upstream connections.
func (f *Forwarder) Close() {
	f.H1.CloseIdle()
	if f.h2c != nil {
		f.h2c.CloseIdleConnections()
	}
	f.tls.closeIdle()
}

// Forward sends out to ep of backend b and writes the response to w via
// writeHeader. See H1Client.Forward for the error contract.
func (f *Forwarder) Forward(ctx context.Context, b *ir.Backend, ep *ir.Endpoint, out *Outbound, w http.ResponseWriter, writeHeader func(int)) error {
	if b.TLS != nil {
		e, err := f.tls.entry(b.TLS)
		if err != nil {
			return &UpstreamError{Kind: ErrConnect, Err: err}
		}
		if b.Protocol == ir.BackendH2C {
			return f.forwardH2(ctx, e.h2, "https://", ep.Address, out, w, writeHeader)
		}
		return f.H1.ForwardTLS(ctx, ep.Address, e.h1, e.key, out, w, writeHeader)
	}
	if b.Protocol == ir.BackendH2C {
		return f.forwardH2(ctx, f.h2c, "http://", ep.Address, out, w, writeHeader)
	}
	return f.H1.Forward(ctx, ep.Address, out, w, writeHeader)
}

// forwardH2 sends out over HTTP/2 with rt (h2c, or TLS with ALPN h2).
func (f *Forwarder) forwardH2(ctx context.Context, rt roundTripper, scheme, addr string, out *Outbound, w http.ResponseWriter, writeHeader func(int)) error {
	if !out.Deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, out.Deadline)
		defer cancel()
	}
	body := out.Body
	if body == nil {
		body = http.NoBody
	}
	req, err := http.NewRequestWithContext(ctx, out.Method, scheme+addr+out.RequestURI, body)
	if err != nil {
		return &UpstreamError{Kind: ErrProtocol, Err: err}
	}
	req.Host = out.Host
	req.Header = out.Header
	out.Forwarded.AddTo(req.Header, nil)
	req.ContentLength = out.ContentLength
	if body == http.NoBody {
		req.ContentLength = 0
	}
	resp, err := rt.RoundTrip(req)
	if err != nil && body == http.NoBody && refusedBeforeProcessing(err) && idempotent(out.Method) {
		// A fresh connection's first requests can race the backend's
		// SETTINGS (its stream limit): the backend refuses them unseen,
		// so one more try is safe for a bodiless idempotent request.
		resp, err = rt.RoundTrip(req)
	}
	if err != nil {
		return classifyH2(ctx, out.Deadline, err)
	}
	out.FirstByte = time.Now()
	defer resp.Body.Close()
	h := w.Header()
	for k, vs := range resp.Header {
		h[k] = vs
	}
	RemoveHopByHop(h)
	for k := range resp.Trailer {
		h.Add("Trailer", k)
	}
	writeHeader(resp.StatusCode)
	if resp.ContentLength != 0 && IsGRPC(h) {
		// A gRPC client may wait for the response headers (metadata)
		// before any message; a trailers-only response (no body) is not
		// flushed, so it goes out as one HEADERS frame that ends the
		// stream, as gRPC requires.
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
	}
	if _, err := copyResponse(w, resp.Body, true); err != nil {
		return errors.Join(errResponseStarted, err)
	}
	// Trailers the upstream did not announce (gRPC servers never do) can
	// only be sent under http.TrailerPrefix.
	for k, vs := range resp.Trailer {
		h[http.TrailerPrefix+k] = vs
	}
	return nil
}

// Upgrade forwards a protocol-switch request (WebSocket) to ep; see
// H1Client.Upgrade. Only HTTP/1.1 upstreams can be upgraded.
func (f *Forwarder) Upgrade(ctx context.Context, b *ir.Backend, ep *ir.Endpoint, upType string, out *Outbound, w http.ResponseWriter, writeHeader func(int), opts TunnelOptions) error {
	if b.Protocol != ir.BackendHTTP1 {
		return &UpstreamError{Kind: ErrProtocol, Err: errors.New("upgrade to a " + string(b.Protocol) + " backend is not supported")}
	}
	cfg, err := f.h1TLS(b)
	if err != nil {
		return err
	}
	return f.H1.Upgrade(ctx, ep.Address, cfg, upType, out, w, writeHeader, opts)
}

// ExtendedConnect bridges an HTTP/2 WebSocket (RFC 8441) to ep; see
// H1Client.ExtendedConnect. Only HTTP/1.1 upstreams can take it.
func (f *Forwarder) ExtendedConnect(ctx context.Context, b *ir.Backend, ep *ir.Endpoint, out *Outbound, body io.ReadCloser, w http.ResponseWriter, writeHeader func(int), opts TunnelOptions) error {
	if b.Protocol != ir.BackendHTTP1 {
		return &UpstreamError{Kind: ErrProtocol, Err: errors.New("WebSocket to a " + string(b.Protocol) + " backend is not supported")}
	}
	cfg, err := f.h1TLS(b)
	if err != nil {
		return err
	}
	return f.H1.ExtendedConnect(ctx, ep.Address, cfg, out, body, w, writeHeader, opts)
}

// refusedBeforeProcessing reports a stream the backend reset as a protocol
// or refused-stream error, which servers use for streams over their limit.
func refusedBeforeProcessing(err error) bool {
	var se http2.StreamError
	return errors.As(err, &se) && (se.Code == http2.ErrCodeProtocol || se.Code == http2.ErrCodeRefusedStream)
}

// idempotent reports whether a request with this method may be sent twice.
func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// deadlineSlack is how close to its deadline a request must be for an
// upstream's CANCEL to count as the upstream's own timer firing: the
// upstream got the deadline as grpc-timeout and may act on it a moment
// before the gateway's timer does.
const deadlineSlack = 100 * time.Millisecond

// classifyH2 classifies an HTTP/2 round-trip failure: a stream the upstream
// reset is a protocol failure (502), or a timeout when it cancelled at the
// deadline it was given; anything else failed to reach it (503).
func classifyH2(ctx context.Context, deadline time.Time, err error) error {
	var se http2.StreamError
	if !errors.As(err, &se) {
		return classify(ctx, ErrConnect, err)
	}
	if se.Code == http2.ErrCodeCancel && !deadline.IsZero() && time.Until(deadline) < deadlineSlack {
		return &UpstreamError{Kind: ErrTimeout, Err: err}
	}
	return classify(ctx, ErrProtocol, err)
}

// h1TLS is the HTTP/1.1 client TLS config for b, nil for cleartext.
func (f *Forwarder) h1TLS(b *ir.Backend) (*tls.Config, error) {
	if b.TLS == nil {
		return nil, nil
	}
	e, err := f.tls.entry(b.TLS)
	if err != nil {
		return nil, &UpstreamError{Kind: ErrConnect, Err: err}
	}
	return e.h1, nil
}

// StatusFor maps a forwarding failure to the status the client gets and a
// short reason for the log.
func StatusFor(err error) (status int, reason string) {
	var ue *UpstreamError
	if errors.As(err, &ue) {
		switch ue.Kind {
		case ErrConnect:
			return http.StatusServiceUnavailable, "upstream_connect_failure"
		case ErrTimeout:
			return http.StatusGatewayTimeout, "upstream_timeout"
		case ErrCanceled:
			return 499, "client_canceled"
		case ErrRequestBody:
			return http.StatusBadRequest, "request_body_error"
		case ErrOverloaded:
			return http.StatusServiceUnavailable, "circuit_open"
		}
		return http.StatusBadGateway, "upstream_protocol_error"
	}
	return http.StatusBadGateway, "upstream_error"
}

// ResponseStarted reports whether err happened after the response status
// was sent, when the only remaining move is to abort the stream.
func ResponseStarted(err error) bool { return errors.Is(err, errResponseStarted) }

// WriteError sends a gateway-made error response with a plain-text body and
// logs why. It is the one place where the gateway answers for an upstream.
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, status int, reason string, err error) {
	WriteErrorHeaders(w, r, log, status, reason, err, nil)
}

// WriteErrorHeaders is WriteError adding the extra headers to the answer
// (Retry-After and RateLimit-* on a 429, the circuit breaker's mark on a
// 503): everything else an upstream or filter put in the header goes.
func WriteErrorHeaders(w http.ResponseWriter, r *http.Request, log *slog.Logger, status int, reason string, err error, extra http.Header) {
	if log != nil {
		attrs := []any{"status", status, "reason", reason, "method", r.Method, "host", r.Host, "path", r.URL.Path}
		if err != nil {
			attrs = append(attrs, "error", err.Error())
		}
		log.Warn("request failed", attrs...)
	}
	if status == 499 {
		return // nobody is listening
	}
	if IsGRPC(r.Header) {
		writeGRPCError(w, status, reason, extra)
		return
	}
	h := w.Header()
	// Whatever an upstream or a filter put in the header goes, except a
	// decision to close the connection, which must survive (a refused
	// request's connection may hold a smuggled follow-up).
	conn := h["Connection"]
	clear(h)
	if conn != nil {
		h["Connection"] = conn
	}
	for k, v := range extra {
		h[k] = v
	}
	h["Content-Type"] = []string{"text/plain; charset=utf-8"}
	h["X-Content-Type-Options"] = []string{"nosniff"}
	w.WriteHeader(status)
	io.WriteString(w, http.StatusText(status)+" ("+reason+")\n")
}
