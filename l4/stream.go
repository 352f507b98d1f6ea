package l4

import (
	"context"
	ctls "crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"time"

	"github.com/meshgate/meshgate/ir"
	"github.com/meshgate/meshgate/upstream"
)

// Why a stream ended before relaying, as logged.
const (
	endNoRoute       = "no_route"
	endNoBackend     = "no_backend"
	endConnectFailed = "connect_failed"
	endSNIError      = "sni_error"
	endHandshake     = "tls_handshake_failed"
	endShutdown      = "shutdown"
)

// streamConn is one accepted TCP connection and what became of it; its
// fields feed the log line written when it ends.
type streamConn struct {
	l      *Listener
	t      *Table
	client net.Conn
	start  time.Time

	sni      string
	mode     ir.TLSMode
	route    *route
	backend  string
	endpoint string

	reason   string
	err      error
	up, down int64
}

// serve routes the connection, dials the backend and relays. It returns
// with reason set; serveConn closes the client.
func (sc *streamConn) serve() {
	switch {
	case sc.t == nil:
		sc.noRoute()
	case sc.t.protocol == ir.ProtocolTCP:
		_, rt := sc.t.match("")
		sc.connect(rt, sc.client, nil)
	case sc.t.protocol == ir.ProtocolTLS:
		sc.serveTLS()
	default:
		// A UDP table on a stream socket: nothing can match.
		sc.noRoute()
	}
}

// serveTLS reads the ClientHello, picks the host by SNI, and passes the
// bytes through or terminates TLS, as the host says.
func (sc *streamConn) serveTLS() {
	l := sc.l
	sc.client.SetDeadline(sc.start.Add(l.opts.ClientHelloTimeout))
	hello, sni, err := readClientHello(sc.client)
	if err != nil {
		l.stats.sniErrors.Add(1)
		sc.reason, sc.err = endSNIError, err
		return
	}
	sc.sni = sni
	vh, rt := sc.t.match(sni)
	if vh == nil || rt == nil {
		sc.noRoute()
		return
	}
	sc.mode = vh.mode
	if vh.mode == ir.TLSPassthrough {
		sc.client.SetDeadline(time.Time{})
		sc.connect(rt, sc.client, hello)
		return
	}
	// Terminate: the handshake reads the ClientHello again from hello,
	// under the same deadline.
	tc := ctls.Server(&replayConn{Conn: sc.client, pending: hello}, sc.t.tlsConfig)
	if err := tc.Handshake(); err != nil {
		l.stats.handshakeErrors.Add(1)
		sc.reason, sc.err = endHandshake, err
		return
	}
	sc.client.SetDeadline(time.Time{})
	// Route on the name the handshake settled on; it is the SNI read
	// above, taken from the authoritative parser.
	sc.sni = tc.ConnectionState().ServerName
	if _, rt = sc.t.match(sc.sni); rt == nil {
		sc.noRoute()
		return
	}
	// The relay sends close_notify when the backend closes (CloseWrite);
	// serveConn closes the socket underneath.
	sc.connect(rt, tc, nil)
}

func (sc *streamConn) noRoute() {
	sc.l.stats.noRoute.Add(1)
	sc.reason = endNoRoute
}

// connect picks a backend and endpoint of rt, dials it, writes replay (the
// ClientHello read for passthrough) and relays between client and it.
func (sc *streamConn) connect(rt *route, client net.Conn, replay []byte) {
	l := sc.l
	if rt == nil {
		sc.noRoute()
		return
	}
	sc.route = rt
	wb, ok := rt.backend(rand.Int64N)
	if !ok {
		sc.noBackend(errors.New("no backend with a positive weight"))
		return
	}
	if wb.Target == nil {
		sc.noBackend(errors.New("invalid backend reference"))
		return
	}
	sc.backend = wb.Target.Name
	pick, err := l.opts.Picker.Pick(wb.Target, upstream.PickInput{})
	if err != nil {
		sc.noBackend(err)
		return
	}
	ep := pick.Endpoint
	sc.endpoint = ep.Address
	ctx, cancel := context.WithTimeout(l.hardCtx, l.opts.ConnectTimeout)
	up, err := l.opts.DialContext(ctx, "tcp", ep.Address)
	cancel()
	pick.Done(upstream.Outcome{GatewayError: err != nil})
	if err != nil {
		l.stats.connectFailed.Add(1)
		sc.reason, sc.err = endConnectFailed, err
		return
	}
	if !l.track(up) {
		up.Close()
		sc.reason = endShutdown
		return
	}
	defer l.untrack(up)
	defer up.Close()
	if len(replay) > 0 {
		up.SetWriteDeadline(time.Now().Add(l.opts.ConnectTimeout))
		if _, err := up.Write(replay); err != nil {
			l.stats.connectFailed.Add(1)
			sc.reason, sc.err = endConnectFailed, fmt.Errorf("replaying client hello: %w", err)
			return
		}
		sc.up = int64(len(replay))
	}
	res := relay(client, up, l.opts.IdleTimeout)
	sc.reason, sc.err = res.reason, res.err
	sc.up += res.up
	sc.down = res.down
	if res.reason == endIdle {
		l.stats.idleTimeouts.Add(1)
	}
}

func (sc *streamConn) noBackend(err error) {
	sc.l.stats.noBackend.Add(1)
	sc.reason, sc.err = endNoBackend, err
}

// logEnd writes the one line that says why the connection ended: Warn when
// the gateway or a backend failed, Debug otherwise.
func (sc *streamConn) logEnd() {
	l := sc.l
	if sc.reason != endDone && sc.reason != endIdle && l.wasForced() {
		sc.reason = endShutdown
	}
	level := slog.LevelDebug
	switch sc.reason {
	case endConnectFailed, endNoBackend, endBackendError:
		level = slog.LevelWarn
	}
	ctx := context.Background()
	if !l.log.Enabled(ctx, level) {
		return
	}
	name := l.Addr().String()
	if sc.t != nil {
		name = sc.t.name
	}
	attrs := []slog.Attr{
		slog.String("listener", name),
		slog.String("remote", sc.client.RemoteAddr().String()),
		slog.String("reason", sc.reason),
		slog.Duration("duration", time.Since(sc.start)),
	}
	if sc.sni != "" {
		attrs = append(attrs, slog.String("sni", sc.sni))
	}
	if sc.mode != "" {
		attrs = append(attrs, slog.String("tls_mode", string(sc.mode)))
	}
	if sc.route != nil {
		attrs = append(attrs, slog.String("route", sc.route.id()))
	}
	if sc.backend != "" {
		attrs = append(attrs, slog.String("backend", sc.backend))
	}
	if sc.endpoint != "" {
		attrs = append(attrs, slog.String("endpoint", sc.endpoint))
	}
	if sc.up > 0 || sc.down > 0 {
		attrs = append(attrs, slog.Int64("bytes_in", sc.up), slog.Int64("bytes_out", sc.down))
	}
	if sc.err != nil {
		attrs = append(attrs, slog.String("error", sc.err.Error()))
	}
	l.log.LogAttrs(ctx, level, "l4 connection closed", attrs...)
}

// replayConn reads pending (bytes already read from Conn) before reading
// Conn, so crypto/tls sees the ClientHello the router peeked at.
type replayConn struct {
	net.Conn
	pending []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
