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
type H3Listener struct {
	pc  net.PacketConn
	srv *http3.Server
	log *slog.Logger
	tls atomic.Pointer[ctls.Config] // adjusted for HTTP/3 by SetTLS; nil refuses handshakes

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
	l := &H3Listener{pc: pc, log: log, served: make(chan struct{})}
	// One base config for the socket's lifetime: its GetConfigForClient
	// returns whatever SetTLS stored last, so a reload never rebinds.
	base := &ctls.Config{
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
		TLSConfig:      base,
		QUICConfig:     h3QUICConfig(limits, opts),
		Handler:        &h3Handler{next: handler, log: log},
		MaxHeaderBytes: limits.MaxHeaderBytes,
		IdleTimeout:    limits.IdleTimeout,
		Logger:         log,
	}
	return l, nil
}

// h3QUICConfig maps the listener limits onto QUIC. It always returns a
// Config: given none, quic-go's http3 server turns 0-RTT on.
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
// from cfg's GetCertificate at each handshake. Each call gets its own
// session-ticket keys, so after a swap clients resume with one full handshake
// (and no 0-RTT). cfg's GetConfigForClient, if any, is not consulted. nil
// refuses new handshakes.
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
			err := l.srv.Serve(l.pc)
			if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
				l.log.Warn("http3 listener stopped", "addr", l.Addr().String(), "error", err)
			}
		}()
	})
}

// Shutdown stops accepting connections, sends GOAWAY on every connection,
// lets in-flight requests finish until ctx ends, then closes the connections
// left and the socket. It returns ctx.Err() if requests had to be cut off.
// A connection whose client keeps it open after GOAWAY (quic-go and browsers
// close it once their requests are done) also lasts until ctx ends.
func (l *H3Listener) Shutdown(ctx context.Context) error {
	err := l.srv.Shutdown(ctx) // ctx.Err() if requests were cut off
	// http3 leaves a socket passed to Serve open.
	if cerr := l.pc.Close(); cerr != nil && err == nil && !errors.Is(cerr, net.ErrClosed) {
		err = cerr
	}
	if l.started.Load() {
		<-l.served
	}
	return err
}

// h3Handler adapts requests from quic-go's http3 server to what the handler
// sees from the TCP listener: ConnInfo in the context, the header-field cap,
// and a refusal of replayable (early-data) requests that are not safe.
type h3Handler struct {
	next http.Handler
	log  *slog.Logger
}

func (h *h3Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
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
