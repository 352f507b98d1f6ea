// Package server owns the gateway's sockets: it accepts connections,
// terminates TLS, speaks HTTP/1.1 and HTTP/2 (TLS with ALPN, or cleartext
// with prior knowledge) and hands every request to one http.Handler. A
// listener's socket stays open across reloads; only its settings swap.
package server

import (
	"context"
	ctls "crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
)

// Limits are the downstream safety limits. The zero value of a field means
// the default named in its comment.
type Limits struct {
	// ReadHeaderTimeout bounds reading a request's headers (slowloris); 10 s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes keep-alive connections with no request; 60 s.
	IdleTimeout time.Duration
	// MaxHeaderBytes caps a request header block; 60 KiB (431 beyond).
	MaxHeaderBytes int
	// MaxConcurrentStreams caps HTTP/2 streams per connection; 100.
	MaxConcurrentStreams uint32
}

func (l Limits) withDefaults() Limits {
	if l.ReadHeaderTimeout <= 0 {
		l.ReadHeaderTimeout = 10 * time.Second
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = 60 * time.Second
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = 60 << 10
	}
	if l.MaxConcurrentStreams == 0 {
		l.MaxConcurrentStreams = 100
	}
	return l
}

// ConnInfo describes the downstream connection a request came on.
type ConnInfo struct {
	// TLS is the handshake state, nil for cleartext.
	TLS *ctls.ConnectionState
	// framing is set for HTTP/1 connections the framing scan watches.
	framing *framingConn
}

type connInfoKey struct{}

// ConnInfoFrom returns the connection info the listener stored in a
// request's context.
func ConnInfoFrom(ctx context.Context) *ConnInfo {
	ci, _ := ctx.Value(connInfoKey{}).(*ConnInfo)
	return ci
}

// RequestVerdict returns the framing scan's verdict for an HTTP/1 request:
// a non-zero Status means the request must be refused and the connection
// closed. HTTP/2 requests always get the zero Verdict: their framing is
// checked by the HTTP/2 server.
func RequestVerdict(r *http.Request) Verdict {
	if r.ProtoMajor != 1 {
		return Verdict{}
	}
	if ci := ConnInfoFrom(r.Context()); ci != nil && ci.framing != nil {
		return ci.framing.next()
	}
	return Verdict{}
}

// Listener is one bound socket. Its TLS settings can be swapped while it
// runs; connections already accepted keep the settings they started with.
type Listener struct {
	ln      net.Listener
	handler http.Handler
	log     *slog.Logger
	tls     atomic.Pointer[ctls.Config] // nil: cleartext

	h1      *http.Server
	h1conns *connQueue
	h2      *http2.Server

	maxHeaderBytes int

	wg       sync.WaitGroup // accept loop and HTTP/2 connections
	closing  atomic.Bool
	h2active sync.Map // *ctls.Conn -> struct{}
}

// Listen binds addr. Call Serve to start accepting.
func Listen(addr string, handler http.Handler, limits Limits, log *slog.Logger) (*Listener, error) {
	lc := net.ListenConfig{}
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, err
	}
	return newListener(ln, handler, limits, log), nil
}

func newListener(ln net.Listener, handler http.Handler, limits Limits, log *slog.Logger) *Listener {
	limits = limits.withDefaults()
	l := &Listener{ln: ln, handler: handler, log: log, h1conns: newConnQueue(ln.Addr()), maxHeaderBytes: limits.MaxHeaderBytes}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	l.h1 = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: limits.ReadHeaderTimeout,
		IdleTimeout:       limits.IdleTimeout,
		// net/http allows 4 KiB of slack beyond MaxHeaderBytes; the framing
		// scan enforces the exact limit for HTTP/1, this bounds HTTP/2.
		MaxHeaderBytes: limits.MaxHeaderBytes,
		Protocols:      &protocols,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: int(limits.MaxConcurrentStreams),
		},
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			ci := &ConnInfo{}
			if fc, ok := c.(*framingConn); ok {
				ci.framing = fc
				if tc, ok := fc.Conn.(*ctls.Conn); ok {
					st := tc.ConnectionState()
					ci.TLS = &st
				}
			}
			return context.WithValue(ctx, connInfoKey{}, ci)
		},
	}
	l.h2 = &http2.Server{
		MaxConcurrentStreams: limits.MaxConcurrentStreams,
		IdleTimeout:          limits.IdleTimeout,
		MaxReadFrameSize:     1 << 20,
	}
	if err := http2.ConfigureServer(l.h1, l.h2); err != nil {
		// Only fails for TLS settings this server does not use.
		log.Warn("http2 graceful-shutdown hook not installed", "error", err)
	}
	return l
}

// Addr is the bound address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// SetTLS switches the listener to TLS with cfg, or to cleartext with nil.
// It applies to connections accepted from now on.
func (l *Listener) SetTLS(cfg *ctls.Config) { l.tls.Store(cfg) }

// Serve accepts connections until Shutdown. It returns at once; errors of
// individual connections are logged.
func (l *Listener) Serve() {
	l.wg.Add(2)
	go func() {
		defer l.wg.Done()
		if err := l.h1.Serve(l.h1conns); err != nil && !errors.Is(err, http.ErrServerClosed) {
			l.log.Error("http server stopped", "addr", l.Addr().String(), "error", err)
		}
	}()
	go func() {
		defer l.wg.Done()
		l.acceptLoop()
	}()
}

func (l *Listener) acceptLoop() {
	var delay time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if l.closing.Load() {
				return
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Temporary failure such as EMFILE: back off, keep going.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			l.log.Warn("accept failed", "addr", l.Addr().String(), "error", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		cfg := l.tls.Load()
		if cfg == nil {
			l.h1conns.push(newFramingConn(c, l.maxHeaderBytes))
			continue
		}
		go l.serveTLS(c, cfg)
	}
}

// serveTLS completes the handshake and hands the connection to the HTTP/2
// server (ALPN h2) or to the HTTP/1 server.
func (l *Listener) serveTLS(c net.Conn, cfg *ctls.Config) {
	tc := ctls.Server(c, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), l.h1.ReadHeaderTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		l.log.Debug("tls handshake failed", "remote", c.RemoteAddr().String(), "error", err)
		c.Close()
		return
	}
	st := tc.ConnectionState()
	if st.NegotiatedProtocol != "h2" {
		l.h1conns.push(newFramingConn(tc, l.maxHeaderBytes))
		return
	}
	if l.closing.Load() {
		tc.Close()
		return
	}
	l.wg.Add(1)
	defer l.wg.Done()
	l.h2active.Store(tc, struct{}{})
	defer l.h2active.Delete(tc)
	ci := &ConnInfo{TLS: &st}
	l.h2.ServeConn(tc, &http2.ServeConnOpts{
		Context:    context.WithValue(context.Background(), connInfoKey{}, ci),
		BaseConfig: l.h1,
		Handler:    l.handler,
	})
}

// Shutdown stops accepting, lets in-flight requests finish until ctx ends,
// then closes what is left.
func (l *Listener) Shutdown(ctx context.Context) error {
	l.closing.Store(true)
	l.ln.Close()
	l.h1conns.close()
	// HTTP/2 connections get GOAWAY through the shutdown hook that
	// http2.ConfigureServer registered on the HTTP/1 server.
	err := l.h1.Shutdown(ctx)
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		l.h2active.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
		l.h1.Close()
		<-done
		if err == nil {
			err = ctx.Err()
		}
	}
	return err
}

// connQueue is a net.Listener fed by the accept loop, so the HTTP/1 server
// serves connections the listener already accepted (and, for TLS,
// handshaked).
type connQueue struct {
	addr   net.Addr
	ch     chan net.Conn
	done   chan struct{}
	closed sync.Once
}

func newConnQueue(addr net.Addr) *connQueue {
	return &connQueue{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (q *connQueue) push(c net.Conn) {
	select {
	case q.ch <- c:
	case <-q.done:
		c.Close()
	}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) close() { q.closed.Do(func() { close(q.done) }) }

func (q *connQueue) Close() error { q.close(); return nil }

func (q *connQueue) Addr() net.Addr { return q.addr }
