//go:build linux

package rawio

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// pair returns a wrapped client end and the plain server end of a loopback
// TCP connection.
func pair(t *testing.T) (*Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer := <-accepted
	if peer == nil {
		t.Fatal("accept failed")
	}
	w := Wrap(c)
	rc, ok := w.(*Conn)
	if !ok {
		t.Fatalf("Wrap returned %T, want *Conn", w)
	}
	t.Cleanup(func() { rc.Close(); peer.Close() })
	return rc, peer
}

func TestWrapLeavesOtherConns(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if got := Wrap(a); got != a {
		t.Fatalf("Wrap(pipe) = %T, want the pipe itself", got)
	}
}

func TestConn(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, c *Conn, peer net.Conn)
	}{
		{"read what the peer wrote", func(t *testing.T, c *Conn, peer net.Conn) {
			peer.Write([]byte("hello"))
			buf := make([]byte, 16)
			n, err := c.Read(buf)
			if err != nil || string(buf[:n]) != "hello" {
				t.Fatalf("Read = %q, %v", buf[:n], err)
			}
		}},
		{"read waits for data", func(t *testing.T, c *Conn, peer net.Conn) {
			go func() { time.Sleep(50 * time.Millisecond); peer.Write([]byte("late")) }()
			got, err := io.ReadAll(io.LimitReader(c, 4))
			if err != nil || string(got) != "late" {
				t.Fatalf("Read = %q, %v", got, err)
			}
		}},
		{"EOF after the peer closes", func(t *testing.T, c *Conn, peer net.Conn) {
			peer.Write([]byte("bye"))
			peer.Close()
			got, err := io.ReadAll(c)
			if err != nil || string(got) != "bye" {
				t.Fatalf("ReadAll = %q, %v", got, err)
			}
			if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
				t.Fatalf("Read after EOF = %d, %v; want 0, io.EOF", n, err)
			}
		}},
		{"empty read and write do nothing", func(t *testing.T, c *Conn, peer net.Conn) {
			if n, err := c.Read(nil); n != 0 || err != nil {
				t.Fatalf("Read(nil) = %d, %v", n, err)
			}
			if n, err := c.Write(nil); n != 0 || err != nil {
				t.Fatalf("Write(nil) = %d, %v", n, err)
			}
		}},
		{"read deadline is a timeout", func(t *testing.T, c *Conn, peer net.Conn) {
			c.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
			_, err := c.Read(make([]byte, 1))
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("Read past deadline = %v, want a timeout", err)
			}
			var oe *net.OpError
			if !errors.As(err, &oe) || oe.Op != "read" {
				t.Fatalf("error %v is not a read OpError", err)
			}
			c.SetReadDeadline(time.Time{})
			peer.Write([]byte("x"))
			if _, err := c.Read(make([]byte, 1)); err != nil {
				t.Fatalf("Read after clearing the deadline: %v", err)
			}
		}},
		{"close unblocks a read", func(t *testing.T, c *Conn, peer net.Conn) {
			done := make(chan error, 1)
			go func() { _, err := c.Read(make([]byte, 1)); done <- err }()
			time.Sleep(30 * time.Millisecond)
			c.Close()
			select {
			case err := <-done:
				if !errors.Is(err, net.ErrClosed) {
					t.Fatalf("Read on closed conn = %v, want net.ErrClosed", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Read still blocked after Close")
			}
		}},
		{"write waits while the peer's buffer is full", func(t *testing.T, c *Conn, peer net.Conn) {
			big := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB, more than both socket buffers
			got := make(chan []byte, 1)
			go func() {
				time.Sleep(50 * time.Millisecond)
				b, _ := io.ReadAll(io.LimitReader(peer, int64(len(big))))
				got <- b
			}()
			n, err := c.Write(big)
			if err != nil || n != len(big) {
				t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(big))
			}
			if !bytes.Equal(<-got, big) {
				t.Fatal("the peer read different bytes")
			}
		}},
		{"write deadline is a timeout and reports what was written", func(t *testing.T, c *Conn, peer net.Conn) {
			big := make([]byte, 64<<20)
			c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
			n, err := c.Write(big)
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("Write past deadline = %d, %v; want a timeout", n, err)
			}
			if n <= 0 || n >= len(big) {
				t.Fatalf("Write reported %d bytes written, want a partial count", n)
			}
		}},
		{"write to a reset connection fails", func(t *testing.T, c *Conn, peer net.Conn) {
			peer.(*net.TCPConn).SetLinger(0)
			peer.Close()
			time.Sleep(20 * time.Millisecond)
			var err error
			for i := 0; i < 10 && err == nil; i++ {
				_, err = c.Write([]byte("x"))
				time.Sleep(5 * time.Millisecond)
			}
			var oe *net.OpError
			if !errors.As(err, &oe) || oe.Op != "write" {
				t.Fatalf("Write after reset = %v, want a write OpError", err)
			}
		}},
		{"concurrent reads and writes", func(t *testing.T, c *Conn, peer net.Conn) {
			go io.Copy(peer, peer) // echo
			const n = 2000
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < n; i++ {
					if _, err := c.Write([]byte("ping")); err != nil {
						t.Errorf("Write: %v", err)
						return
					}
				}
			}()
			got, err := io.ReadAll(io.LimitReader(c, 4*n))
			wg.Wait()
			if err != nil || !bytes.Equal(got, bytes.Repeat([]byte("ping"), n)) {
				t.Fatalf("echo came back as %d bytes, %v", len(got), err)
			}
		}},
		{"other methods are the TCPConn's", func(t *testing.T, c *Conn, peer net.Conn) {
			if err := c.CloseWrite(); err != nil {
				t.Fatalf("CloseWrite: %v", err)
			}
			if b, err := io.ReadAll(peer); err != nil || len(b) != 0 {
				t.Fatalf("peer saw %q, %v after CloseWrite", b, err)
			}
			if c.LocalAddr().String() != peer.RemoteAddr().String() {
				t.Fatalf("LocalAddr %v, peer sees %v", c.LocalAddr(), peer.RemoteAddr())
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, peer := pair(t)
			tt.run(t, c, peer)
		})
	}
}

func TestPeerGone(t *testing.T) {
	// waitGone polls, since the peer's FIN or byte crosses loopback
	// asynchronously; it gives up after a bound, never on a timing claim.
	waitGone := func(c net.Conn) bool {
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if PeerGone(c) {
				return true
			}
		}
		return false
	}
	tests := []struct {
		name string
		run  func(t *testing.T, c *Conn, peer net.Conn)
	}{
		{"idle and open", func(t *testing.T, c *Conn, peer net.Conn) {
			if PeerGone(c) {
				t.Fatal("PeerGone = true for an open idle connection")
			}
		}},
		{"peer closed", func(t *testing.T, c *Conn, peer net.Conn) {
			peer.Close()
			if !waitGone(c) {
				t.Fatal("PeerGone never reported the peer's close")
			}
		}},
		{"peer sent unasked bytes, which stay readable", func(t *testing.T, c *Conn, peer net.Conn) {
			peer.Write([]byte("x"))
			if !waitGone(c) {
				t.Fatal("PeerGone never reported the early byte")
			}
			buf := make([]byte, 4)
			if n, err := c.Read(buf); err != nil || string(buf[:n]) != "x" {
				t.Fatalf("Read after PeerGone = %q, %v; the peek must not consume", buf[:n], err)
			}
		}},
		{"closed on this side", func(t *testing.T, c *Conn, peer net.Conn) {
			c.Close()
			if !PeerGone(c) {
				t.Fatal("PeerGone = false for a closed connection")
			}
		}},
		{"plain TCPConn", func(t *testing.T, c *Conn, peer net.Conn) {
			if PeerGone(c.TCPConn) {
				t.Fatal("PeerGone = true for an open *net.TCPConn")
			}
			peer.Close()
			if !waitGone(c.TCPConn) {
				t.Fatal("PeerGone never reported the close on a *net.TCPConn")
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, peer := pair(t)
			tc.run(t, c, peer)
		})
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if PeerGone(a) {
		t.Error("PeerGone = true for a connection it cannot look into")
	}
}

// netConnOnly hides a connection behind NetConn, as *tls.Conn does.
type netConnOnly struct{ net.Conn }

func (n netConnOnly) NetConn() net.Conn { return n.Conn }

func TestPeerGoneBelowTLS(t *testing.T) {
	c, peer := pair(t)
	wrapped := netConnOnly{c}
	if PeerGone(wrapped) {
		t.Fatal("PeerGone = true for an open connection under a wrapper")
	}
	peer.Close()
	for deadline := time.Now().Add(5 * time.Second); !PeerGone(wrapped); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("PeerGone never looked below NetConn")
		}
	}
}

// TestReadLoop: a step that waits after a short read (no recvfrom to hear
// EAGAIN) still sees every byte sent later, the read deadline ends a wait,
// a Close from another goroutine ends it too, and Recv refuses to run
// outside a loop.
func TestReadLoop(t *testing.T) {
	rc, peer := pair(t)
	if _, err := rc.Recv(make([]byte, 1)); err == nil || err == ErrWouldBlock {
		t.Fatalf("Recv outside ReadLoop: %v, want an error", err)
	}

	var got []byte
	calls, waits := 0, 0
	buf := make([]byte, 64)
	want := "one|two|three|"
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for _, p := range []string{"one|", "two|", "three|"} {
			time.Sleep(20 * time.Millisecond)
			peer.Write([]byte(p))
		}
	}()
	rc.SetReadDeadline(time.Now().Add(10 * time.Second))
	err := rc.ReadLoop(func() bool {
		calls++
		for {
			n, err := rc.Recv(buf)
			if err == ErrWouldBlock {
				waits++
				return false
			}
			if err != nil {
				t.Errorf("Recv: %v", err)
				return true
			}
			got = append(got, buf[:n]...)
			if len(got) >= len(want) {
				return true
			}
			if n < len(buf) {
				// Short: the socket was empty. Wait without asking again;
				// bytes sent from now on must still wake the loop.
				return false
			}
		}
	})
	<-sent
	if err != nil || string(got) != want {
		t.Fatalf("ReadLoop: %v, read %q, want %q", err, got, want)
	}
	if calls < 3 {
		t.Errorf("step called %d times for three writes", calls)
	}
	t.Logf("%d steps, %d EAGAIN answers", calls, waits)

	// The read deadline ends a wait with a timeout.
	rc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	err = rc.ReadLoop(func() bool {
		_, err := rc.Recv(buf)
		return err != ErrWouldBlock
	})
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("ReadLoop past its deadline: %v, want a timeout", err)
	}

	// EOF reaches the step.
	rc.SetReadDeadline(time.Now().Add(10 * time.Second))
	peer.(*net.TCPConn).CloseWrite()
	var eof error
	err = rc.ReadLoop(func() bool {
		_, eof = rc.Recv(buf)
		return eof != ErrWouldBlock
	})
	if err != nil || eof != io.EOF {
		t.Fatalf("ReadLoop after the peer's FIN: %v, Recv %v, want io.EOF", err, eof)
	}
}

// TestReadLoopClose: Close from another goroutine ends a waiting loop.
func TestReadLoopClose(t *testing.T) {
	rc, _ := pair(t)
	rc.SetReadDeadline(time.Now().Add(10 * time.Second))
	done := make(chan error, 1)
	go func() {
		done <- rc.ReadLoop(func() bool {
			_, err := rc.Recv(make([]byte, 8))
			return err != ErrWouldBlock
		})
	}()
	time.Sleep(50 * time.Millisecond)
	rc.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("ReadLoop after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ReadLoop still waiting after Close")
	}
}
