package server

import (
	"net"
	"runtime"
	"sync"
	"time"

	"github.com/meshgate/meshgate/internal/gopool"
)

// batchConn gathers what the HTTP/2 server writes into one write to the
// connection. x/net/http2 writes every frame from one goroutine and
// flushes whenever its queue runs empty, which, with a goroutine per
// stream, is after nearly every frame: a response's HEADERS and DATA went
// out as two TLS records and two write syscalls, and a connection carrying
// many streams paid that for each. Here a write only appends to a buffer;
// a flushing goroutine first lets the other ready goroutines run (the
// other streams' handlers, the frame writer), then writes everything
// gathered at once. With nothing else ready the yield returns at once, so
// a lone response is not held back.
//
// A write error is returned by the writes that follow it; x/net then
// closes the connection. Close sends what is still buffered first (a
// GOAWAY), waiting at most batchCloseWait for it.
type batchConn struct {
	net.Conn

	mu       sync.Mutex
	full     sync.Cond // writers wait here while the buffer is over batchMax
	buf      []byte    // written, not yet flushed
	spare    []byte    // the other buffer, swapped in by the flusher
	flushing chan struct{}
	err      error
	closed   bool
	// pool runs the flushes on goroutines that keep their stacks (TLS
	// writes outgrow a new goroutine's); nil starts one per flush.
	pool *gopool.Pool[*batchConn]
}

const (
	// batchMax is how much may wait in the buffer before writers wait
	// for the flush: a slow reader holds back the HTTP/2 server as it
	// would without the batching.
	batchMax = 256 << 10
	// batchFirst is the size of a burst's first buffer.
	batchFirst = 8 << 10
	// batchKeep is the largest buffer kept for the next batch of a burst.
	batchKeep = 64 << 10
	// batchCloseWait bounds how long Close waits to send what is left.
	batchCloseWait = time.Second
)

// batchBufs holds batchFirst-sized buffers between bursts. An idle
// connection gives its buffers back (it holds none), and the next burst,
// on this connection or another, takes one instead of allocating: with
// h2load -c16 -m10 the fresh buffers were 17% of the bytes the gateway
// allocated, and so a share of its garbage collections.
var batchBufs = sync.Pool{New: func() any { b := make([]byte, 0, batchFirst); return &b }}

// getBatchBuf returns an empty buffer for a burst whose first write is n
// bytes.
func getBatchBuf(n int) []byte {
	if n > batchFirst {
		return make([]byte, 0, n)
	}
	return (*batchBufs.Get().(*[]byte))[:0]
}

// putBatchBuf keeps b for a later burst if it is of the pooled size (so
// not when nil).
func putBatchBuf(b []byte) {
	if cap(b) == batchFirst {
		b = b[:0]
		batchBufs.Put(&b)
	}
}

func newBatchConn(c net.Conn, pool *gopool.Pool[*batchConn]) *batchConn {
	b := &batchConn{Conn: c, pool: pool}
	b.full.L = &b.mu
	return b
}

// Write buffers p and starts a flush if none is running.
func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.err == nil && !b.closed && len(b.buf) > 0 && len(b.buf)+len(p) > batchMax {
		b.full.Wait()
	}
	if b.err != nil {
		return 0, b.err
	}
	if b.closed {
		return 0, net.ErrClosed
	}
	if b.buf == nil {
		b.buf = getBatchBuf(len(p))
	}
	b.buf = append(b.buf, p...)
	if b.flushing == nil {
		b.flushing = make(chan struct{})
		if b.pool != nil {
			b.pool.Go(b, (*batchConn).flushPooled)
		} else {
			go b.flush(b.flushing)
		}
	}
	return len(p), nil
}

// WriteRoom reports how many bytes Write takes now without waiting for a
// flush (the HTTP/2 server then flushes from its serve goroutine, see
// xhttp2's flushWontBlock); 0 once the connection failed or closed.
func (b *batchConn) WriteRoom() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.err != nil || b.closed:
		return 0
	case len(b.buf) == 0:
		return batchMax
	}
	return max(batchMax-len(b.buf), 0)
}

// flushPooled is flush for the run the last Write started, on a pooled
// goroutine.
func (b *batchConn) flushPooled() {
	b.mu.Lock()
	done := b.flushing
	b.mu.Unlock()
	b.flush(done)
}

// flush writes the buffer out until it stays empty, then closes done.
func (b *batchConn) flush(done chan struct{}) {
	defer close(done)
	for {
		runtime.Gosched()
		b.mu.Lock()
		out := b.buf
		if len(out) == 0 || b.err != nil {
			// Idle: an idle connection holds no buffer.
			putBatchBuf(b.buf)
			putBatchBuf(b.spare)
			b.buf, b.spare = nil, nil
			b.flushing = nil
			b.full.Broadcast()
			b.mu.Unlock()
			return
		}
		b.buf = b.spare[:0]
		b.spare = nil
		b.mu.Unlock()

		_, err := b.Conn.Write(out)

		b.mu.Lock()
		if err != nil && b.err == nil {
			b.err = err
		}
		if cap(out) <= batchKeep {
			b.spare = out[:0]
		}
		b.full.Broadcast()
		b.mu.Unlock()
	}
}

// Close sends what is buffered, then closes the connection.
func (b *batchConn) Close() error {
	b.mu.Lock()
	b.closed = true
	done := b.flushing
	b.full.Broadcast()
	b.mu.Unlock()
	if done != nil {
		t := time.NewTimer(batchCloseWait)
		select {
		case <-done:
		case <-t.C:
		}
		t.Stop()
	}
	return b.Conn.Close()
}
