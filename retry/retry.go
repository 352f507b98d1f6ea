// Package retry decides whether a failed upstream attempt is sent again and
// how long to wait first, and keeps request bodies so they can be resent.
//
// It holds no state and does no I/O of its own beyond reading a request
// body: the proxy classifies each attempt into a Result, asks ShouldRetry,
// sleeps for Backoff and replays the Body. The randomness for jitter is
// passed in (rand.Uint64() in production), so every decision is a pure
// function that tests can pin. Retry budgets and circuit breakers
// (ir.Retry.BudgetPercent, ir.CircuitBreaker.MaxRetries) need per-backend
// counters and live with the rest of the runtime state in package upstream.
package retry

import (
	"bytes"
	"errors"
	"io"
	"math/bits"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/meshgate/meshgate/ir"
)

// Backoff defaults, Envoy's: a 25 ms base interval and a cap of ten times the
// base. They apply when the policy leaves BackoffBase or BackoffMax zero.
const (
	DefaultBackoffBase = 25 * time.Millisecond
	// DefaultBackoffMaxFactor times the base is the cap when BackoffMax is
	// zero (250 ms with the default base).
	DefaultBackoffMaxFactor = 10
)

// Result classifies how one upstream attempt ended, as much as ShouldRetry
// needs to know.
type Result struct {
	// Status is the upstream's HTTP status; 0 when there was no answer.
	Status int
	// GRPCStatus is the grpc-status of a trailers-only answer; -1 when
	// there was none (not gRPC, or a normal response whose status comes in
	// trailers after the body has already gone to the client, which can
	// no longer be retried).
	GRPCStatus int
	// ConnectFailure: no connection could be made (refused, unreachable,
	// connect timeout, TLS handshake failure). Nothing reached the backend.
	ConnectFailure bool
	// Reset: the connection was closed or reset before a response head
	// arrived.
	Reset bool
	// Timeout: the attempt ran out of its per-try time
	// (ir.Timeouts.BackendRequest).
	Timeout bool
}

// Replayable reports whether a request may be retried at all under p.
//
// Methods that RFC 9110 §9.2.2 defines as idempotent (GET, HEAD, OPTIONS,
// PUT, DELETE, TRACE) may be; any other only when p.NonIdempotent says the
// operator accepts that a POST could be applied twice. Method names are
// case-sensitive (RFC 9110 §9.1), so "get" is not GET. CONNECT is never
// retried: it opens a tunnel, not a request the gateway could replay.
//
// A request whose body could not be kept for replay (bodyReplayable false:
// streamed, larger than the buffer, see BufferBody) is never retried,
// whatever the method, because the bytes already sent are gone.
func Replayable(method string, bodyReplayable bool, p *ir.Retry) bool {
	if p == nil || !bodyReplayable {
		return false
	}
	switch method {
	case "GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE":
		return true
	case "CONNECT":
		return false
	}
	return p.NonIdempotent
}

// ShouldRetry reports whether the attempt that ended with r should be
// followed by another one, attempt being the number of retries already made
// (0 after the first try). It says yes only while attempt < p.Attempts and
// when r is one of the outcomes the policy names: an HTTP status in Codes, a
// gRPC status in GRPCCodes, or a connect failure, reset or per-try timeout
// the policy opts into. It does not check Replayable, which the caller asks
// once per request before the first attempt.
func ShouldRetry(p *ir.Retry, attempt int, r Result) bool {
	if p == nil || attempt < 0 || attempt >= p.Attempts {
		return false
	}
	switch {
	case r.ConnectFailure && p.ConnectFailure,
		r.Reset && p.Reset,
		r.Timeout && p.Timeout:
		return true
	}
	if r.Status != 0 && slices.Contains(p.Codes, r.Status) {
		return true
	}
	return r.GRPCStatus >= 0 && slices.Contains(p.GRPCCodes, r.GRPCStatus)
}

// Backoff is how long to wait before retry number attempt+1 (attempt is the
// number of retries already made, as for ShouldRetry): exponential backoff
// with full jitter, uniform in [0, min(BackoffMax, BackoffBase*2^attempt)].
// Full jitter spreads the retries of many clients that failed together,
// instead of having them hit a recovering backend in synchronized waves.
//
// BackoffBase defaults to DefaultBackoffBase and BackoffMax to
// DefaultBackoffMaxFactor times the base, as in Envoy; a nil policy uses
// both defaults. A BackoffMax below the base caps every wait at BackoffMax.
// rnd must be a uniform random 64-bit value.
func Backoff(p *ir.Retry, attempt int, rnd uint64) time.Duration {
	base, maxWait := DefaultBackoffBase, time.Duration(0)
	if p != nil {
		if p.BackoffBase > 0 {
			base = p.BackoffBase
		}
		maxWait = p.BackoffMax
	}
	if maxWait <= 0 {
		maxWait = DefaultBackoffMaxFactor * base
		if maxWait/DefaultBackoffMaxFactor != base { // overflow
			maxWait = time.Duration(1<<63 - 1)
		}
	}
	attempt = max(attempt, 0)
	ceiling := maxWait
	// base<<attempt without overflow: only shift while it stays under the cap.
	if attempt < 63 && base <= maxWait>>attempt {
		ceiling = base << attempt
	}
	// Scale rnd onto [0, ceiling] by the high word of a 128-bit product:
	// uniform up to a bias of ceiling/2^64, with no division.
	floor := time.Duration(0)
	if p != nil && p.BackoffMin > 0 {
		// A guaranteed minimum (Gateway API's backoff): jitter only
		// above it.
		floor = min(p.BackoffMin, ceiling)
	}
	hi, _ := bits.Mul64(rnd, uint64(ceiling-floor)+1)
	return floor + time.Duration(hi)
}

// DefaultMaxBody is the body size the gateway keeps for replay, as Envoy's
// default per-request buffer: enough for API calls and forms, small enough
// that buffering every retryable request costs little memory. Buffers of up
// to this size are pooled.
const DefaultMaxBody = 64 << 10

// bufPool holds DefaultMaxBody-byte buffers for BufferBody.
var bufPool = sync.Pool{New: func() any {
	b := make([]byte, DefaultMaxBody)
	return &b
}}

// ErrReleased is what a Body's reader returns after Release.
var ErrReleased = errors.New("retry: body read after release")

// Body is a request body read ahead so that it can be sent more than once.
//
// When the whole body fit, Replayable is true and every Reader starts from
// its first byte. When it did not (too large, or reading it failed), the
// body is still forwarded intact exactly once: Reader returns the bytes
// already read followed by the rest of the original stream (or the read
// error, at the position it happened).
type Body struct {
	bufp       *[]byte // pooled backing array, nil when not pooled
	data       []byte  // the whole body when replayable, else the prefix read
	stream     io.Reader
	err        error
	replayable bool
	released   bool
}

// emptyBody is shared by every empty body: it holds no buffer and is never
// changed (Release on it does nothing).
var emptyBody = &Body{replayable: true}

// BufferBody reads r ahead, up to maxBytes bytes (DefaultMaxBody is the usual
// value), so the request can be retried.
//
// contentLength is the declared length, -1 when unknown (chunked, HTTP/2
// without content-length). A body declared longer than maxBytes is not read at
// all: it streams through untouched and is not replayable. A body of unknown
// or lying length is read until maxBytes bytes; if more follows it is not
// replayable, and nothing read so far is lost. A nil r or http.NoBody is an
// empty, replayable body.
//
// Reading ahead waits for the client to send up to maxBytes bytes before the
// first attempt starts, as Envoy's buffering does; the server's body idle
// timeout bounds that wait. A read error while buffering is kept (Err) and
// replayed to the forwarder where it happened, so buffering never changes
// what the upstream sees.
//
// The caller must call Release once no attempt reads the body any more.
func BufferBody(r io.Reader, contentLength int64, maxBytes int64) *Body {
	if r == nil || r == http.NoBody {
		return emptyBody
	}
	maxBytes = min(maxBytes, int64(int(^uint(0)>>1)))
	if maxBytes <= 0 || contentLength > maxBytes {
		return &Body{stream: r}
	}
	// Probe for one byte first, so an empty body takes no buffer.
	var one [1]byte
	if n, err := io.ReadFull(r, one[:]); n == 0 {
		if err == io.EOF {
			return emptyBody
		}
		return &Body{stream: errReader{err}, err: err}
	}
	b := &Body{}
	var buf []byte
	if maxBytes <= DefaultMaxBody {
		b.bufp = bufPool.Get().(*[]byte)
		buf = (*b.bufp)[:maxBytes]
	} else {
		buf = make([]byte, maxBytes) // not pooled: a pool of outsized buffers would pin them
	}
	buf[0] = one[0]
	n, err := io.ReadFull(r, buf[1:])
	b.data = buf[:1+n]
	if err == nil {
		// The buffer is full: the body fits exactly only if nothing follows.
		var m int
		m, err = io.ReadFull(r, one[:])
		if m == 1 {
			b.stream = io.MultiReader(bytes.NewReader(b.data), bytes.NewReader([]byte{one[0]}), r)
			return b
		}
	}
	switch err {
	case io.EOF, io.ErrUnexpectedEOF:
		b.replayable = true
	default:
		b.err = err
		b.stream = io.MultiReader(bytes.NewReader(b.data), errReader{err})
	}
	return b
}

// Replayable reports whether the whole body was kept, so that it can be sent
// again (see Replayable the function, which takes this as bodyReplayable).
func (b *Body) Replayable() bool { return b.replayable }

// Len is the number of bytes kept: the body's exact length when
// Replayable, which lets a retry send a content-length even when the
// client's request had none.
func (b *Body) Len() int { return len(b.data) }

// Err is the error met reading the body ahead, if any (the client went away
// or sent a malformed chunk). The caller may answer at once instead of
// starting an attempt that would fail at that point anyway.
func (b *Body) Err() error { return b.err }

// Reader returns the body to send with one attempt. For a replayable body
// each call returns a new reader from the first byte; readers share the
// kept bytes read-only, so a previous attempt's writer still draining its
// reader does not disturb the next one. For a body that is not replayable
// every call returns the same one-shot stream.
func (b *Body) Reader() io.Reader {
	switch {
	case b.released:
		return errReader{ErrReleased}
	case b.replayable:
		return bytes.NewReader(b.data)
	}
	return b.stream
}

// Release returns the buffer to the pool. It must be called only once no
// reader returned by Reader is being read any more (every attempt's request
// writer has finished), since the buffer is then reused by another request.
// Calling it again does nothing; it is not safe for concurrent use.
func (b *Body) Release() {
	if b == emptyBody || b.released {
		return
	}
	b.released = true
	if b.bufp != nil {
		bufPool.Put(b.bufp)
	}
	b.bufp, b.data, b.stream = nil, nil, nil
}

// errReader returns err on every read.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
