package server

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestIdleConnectionGivesBackBuffers: a keep-alive connection idle past
// idleShrinkAfter parks without buffers and still serves its next request,
// including one that arrives in pieces, and a head it had read before.
func TestIdleConnectionGivesBackBuffers(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.URL.Path)
	})
	l, err := Listen("127.0.0.1:0", h, Limits{IdleTimeout: 10 * time.Second}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	l.Serve()
	defer l.Shutdown(context.Background())
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	get := func(path string, pieces ...string) {
		t.Helper()
		if len(pieces) == 0 {
			pieces = []string{"GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n"}
		}
		for i, p := range pieces {
			if i > 0 {
				time.Sleep(50 * time.Millisecond)
			}
			io.WriteString(c, p)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if string(body) != path {
			t.Fatalf("got %q, want %q", body, path)
		}
	}
	get("/first")
	time.Sleep(idleShrinkAfter + 500*time.Millisecond)
	if l.parked.Load() != 1 {
		t.Error("idle connection still holds its buffers")
	}
	get("/after-idle")
	get("/first") // the head before the park again: read afresh
	get("/first") // and once more: recognized (headBuf.wire)
	time.Sleep(idleShrinkAfter + 500*time.Millisecond)
	get("/split", "G", "ET /split HTTP/1.1\r\n", "Host: x\r\n\r\n")
	if !strings.HasPrefix(l.Addr().String(), "127.0.0.1:") {
		t.Fatal("unexpected address")
	}
}
