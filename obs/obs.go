// Package obs is where the data plane reports what it did, so that metrics,
// access logs, traces and the live dashboard are fed from one place and
// agree with each other.
//
// The request handler fills one Request record per request and hands it to
// every Sink when the response is done; the controller hands a Reload record
// to every ReloadSink. Sinks are called on the request's goroutine and must
// not block: anything slow (a dashboard client, a log file on a slow disk)
// goes through the sink's own bounded, dropping queue. A Tracer, if set,
// opens a span when the request arrives and closes it with the same record.
package obs

import (
	"context"
	"net/http"
	"time"
	"unsafe"
)

// Request is everything known about one request once it is done. Sinks
// must not keep the pointer: the record is reused.
type Request struct {
	// Start is when the gateway began handling the request.
	Start time.Time
	// Duration is from Start until the response was complete.
	Duration time.Duration

	// Listener is the socket address; Gateway the matched listener
	// ("namespace/gateway/listener", "" when no route matched).
	Listener string
	Gateway  string
	// Route is the route's "namespace/name", and Rule its rule index; ""
	// and -1 when no route matched.
	Route string
	Rule  int
	// Backend is the chosen backend's name; Endpoint its address.
	Backend  string
	Endpoint string

	Method string
	Host   string
	Path   string
	// Proto is "HTTP/1.1", "HTTP/2.0" or "HTTP/3.0".
	Proto string
	// Client is the peer address.
	Client string
	// GRPC is true for gRPC and gRPC-Web calls; GRPCStatus is the status
	// the client got ("" when none was sent).
	GRPC       bool
	GRPCStatus string
	// Upgrade is the protocol a tunnel switched to ("websocket"), "" for
	// plain requests.
	Upgrade string

	// Status is the HTTP status sent; 0 when the response was aborted
	// before one was.
	Status int
	// BytesReceived and BytesSent count body bytes.
	BytesReceived int64
	BytesSent     int64

	// UpstreamConnect is the time spent opening a new upstream connection
	// (0 when a pooled one was used); UpstreamFirstByte the time from
	// Start until the upstream's response headers arrived (0 when there
	// was no upstream response).
	UpstreamConnect   time.Duration
	UpstreamFirstByte time.Duration
	// Retries is how many times the request was sent again after a
	// failed attempt.
	Retries int

	// Reason says why the gateway ended the request itself: "" when the
	// upstream answered, else the reason logged with the error, e.g.
	// "no_route", "upstream_timeout", "client_canceled", "aborted".
	Reason string
	// DeniedPolicy and DeniedSection name the SecurityPolicy
	// ("namespace/name") and its section ("jwt", "extAuth", ...) that
	// refused the request; "" when none did.
	DeniedPolicy  string
	DeniedSection string
	// TraceID is the request's trace ID when tracing is on.
	TraceID string

	// memos are the sinks' memo slots (Memo); Reset keeps them.
	memos [memoSlots]memo
}

// Reset clears r for reuse, keeping the sinks' memos.
func (r *Request) Reset() {
	m := r.memos
	*r = Request{Rule: -1, memos: m}
}

// MemoKey names a sink's memo slot in Request records: a sink keeps one as
// a field, and its address is the key.
type MemoKey struct{ _ byte }

// memoSlots is how many sinks can keep a memo with a record; a sink past
// them gets none.
const memoSlots = 4

type memo struct {
	key *MemoKey
	v   any
}

// Memo returns the slot of r where the sink owning key keeps what it
// looked up for the last request r recorded, or nil when every slot is
// taken by other sinks. A record serves one request at a time and is then
// reused, so a sink may cache its last lookup there without a lock: the
// next request on the record mostly has the same labels, and comparing
// them costs a fraction of a map lookup. What a sink keeps there must stay
// right for as long as the record lives, or carry what tells it apart
// from stale.
func (r *Request) Memo(key *MemoKey) *any {
	for i := range r.memos {
		m := &r.memos[i]
		if m.key == key {
			return &m.v
		}
		if m.key == nil {
			m.key = key
			return &m.v
		}
	}
	return nil
}

// Same reports whether a and b are equal, comparing their addresses
// first. The strings a sink's memo compares (configured names, constant
// labels) are nearly always the very same string as last time, which this
// decides in a few instructions; a struct's == calls memequal for every
// string field, which cost a memo hit a hundred instructions.
func Same(a, b string) bool {
	return len(a) == len(b) && (unsafe.StringData(a) == unsafe.StringData(b) || a == b)
}

// Sink receives finished requests.
type Sink interface {
	ObserveRequest(r *Request)
}

// Reload is one attempt to apply a configuration.
type Reload struct {
	Time time.Time
	// Generation is the config generation now in force.
	Generation int64
	// OK is false when the config was rejected and the previous one kept.
	OK bool
	// Error says why it was rejected.
	Error string
	// Duration is the time from receiving the snapshot to serving it.
	Duration time.Duration
	// Listeners and Rejected count the listeners served and the objects
	// rejected.
	Listeners, Rejected int
}

// ReloadSink receives reload attempts.
type ReloadSink interface {
	ObserveReload(r *Reload)
}

// Tracer opens a server span per request.
type Tracer interface {
	// Start begins a span for r, continuing the caller's trace when its
	// headers carry one; the returned context carries the span.
	Start(ctx context.Context, r *http.Request) (context.Context, Span)
}

// Span is one request's server span.
type Span interface {
	// TraceID is the span's trace ID in hex, for the access log.
	TraceID() string
	// Inject writes the trace context (W3C traceparent, and B3 if
	// configured) into the upstream request's header.
	Inject(h http.Header)
	// End closes the span with the request's outcome.
	End(r *Request)
}

// Observers are the installed sinks; the zero value observes nothing.
type Observers struct {
	Sinks       []Sink
	ReloadSinks []ReloadSink
	Tracer      Tracer
}

// Request hands r to every sink.
func (o *Observers) Request(r *Request) {
	for _, s := range o.Sinks {
		s.ObserveRequest(r)
	}
}

// Reload hands r to every reload sink.
func (o *Observers) Reload(r *Reload) {
	if o == nil {
		return
	}
	for _, s := range o.ReloadSinks {
		s.ObserveReload(r)
	}
}
