package l4

import (
	ctls "crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// relayBufSize is the copy buffer per direction.
const relayBufSize = 32 << 10

// relayBufs holds the copy buffers, so a connection borrows two only while
// it relays and a burst of short connections does not churn the heap.
var relayBufs = sync.Pool{New: func() any { b := make([]byte, relayBufSize); return &b }}

// errIdle ends a relay after IdleTimeout without bytes in either direction.
var errIdle = errors.New("idle timeout")

// Why a relay ended, as logged.
const (
	endDone         = "done"          // both sides closed their writing half
	endIdle         = "idle_timeout"  // no bytes either way for IdleTimeout
	endClientError  = "client_error"  // reading from or writing to the client failed
	endBackendError = "backend_error" // reading from or writing to the backend failed
)

// relayResult says how a relay ended.
type relayResult struct {
	reason string
	err    error
	// up and down count bytes client→backend and backend→client.
	up, down int64
}

// idleClock is the last time bytes moved in either direction, shared by
// both directions of one connection. Deadlines are derived from it, so
// each direction times out only when the whole connection is idle.
type idleClock struct {
	base time.Time
	idle time.Duration
	// refresh is how stale a deadline may get before a read or write
	// pushes it forward: setting one costs a little, so not per syscall.
	refresh time.Duration
	last    atomic.Int64 // since base
}

func newIdleClock(idle time.Duration) *idleClock {
	return &idleClock{base: time.Now(), idle: idle, refresh: min(time.Second, idle/4)}
}

func (k *idleClock) now() time.Duration { return time.Since(k.base) }
func (k *idleClock) touch()             { k.last.Store(int64(k.now())) }

// expired reports whether nothing moved for the idle timeout; otherwise it
// returns the deadline that keeps the timeout exact.
func (k *idleClock) expired() (bool, time.Time) {
	last := time.Duration(k.last.Load())
	if k.now()-last >= k.idle {
		return true, time.Time{}
	}
	return false, k.base.Add(last + k.idle)
}

// relay copies client→backend on the calling goroutine and backend→client
// on one more, until both directions end. An EOF is passed on as a
// half-close (CloseWrite) and the other direction keeps going; any error,
// or the idle timeout, closes both connections. The caller closes both
// afterwards in every case.
//
// A peer that stops reading only fills its own socket buffers: its writes
// block, the other direction is unaffected, and the idle timeout (through
// the write deadline) ends it. No other connection shares anything but the
// buffer pool.
func relay(client, backend net.Conn, idle time.Duration) relayResult {
	clk := newIdleClock(idle)
	clk.touch()
	var first atomic.Pointer[relayResult]
	abort := func(reason string, err error) {
		first.CompareAndSwap(nil, &relayResult{reason: reason, err: err})
		closeRaw(client)
		closeRaw(backend)
	}
	var down int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		down = pipe(backend, client, clk, endBackendError, endClientError, abort)
	}()
	up := pipe(client, backend, clk, endClientError, endBackendError, abort)
	<-done
	res := relayResult{reason: endDone}
	if r := first.Load(); r != nil {
		res = *r
	}
	res.up, res.down = up, down
	return res
}

// pipe copies src to dst until EOF (then half-closes dst) or an error (then
// calls abort with the reason named after the failing side). It returns
// the bytes written to dst.
func pipe(src, dst net.Conn, clk *idleClock, srcErr, dstErr string, abort func(string, error)) int64 {
	bp := relayBufs.Get().(*[]byte)
	defer relayBufs.Put(bp)
	buf := *bp
	var total int64
	var readSet time.Duration = -time.Hour
	w := deadlineWriter{dst: dst, clk: clk, set: -time.Hour}
	for {
		if now := clk.now(); now-readSet >= clk.refresh {
			src.SetReadDeadline(clk.base.Add(now + clk.idle))
			readSet = now
		}
		n, err := src.Read(buf)
		if n > 0 {
			clk.touch()
			written, werr := w.write(buf[:n])
			total += int64(written)
			if werr != nil {
				if errors.Is(werr, errIdle) {
					abort(endIdle, werr)
				} else {
					abort(dstErr, fmt.Errorf("write: %w", werr))
				}
				return total
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			closeWrite(dst)
			return total
		case isTimeout(err):
			expired, deadline := clk.expired()
			if expired {
				abort(endIdle, errIdle)
				return total
			}
			src.SetReadDeadline(deadline)
			readSet = clk.now()
		default:
			abort(srcErr, fmt.Errorf("read: %w", err))
			return total
		}
	}
}

// deadlineWriter writes with a write deadline derived from the idle clock,
// so a peer that never reads is noticed once the whole connection is idle.
type deadlineWriter struct {
	dst net.Conn
	clk *idleClock
	set time.Duration // when the deadline was last pushed forward
}

// write writes all of p. A timed-out write is retried while the connection
// is not idle, except on TLS, whose state a timed-out write corrupts.
func (w *deadlineWriter) write(p []byte) (int, error) {
	total := 0
	for len(p) > 0 {
		if now := w.clk.now(); now-w.set >= w.clk.refresh {
			w.dst.SetWriteDeadline(w.clk.base.Add(now + w.clk.idle))
			w.set = now
		}
		n, err := w.dst.Write(p)
		total += n
		p = p[n:]
		if n > 0 {
			w.clk.touch()
		}
		if err == nil {
			continue
		}
		if !isTimeout(err) {
			return total, err
		}
		expired, deadline := w.clk.expired()
		if _, isTLS := w.dst.(*ctls.Conn); expired || isTLS {
			return total, errIdle
		}
		w.dst.SetWriteDeadline(deadline)
		w.set = w.clk.now()
	}
	return total, nil
}

// closeWrite passes an EOF on: a TCP FIN, or a TLS close_notify. A
// connection that cannot half-close is left open; the other direction or
// the idle timeout ends it.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}

// closeRaw closes the socket under c. For TLS that skips the close_notify
// that tls.Conn.Close would try to write, which could block on a peer that
// does not read.
func closeRaw(c net.Conn) {
	if nc, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = nc.NetConn()
	}
	c.Close()
}

// isTimeout reports a deadline error.
func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }
