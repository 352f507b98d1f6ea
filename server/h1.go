package server

import (
	"bufio"
	"bytes"
	"context"
	ctls "crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	http2 "github.com/meshgate/meshgate/internal/xhttp2"

	"github.com/meshgate/meshgate/internal/bufpool"
	"github.com/meshgate/meshgate/internal/hdrvals"
	"github.com/meshgate/meshgate/internal/rawio"
)

// h1Conn serves HTTP/1.x on one connection. It is Meshgate's own HTTP/1.1
// server loop rather than net/http's, because net/http's per-request costs
// (a context, a background reader goroutine, fresh request and response
// objects) dominate a proxy's budget: here the request, its URL and header
// map, the response writer and the buffers live as long as the connection
// and are reset between requests. It also sees the raw head, so it can refuse
// what net/http silently repairs (Content-Length with Transfer-Encoding).
type h1Conn struct {
	l   *Listener
	c   net.Conn
	br  *bufio.Reader
	bw  *bufio.Writer
	ci  *ConnInfo
	req *http.Request
	url url.URL
	hb  headBuf
	w   h1Response
	// vals holds the header value slices of the request being served
	// (its parsed header, what the handler adds); reset per request.
	vals hdrvals.Arena
	// remote is the peer address, formatted once per connection.
	remote string
	// h2 is set once the connection was handed to the HTTP/2 server.
	h2 bool
	// hijacked is set once a handler took the connection over (an
	// upgrade such as WebSocket); the loop then leaves it alone.
	hijacked bool
	// rd is what br reads: the connection, with the first byte of a
	// request read while the connection was parked without buffers, or
	// the socket without waiting inside its read loop (serveLoop).
	rd connReader
	// The read loop's state between its steps: stepFn is step, made once;
	// loopIdle is set while waiting for a request (since idleAt),
	// headWait while waiting for the rest of a head; exit, ph and err say
	// what the loop left for the usual path.
	stepFn   func() bool
	loopIdle bool
	headWait bool
	idleAt   time.Time
	exit     loopExit
	ph       parsedHead
	err      error
	// state is idle or active (Listener.track); tracked is set once the
	// connection is in the listener's set.
	state   atomic.Uint32
	tracked bool
	// closed is set once Shutdown has begun closing the connection.
	closed atomic.Bool
	// memo is what the request handler keeps for the connection's next
	// requests (hdrvals.Source); dropped when the connection parks.
	memo any
	// rdl is the read deadline in force (setReadDeadline).
	rdl time.Time
}

// setReadDeadline sets the connection's read deadline and remembers it.
func (hc *h1Conn) setReadDeadline(t time.Time) {
	hc.rdl = t
	hc.c.SetReadDeadline(t)
}

// setWaitDeadline sets the read deadline of the wait before a request to
// now+d, unless the deadline in force already ends in the last eighth of
// that wait. A busy keep-alive connection then re-arms its timer a few
// times a second instead of for every request (each re-arm reads the
// clock three times and updates a runtime timer); the wait is at most d/8
// shorter (buffers of an idle connection go back after 1.75 s, not 2 s).
func (hc *h1Conn) setWaitDeadline(now time.Time, d time.Duration) {
	want := now.Add(d)
	if !hc.rdl.IsZero() && !hc.rdl.After(want) && want.Sub(hc.rdl) < d/8 {
		return
	}
	hc.setReadDeadline(want)
}

// newH1Conn sets up the state of an HTTP/1 connection. It is a function of
// its own, never inlined, so its temporaries are not part of serveH1's
// frame: that frame stays on the stack of every idle connection, and a
// small stack in use lets the GC halve a parked connection's stack.
//
//go:noinline
func (l *Listener) newH1Conn(c net.Conn, tlsState *ctls.ConnectionState) *h1Conn {
	ci := &ConnInfo{TLS: tlsState}
	if tlsState != nil {
		ci = newTLSConnInfo(tlsState)
	}
	hc := &h1Conn{l: l, c: c, ci: ci, remote: c.RemoteAddr().String()}
	hc.rd.c = c
	if rc, ok := c.(*rawio.Conn); ok {
		hc.rd.raw = rc
		hc.stepFn = hc.step
	}
	hc.br, hc.bw = bufpool.Reader(&hc.rd), bufpool.Writer(c)
	// The request context is never canceled: this loop does not read the
	// connection while a handler runs (no background reader), so a client
	// going away shows as a failed write. Its nil Done channel tells the
	// proxy it need not watch for cancellation.
	ctx := context.WithValue(context.Background(), connInfoKey{}, hc.ci)
	hc.req = (&http.Request{}).WithContext(ctx)
	hc.w.hdr = http.Header{}
	hc.w.conn = hc
	hc.w.rawCL = -1
	return hc
}

// h2Preface is the client connection preface of HTTP/2 with prior knowledge.
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// serveH1 runs the request loop on c until it closes.
func (l *Listener) serveH1(c net.Conn, tlsState *ctls.ConnectionState) {
	hc := l.newH1Conn(c, tlsState)
	l.stats.h1.Add(1)
	defer l.stats.h1.Add(-1)

	defer func() {
		l.untrack(hc)
		if hc.hijacked {
			return // the connection and its buffers belong to the handler
		}
		c.Close()
		if hc.h2 {
			// The HTTP/2 server's reader goroutine may still be inside
			// br when ServeConn returns: leave the buffer to the GC.
			return
		}
		bufpool.PutReader(hc.br)
		bufpool.PutWriter(hc.bw)
	}()
	hc.loop()
}

func (hc *h1Conn) loop() {
	l := hc.l
	first := true
	usual := false // the next request is served below, not in serveLoop
	for {
		if !first && !usual && hc.rd.raw != nil {
			var keep bool
			if keep, usual = hc.serveLoop(); !keep {
				return
			}
			continue
		}
		usual = false
		// Wait for a request: the idle timeout between requests, the
		// header timeout once its first byte arrived.
		idleStart := time.Now()
		shrink := false
		if first {
			hc.setReadDeadline(idleStart.Add(l.limits.ReadHeaderTimeout))
		} else {
			shrink = hc.armIdleWait(idleStart)
		}
		if !l.track(hc, connIdle) {
			return
		}
		if _, err := hc.br.Peek(1); err != nil {
			if !hc.idleExpired(err, shrink) || !hc.waitIdle(idleStart.Add(l.limits.IdleTimeout)) {
				return
			}
		}
		if !l.track(hc, connActive) {
			return
		}
		if !first && !headBuffered(hc.br) {
			hc.armHeaderWait()
		}
		if first {
			first = false
			if b, _ := hc.br.Peek(4); string(b) == "PRI " {
				if p, err := hc.br.Peek(len(h2Preface)); err == nil && string(p) == h2Preface {
					l.serveH2C(hc)
					return
				}
			}
		}
		if !hc.serveOne() {
			return
		}
	}
}

// armIdleWait sets the deadline of the wait for the next request, which
// began at now. It reports whether that is the short wait with buffers
// (the idle timeout is longer than idleShrinkAfter): a connection idle for
// longer gives them back (see waitIdle).
func (hc *h1Conn) armIdleWait(now time.Time) (shrink bool) {
	if hc.l.limits.IdleTimeout > idleShrinkAfter {
		hc.setWaitDeadline(now, idleShrinkAfter)
		return true
	}
	hc.setWaitDeadline(now, hc.l.limits.IdleTimeout)
	return false
}

// armHeaderWait gives a head that did not come in one piece the header
// timeout from its first byte, not the idle one.
func (hc *h1Conn) armHeaderWait() {
	hc.setReadDeadline(time.Now().Add(hc.l.limits.ReadHeaderTimeout))
}

// idleExpired reports whether err ended the short wait with buffers (see
// armIdleWait) with nothing read: the connection then parks (waitIdle).
func (hc *h1Conn) idleExpired(err error, shrink bool) bool {
	var ne net.Error
	return shrink && errors.As(err, &ne) && ne.Timeout() && hc.br.Buffered() == 0
}

// idleShrinkAfter is how long a keep-alive connection waits for its next
// request with its buffers before it returns them to the pools.
const idleShrinkAfter = 2 * time.Second

// waitIdle parks an idle connection without its 8 KiB of buffers (thousands
// of idle keep-alive connections are common at the edge): it waits for one
// byte straight from the socket, then takes buffers again with that byte in
// front. It reports whether a request is starting.
func (hc *h1Conn) waitIdle(deadline time.Time) bool {
	// Everything sized by past requests goes too: the buffers (to the
	// GC, not the pools, so a trim really frees them), the head and the
	// held-back body bytes, the header maps and value slices. What stays
	// is the connection's fixed state and its goroutine's stack, which
	// the next GC shrinks to what the wait uses.
	hc.br, hc.bw = nil, nil
	hc.hb = headBuf{}
	hc.req.Header, hc.w.hdr, hc.w.pending, hc.w.rawHead = nil, nil, nil, nil
	hc.vals.Release()
	hc.memo = nil
	hc.setReadDeadline(deadline)
	hc.l.trim.parked()
	hc.l.parked.Add(1)
	n, err := hc.c.Read(hc.rd.b[:])
	hc.l.parked.Add(-1)
	hc.rd.has = n == 1
	hc.br, hc.bw = bufpool.Reader(&hc.rd), bufpool.Writer(hc.c)
	return err == nil && n == 1
}

// connReader is the source of a connection's buffered reader: first a
// byte read earlier (waitIdle), then the connection, or, inside the
// socket's read loop, the socket without waiting.
type connReader struct {
	b   [1]byte
	has bool
	c   net.Conn
	// raw is c when it is a plain TCP connection with raw reads (nil
	// for TLS and wrapped connections: they have no read loop).
	raw *rawio.Conn
	// inLoop is set while raw.ReadLoop runs: reads then never wait, and
	// drained records that the last one found the socket empty.
	inLoop  bool
	drained bool
}

func (p *connReader) Read(b []byte) (int, error) {
	if p.has && len(b) > 0 {
		b[0] = p.b[0]
		p.has = false
		return 1, nil
	}
	if p.inLoop {
		n, err := p.raw.Recv(b)
		p.drained = err == rawio.ErrWouldBlock || (err == nil && n < len(b))
		return n, err
	}
	return p.c.Read(b)
}

// headBuffered reports whether a whole request head is already buffered.
func headBuffered(br *bufio.Reader) bool {
	if br.Buffered() == 0 {
		return false
	}
	b, _ := br.Peek(br.Buffered())
	if n := len(b); n >= 4 && b[0] != '\r' && b[0] != '\n' && string(b[n-4:]) == "\r\n\r\n" {
		// The usual case, one whole head and nothing else: the first
		// empty line is there, at the end or before it.
		return true
	}
	// Blank lines before a request are skipped (RFC 9112 §2.2), so they
	// are not a request: "\r\n\r\n" alone must not hold back a flush.
	b = bytes.TrimLeft(b, "\r\n")
	return bytes.Contains(b, []byte("\r\n\r\n")) || bytes.Contains(b, []byte("\n\n"))
}

// serveOne reads and answers one request. It reports whether the connection
// can carry another.
func (hc *h1Conn) serveOne() (keep bool) {
	var ph parsedHead
	if err := hc.readRequest(&ph); err != nil {
		// Answers held back for a pipelined request that never came
		// whole still belong to the client.
		hc.bw.Flush()
		hc.fail(err)
		return false
	}
	return hc.serveRequest(&ph)
}

// readRequest reads and parses the next request head into hc.req.
func (hc *h1Conn) readRequest(ph *parsedHead) error {
	r := hc.req
	if err := readHead(hc.br, &hc.hb, hc.l.limits.MaxHeaderBytes); err != nil {
		return err
	}
	resetRequest(r, &hc.url, hc.remote, hc.ci.TLS)
	clear(r.Header)
	hc.vals.Reset()
	*ph = parsedHead{}
	return parseRequest(&hc.hb, r, &hc.url, ph, &hc.vals)
}

// serveRequest answers the request readRequest parsed. It reports whether
// the connection can carry another.
func (hc *h1Conn) serveRequest(ph *parsedHead) (keep bool) {
	r := hc.req
	var body *h1Body
	if ph.chunked || ph.contentLength > 0 {
		// Bodies may stream slowly (uploads); the next request's wait
		// sets a new deadline anyway.
		hc.setReadDeadline(time.Time{})
		body = &h1Body{conn: hc, expect100: ph.expect100}
		if ph.chunked {
			body.r = httputil.NewChunkedReader(hc.br)
			body.chunked = true
		} else {
			body.r = &body.lr
			body.lr = io.LimitedReader{R: hc.br, N: ph.contentLength}
		}
		r.Body = body
	} else {
		r.Body = http.NoBody
	}

	w := &hc.w
	w.reset(r, ph.closeAfter)
	if !hc.serveHandler(w, r) {
		return false
	}
	if hc.hijacked {
		return false
	}
	if body != nil {
		body.mu.Lock()
		body.done = true
		body.mu.Unlock()
		if !body.drain() {
			w.closeAfter = true
		}
	}
	if err := w.finish(); err != nil {
		return false
	}
	if w.closeAfter || !headBuffered(hc.br) {
		// Flush unless a whole pipelined request is already here; their
		// answers then go out together. (A partial one may wait for
		// this answer before the client sends the rest.)
		//
		// Yield first: the answer goes out after the other goroutines
		// that are ready have run, so under load the answers of one
		// scheduling round reach the clients' side together. A client
		// (or load generator) whose CPU went idle between two answers
		// is woken once per round instead of once per answer; on the
		// benchmark's VM each such wake is an inter-processor interrupt
		// that the sender pays for. With this yield and the one before
		// the upstream write (proxy.H1Client), wrk -c64 rps rose by a
		// quarter there (0.67x to 0.85x nginx's, alternating rounds) and
		// p99 fell; with an empty run queue the yield returns at once.
		runtime.Gosched()
		if err := hc.bw.Flush(); err != nil {
			return false
		}
	}
	return !w.closeAfter && !hc.l.closing.Load()
}

// serveHandler runs the handler, turning a panic into a closed connection.
func (hc *h1Conn) serveHandler(w *h1Response, r *http.Request) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				hc.l.log.Error("handler panic", "remote", r.RemoteAddr, "path", r.URL.Path, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			}
			if !w.committed {
				// Nothing sent yet: the client still gets an answer.
				clear(w.hdr)
				w.status = 0
				w.pending = w.pending[:0]
				w.WriteHeader(http.StatusInternalServerError)
				w.closeAfter = true
				w.finish()
				hc.bw.Flush()
			} else {
				// The head and part of the body are out (or buffered):
				// send them, then the close ends the response short, so
				// the client sees a truncated response rather than
				// nothing, which it could take for a stale keep-alive
				// connection and silently retry.
				hc.bw.Flush()
			}
			ok = false
		}
	}()
	hc.l.handler.ServeHTTP(w, r)
	return true
}

// fail answers a request the server could not parse, then the caller closes.
func (hc *h1Conn) fail(err error) {
	var re *requestError
	if !errors.As(err, &re) {
		return // I/O error or timeout: nobody to answer
	}
	hc.l.log.Info("malformed request refused", "remote", hc.remote, "status", re.Status, "reason", re.Reason)
	text := http.StatusText(re.Status)
	body := strconv.Itoa(re.Status) + " " + text + ": " + re.Reason + "\n"
	fmt.Fprintf(hc.bw, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s",
		re.Status, text, len(body), body)
	hc.bw.Flush()
	// Let the client read the answer before the reset a close with unread
	// input would cause.
	if tc, ok := hc.c.(interface{ CloseWrite() error }); ok {
		tc.CloseWrite()
		hc.setReadDeadline(time.Now().Add(500 * time.Millisecond))
		io.Copy(io.Discard, io.LimitReader(hc.c, 256<<10))
	}
}

func resetRequest(r *http.Request, u *url.URL, remote string, tlsState *ctls.ConnectionState) {
	hdr := r.Header
	if hdr == nil {
		hdr = http.Header{}
	}
	ctx := r.Context()
	*r = http.Request{}
	*r = *r.WithContext(ctx)
	r.Header = hdr
	r.URL = u
	r.RemoteAddr = remote
	r.TLS = tlsState
}

// h1Body is a request body. It belongs to one request: once the handler has
// returned, reads fail, so a body that escaped into another goroutine cannot
// read the next request's bytes.
type h1Body struct {
	conn      *h1Conn
	r         io.Reader
	lr        io.LimitedReader
	chunked   bool
	expect100 bool
	mu        sync.Mutex
	done      bool
	eof       bool
	sawErr    bool
}

func (b *h1Body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.eof {
		return 0, io.EOF
	}
	if b.expect100 {
		b.expect100 = false
		if !b.conn.w.committed {
			b.conn.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
			b.conn.bw.Flush()
		}
	}
	if b.conn.br.Buffered() == 0 {
		// A slow-body client (RUDY) must not hold the connection and the
		// upstream request forever: each wait for body bytes is bounded.
		b.conn.setReadDeadline(time.Now().Add(b.conn.l.limits.BodyIdleTimeout))
	}
	n, err := b.r.Read(p)
	if err == io.EOF {
		if b.chunked {
			if terr := skipRequestTrailer(b.conn.br); terr != nil {
				b.sawErr = true
				return n, terr
			}
		} else if b.lr.N > 0 {
			b.sawErr = true
			return n, io.ErrUnexpectedEOF
		}
		b.eof = true
	} else if err != nil {
		b.sawErr = true
	}
	return n, err
}

// Close is a no-op: the server drains or discards what the handler left.
func (b *h1Body) Close() error { return nil }

// drain reads what the handler left of the body, up to a bound, so the
// connection can carry the next request. It reports success.
func (b *h1Body) drain() bool {
	if b.eof {
		return true
	}
	if b.sawErr || b.expect100 {
		return false // a body never asked for is not read (100-continue)
	}
	b.done = false
	n, err := io.Copy(io.Discard, io.LimitReader(b, 256<<10))
	b.done = true
	return err == nil && b.eof && n <= 256<<10
}

func skipRequestTrailer(br *bufio.Reader) error {
	for i := 0; i <= MaxHeaderFields; i++ {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 && (len(line) == 1 || line[0] == '\r') {
			return nil
		}
	}
	return errors.New("too many trailer fields")
}

// serveH2C hands a connection that opened with the HTTP/2 preface to the
// HTTP/2 server; the preface is still in the buffered reader.
func (l *Listener) serveH2C(hc *h1Conn) {
	hc.h2 = true
	hc.setReadDeadline(time.Time{})
	l.wg.Add(1)
	defer l.wg.Done()
	bc := &bufferedConn{Conn: hc.c, r: hc.br}
	l.h2active.Store(bc, struct{}{})
	defer l.h2active.Delete(bc)
	l.stats.h1.Add(-1) // serveH1 counted it; it is HTTP/2 now
	l.stats.h2.Add(1)
	defer func() {
		l.stats.h2.Add(-1)
		l.stats.h1.Add(1) // serveH1's deferred decrement follows
	}()
	l.h2.ServeConn(guardH2(bc, l.limits.ReadHeaderTimeout, l.log, &l.flushers), &http2.ServeConnOpts{
		Context:    context.WithValue(context.Background(), connInfoKey{}, &ConnInfo{memo: &connMemo{}}),
		BaseConfig: l.h2base,
		Handler:    l.handler,
	})
}

// bufferedConn replays what was already read into r before reading c.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }
