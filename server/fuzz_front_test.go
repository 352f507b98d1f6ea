package server

// FuzzH1Front is the HTTP/1 request-smuggling round-trip fuzz
// (docs/reliability.md row 5): arbitrary bytes go to a real Listener over a
// loopback TCP connection, a recording handler stands in for the upstream,
// and the client reads every response. Properties:
//
//   - every request the handler saw, serialized again (its body framed by
//     Content-Length) and parsed by net/http's ReadRequest, has the same
//     method, target, Host, header fields and body: what the front accepts
//     has one meaning, so it cannot be forwarded as something else;
//   - one handler call = one response, in order: the client reads the
//     handler's answers 0, 1, 2, ... and, when the connection ended
//     cleanly, exactly as many as the handler saw requests;
//   - nothing follows a response with Connection: close: no response on
//     the wire, no request at the handler; a response the server made
//     itself (a refused head) closes and no handler call follows it.
//
// Each iteration is bounded: the client writes the input, half-closes and
// reads with a 5 s deadline; the server's timeouts are 1 s. The seeds (the
// conformance table's requests plus smuggling variants) run in `go test`.

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// frontReq is one request as the handler saw it.
type frontReq struct {
	method, target, host string
	header               http.Header
	body                 []byte
	bodyErr              error
	// afterClose: the handler had already answered with Connection:
	// close on this connection.
	afterClose bool
}

type frontConnLog struct {
	reqs      []frontReq
	closeSent bool
}

// frontRecorder is the handler: it reads the whole body, records the
// request under the connection's remote address and answers with no body
// and X-Seq (its index on the connection). A body it cannot read gets 400
// and Connection: close, as the proxy does; a path containing "close" gets
// Connection: close.
type frontRecorder struct {
	mu    sync.Mutex
	conns map[string]*frontConnLog
}

// frontMaxInput bounds an input (the largest seed is ~300 KiB).
const frontMaxInput = 512 << 10

func (h *frontRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, frontMaxInput+1))
	h.mu.Lock()
	cl := h.conns[r.RemoteAddr]
	if cl == nil {
		cl = &frontConnLog{}
		h.conns[r.RemoteAddr] = cl
	}
	seq := len(cl.reqs)
	cl.reqs = append(cl.reqs, frontReq{
		method: r.Method, target: r.RequestURI, host: r.Host, header: r.Header.Clone(),
		body: body, bodyErr: err, afterClose: cl.closeSent,
	})
	closeNow := err != nil || strings.Contains(r.URL.Path, "close")
	if closeNow {
		cl.closeSent = true
	}
	h.mu.Unlock()
	hdr := w.Header()
	hdr.Set("X-Seq", strconv.Itoa(seq))
	hdr.Set("Content-Length", "0")
	if closeNow {
		hdr.Set("Connection", "close")
	}
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (h *frontRecorder) take(remote string) []frontReq {
	h.mu.Lock()
	defer h.mu.Unlock()
	cl := h.conns[remote]
	delete(h.conns, remote)
	if cl == nil {
		return nil
	}
	return cl.reqs
}

// frontResp is one final response as the client read it.
type frontResp struct {
	status int
	seq    string // "" for a response the server made itself
	close  bool
}

// frontSeeds are smuggling and framing variants beyond the conformance
// table's requests.
var frontSeeds = []string{
	// CL.TE and TE.CL.
	"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
	"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
	// Transfer-Encoding obfuscations.
	"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\tchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-encoding: x\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nX: y\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n",
	// Content-Length obfuscations.
	"POST / HTTP/1.1\r\nHost: x\r\nContent-Length:  5 \r\n\r\nhello",
	"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 05\r\n\r\nhelloGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\nhello",
	"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello" + confGet("/next"),
	"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 34\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
	// Chunk framing (row 4).
	"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n" + confGet("/next"),
	"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;a\nb\r\nhello\r\n0\r\n\r\n" + confGet("/next"),
	"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n" + confGet("/next"),
	"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5 ;a=b\r\nhello\r\n0\r\nX-T: 1\r\nbad trailer\r\n\r\n" + confGet("/next"),
	"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + confGet("/next"),
	// Connection handling.
	"GET /close HTTP/1.1\r\nHost: x\r\n\r\n" + confGet("/after-close"),
	"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /2 HTTP/1.0\r\n\r\nGET /3 HTTP/1.0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello" + confGet("/next"),
	"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n" + confGet("/next"),
	// Targets and Host.
	"GET http://a.test/x HTTP/1.1\r\nHost: b.test\r\n\r\n",
	"GET http://a.test:80/x?y=%20 HTTP/1.1\r\nHost: a.test\r\n\r\n",
	"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET /a%2fb/../c?d#e HTTP/1.1\r\nHost: x\r\n\r\n",
}

func FuzzH1Front(f *testing.F) {
	for _, row := range confRows() {
		f.Add([]byte(row.req))
	}
	for _, s := range frontSeeds {
		f.Add([]byte(s))
	}
	rec := &frontRecorder{conns: map[string]*frontConnLog{}}
	l := serveTest(f, rec, Limits{ReadHeaderTimeout: time.Second, IdleTimeout: time.Second, BodyIdleTimeout: time.Second})
	addr := l.Addr().String()

	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > frontMaxInput || bytes.HasPrefix(data, []byte(h2Preface)) {
			return // too big, or HTTP/2 with prior knowledge
		}
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		local := c.LocalAddr().String()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			c.Write(data)
			c.(*net.TCPConn).CloseWrite()
		}()

		br := bufio.NewReader(c)
		var resps []frontResp
		var readErr error
		for i := 0; i < len(data)+1; i++ { // a response needs at least one request byte
			if _, err := br.Peek(1); err != nil {
				readErr = err // io.EOF: a clean end between responses
				break
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				readErr = err
				break
			}
			_, berr := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode >= 200 { // 100 Continue is not an answer
				resps = append(resps, frontResp{status: resp.StatusCode, seq: resp.Header.Get("X-Seq"), close: resp.Close})
			}
			if berr != nil {
				readErr = berr
				break
			}
		}
		c.Close()
		<-wrote
		// The server is done with the connection (and every handler
		// call on it has returned) once it stops counting it.
		for i := 0; i < 500 && l.Stats().H1 > 0; i++ {
			time.Sleep(10 * time.Millisecond)
		}
		reqs := rec.take(local)
		clean := readErr == io.EOF
		var ne net.Error
		if readErr != nil && !clean && !errors.Is(readErr, syscall.ECONNRESET) && !(errors.As(readErr, &ne) && ne.Timeout()) {
			t.Fatalf("reading responses: %v (after %d responses)", readErr, len(resps))
		}

		for i, rq := range reqs {
			if rq.afterClose {
				t.Fatalf("request %d (%s %q) reached the handler after it answered Connection: close", i, rq.method, rq.target)
			}
			if rq.bodyErr == nil {
				checkFrontRoundTrip(t, i, rq)
			}
		}

		answered, closed, serverMade := 0, false, false
		for i, rs := range resps {
			if closed {
				t.Fatalf("response %d (%d) came after a Connection: close response; responses %+v", i, rs.status, resps)
			}
			if rs.seq == "" {
				serverMade = true
				if rs.status < 400 || !rs.close {
					t.Fatalf("response %d: the server's own answer %d (close %v), want a 4xx/5xx with Connection: close", i, rs.status, rs.close)
				}
			} else if rs.seq != strconv.Itoa(answered) {
				t.Fatalf("response %d answers handler call %s, want %d: responses out of step with requests; responses %+v", i, rs.seq, answered, resps)
			} else {
				answered++
			}
			closed = rs.close
		}
		if serverMade && len(reqs) != answered {
			t.Fatalf("the handler saw %d requests but only %d answers preceded the server's own error response", len(reqs), answered)
		}
		if clean && len(reqs) != answered {
			t.Fatalf("the handler saw %d requests, the client got %d answers before a clean end of the connection; requests %s", len(reqs), answered, frontSummary(reqs))
		}
	})
}

// frontFramingFields are the fields re-framing replaces or net/http moves
// out of the header map.
var frontFramingFields = []string{"Host", "Content-Length", "Transfer-Encoding", "Trailer"}

// checkFrontRoundTrip serializes rq as a proxy would forward it (same
// method, target, Host and fields; the body framed by Content-Length) and
// checks that net/http reads back the same request.
func checkFrontRoundTrip(t *testing.T, i int, rq frontReq) {
	t.Helper()
	var b strings.Builder
	b.WriteString(rq.method + " " + rq.target + " HTTP/1.1\r\n")
	if rq.host != "" {
		b.WriteString("Host: " + rq.host + "\r\n")
	}
	want := rq.header.Clone()
	for _, k := range frontFramingFields {
		delete(want, k)
	}
	for _, k := range slices.Sorted(maps.Keys(want)) {
		for _, v := range want[k] {
			b.WriteString(k + ": " + v + "\r\n")
		}
	}
	b.WriteString("Content-Length: " + strconv.Itoa(len(rq.body)) + "\r\n\r\n")
	b.Write(rq.body)
	wire := b.String()

	got, err := http.ReadRequest(bufio.NewReader(strings.NewReader(wire)))
	if err != nil {
		t.Fatalf("request %d as the handler saw it does not parse again: %v\n%q", i, err, confTrim([]byte(wire)))
	}
	body, err := io.ReadAll(got.Body)
	if err != nil {
		t.Fatalf("request %d: body does not parse again: %v", i, err)
	}
	if got.Method != rq.method || got.RequestURI != rq.target || got.Host != rq.host || !bytes.Equal(body, rq.body) {
		t.Fatalf("request %d changes meaning when forwarded: handler saw %s %q Host %q body %q; net/http reads %s %q Host %q body %q",
			i, rq.method, rq.target, rq.host, confTrim(rq.body), got.Method, got.RequestURI, got.Host, confTrim(body))
	}
	for _, k := range frontFramingFields {
		delete(got.Header, k)
	}
	if _, ok := want["Cache-Control"]; !ok && got.Header.Get("Pragma") == "no-cache" {
		delete(got.Header, "Cache-Control") // net/http adds it for Pragma: no-cache
	}
	if !maps.EqualFunc(want, got.Header, slices.Equal) {
		t.Fatalf("request %d: header fields change when forwarded: handler saw %q, net/http reads %q", i, want, got.Header)
	}
}

func frontSummary(reqs []frontReq) string {
	var b strings.Builder
	for i, rq := range reqs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(rq.method + " " + strconv.Quote(rq.target))
	}
	return "[" + b.String() + "]"
}
