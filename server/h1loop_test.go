package server

import (
	"context"
	"testing"
	"time"
)

// warmConn dials s and has one request answered, so the connection's next
// requests are read inside its read loop.
func warmConn(t *testing.T, s *confServer) *confConn {
	t.Helper()
	cc := dialConf(t, s.addr)
	cc.write(confGet("/warm-up"))
	checkConfResponse(t, cc, -1, confWant{status: 200, bodyAny: true})
	return cc
}

// TestReadLoopHeadInPieces: in the read loop, a head that arrives in
// pieces waits for its rest (with the header timeout from its first byte,
// not the idle timeout), and a head that never completes is dropped
// without a handler call.
func TestReadLoopHeadInPieces(t *testing.T) {
	s := startConf(t, Limits{ReadHeaderTimeout: 300 * time.Millisecond, IdleTimeout: 10 * time.Second})
	cc := warmConn(t, s)
	for _, p := range []string{"G", "ET /small HTTP/1.1\r\n", "Host: x\r\n", "\r\n"} {
		cc.writeNow(p)
		time.Sleep(50 * time.Millisecond)
	}
	checkConfResponse(t, cc, 0, confWant{status: 200, body: "hello"})

	// Idle for longer than the header timeout: the idle timeout applies.
	time.Sleep(500 * time.Millisecond)
	cc.writeNow(confGet("/small"))
	checkConfResponse(t, cc, 1, confWant{status: 200, body: "hello"})

	calls := s.calls.Load()
	cc.writeNow("GET /small HTTP/1.1\r\nHost:")
	if !cc.closed(2 * time.Second) {
		t.Fatal("connection with a head cut short still open after the header timeout")
	}
	if got := s.calls.Load(); got != calls {
		t.Errorf("handler called %d times for a head that never completed", got-calls)
	}
}

// TestReadLoopShutdown: Shutdown closes a connection waiting in its read
// loop at once, and one whose handler runs in the loop once the drain
// deadline passes (the handler's answer then fails), without a deadlock
// on the connection's read lock.
func TestReadLoopShutdown(t *testing.T) {
	s := startConf(t, Limits{IdleTimeout: 10 * time.Second})
	idle := warmConn(t, s)
	busy := warmConn(t, s)
	busy.write(confGet("/block"))
	select {
	case <-s.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("handler not entered")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- s.l.Shutdown(ctx) }()
	if !idle.closed(2 * time.Second) {
		t.Error("idle connection still open during shutdown")
	}
	// The handler is released only after the drain deadline.
	time.Sleep(500 * time.Millisecond)
	s.releaseAll()
	select {
	case err := <-done:
		if err == nil {
			t.Error("Shutdown returned nil with a handler past the deadline")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return")
	}
	if !busy.closed(2 * time.Second) {
		t.Error("busy connection still open after shutdown")
	}
	t.Logf("shutdown took %v", time.Since(start).Round(time.Millisecond))
}
