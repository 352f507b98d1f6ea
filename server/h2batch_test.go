package server

import (
	"bytes"
	"errors"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/meshgate/meshgate/internal/gopool"
)

// recordConn records the writes that reach the connection.
type recordConn struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
	err    error
	block  chan struct{} // when set, writes wait for it to close
	closed bool
}

func (c *recordConn) Write(p []byte) (int, error) {
	if c.block != nil {
		<-c.block
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	c.writes = append(c.writes, bytes.Clone(p))
	return len(p), nil
}

func (c *recordConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return nil
}

func (c *recordConn) all() (n int, data []byte, closed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.writes), bytes.Join(c.writes, nil), c.closed
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestBatchConnGathers: writes made before the flusher runs reach the
// connection as one write, in order; with a pool of flushers (as the
// listener has), the second flush reuses the first one's goroutine.
func TestBatchConnGathers(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1)) // the flusher runs only when this goroutine yields
	for _, pool := range []*gopool.Pool[*batchConn]{nil, {}} {
		rc := &recordConn{}
		b := newBatchConn(rc, pool)
		for _, s := range []string{"HEADERS ", "DATA ", "DATA+END"} {
			if n, err := b.Write([]byte(s)); n != len(s) || err != nil {
				t.Fatalf("Write(%q) = %d, %v", s, n, err)
			}
		}
		waitFor(t, "the flush", func() bool { n, _, _ := rc.all(); return n > 0 })
		n, data, _ := rc.all()
		if n != 1 || string(data) != "HEADERS DATA DATA+END" {
			t.Fatalf("connection got %d writes %q, want 1 write of everything in order", n, data)
		}
		if pool != nil {
			waitFor(t, "the flusher back in the pool", func() bool { return pool.Waiting() == 1 })
		}
		// A later write goes out on its own.
		b.Write([]byte("PING"))
		waitFor(t, "the second flush", func() bool { n, _, _ := rc.all(); return n == 2 })
		if _, data, _ := rc.all(); string(data) != "HEADERS DATA DATA+ENDPING" {
			t.Fatalf("connection got %q", data)
		}
		if pool != nil && pool.Started() != 1 {
			t.Errorf("two flushes started %d pooled goroutines, want 1", pool.Started())
		}
	}
}

// TestBatchConnCloseFlushes: Close sends what is buffered (a GOAWAY)
// before closing; later writes fail.
func TestBatchConnCloseFlushes(t *testing.T) {
	rc := &recordConn{}
	b := newBatchConn(rc, nil)
	b.Write([]byte("GOAWAY"))
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, data, closed := rc.all(); string(data) != "GOAWAY" || !closed {
		t.Fatalf("after Close: sent %q, closed %v; want GOAWAY sent, then closed", data, closed)
	}
	if _, err := b.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close: %v, want net.ErrClosed", err)
	}
}

// TestBatchConnWriteError: a failed flush fails the writes after it.
func TestBatchConnWriteError(t *testing.T) {
	boom := errors.New("connection reset")
	rc := &recordConn{err: boom}
	b := newBatchConn(rc, nil)
	if _, err := b.Write([]byte("a")); err != nil {
		t.Fatalf("first Write: %v (it only buffers)", err)
	}
	waitFor(t, "the failed flush", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.err != nil
	})
	if _, err := b.Write([]byte("b")); !errors.Is(err, boom) {
		t.Fatalf("Write after a failed flush: %v, want %v", err, boom)
	}
}

// TestBatchConnBackpressure: with a reader that does not read, a writer
// waits instead of buffering without bound (at most batchMax in the flush
// under way and batchMax buffered), and goes on once the connection takes
// the bytes.
func TestBatchConnBackpressure(t *testing.T) {
	rc := &recordConn{block: make(chan struct{})}
	b := newBatchConn(rc, nil)
	chunk := make([]byte, 64<<10)
	wrote := make(chan int, 1)
	go func() {
		n := 0
		for range 4 * batchMax / len(chunk) {
			if _, err := b.Write(chunk); err != nil {
				break
			}
			n += len(chunk)
		}
		wrote <- n
	}()
	select {
	case n := <-wrote:
		t.Fatalf("%d bytes written to a connection that takes none; want the writer held at about %d", n, 2*batchMax)
	case <-time.After(200 * time.Millisecond):
	}
	b.mu.Lock()
	held := len(b.buf)
	b.mu.Unlock()
	if held > batchMax {
		t.Fatalf("%d bytes buffered, over batchMax %d", held, batchMax)
	}
	close(rc.block)
	select {
	case n := <-wrote:
		if n != 4*batchMax {
			t.Fatalf("wrote %d bytes, want %d", n, 4*batchMax)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("writer still held after the connection took the bytes")
	}
	b.Close()
	if _, data, _ := rc.all(); len(data) != 4*batchMax {
		t.Fatalf("connection got %d bytes, want %d", len(data), 4*batchMax)
	}
}

// TestBatchConnCloseStuck: Close does not wait forever for a peer that
// never reads.
func TestBatchConnCloseStuck(t *testing.T) {
	rc := &recordConn{block: make(chan struct{})}
	defer close(rc.block)
	b := newBatchConn(rc, nil)
	b.Write([]byte("stuck"))
	start := time.Now()
	b.Close()
	if d := time.Since(start); d > batchCloseWait+2*time.Second {
		t.Fatalf("Close took %v", d)
	}
	if _, _, closed := rc.all(); !closed {
		t.Fatal("connection not closed")
	}
}

// TestBatchConnWriteRoom: the room a batchConn reports is what Write takes
// without waiting for a flush: all of batchMax when empty, the rest of it
// when not, none once failed or closed.
func TestBatchConnWriteRoom(t *testing.T) {
	b := newBatchConn(&recordConn{}, nil)
	if r := b.WriteRoom(); r != batchMax {
		t.Errorf("empty: room %d, want %d", r, batchMax)
	}
	b.mu.Lock()
	b.buf = make([]byte, 1000)
	b.mu.Unlock()
	if r := b.WriteRoom(); r != batchMax-1000 {
		t.Errorf("1000 bytes waiting: room %d, want %d", r, batchMax-1000)
	}
	b.mu.Lock()
	b.err = errors.New("broken")
	b.mu.Unlock()
	if r := b.WriteRoom(); r != 0 {
		t.Errorf("after a write error: room %d, want 0", r)
	}
	g := &h2Guard{Conn: newBatchConn(&recordConn{}, nil)}
	if r := g.WriteRoom(); r != batchMax {
		t.Errorf("through the guard: room %d, want %d", r, batchMax)
	}
}
