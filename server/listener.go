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

	http2 "github.com/meshgate/meshgate/internal/xhttp2"

	"github.com/meshgate/meshgate/internal/gopool"
	"github.com/meshgate/meshgate/internal/memtrim"
	"github.com/meshgate/meshgate/internal/rawio"

	// WebSocket over HTTP/2 (RFC 8441) must be switched on before
	// x/net/http2 initialises; see the package.
	_ "github.com/meshgate/meshgate/internal/xconnect"
)

// MaxHeaderFields is the most request header fields accepted; more gets 431.
const MaxHeaderFields = 100

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
	// BodyIdleTimeout bounds each wait for request body bytes (slow-body
	// attacks); IdleTimeout capped at 30 s when zero.
	BodyIdleTimeout time.Duration
	// Total, when set, is a connection cap shared by every listener that
	// has it, so many listeners cannot add up to more than the process
	// can hold.
	Total *ConnectionCap
	// MaxConnections caps the open connections of one listener; beyond
	// it new connections are accepted and closed at once, so a flood
	// cannot exhaust file descriptors or memory. 0 means no cap.
	MaxConnections int64
}

// WithDefaults returns l with every zero field set to its default, for
// code outside the listener that applies the same limits (HTTP/2 and
// HTTP/3 request bodies in the data plane).
func (l Limits) WithDefaults() Limits { return l.withDefaults() }

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
	if l.BodyIdleTimeout <= 0 {
		l.BodyIdleTimeout = min(l.IdleTimeout, 30*time.Second)
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
	// memo holds values derived from TLS, shared by the connection's
	// requests; nil computes them per request.
	memo *connMemo
}

// connMemo caches per-connection values for ConnInfo.
type connMemo struct {
	identity atomic.Pointer[string]
	shared   atomic.Value
}

// SharedMemo returns a slot for a value the request handler works out once
// per connection and shares between the connection's requests, which may
// run concurrently (HTTP/2 streams): what it stores must not change
// afterwards. Nil when the connection keeps no memo (HTTP/1.1 keeps its
// own per request loop, see hdrvals.Source).
func (ci *ConnInfo) SharedMemo() *atomic.Value {
	if ci == nil || ci.memo == nil {
		return nil
	}
	return &ci.memo.shared
}

// newTLSConnInfo is the ConnInfo of a TLS connection, st its final state.
func newTLSConnInfo(st *ctls.ConnectionState) *ConnInfo {
	return &ConnInfo{TLS: st, memo: &connMemo{}}
}

// ClientIdentity returns compute(TLS) (the client certificate identity an
// upstream is told about, tls.ClientAuth.Identity), computed by the
// connection's first request that asks and reused by the rest (HTTP/1.1
// keep-alive, HTTP/2 and HTTP/3 streams), so a request pays a pointer load,
// not a hash and a chain check. Every caller must pass the same compute.
// Before the handshake completes (HTTP/3 early data) nothing is cached.
func (ci *ConnInfo) ClientIdentity(compute func(*ctls.ConnectionState) string) string {
	if ci == nil || ci.TLS == nil {
		return ""
	}
	if ci.memo == nil || !ci.TLS.HandshakeComplete {
		return compute(ci.TLS)
	}
	if v := ci.memo.identity.Load(); v != nil {
		return *v
	}
	v := compute(ci.TLS)
	ci.memo.identity.Store(&v)
	return v
}

type connInfoKey struct{}

// ConnInfoFrom returns the connection info the listener stored in a
// request's context.
func ConnInfoFrom(ctx context.Context) *ConnInfo {
	ci, _ := ctx.Value(connInfoKey{}).(*ConnInfo)
	return ci
}

// Listener is one bound socket. Its TLS settings can be swapped while it
// runs; connections already accepted keep the settings they started with.
type Listener struct {
	ln      net.Listener
	handler http.Handler
	log     *slog.Logger
	limits  Limits
	tls     atomic.Pointer[ctls.Config] // nil: cleartext
	// proxyProto makes connections start with a PROXY protocol header
	// (proxyproto.go).
	proxyProto atomic.Bool

	h2     *http2.Server
	h2base *http.Server // carries HTTP/2's graceful-shutdown hook

	wg       sync.WaitGroup // accept loop and every connection
	closing  atomic.Bool
	mu       sync.Mutex
	conns    map[*h1Conn]struct{} // HTTP/1 connections; each keeps its own state
	h2active sync.Map             // net.Conn -> struct{}
	// flushers run the HTTP/2 connections' write batches (h2batch.go).
	flushers gopool.Pool[*batchConn]
	// parked counts idle HTTP/1 connections waiting without buffers.
	parked atomic.Int64
	// trim gives the memory of connections that went idle back to the OS.
	trim  idleTrim
	stats listenerStats
}

// listenerStats are the counters behind Stats.
type listenerStats struct {
	h1, h2, open              atomic.Int64
	tlsOK, tlsFailed, refused atomic.Uint64
}

// Stats is a snapshot of a listener's connection counters, for metrics.
type Stats struct {
	// H1 and H2 are the open HTTP/1 and HTTP/2 connections (HTTP/2 counts
	// TLS ALPN h2 and cleartext prior knowledge).
	H1, H2 int64
	// TLSHandshakes and TLSHandshakeErrors count completed and failed
	// TLS handshakes since the listener started.
	TLSHandshakes, TLSHandshakeErrors uint64
	// Refused counts connections closed at once because the listener was
	// at Limits.MaxConnections.
	Refused uint64
}

// ConnectionCap is a limit on open connections shared by listeners.
type ConnectionCap struct {
	// Max is the cap; 0 means none.
	Max  int64
	open atomic.Int64
}

// take reserves a connection; false when the cap is reached. A nil cap
// always has room.
func (c *ConnectionCap) take() bool {
	if c == nil || c.Max <= 0 {
		return true
	}
	if c.open.Add(1) > c.Max {
		c.open.Add(-1)
		return false
	}
	return true
}

func (c *ConnectionCap) release() {
	if c != nil && c.Max > 0 {
		c.open.Add(-1)
	}
}

// SetActivity gives the listener's memory trims (trim.go) the gateway's
// request activity: how many requests have started and whether one is in
// flight. A trim then waits until the whole gateway, not only this
// listener, has gone quiet.
func (l *Listener) SetActivity(activity memtrim.Activity) {
	l.trim.activity.Store(&activity)
}

// Open is the number of connections holding a place under the cap.
func (c *ConnectionCap) Open() int64 {
	if c == nil {
		return 0
	}
	return c.open.Load()
}

// release gives back a finished connection's places.
func (l *Listener) release() {
	l.limits.Total.release()
	if l.stats.open.Add(-1) == 0 && !l.closing.Load() {
		l.trim.emptied(l.stats.open.Load)
	}
}

// Stats returns the listener's counters.
func (l *Listener) Stats() Stats {
	return Stats{
		H1: l.stats.h1.Load(), H2: l.stats.h2.Load(),
		TLSHandshakes: l.stats.tlsOK.Load(), TLSHandshakeErrors: l.stats.tlsFailed.Load(),
		Refused: l.stats.refused.Load(),
	}
}

type connState uint8

const (
	connIdle connState = iota
	connActive
)

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
	l := &Listener{ln: ln, handler: handler, log: log, limits: limits, conns: map[*h1Conn]struct{}{}}
	l.trim.log = log
	l.h2base = &http.Server{
		ReadHeaderTimeout: limits.ReadHeaderTimeout,
		IdleTimeout:       limits.IdleTimeout,
		MaxHeaderBytes:    limits.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	l.h2 = &http2.Server{
		MaxConcurrentStreams: limits.MaxConcurrentStreams,
		IdleTimeout:          limits.IdleTimeout,
		MaxReadFrameSize:     1 << 20,
	}
	if err := http2.ConfigureServer(l.h2base, l.h2); err != nil {
		// Only fails for TLS settings this server does not use.
		log.Warn("http2 graceful-shutdown hook not installed", "error", err)
	}
	return l
}

// track records a connection's state; it reports false when the connection
// should end instead (an idle connection during shutdown).
func (l *Listener) track(hc *h1Conn, st connState) bool {
	// The set of connections changes once per connection, under the
	// lock; the state changes twice per request, without it. Against a
	// concurrent Shutdown: the connection stores its state, then reads
	// closing; Shutdown stores closing, then reads the states. One of the
	// two sees the other, so an idle connection never stays open.
	if !hc.tracked {
		hc.tracked = true
		l.mu.Lock()
		l.conns[hc] = struct{}{}
		l.mu.Unlock()
	}
	hc.state.Store(uint32(st))
	return st != connIdle || !l.closing.Load()
}

func (l *Listener) untrack(hc *h1Conn) {
	l.mu.Lock()
	delete(l.conns, hc)
	l.mu.Unlock()
}

// Addr is the bound address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// SetTLS switches the listener to TLS with cfg, or to cleartext with nil.
// It applies to connections accepted from now on.
func (l *Listener) SetTLS(cfg *ctls.Config) { l.tls.Store(cfg) }

// SetProxyProtocol makes connections accepted from now on start with a
// PROXY protocol v1 or v2 header, read within the read-header timeout;
// connections without a valid one are closed.
func (l *Listener) SetProxyProtocol(on bool) { l.proxyProto.Store(on) }

// readProxy replaces c by the connection its PROXY header describes, or
// closes it and returns nil.
func (l *Listener) readProxy(c net.Conn) net.Conn {
	pc, err := acceptProxy(c, l.limits.ReadHeaderTimeout)
	if err != nil {
		l.stats.refused.Add(1)
		l.log.Debug("proxy protocol header refused", "remote", c.RemoteAddr().String(), "error", err)
		c.Close()
		return nil
	}
	return pc
}

// Serve accepts connections until Shutdown. It returns at once; errors of
// individual connections are logged.
func (l *Listener) Serve() {
	l.wg.Add(1)
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
			if l.closing.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Temporary failure such as EMFILE: back off, keep going.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			l.log.Warn("accept failed", "addr", l.Addr().String(), "error", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		c = rawio.Wrap(c)
		if max := l.limits.MaxConnections; max > 0 && l.stats.open.Load() >= max || !l.limits.Total.take() {
			l.stats.refused.Add(1)
			c.Close()
			continue
		}
		l.stats.open.Add(1)
		l.trim.opened()
		cfg := l.tls.Load()
		proxied := l.proxyProto.Load()
		l.wg.Add(1)
		if cfg == nil {
			go func() {
				defer l.wg.Done()
				defer l.release()
				if proxied {
					if c = l.readProxy(c); c == nil {
						return
					}
				}
				l.serveH1(c, nil)
			}()
			continue
		}
		go func() {
			defer l.wg.Done()
			defer l.release()
			if proxied {
				if c = l.readProxy(c); c == nil {
					return
				}
			}
			l.serveTLS(c, cfg)
		}()
	}
}

// serveTLS completes the handshake and hands the connection to the HTTP/2
// server (ALPN h2) or to the HTTP/1 loop.
func (l *Listener) serveTLS(c net.Conn, cfg *ctls.Config) {
	tc := ctls.Server(c, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), l.limits.ReadHeaderTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		l.stats.tlsFailed.Add(1)
		l.log.Debug("tls handshake failed", "remote", c.RemoteAddr().String(), "error", err)
		c.Close()
		return
	}
	l.stats.tlsOK.Add(1)
	st := tc.ConnectionState()
	if st.Version == ctls.VersionTLS13 {
		ackNow(c)
	}
	if st.NegotiatedProtocol == "acme-tls/1" {
		// An ACME TLS-ALPN-01 validation: the handshake was all of it.
		tc.Close()
		return
	}
	if st.NegotiatedProtocol != "h2" {
		l.serveH1(tc, &st)
		return
	}
	if l.closing.Load() {
		tc.Close()
		return
	}
	l.h2active.Store(net.Conn(tc), struct{}{})
	defer l.h2active.Delete(net.Conn(tc))
	l.stats.h2.Add(1)
	defer l.stats.h2.Add(-1)
	ci := newTLSConnInfo(&st)
	l.h2.ServeConn(guardH2(tc, l.limits.ReadHeaderTimeout, l.log, &l.flushers), &http2.ServeConnOpts{
		Context:    context.WithValue(context.Background(), connInfoKey{}, ci),
		BaseConfig: l.h2base,
		Handler:    l.handler,
	})
}

// Shutdown stops accepting, closes idle connections, lets in-flight requests
// finish until ctx ends, then closes what is left.
func (l *Listener) Shutdown(ctx context.Context) error {
	l.closing.Store(true)
	l.ln.Close()
	// HTTP/2 connections get GOAWAY through the shutdown hook that
	// http2.ConfigureServer registered on h2base.
	l.h2base.Shutdown(ctx)
	l.closeIdle()
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-done:
			return nil
		case <-t.C:
			l.closeIdle() // connections that finished their request meanwhile
		case <-ctx.Done():
			l.closeAll()
			<-done
			return ctx.Err()
		}
	}
}

// closeIdle closes the connections waiting for a request. Each is closed
// on a goroutine of its own, outside the lock: a connection serving
// requests in its read loop (h1loop.go) holds its read lock while a
// handler runs, and a Close waits for that, so one connection that turned
// active just now must not hold up the others or the listener.
func (l *Listener) closeIdle() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for hc := range l.conns {
		if connState(hc.state.Load()) == connIdle && hc.closed.CompareAndSwap(false, true) {
			go hc.c.Close()
		}
	}
}

// closeAll closes every connection, on goroutines of their own as
// closeIdle does.
func (l *Listener) closeAll() {
	l.mu.Lock()
	for hc := range l.conns {
		if hc.closed.CompareAndSwap(false, true) {
			go hc.c.Close()
		}
	}
	l.mu.Unlock()
	l.h2active.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
}
