package dataplane

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshgate/meshgate/obs"
	"github.com/meshgate/meshgate/proxy"
)

// recordingWriter notes the status and body bytes a response sends, for
// the request's obs.Request. It passes Flush, Hijack and Unwrap through so
// streaming, WebSocket tunnels and http.ResponseController still work.
type recordingWriter struct {
	w      http.ResponseWriter
	status int
	bytes  int64
	// debug, when set, adds the debug header to the final response head.
	debug *debugState
}

func (rw *recordingWriter) Header() http.Header { return rw.w.Header() }

func (rw *recordingWriter) WriteHeader(code int) {
	if rw.debug != nil && code >= 200 && rw.status < 200 {
		rw.w.Header()[debugHeader] = []string{rw.debug.value()}
	}
	if rw.status == 0 || rw.status < 200 {
		rw.status = code
	}
	rw.w.WriteHeader(code)
}

func (rw *recordingWriter) Write(p []byte) (int, error) {
	if rw.status == 0 {
		if rw.debug != nil {
			rw.w.Header()[debugHeader] = []string{rw.debug.value()}
		}
		rw.status = http.StatusOK
	}
	n, err := rw.w.Write(p)
	rw.bytes += int64(n)
	return n, err
}

func (rw *recordingWriter) Flush() {
	if f, ok := rw.w.(http.Flusher); ok {
		f.Flush()
	}
}

func (rw *recordingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := rw.w.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("connection cannot be hijacked")
	}
	rw.status = http.StatusSwitchingProtocols
	return hj.Hijack()
}

func (rw *recordingWriter) Unwrap() http.ResponseWriter { return rw.w }

// countingBody counts the request body bytes read. It is allocated per
// request, not pooled: an HTTP/2 upstream transport may still read or close
// the body after the handler returned.
type countingBody struct {
	r interface {
		Read([]byte) (int, error)
		Close() error
	}
	n atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func (b *countingBody) Close() error { return b.r.Close() }

// observed is the per-request state reused through a pool, so observing a
// request allocates nothing.
type observed struct {
	rec  obs.Request
	rw   recordingWriter
	body *countingBody // nil for requests without a body
}

var observedPool = sync.Pool{New: func() any { return new(observed) }}

// fail answers with a gateway-made error and records why.
func (h *listenerHandler) fail(w http.ResponseWriter, r *http.Request, rec *obs.Request, status int, reason string, err error) {
	rec.Reason = reason
	proxy.WriteError(w, r, h.log, status, reason, err)
}

// finish completes rec after the response is done and hands it to the
// sinks.
func (h *listenerHandler) finish(o *observed) {
	rec := &o.rec
	rec.Duration = time.Since(rec.Start)
	rec.Status = o.rw.status
	rec.BytesSent = o.rw.bytes
	if o.body != nil {
		rec.BytesReceived = o.body.n.Load()
	}
	if rec.GRPC {
		hdr := o.rw.w.Header()
		if v := hdr["Grpc-Status"]; len(v) > 0 {
			rec.GRPCStatus = v[0]
		} else if v := hdr[http.TrailerPrefix+"Grpc-Status"]; len(v) > 0 {
			rec.GRPCStatus = v[0]
		}
	}
	h.obs.Request(rec)
}

// startObserving fills what is known of r before it is served.
func (h *listenerHandler) startObserving(w http.ResponseWriter, r *http.Request) *observed {
	o := observedPool.Get().(*observed)
	o.rec.Reset()
	o.rec.Start = time.Now()
	o.rec.Listener = h.addr
	o.rec.Method = r.Method
	o.rec.Host = r.Host
	o.rec.Path = r.URL.Path
	o.rec.Proto = r.Proto
	o.rec.Client = r.RemoteAddr
	o.rw = recordingWriter{w: w}
	o.body = nil
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		o.body = &countingBody{r: r.Body}
		r.Body = o.body
	}
	return o
}

// deadlineBody bounds each wait for request body bytes on HTTP/2 and
// HTTP/3, where the connection is shared and only the stream can time out:
// a read waits at most idle, and never past the request's deadline. (The
// HTTP/1 server bounds its connection reads itself.)
type deadlineBody struct {
	r        io.ReadCloser
	rc       *http.ResponseController
	idle     time.Duration
	deadline time.Time // the request's; zero for none

	// The upstream client may still read the body after the handler
	// returned (an answer that came before the whole request), when the
	// server's response writer is gone: end marks that, under mu.
	mu    sync.Mutex
	ended bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	d := time.Now().Add(b.idle)
	if !b.deadline.IsZero() && b.deadline.Before(d) {
		d = b.deadline
	}
	b.mu.Lock()
	if b.ended {
		b.mu.Unlock()
		return 0, http.ErrBodyReadAfterClose
	}
	b.rc.SetReadDeadline(d)
	b.mu.Unlock()
	return b.r.Read(p)
}

// end is called before the handler returns; later reads fail.
func (b *deadlineBody) end() {
	b.mu.Lock()
	b.ended = true
	b.mu.Unlock()
}

func (b *deadlineBody) Close() error { return b.r.Close() }

// The opt-in debug response header: a client whose address is in the
// prefixes of Options.DebugHeaderFrom and that sends "x-meshgate-debug: 1"
// gets the same header back, saying which route, rule, backend and endpoint
// served it, how many retries it took and, for an answer the gateway made
// itself, the typed reason (no_route, circuit_open, rate_limited,
// upstream_timeout with its stage, ...). Nobody else ever gets it, and the
// request header is removed before forwarding whoever sent it.

// debugHeader is the request and response header name.
const debugHeader = "X-Meshgate-Debug"

// debugState is what a debugged request's response header is built from.
type debugState struct {
	rec *obs.Request
	// stage says where an upstream timeout struck: connect, first-byte.
	stage string
}

type debugKey struct{}

// startDebug removes the debug request header and, when the client may
// and did ask, marks the request for a debug answer.
func startDebug(o *observed, r *http.Request, from []netip.Prefix) *http.Request {
	v, ok := r.Header[debugHeader]
	if !ok {
		return r
	}
	delete(r.Header, debugHeader)
	if len(v) != 1 || strings.TrimSpace(v[0]) != "1" || !debugAllowed(r.RemoteAddr, from) {
		return r
	}
	d := &debugState{rec: &o.rec}
	o.rw.debug = d
	return r.WithContext(context.WithValue(r.Context(), debugKey{}, d))
}

func debugAllowed(remote string, from []netip.Prefix) bool {
	if len(from) == 0 {
		return false
	}
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return false
	}
	a := ap.Addr().Unmap()
	for _, p := range from {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// noteTimeoutStage records, for a debugged request, where its upstream
// timeout struck: opening the connection or waiting for the response
// head (a timeout in the body comes after the header was sent).
func noteTimeoutStage(r *http.Request, err error) {
	d, _ := r.Context().Value(debugKey{}).(*debugState)
	if d == nil {
		return
	}
	d.stage = "first-byte"
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		d.stage = "connect"
	}
}

// relayedBytes is how many response body bytes went to the client, when w
// is the recording writer.
func relayedBytes(w http.ResponseWriter) int64 {
	if rw, ok := w.(*recordingWriter); ok {
		return rw.bytes
	}
	return -1
}

// value is the debug response header's value.
func (d *debugState) value() string {
	rec := d.rec
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	rule := "-"
	if rec.Route != "" && rec.Rule >= 0 {
		rule = strconv.Itoa(rec.Rule)
	}
	reason := rec.Reason
	if reason == "" {
		reason = "none"
	}
	s := "listener=" + dash(rec.Gateway) + " route=" + dash(rec.Route) + " rule=" + rule + " backend=" + dash(rec.Backend) +
		" endpoint=" + dash(rec.Endpoint) + " retries=" + strconv.Itoa(rec.Retries) + " reason=" + reason
	if reason == "upstream_timeout" && d.stage != "" {
		s += " stage=" + d.stage
	}
	return s
}
