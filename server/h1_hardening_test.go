package server

// Hardening cases beyond the conformance table (docs/reliability.md rows 4
// and 5), on the same raw-bytes harness (startConf, dialConf,
// checkConfResponse) and the same test handler: its default path reads the
// whole body and, when that read fails, answers 400 with X-Body-Error, so
// "X-Body-Error present" means the handler never got a complete body.
//
// Chunk framing rows already in TestH1Conformance are not repeated here:
// "chunked with a bad size line", "chunked body cut short by the client",
// "chunked body with extensions and trailer" (extensions accepted).

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// chunkRefused is the answer to a chunked body the server cannot frame: the
// handler's body read fails (it answers 400 itself, as the proxy does with
// its request_body_error), nothing after the body is served and the
// connection ends.
func chunkRefused() []confWant {
	return []confWant{{status: 400, bodyAny: true, header: map[string]string{"X-Body-Error": hdrPresent}}}
}

func chunkedReq(body string) string {
	return "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body
}

// TestH1ChunkFramingTricks is row 4: chunk lines that parsers disagree on
// (golang/go#71988, the "funky chunks" family). Each must end the request
// with a body error, never a complete body, and must not let the bytes
// after it be read as another request.
func TestH1ChunkFramingTricks(t *testing.T) {
	t.Parallel()
	never := confGet("/never")
	rows := []confRow{
		{name: "bare LF after the chunk size", req: chunkedReq("5\nhello\r\n0\r\n\r\n") + never},
		{name: "bare LF after the last chunk size", req: chunkedReq("5\r\nhello\r\n0\n\r\n") + never},
		{name: "LF inside a chunk extension", req: chunkedReq("5;ext=a\nb\r\nhello\r\n0\r\n\r\n") + never},
		{name: "bare CR inside a chunk extension", req: chunkedReq("5;ext=a\rb\r\nhello\r\n0\r\n\r\n") + never},
		// A 64-bit parser that lets the 17th digit overflow reads size 0
		// (or 5): the rest becomes a smuggled request.
		{name: "17-hex-digit chunk size", req: chunkedReq("10000000000000000\r\n" + never + "\r\n0\r\n\r\n")},
		{name: "17-hex-digit chunk size with leading zeros", req: chunkedReq("00000000000000005\r\nhello\r\n0\r\n\r\n") + never},
		{name: "chunk size with 0x prefix", req: chunkedReq("0x5\r\nhello\r\n0\r\n\r\n") + never},
		{name: "chunk data longer than its size", req: chunkedReq("3\r\nhello\r\n0\r\n\r\n") + never},
		{name: "chunk extension over 4 KiB on one line", req: chunkedReq("5;"+strings.Repeat("e", 8<<10)+"\r\nhello\r\n0\r\n\r\n") + never},
		{name: "chunk extensions far outweighing the data", req: chunkedReq(strings.Repeat("1;"+strings.Repeat("e", 3000)+"\r\nx\r\n", 16)+"0\r\n\r\n") + never},
	}
	for _, tc := range rows {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startConf(t, Limits{})
			cc := dialConf(t, s.addr)
			cc.write(tc.req)
			checkConfResponse(t, cc, 0, chunkRefused()[0])
			if t.Failed() {
				return
			}
			if !cc.closed(2 * time.Second) {
				t.Error("connection still open after a chunk framing error")
			}
			if got := s.calls.Load(); got != 1 {
				t.Errorf("handler called %d times, want 1 (the bytes after the broken body must not be served)", got)
			}
		})
	}
}

// tcpRmemMax is the most a loopback socket's receive buffer can grow to
// (Linux autotuning), 6 MiB where unknown.
func tcpRmemMax() int64 {
	b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_rmem")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 3 {
			if n, err := strconv.ParseInt(f[2], 10, 64); err == nil {
				return n
			}
		}
	}
	return 6 << 20
}

// TestH1ChunkExtensionFloodCapped is row 4's "megabytes of chunk
// extensions" (CVE-2023-39326): the server must stop reading the body after
// a few KiB of extension bytes (Go's chunked reader: a 4 KiB line, or 16 KiB
// of excess overhead), answer with a body error and close, not read the
// flood. The client streams far more than any socket buffer can hold and
// counts what the server let it write.
func TestH1ChunkExtensionFloodCapped(t *testing.T) {
	t.Parallel()
	// What the kernel may absorb without the server reading: the
	// server's receive buffer at its largest, plus the client's send
	// buffer and slack.
	bound := tcpRmemMax() + 8<<20
	total := bound + 16<<20
	floods := []struct {
		name string
		// next returns the next piece of the flood.
		next func() string
	}{
		{"one endless extension", func() func() string {
			first := true
			piece := strings.Repeat("e", 32<<10)
			return func() string {
				if first {
					first = false
					return "1;" + piece
				}
				return piece
			}
		}()},
		{"many 1-byte chunks with 3 KiB extensions", func() func() string {
			piece := strings.Repeat("1;"+strings.Repeat("e", 3000)+"\r\nx\r\n", 10)
			return func() string { return piece }
		}()},
	}
	for _, fl := range floods {
		t.Run(fl.name, func(t *testing.T) {
			t.Parallel()
			s := startConf(t, Limits{})
			cc := dialConf(t, s.addr)
			var written atomic.Int64
			done := make(chan error, 1)
			go func() {
				cc.c.SetWriteDeadline(time.Now().Add(20 * time.Second))
				if _, err := io.WriteString(cc.c, chunkedReq("")); err != nil {
					done <- err
					return
				}
				for written.Load() < total {
					n, err := io.WriteString(cc.c, fl.next())
					written.Add(int64(n))
					if err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			checkConfResponse(t, cc, 0, chunkRefused()[0])
			if !cc.closed(5 * time.Second) {
				t.Error("connection still open after the extension flood was refused")
			}
			var werr error
			select {
			case werr = <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("the client's writes neither finished nor failed")
			}
			n := written.Load()
			t.Logf("client wrote %d KiB of the %d KiB flood before the server stopped reading (write error: %v)", n>>10, total>>10, werr)
			if werr == nil || n >= bound {
				t.Errorf("the server read %d bytes of chunk extensions (at most %d could sit in socket buffers): not capped", n, bound)
			}
			if got := s.calls.Load(); got != 1 {
				t.Errorf("handler called %d times, want 1", got)
			}
		})
	}
}

// TestH1TargetControlBytes (row 5): a control byte in an origin-form request
// target is not a valid request line (RFC 9112 3.2; net/http's
// url.ParseRequestURI refuses it). A gateway that passes it on writes it
// raw into the upstream request line, where HTAB, VT and FF may split the
// line (RFC 9112 3 lets a recipient treat them as separators).
func TestH1TargetControlBytes(t *testing.T) {
	t.Parallel()
	for _, b := range []byte{'\t', 0x01, 0x0b, 0x0c, 0x1f, 0x7f} {
		t.Run(strconv.Quote(string(b)), func(t *testing.T) {
			t.Parallel()
			s := startConf(t, Limits{})
			cc := dialConf(t, s.addr)
			cc.write("GET /a" + string(b) + "b HTTP/1.1\r\nHost: x\r\n\r\n" + confGet("/never"))
			resp, body, _ := cc.read("GET")
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("target with byte %#x: status %d, want 400 (body %q)", b, resp.StatusCode, confTrim(body))
			}
			if got := s.calls.Load(); got != 0 {
				t.Errorf("target with byte %#x: handler called %d times, want 0", b, got)
			}
		})
	}
}

// TestH1ResponseBeforeTrailingBlankLines (row 5): RFC 9112 2.2 lets clients
// send stray empty lines between requests, and the server skips them. A
// request followed by such lines must still get its answer, whether the
// client then half-closes or waits.
func TestH1ResponseBeforeTrailingBlankLines(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		tail      string
		halfClose bool
	}{
		{"one CRLF, half-close", "\r\n", true},
		{"two CRLF, half-close", "\r\n\r\n", true},
		{"two LF, half-close", "\n\n", true},
		{"three CRLF, client waits", "\r\n\r\n\r\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startConf(t, Limits{IdleTimeout: 30 * time.Second})
			cc := dialConf(t, s.addr)
			cc.writeNow(confPost("/p", "", "hello") + tc.tail)
			if tc.halfClose {
				cc.c.(*net.TCPConn).CloseWrite()
			}
			cc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(cc.br, &http.Request{Method: "POST"})
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatalf("no response within 5 s to a complete request followed by %q", tc.tail)
				}
				t.Fatalf("no response to a complete request followed by %q: %v (handler called %d times)", tc.tail, err, s.calls.Load())
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || confEchoOf(t, body).Body != "hello" {
				t.Errorf("status %d body %q", resp.StatusCode, confTrim(body))
			}
		})
	}
}
