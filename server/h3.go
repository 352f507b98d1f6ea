package server

// HTTP/3 for HTTPS listeners. The gateway binds a UDP socket at the TCP
// listener's port and serves the same http.Handler over QUIC (quic-go's http3
// server). Clients find it through the Alt-Svc header that HTTP/1.1 and
// HTTP/2 responses carry (see AltSvc).

import (
	"context"
	ctls "crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// altSvcMaxAge is how long (seconds) a client may remember the HTTP/3
// endpoint. One day: long enough to skip the TCP round trip on return visits,
// short enough that removing a listener's HTTP/3 is noticed within a day.
const altSvcMaxAge = 86400

// AltSvc returns the Alt-Svc header value that tells HTTP/1.1 and HTTP/2
// clients HTTP/3 is served on UDP port (RFC 9114 §3.1.1), e.g.
// `h3=":8443"; ma=86400`. The dataplane computes it once per listener and sets
// it on responses only while an H3Listener is serving that port, because a
// client that believes it goes on trying UDP for ma seconds.
func AltSvc(port int) string {
	return `h3=":` + strconv.Itoa(port) + `"; ma=` + strconv.Itoa(altSvcMaxAge)
}

// H3Options are the HTTP/3 settings that TCP listeners do not have.
type H3Options struct {
	// Allow0RTT accepts requests a resuming client sends in TLS early data,
	// saving it a round trip. Early data can be replayed by anyone who
	// captured it, so only GET, HEAD and OPTIONS are served from it; other
	// methods get 425 Too Early (RFC 8470) and the client retries once the
	// handshake is done. Off by default: replay safety of GETs depends on
	// the routes behind the gateway.
	Allow0RTT bool
}

// H3Listener is one UDP socket serving HTTP/3. Like Listener, its socket
// stays bound across reloads; SetTLS swaps the certificates new connections
// get.
//
// It runs its own accept loops over quic-go's RawServerConn rather than
// http3.Server.Serve, because only there is a request stream visible before
// its HEADERS frame is read: each gets a read deadline of ReadHeaderTimeout
// (quic-go's server has none, so a HEADERS frame trickled a byte at a time
// would hold its stream forever), which h3Handler clears once the request
// is parsed. srv is kept for its settings and builds the RawServerConns.
type H3Listener struct {
	pc                net.PacketConn
	srv               *http3.Server // never Serve'd: see above
	base              *ctls.Config
	readHeaderTimeout time.Duration
	log               *slog.Logger
	tls               atomic.Pointer[ctls.Config] // adjusted for HTTP/3 by SetTLS; nil refuses handshakes

	mu      sync.Mutex
	ln      *quic.EarlyListener // set by Serve
	closing bool                // Shutdown began: no new connections or requests
	conns   map[*h3Conn]struct{}
	connsWG sync.WaitGroup // one per connection being served

	serveOnce sync.Once
	served    chan struct{} // closed when the Serve goroutine returns
	started   atomic.Bool
}

// errNoH3TLS refuses handshakes before SetTLS gave the listener a config.
var errNoH3TLS = errors.New("http3 listener has no TLS configuration")

// ListenH3 binds the UDP address addr for HTTP/3. Pass the TCP listener's
// actual address (Listener.Addr) so the two share a port number even when the
// configuration asked for port 0. limits are the same as the TCP listener's;
// call SetTLS before Serve, or every handshake is refused.
func ListenH3(addr string, handler http.Handler, limits Limits, opts H3Options, log *slog.Logger) (*H3Listener, error) {
	lc := net.ListenConfig{}
	pc, err := lc.ListenPacket(context.Background(), "udp", addr)
	if err != nil {
		return nil, err
	}
	limits = limits.withDefaults()
	l := &H3Listener{pc: pc, log: log, readHeaderTimeout: limits.ReadHeaderTimeout, conns: map[*h3Conn]struct{}{}, served: make(chan struct{})}
	// One base config for the socket's lifetime: its GetConfigForClient
	// returns whatever SetTLS stored last, so a reload never rebinds.
	//
	// http3.Server.Serve would also record its SETTINGS in session tickets
	// and refuse 0-RTT under tickets issued with other SETTINGS. Not needed
	// here: the SETTINGS (from limits) are fixed for the process's
	// lifetime, and every ticket this listener can decrypt was issued by
	// this process (SetTLS's config's own keys, or the data plane's
	// tls.TicketKeys), so under the same SETTINGS.
	l.base = &ctls.Config{
		MinVersion: ctls.VersionTLS13,
		NextProtos: []string{http3.NextProtoH3},
		GetConfigForClient: func(*ctls.ClientHelloInfo) (*ctls.Config, error) {
			if c := l.tls.Load(); c != nil {
				return c, nil
			}
			return nil, errNoH3TLS
		},
	}
	l.srv = &http3.Server{
		QUICConfig:     h3QUICConfig(limits, opts),
		Handler:        &h3Handler{next: handler, log: log},
		MaxHeaderBytes: limits.MaxHeaderBytes,
		IdleTimeout:    limits.IdleTimeout,
		Logger:         log,
		// One connMemo per QUIC connection: ConnInfo is built per
		// request here, its per-connection values are not.
		ConnContext: func(ctx context.Context, _ *quic.Conn) context.Context {
			return context.WithValue(ctx, h3MemoKey{}, &connMemo{})
		},
	}
	return l, nil
}

// h3QUICConfig maps the listener limits onto QUIC. 0-RTT is on only when
// asked for (quic-go's http3 server, given no Config, would turn it on).
func h3QUICConfig(limits Limits, opts H3Options) *quic.Config {
	return &quic.Config{
		// The handshake is the part of a new connection a slow client
		// can drag out before any request exists, like the TLS handshake
		// the TCP listener bounds with ReadHeaderTimeout.
		HandshakeIdleTimeout: limits.ReadHeaderTimeout,
		// QUIC closes a connection silent this long; http3's IdleTimeout
		// (set alongside) also closes one that only sends PINGs.
		MaxIdleTimeout:     limits.IdleTimeout,
		MaxIncomingStreams: int64(limits.MaxConcurrentStreams),
		Allow0RTT:          opts.Allow0RTT,
	}
}

// Addr is the bound UDP address.
func (l *H3Listener) Addr() net.Addr { return l.pc.LocalAddr() }

// SetTLS sets the TLS settings for connections accepted from now on (the
// same *tls.Config the TCP listener gets, e.g. from tls.ServerConfig). It is
// copied with ALPN "h3" and TLS 1.3 as QUIC requires; certificates still come
// from cfg's GetCertificate at each handshake. Session tickets use cfg's
// WrapSession and UnwrapSession when set (tls.TicketKeys: tickets then
// survive swaps that keep the client-auth policy); otherwise each call gets
// its own keys, and after a swap clients resume with one full handshake (and
// no 0-RTT). cfg's GetConfigForClient, if any (per-host TLS options, which
// concern TLS 1.2 and ALPN over TCP), is not consulted. nil refuses new
// handshakes.
func (l *H3Listener) SetTLS(cfg *ctls.Config) {
	if cfg == nil {
		l.tls.Store(nil)
		return
	}
	c := cfg.Clone()
	c.NextProtos = []string{http3.NextProtoH3}
	c.MinVersion = ctls.VersionTLS13
	c.GetConfigForClient = nil
	// Create the session-ticket keys now, before quic-go and http3 clone
	// c for each handshake, so every clone shares them and tickets (and
	// with them 0-RTT) survive from one connection to the next.
	_, _ = c.DecryptTicket(nil, ctls.ConnectionState{})
	l.tls.Store(c)
}

// Serve starts serving in the background and returns at once, like
// Listener.Serve. Calling it again does nothing.
func (l *H3Listener) Serve() {
	l.serveOnce.Do(func() {
		l.started.Store(true)
		go func() {
			defer close(l.served)
			err := l.serve()
			if err != nil && !errors.Is(err, quic.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
				l.log.Warn("http3 listener stopped", "addr", l.Addr().String(), "error", err)
			}
		}()
	})
}

// serve is the connection accept loop, what http3.Server.Serve does.
func (l *H3Listener) serve() error {
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		return nil
	}
	ln, err := quic.ListenEarly(l.pc, l.base, l.srv.QUICConfig)
	if err != nil {
		l.mu.Unlock()
		return err
	}
	l.ln = ln
	l.mu.Unlock()
	for {
		// Accept returns connections before their handshake completes
		// (0-RTT), as http3.Server's listener does.
		qc, err := ln.Accept(context.Background())
		if err != nil {
			return err // quic.ErrServerClosed after Shutdown
		}
		c := &h3Conn{qc: qc}
		l.mu.Lock()
		if l.closing {
			l.mu.Unlock()
			qc.CloseWithError(quic.ApplicationErrorCode(http3.ErrCodeNoError), "")
			continue
		}
		l.conns[c] = struct{}{}
		l.connsWG.Add(1)
		l.mu.Unlock()
		go l.serveConn(c)
	}
}

// serveConn serves one connection until it closes and its requests have
// returned, what http3.Server.handleConn does but for the HEADERS deadline
// and Shutdown (see h3Conn).
func (l *H3Listener) serveConn(c *h3Conn) {
	defer func() {
		l.mu.Lock()
		delete(l.conns, c)
		l.mu.Unlock()
		l.connsWG.Done()
	}()
	// Opens the control stream and sends SETTINGS; sets the connection's
	// context values and the idle timeout.
	hc, err := l.srv.NewRawServerConn(c.qc)
	if err != nil {
		l.log.Debug("http3 connection failed", "remote", c.qc.RemoteAddr().String(), "error", err)
		c.qc.CloseWithError(quic.ApplicationErrorCode(http3.ErrCodeInternalError), "")
		return
	}
	c.setRaw(hc)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			str, err := c.qc.AcceptUniStream(context.Background())
			if err != nil {
				return
			}
			go hc.HandleUnidirectionalStream(str)
		}
	})
	for {
		str, err := c.qc.AcceptStream(context.Background())
		if err != nil {
			break // the connection closed, by either side
		}
		if !c.begin() {
			// Shutdown began: refused as http3.Server refuses streams
			// after GOAWAY. The client may retry it elsewhere.
			str.ReleaseStreamCredit()
			str.CancelRead(quic.StreamErrorCode(http3.ErrCodeRequestRejected))
			str.CancelWrite(quic.StreamErrorCode(http3.ErrCodeRequestRejected))
			continue
		}
		// The HEADERS frame must be read by then, or the read fails and
		// quic-go resets the stream (H3_REQUEST_INCOMPLETE) without
		// calling the handler. h3Handler clears the deadline.
		str.SetReadDeadline(time.Now().Add(l.readHeaderTimeout))
		wg.Go(func() {
			defer c.end()
			hc.HandleRequestStream(str)
		})
	}
	wg.Wait()
}

// h3Conn is one connection's state for Shutdown. The RawServerConn API gives
// no access to the control stream, so unlike http3.Server there is no GOAWAY:
// once draining, new request streams are refused with H3_REQUEST_REJECTED
// (which clients retry), and the connection is closed once its requests have
// finished and their last responses had time to be acknowledged.
type h3Conn struct {
	qc *quic.Conn

	mu       sync.Mutex
	raw      *http3.RawServerConn // nil until set up
	active   int                  // request streams being handled
	draining bool
	closing  bool // close scheduled
}

func (c *h3Conn) setRaw(hc *http3.RawServerConn) {
	c.mu.Lock()
	c.raw = hc
	c.mu.Unlock()
}

// begin counts a new request stream in, unless the connection is draining.
func (c *h3Conn) begin() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.draining {
		return false
	}
	c.active++
	return true
}

func (c *h3Conn) end() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.active--
	c.maybeCloseLocked()
}

// drain stops new requests and closes the connection once idle.
func (c *h3Conn) drain() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.draining = true
	c.maybeCloseLocked()
}

func (c *h3Conn) maybeCloseLocked() {
	if !c.draining || c.active > 0 || c.closing {
		return
	}
	c.closing = true
	// CONNECTION_CLOSE discards stream data not yet acknowledged, so the
	// last response gets time for its packets, or one retransmission of
	// them, to arrive.
	time.AfterFunc(h3Linger(c.qc.ConnectionStats()), c.close)
}

// close closes the connection at once, with H3_NO_ERROR as http3.Server does.
func (c *h3Conn) close() {
	c.mu.Lock()
	raw := c.raw
	c.mu.Unlock()
	if raw != nil {
		raw.CloseWithError(quic.ApplicationErrorCode(http3.ErrCodeNoError), "") // also stops its idle timer
	} else {
		c.qc.CloseWithError(quic.ApplicationErrorCode(http3.ErrCodeNoError), "")
	}
}

// h3Linger is how long a draining connection stays open after its last
// request: three probe timeouts (RFC 9002 §6.2.1, with the default 25 ms ack
// delay), which covers a lost last packet being sent again, within
// [100 ms, 3 s].
func h3Linger(st quic.ConnectionStats) time.Duration {
	pto := st.SmoothedRTT + max(4*st.MeanDeviation, time.Millisecond) + 25*time.Millisecond
	return min(max(3*pto, 100*time.Millisecond), 3*time.Second)
}

// Shutdown stops accepting connections and new requests, lets in-flight
// requests finish until ctx ends, closing each connection once its requests
// are done (see h3Conn), then closes the connections left and the socket. It
// returns ctx.Err() if requests had to be cut off.
func (l *H3Listener) Shutdown(ctx context.Context) error {
	l.mu.Lock()
	l.closing = true
	ln := l.ln
	conns := make([]*h3Conn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	if ln != nil {
		ln.Close() // established connections stay open
	}
	for _, c := range conns {
		c.drain()
	}
	done := make(chan struct{})
	go func() {
		l.connsWG.Wait() // no connection is added once closing is set
		close(done)
	}()
	var err error
	select {
	case <-done:
	default:
		select {
		case <-done:
		case <-ctx.Done():
			err = ctx.Err()
			// Closing a connection cancels its requests' contexts;
			// wait for their handlers to return, as http3.Server does.
			for _, c := range conns {
				c.close()
			}
			<-done
		}
	}
	if cerr := l.pc.Close(); cerr != nil && err == nil && !errors.Is(cerr, net.ErrClosed) {
		err = cerr
	}
	if l.started.Load() {
		<-l.served
	}
	return err
}

// h3MemoKey finds a QUIC connection's connMemo in its requests' contexts.
type h3MemoKey struct{}

// h3Handler adapts requests from quic-go's http3 server to what the handler
// sees from the TCP listener: no read deadline left from the HEADERS frame,
// ConnInfo in the context, the header-field cap, and a refusal of replayable
// (early-data) requests that are not safe.
type h3Handler struct {
	next http.Handler
	log  *slog.Logger
}

func (h *h3Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The HEADERS frame has been read: lift the read deadline serveConn set
	// for it, so the body is bounded only by the handler's own deadlines
	// (the dataplane sets one per read). Not supported by test recorders.
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
	if headerFields(r.Header) > MaxHeaderFields {
		h.refuse(w, r, http.StatusRequestHeaderFieldsTooLarge, "more than "+strconv.Itoa(MaxHeaderFields)+" header fields")
		return
	}
	// quic-go hands over a request as soon as its stream is readable, with
	// the TLS state of that moment. Before the client's Finished arrives
	// the only way a request can be readable is 0-RTT early data, which an
	// attacker may have replayed; once the handshake is complete the
	// client has proved it owns the connection, so the data was not.
	if r.TLS != nil && !r.TLS.HandshakeComplete {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			// RFC 8470 §5.1: an intermediary forwarding a request
			// before the handshake completes must say so, so the
			// origin can answer 425 itself.
			r.Header.Set("Early-Data", "1")
		default:
			h.refuse(w, r, http.StatusTooEarly, "request in TLS early data")
			return
		}
	}
	ci := &ConnInfo{TLS: r.TLS}
	ci.memo, _ = r.Context().Value(h3MemoKey{}).(*connMemo)
	h.next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), connInfoKey{}, ci)))
}

// refuse answers a request the handler must not see, with the same plain-text
// body and log line the HTTP/1.1 loop uses for requests it refuses.
func (h *h3Handler) refuse(w http.ResponseWriter, r *http.Request, status int, reason string) {
	h.log.Info("request refused", "proto", "h3", "remote", r.RemoteAddr, "method", r.Method, "status", status, "reason", reason)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	io.WriteString(w, strconv.Itoa(status)+" "+http.StatusText(status)+": "+reason+"\n")
}

// headerFields counts header fields (values, not names), as the HTTP/1.1
// parser does.
func headerFields(h http.Header) int {
	n := 0
	for _, vs := range h {
		n += len(vs)
	}
	return n
}
