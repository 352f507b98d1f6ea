package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshgate/meshgate/internal/bufpool"
	"github.com/meshgate/meshgate/internal/hdrvals"
	"github.com/meshgate/meshgate/internal/rawio"
)

// H1Client forwards requests to HTTP/1.1 upstreams over pooled keep-alive
// connections, writing the response straight into the downstream
// ResponseWriter. It exists because net/http.Transport, built for general
// clients, is the largest cost in a Go proxy (see docs/performance.md): this
// client does only what a proxy needs and allocates little per request.
//
// The zero value is ready to use. An H1Client must not be copied after use.
type H1Client struct {
	// DialTimeout bounds connecting to an endpoint; 5 s when zero.
	DialTimeout time.Duration
	// MaxIdlePerEndpoint caps the idle connections kept per endpoint; 256
	// when zero.
	MaxIdlePerEndpoint int
	// IdleTimeout closes pooled connections unused for this long; 90 s when
	// zero.
	IdleTimeout time.Duration
	// MaxResponseHeaderBytes caps an upstream's response header block;
	// 64 KiB when zero. Upstreams are untrusted too.
	MaxResponseHeaderBytes int

	pools sync.Map // endpoint address -> *pool; read on every request
}

// UpstreamError is a failure talking to an upstream, classified so the caller
// can answer with the right status.
type UpstreamError struct {
	// Kind is why the upstream request failed.
	Kind UpstreamErrorKind
	// Err is the underlying error.
	Err error
}

// UpstreamErrorKind classifies an UpstreamError.
type UpstreamErrorKind int

// Kinds of upstream failure.
const (
	// ErrConnect: no connection could be made (refused, unreachable). 503.
	ErrConnect UpstreamErrorKind = iota
	// ErrTimeout: the upstream did not answer in time. 504.
	ErrTimeout
	// ErrProtocol: the upstream reset the connection or sent something
	// that is not HTTP. 502.
	ErrProtocol
	// ErrCanceled: the downstream client went away. 499 in logs.
	ErrCanceled
	// ErrRequestBody: reading the client's request body failed. 400.
	ErrRequestBody
	// ErrOverloaded: the backend's circuit breaker refused a new
	// connection (too many open and too many waiting). 503.
	ErrOverloaded
)

func (e *UpstreamError) Error() string {
	return [...]string{"upstream connect", "upstream timeout", "upstream protocol", "client canceled", "request body", "circuit breaker"}[e.Kind] + ": " + e.Err.Error()
}

func (e *UpstreamError) Unwrap() error { return e.Err }

// errResponseStarted wraps a failure after the response status was sent,
// when the only thing left to do is to abort the downstream stream.
var errResponseStarted = errors.New("response already started")

type pool struct {
	addr string
	tls  *tls.Config // nil: cleartext
	// idleTimeout, when set, overrides H1Client.IdleTimeout for this
	// endpoint (a backend's policy); the last request to set it wins.
	idleTimeout atomic.Int64
	mu          sync.Mutex
	idle        []*upConn
}

type upConn struct {
	net.Conn
	br       *bufio.Reader
	bw       *bufio.Writer
	lastUsed time.Time
	reused   bool
	// deadline is the deadline roundTrip last set, kept while it
	// covers the next exchange's (deadlineCovers): setting one is a
	// runtime timer update and three clock reads, ~600 instructions.
	// (abort sets one too, but a connection it hit is never reused.)
	deadline time.Time
	body     io.LimitedReader // reused for Content-Length bodies
	head     respScratch      // reused by readResponseHead
	// release frees the connection's slot in its backend's connection
	// cap (Outbound.AcquireConn); nil when uncapped.
	release func()
	// abort ends the exchange in progress when the downstream request
	// is canceled: made once, as every HTTP/2 request registers it.
	abort func()
}

func (c *H1Client) pool(addr string) *pool {
	if p, ok := c.pools.Load(addr); ok {
		return p.(*pool)
	}
	p, _ := c.pools.LoadOrStore(addr, &pool{addr: addr})
	return p.(*pool)
}

// tlsPool is the pool of TLS connections to addr made with cfg; key names
// cfg (server name and roots), so a reload with the same settings reuses
// the pooled connections.
func (c *H1Client) tlsPool(addr string, cfg *tls.Config, key string) *pool {
	k := addr + "|" + key
	if p, ok := c.pools.Load(k); ok {
		return p.(*pool)
	}
	p, _ := c.pools.LoadOrStore(k, &pool{addr: addr, tls: cfg})
	return p.(*pool)
}

func (c *H1Client) idleTimeout(p *pool) time.Duration {
	if d := p.idleTimeout.Load(); d > 0 {
		return time.Duration(d)
	}
	if c.IdleTimeout > 0 {
		return c.IdleTimeout
	}
	return 90 * time.Second
}

// probeIdleAfter is how long a pooled connection may sit idle before get
// checks, with one non-blocking peek, that the upstream has not closed it.
// Upstreams close idle keep-alive connections on their own timers (nginx
// after 75 s, Node.js after 5 s); a request written to such a connection
// fails, and only an idempotent one may be retried. Connections in steady
// use are reused without the extra system call.
const probeIdleAfter = time.Second

// get returns an idle connection to addr or dials a new one; now is the
// time of the call, to judge how long pooled connections have been idle.
// fresh skips the pool: a retry after a pooled connection failed must not
// take another connection that sat idle just as long.
func (c *H1Client) get(ctx context.Context, p *pool, out *Outbound, now time.Time, fresh bool) (*upConn, error) {
	if out.IdleTimeout > 0 && p.idleTimeout.Load() != int64(out.IdleTimeout) {
		p.idleTimeout.Store(int64(out.IdleTimeout))
	}
	idleTimeout := c.idleTimeout(p)
	for !fresh {
		p.mu.Lock()
		if len(p.idle) == 0 {
			p.mu.Unlock()
			break
		}
		uc := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		p.mu.Unlock()
		idle := now.Sub(uc.lastUsed)
		if idle < idleTimeout && (idle < probeIdleAfter || !rawio.PeerGone(uc.Conn)) {
			uc.reused = true
			return uc, nil
		}
		uc.close()
	}
	var release func()
	if out.AcquireConn != nil {
		var err error
		if release, err = out.AcquireConn(ctx); err != nil {
			return nil, &UpstreamError{Kind: ErrOverloaded, Err: err}
		}
	}
	start := time.Now()
	conn, err := c.dial(ctx, p.addr, out.DialTimeout)
	if err == nil && p.tls != nil {
		conn, err = tlsHandshake(ctx, conn, p.tls)
	}
	if err != nil {
		if release != nil {
			release()
		}
		return nil, err
	}
	out.ConnectTime += time.Since(start)
	uc := &upConn{Conn: conn, br: bufpool.Reader(conn), bw: bufpool.Writer(conn), release: release}
	uc.abort = func() { uc.SetDeadline(aLongTimeAgo) }
	return uc, nil
}

// dial opens a new connection to addr within timeout (DialTimeout when 0).
func (c *H1Client) dial(ctx context.Context, addr string, timeout time.Duration) (net.Conn, error) {
	if timeout <= 0 {
		timeout = c.DialTimeout
	}
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	d := net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return rawio.Wrap(conn), nil
}

// put returns uc to the pool; used is when its last response head arrived
// (Outbound.FirstByte, read then anyway), which stands for when it was last
// used: the body that followed is mostly short, and a connection deemed
// idle a body's length early is at worst checked with a peek (or, past
// the idle timeout, closed instead of reused).
func (c *H1Client) put(p *pool, uc *upConn, used time.Time) {
	max := c.MaxIdlePerEndpoint
	if max <= 0 {
		max = 256
	}
	if used.IsZero() {
		used = time.Now()
	}
	uc.lastUsed = used
	p.mu.Lock()
	if len(p.idle) < max {
		p.idle = append(p.idle, uc)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	uc.close()
}

func (uc *upConn) close() {
	if uc.release != nil {
		uc.release()
		uc.release = nil
	}
	uc.Conn.Close()
	bufpool.PutReader(uc.br)
	bufpool.PutWriter(uc.bw)
}

// CloseIdle closes every idle pooled connection, for shutdown and for
// endpoints that left the config.
func (c *H1Client) CloseIdle() {
	c.pools.Range(func(addr, v any) bool {
		c.pools.Delete(addr)
		p := v.(*pool)
		p.mu.Lock()
		for _, uc := range p.idle {
			uc.close()
		}
		p.idle = nil
		p.mu.Unlock()
		return true
	})
}

// Outbound is the request as it is sent upstream. Header must already be
// free of hop-by-hop fields; the client adds its own framing headers.
type Outbound struct {
	Method     string
	RequestURI string // origin-form, e.g. "/a?b=c"
	Host       string
	Header     http.Header
	// Forwarded are forwarding fields sent after Header's
	// (ForwardedPolicy.ApplyTo): written as header lines by the
	// HTTP/1.1 client, set on Header for an HTTP/2 upstream.
	Forwarded ForwardedFields
	Body      io.Reader // nil or http.NoBody for none
	// ContentLength is the body length, or -1 when unknown (sent chunked).
	ContentLength int64
	// Deadline bounds the attempt; zero for none.
	Deadline time.Time
	// Now is when the caller began the attempt, from the clock read
	// that set Deadline: the HTTP/1.1 pool judges how long its
	// connections have been idle by it instead of reading the clock
	// again (a clock read costs about as much as parsing a header line
	// on the benchmark's VM). Zero: the client reads the clock.
	Now time.Time
	// DeadlineSlack is how late Deadline may pass on an HTTP/1.1
	// upstream connection. A pooled connection whose deadline already
	// falls in [Deadline, Deadline+DeadlineSlack] keeps it, and a new
	// one is set DeadlineSlack late: a busy connection re-arms its
	// runtime timer a few times a second, not for every request.
	DeadlineSlack time.Duration
	// DialTimeout and IdleTimeout override the client's for this
	// backend (a policy's connect and idle timeouts); zero keeps them.
	DialTimeout time.Duration
	IdleTimeout time.Duration
	// AcquireConn, when set, is called before a new HTTP/1.1 connection
	// is opened and must return a release func, called when that
	// connection closes: the backend's connection cap. Its error
	// fails the request with ErrOverloaded.
	AcquireConn func(ctx context.Context) (release func(), err error)

	// RawHead, when set, receives the response's header fields as lines
	// ready to send, instead of the header map of the ResponseWriter
	// (HTTP/1.1 upstreams). The caller sets it only when nothing reads or
	// edits that map: no response filters, no retry on the status.
	RawHead RawHeadSink

	// Set by the client, for logs and metrics: ConnectTime is the time
	// spent opening a new connection (0 when a pooled one was used);
	// FirstByte is when the response headers arrived.
	ConnectTime time.Duration
	FirstByte   time.Time
}

// RawHeadSink takes a response head as header lines "Name: value\r\n"
// (validated, hop-by-hop fields and Content-Length removed), its
// Content-Length (-1 for none) and whether the lines include Date; the
// status follows through WriteHeader as usual. Meshgate's HTTP/1.1 response
// writer implements it: a proxied head then goes from the upstream's read
// buffer to the client's write buffer without a header map in between.
type RawHeadSink interface {
	SetRawHeader(fields []byte, contentLength int64, hasDate bool)
}

// Forward sends out to addr and copies the response to w. The response
// status and headers are written with writeHeader, which may edit the
// header before it is sent (response filters). An error returned before
// writeHeader ran is an *UpstreamError; after it, the response is partial
// and the error wraps errResponseStarted.
func (c *H1Client) Forward(ctx context.Context, addr string, out *Outbound, w http.ResponseWriter, writeHeader func(status int)) error {
	return c.forward(ctx, c.pool(addr), out, w, writeHeader)
}

// ForwardTLS is Forward over TLS made with cfg, whose identity is key.
func (c *H1Client) ForwardTLS(ctx context.Context, addr string, cfg *tls.Config, key string, out *Outbound, w http.ResponseWriter, writeHeader func(status int)) error {
	return c.forward(ctx, c.tlsPool(addr, cfg, key), out, w, writeHeader)
}

func (c *H1Client) forward(ctx context.Context, p *pool, out *Outbound, w http.ResponseWriter, writeHeader func(status int)) error {
	bodyless := out.Body == nil || out.Body == http.NoBody
	for attempt := 0; ; attempt++ {
		now := out.Now
		if now.IsZero() || attempt > 0 {
			now = time.Now()
		}
		uc, err := c.get(ctx, p, out, now, attempt > 0)
		if err != nil {
			if ue, ok := err.(*UpstreamError); ok {
				return ue
			}
			return classify(ctx, ErrConnect, err)
		}
		done, retry, err := c.roundTrip(ctx, uc, out, w, writeHeader)
		if err == nil {
			if done {
				c.put(p, uc, out.FirstByte)
			} else {
				uc.close()
			}
			return nil
		}
		uc.close()
		// A pooled connection the upstream closed while idle fails on
		// first use; retry once on a new connection when nothing of the
		// request body was consumed and the method may be repeated: the
		// upstream may also have read the request and then died, and a
		// POST must not be charged twice.
		if retry && uc.reused && bodyless && idempotent(out.Method) && attempt == 0 && ctx.Err() == nil {
			continue
		}
		return err
	}
}

// deadlineCovers reports whether a connection whose deadline is set serves
// an exchange that wants want, passing at most slack late.
func deadlineCovers(set, want time.Time, slack time.Duration) bool {
	if set.IsZero() || want.IsZero() {
		return set.IsZero() == want.IsZero()
	}
	return !set.Before(want) && set.Sub(want) <= slack
}

// roundTrip does one exchange on uc. done reports whether uc can be reused;
// retry whether the failure happened before the upstream sent anything.
func (c *H1Client) roundTrip(ctx context.Context, uc *upConn, out *Outbound, w http.ResponseWriter, writeHeader func(int)) (done, retry bool, err error) {
	if d := out.Deadline; !deadlineCovers(uc.deadline, d, out.DeadlineSlack) {
		if !d.IsZero() {
			d = d.Add(out.DeadlineSlack)
		}
		uc.SetDeadline(d)
		uc.deadline = d
	}
	// Abort the exchange when the downstream request is canceled. A
	// context with its own AfterFunc (an HTTP/2 stream's, see xhttp2's
	// streamContext) schedules the abort without the allocations of
	// context.AfterFunc, and asking it for Done first would make its
	// channel for nothing.
	var stop func() bool
	if af, ok := ctx.(interface{ AfterFunc(func()) func() bool }); ok {
		stop = af.AfterFunc(uc.abort)
	} else if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, uc.abort)
	}
	if stop != nil {
		defer func() {
			if !stop() {
				// The abort ran, or is about to, maybe after this
				// exchange ended: its deadline would kill the next
				// request on this connection, so it is not reused.
				done = false
			}
		}()
	}

	chunked := false
	if err := writeRequestHead(uc.bw, out, &chunked); err != nil {
		return false, true, classify(ctx, ErrProtocol, err)
	}
	if out.Body != nil && out.Body != http.NoBody {
		if err := writeBody(uc.bw, out.Body, chunked); err != nil {
			var be *bodyReadError
			if errors.As(err, &be) {
				return false, false, &UpstreamError{Kind: ErrRequestBody, Err: be.err}
			}
			return false, false, classify(ctx, ErrProtocol, err)
		}
	}
	// Yield before sending, as the server does before answering (see
	// server.(*h1Conn).serveOne): the requests of one scheduling round
	// reach the upstream together, which wakes once for them.
	runtime.Gosched()
	if err := uc.bw.Flush(); err != nil {
		return false, true, classify(ctx, ErrProtocol, err)
	}
	// The response cannot be there yet: let the other ready goroutines
	// run first, so that under load the read finds it instead of failing
	// with EAGAIN and parking. (The server loop does not yield the same
	// way before a client's next request: with that yield, wrk's p99 at
	// saturation went up several times, since a goroutine then waits
	// behind all the others before it even reads the request.)
	runtime.Gosched()

	maxHdr := c.MaxResponseHeaderBytes
	if maxHdr <= 0 {
		maxHdr = 64 << 10
	}
	var resp respHead
	for {
		resp.reset()
		if err := readResponseHead(uc.br, w, &resp, maxHdr, &uc.head, out.RawHead != nil); err != nil {
			retry := errors.Is(err, io.EOF) && resp.bytesRead == 0
			return false, retry, classify(ctx, ErrProtocol, err)
		}
		out.FirstByte = sinceNow(out.Now)

		// 1xx informational responses other than 101 are consumed; the
		// final response follows on the same connection.
		if resp.status >= 100 && resp.status < 200 && resp.status != http.StatusSwitchingProtocols {
			clear(w.Header())
			continue
		}
		break
	}
	if resp.status == http.StatusSwitchingProtocols {
		// Upgrades are not negotiated by this client: the request's
		// Upgrade header was removed as hop-by-hop.
		clear(w.Header())
		return false, false, &UpstreamError{Kind: ErrProtocol, Err: errors.New("unexpected 101 Switching Protocols")}
	}

	keep, err := relayResponse(uc.br, &uc.body, &resp, out.Method, w, writeHeader, out.RawHead, &uc.head)
	return keep && !resp.close && resp.proto11, false, err
}

// setContentLength sets h's Content-Length to raw, in storage from w's
// connection when it has some (hdrvals).
func setContentLength(w http.ResponseWriter, h http.Header, raw string) {
	v := hdrvals.Take(w, 1)
	v[0] = raw
	h["Content-Length"] = v
}

// relayResponse sends the response whose head is in resp: headers through
// writeHeader (the fields themselves through raw when it is set; sc holds
// them), then the body framed as the upstream framed it (lr is a reusable
// reader for Content-Length bodies). It reports whether the body ended
// cleanly with the connection still usable for another exchange.
func relayResponse(br *bufio.Reader, lr *io.LimitedReader, resp *respHead, method string, w http.ResponseWriter, writeHeader func(int), raw RawHeadSink, sc *respScratch) (bool, error) {
	var body io.Reader
	keep := true
	switch {
	case method == http.MethodHead || resp.status == http.StatusNoContent || resp.status == http.StatusNotModified:
		if resp.contentLength >= 0 && raw == nil {
			setContentLength(w, w.Header(), resp.contentLengthRaw)
		}
	case resp.chunked:
		body = httputil.NewChunkedReader(br)
	case resp.contentLength >= 0:
		if raw == nil {
			setContentLength(w, w.Header(), resp.contentLengthRaw)
		}
		*lr = io.LimitedReader{R: br, N: resp.contentLength}
		body = lr
	default:
		body = br // delimited by the upstream closing
		keep = false
	}
	if resp.ambiguous {
		keep = false
	}
	if raw != nil {
		raw.SetRawHeader(sc.out, resp.contentLength, resp.hasDate)
	}
	writeHeader(resp.status)
	if body == nil {
		// A bodiless response (HEAD, 204, 304) with bytes right behind
		// it: whatever they are, they must not become the answer to
		// the next request on this connection.
		return keep && br.Buffered() == 0, nil
	}
	if body == lr && resp.contentLength <= int64(br.Buffered()) {
		// The whole body came in with the head (most small responses):
		// the client's writer takes it straight from the read buffer,
		// not through a pooled copy buffer and a read loop.
		b, _ := br.Peek(int(resp.contentLength))
		_, err := w.Write(b)
		br.Discard(len(b))
		if err != nil {
			return false, fmt.Errorf("%w: copy response body: %w", errResponseStarted, err)
		}
		return keep && br.Buffered() == 0, nil
	}
	n, err := copyResponse(w, body, resp.contentLength < 0)
	if err != nil {
		return false, fmt.Errorf("%w: copy response body: %w", errResponseStarted, err)
	}
	if resp.contentLength >= 0 && n != resp.contentLength {
		return false, fmt.Errorf("%w: upstream sent %d of %d body bytes", errResponseStarted, n, resp.contentLength)
	}
	if resp.chunked {
		if err := skipTrailer(br); err != nil {
			return false, fmt.Errorf("%w: chunked trailer: %w", errResponseStarted, err)
		}
	}
	// Bytes after a complete response were never asked for.
	return keep && br.Buffered() == 0, nil
}

var aLongTimeAgo = time.Unix(1, 0)

func classify(ctx context.Context, kind UpstreamErrorKind, err error) error {
	if ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return &UpstreamError{Kind: ErrTimeout, Err: err}
		}
		return &UpstreamError{Kind: ErrCanceled, Err: err}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return &UpstreamError{Kind: ErrTimeout, Err: err}
	}
	return &UpstreamError{Kind: kind, Err: err}
}

func writeRequestHead(bw *bufio.Writer, out *Outbound, chunked *bool) error {
	// The head is appended to the writer's free space and written with
	// one call (a write per piece showed in profiles; a head larger than
	// the free space grows the slice instead).
	b := bw.AvailableBuffer()
	b = append(b, out.Method...)
	b = append(b, ' ')
	b = append(b, out.RequestURI...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, out.Host...)
	b = append(b, "\r\n"...)
	for k, vs := range out.Header {
		if k == "Host" || k == "Content-Length" || k == "Transfer-Encoding" {
			continue
		}
		for _, v := range vs {
			b = bufpool.AppendField(b, k, v)
		}
	}
	b = out.Forwarded.appendLines(b)
	hasBody := out.Body != nil && out.Body != http.NoBody
	switch {
	case hasBody && out.ContentLength >= 0:
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, out.ContentLength, 10)
		b = append(b, "\r\n"...)
	case hasBody:
		*chunked = true
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	case out.Method == http.MethodPost || out.Method == http.MethodPut || out.Method == http.MethodPatch:
		b = append(b, "Content-Length: 0\r\n"...)
	}
	b = append(b, "\r\n"...)
	_, err := bw.Write(b)
	return err
}

// bodyReadError marks a failure reading the downstream request body, as
// opposed to writing it upstream.
type bodyReadError struct{ err error }

func (e *bodyReadError) Error() string { return "read request body: " + e.err.Error() }

type bodyReader struct{ r io.Reader }

func (b bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		err = &bodyReadError{err}
	}
	return n, err
}

func writeBody(bw *bufio.Writer, body io.Reader, chunked bool) error {
	r := bodyReader{body}
	if !chunked {
		_, err := bw.ReadFrom(r)
		return err
	}
	cw := httputil.NewChunkedWriter(bw)
	buf := make([]byte, 16<<10)
	if _, err := io.CopyBuffer(cw, r, buf); err != nil {
		return err
	}
	if err := cw.Close(); err != nil {
		return err
	}
	_, err := bw.WriteString("\r\n")
	return err
}

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copyResponse copies the body, flushing after each read when the length is
// unknown so streamed responses (server-sent events) are not held back.
func copyResponse(w http.ResponseWriter, body io.Reader, flush bool) (int64, error) {
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	buf := *bp
	var n int64
	fl, _ := w.(http.Flusher)
	for {
		nr, rerr := body.Read(buf)
		if nr > 0 {
			nw, werr := w.Write(buf[:nr])
			n += int64(nw)
			if werr != nil {
				return n, werr
			}
			if flush && fl != nil {
				fl.Flush()
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

func skipTrailer(br *bufio.Reader) error {
	for i := 0; i < 100; i++ {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			return nil
		}
	}
	return errors.New("too many trailer fields")
}

// sinceNow returns the current time as from time.Now, counted on from
// start (the caller's earlier clock read) when there is one: that reads
// only the monotonic clock, where time.Now reads the wall clock too, and
// each read is a vDSO call costing tens of nanoseconds on a virtual
// machine.
func sinceNow(start time.Time) time.Time {
	if start.IsZero() {
		return time.Now()
	}
	return start.Add(time.Since(start))
}
