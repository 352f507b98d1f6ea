package l4

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// udpSession is one client address and its connected upstream socket.
type udpSession struct {
	l      *UDPListener
	t      *Table
	client netip.AddrPort
	start  time.Time

	route    *route
	backend  string
	endpoint string

	up  net.Conn
	clk *idleClock
	// in and out count bytes client→backend and backend→client.
	in, out atomic.Int64
	ended   bool // guarded by l.mu
}

// udpBufs lends receive buffers to sessions while a datagram is in hand, so
// an idle session holds none (see waitReadable).
var udpBufs = sync.Pool{New: func() any { b := make([]byte, udpBufSize); return &b }}

// fail counts and logs a session that could not start; it returns nil for
// the caller to return.
func (s *udpSession) fail(reason string, err error) *udpSession {
	switch reason {
	case endNoBackend:
		s.l.stats.noBackend.Add(1)
	case endConnectFailed:
		s.l.stats.connectFailed.Add(1)
	}
	s.logEnd(reason, err)
	return nil
}

// run relays backend datagrams to the client until the session expires or
// is ended.
func (s *udpSession) run() {
	l := s.l
	rd := newDatagramReader(s.up)
	s.up.SetReadDeadline(s.clk.base.Add(l.opts.IdleTimeout))
	for {
		err := rd.read(func(p []byte) {
			s.clk.touch()
			s.out.Add(int64(len(p)))
			// A client that went away is not the session's problem:
			// the idle timeout ends it.
			l.pc.WriteToUDPAddrPort(p, s.client)
		})
		switch {
		case err == nil:
		case isTimeout(err):
			expired, deadline := l.expireIfIdle(s)
			if expired {
				return
			}
			s.up.SetReadDeadline(deadline)
		default:
			// Also the way out after Shutdown or a write error
			// closed up: end is then a no-op.
			l.end(s, endBackendError, err)
			return
		}
	}
}

// logEnd writes the line that says why the session ended.
func (s *udpSession) logEnd(reason string, err error) {
	level := slog.LevelDebug
	switch reason {
	case endConnectFailed, endNoBackend, endBackendError:
		level = slog.LevelWarn
	}
	ctx := context.Background()
	l := s.l
	if !l.log.Enabled(ctx, level) {
		return
	}
	name := l.Addr().String()
	if s.t != nil {
		name = s.t.name
	}
	attrs := []slog.Attr{
		slog.String("listener", name),
		slog.String("remote", s.client.String()),
		slog.String("reason", reason),
		slog.Duration("duration", time.Since(s.start)),
	}
	if s.route != nil {
		attrs = append(attrs, slog.String("route", s.route.id()))
	}
	if s.backend != "" {
		attrs = append(attrs, slog.String("backend", s.backend))
	}
	if s.endpoint != "" {
		attrs = append(attrs, slog.String("endpoint", s.endpoint))
	}
	if in, out := s.in.Load(), s.out.Load(); in > 0 || out > 0 {
		attrs = append(attrs, slog.Int64("bytes_in", in), slog.Int64("bytes_out", out))
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	l.log.LogAttrs(ctx, level, "l4 udp session closed", attrs...)
}

// datagramReader reads one upstream datagram at a time. Where the platform
// lets it wait for readability without a buffer (waitReadable), it borrows
// a pooled 64 KiB buffer only while a datagram is in hand, so 10000 idle
// sessions do not pin 640 MiB; elsewhere it keeps its own buffer.
type datagramReader struct {
	c   net.Conn
	rc  syscall.RawConn
	own []byte
}

func newDatagramReader(c net.Conn) *datagramReader {
	r := &datagramReader{c: c}
	if sc, ok := c.(syscall.Conn); ok && canWaitReadable {
		if rc, err := sc.SyscallConn(); err == nil {
			r.rc = rc
			return r
		}
	}
	r.own = make([]byte, udpBufSize)
	return r
}

// read waits for one datagram (honouring the read deadline) and hands it to
// deliver; the slice is valid only during the call.
func (r *datagramReader) read(deliver func([]byte)) error {
	if r.rc == nil {
		n, err := r.c.Read(r.own)
		if err != nil {
			return err
		}
		deliver(r.own[:n])
		return nil
	}
	if err := waitReadable(r.rc); err != nil {
		return err
	}
	bp := udpBufs.Get().(*[]byte)
	defer udpBufs.Put(bp)
	n, err := r.c.Read(*bp)
	if err != nil {
		return err
	}
	deliver((*bp)[:n])
	return nil
}
