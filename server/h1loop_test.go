package server

import (
	"context"
	"io"
	"math/rand"
	"strconv"
	"strings"
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

// TestReadLoopMixedTraffic sends, on one connection per seed, a stream of
// requests the read loop serves (GETs) mixed with ones it hands to the
// usual path (bodies, chunked bodies, heads larger than the read buffer),
// written in random pieces with short pauses, pipelined or not. Every
// request must be answered, once, in order, with its own path and body.
func TestReadLoopMixedTraffic(t *testing.T) {
	s := startConf(t, Limits{IdleTimeout: 10 * time.Second})
	for seed := int64(1); seed <= 12; seed++ {
		t.Run(strconv.FormatInt(seed, 10), func(t *testing.T) {
			rng := rand.New(rand.NewSource(seed))
			type sent struct{ method, path, body string }
			var reqs []sent
			var stream strings.Builder
			for i := range 40 {
				path := "/r" + strconv.Itoa(i)
				switch k := rng.Intn(10); {
				case k < 5:
					reqs = append(reqs, sent{"GET", path, ""})
					stream.WriteString("GET " + path + " HTTP/1.1\r\nHost: mixed.test\r\n\r\n")
				case k < 7:
					body := strings.Repeat("b", rng.Intn(3000)) + path
					reqs = append(reqs, sent{"POST", path, body})
					stream.WriteString(confPost(path, "", body))
				case k < 8:
					body := "chunked" + path
					reqs = append(reqs, sent{"POST", path, body})
					stream.WriteString("POST " + path + " HTTP/1.1\r\nHost: mixed.test\r\nTransfer-Encoding: chunked\r\n\r\n" +
						strconv.FormatInt(int64(len(body)), 16) + "\r\n" + body + "\r\n0\r\n\r\n")
				default:
					// A head larger than the 4 KiB read buffer.
					reqs = append(reqs, sent{"GET", path, ""})
					stream.WriteString("GET " + path + " HTTP/1.1\r\nHost: mixed.test\r\nX-Pad: " + strings.Repeat("p", 3000+rng.Intn(3000)) + "\r\n\r\n")
				}
			}
			raw := stream.String()
			cc := dialConf(t, s.addr)
			cc.c.SetDeadline(time.Now().Add(20 * time.Second))
			go func() {
				for off := 0; off < len(raw); {
					n := min(1+rng.Intn(600), len(raw)-off)
					if _, err := io.WriteString(cc.c, raw[off:off+n]); err != nil {
						return
					}
					off += n
					if rng.Intn(4) == 0 {
						time.Sleep(time.Duration(rng.Intn(2000)) * time.Microsecond)
					}
				}
			}()
			for i, r := range reqs {
				resp, body, err := cc.read(r.method)
				if err != nil || resp.StatusCode != 200 {
					t.Fatalf("request %d (%s %s): status %d, body error %v: %q", i, r.method, r.path, resp.StatusCode, err, confTrim(body))
				}
				e := confEchoOf(t, body)
				if e.Method != r.method || e.Path != r.path || e.Body != r.body {
					t.Fatalf("request %d: got %s %s body %q, want %s %s body %q", i, e.Method, e.Path, confTrim([]byte(e.Body)), r.method, r.path, confTrim([]byte(r.body)))
				}
			}
		})
	}
}
