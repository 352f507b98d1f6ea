package server

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/meshgate/meshgate/internal/h1head/h1headtest"
	"github.com/meshgate/meshgate/internal/hdrvals"
)

// parseHead runs readHead and parseRequest on raw as the server does.
func parseHead(raw string, maxBytes int) (*http.Request, parsedHead, error) {
	br := bufio.NewReaderSize(strings.NewReader(raw), 4096)
	var hb headBuf
	r := &http.Request{Header: http.Header{}}
	var u url.URL
	var ph parsedHead
	if err := readHead(br, &hb, maxBytes); err != nil {
		return nil, ph, err
	}
	err := parseRequest(&hb, r, &u, &ph, &hdrvals.Arena{})
	r.URL = &u
	return r, ph, err
}

func TestParseRequest(t *testing.T) {
	tests := []struct {
		name   string
		raw    string
		status int // 0: parses
		check  func(t *testing.T, r *http.Request, ph parsedHead)
	}{
		{name: "origin form with query", raw: "GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\n\r\n",
			check: func(t *testing.T, r *http.Request, ph parsedHead) {
				if r.Method != "GET" || r.URL.Path != "/a/b" || r.URL.RawQuery != "x=1&y=2" || r.Host != "example.com" || r.RequestURI != "/a/b?x=1&y=2" {
					t.Errorf("got %s %q %q host %q uri %q", r.Method, r.URL.Path, r.URL.RawQuery, r.Host, r.RequestURI)
				}
				if r.Header.Get("User-Agent") != "t" || r.Header.Get("Host") != "" {
					t.Errorf("headers %v", r.Header)
				}
				if ph.closeAfter || r.ContentLength != 0 {
					t.Errorf("closeAfter %v length %d", ph.closeAfter, r.ContentLength)
				}
			}},
		{name: "leading empty lines ignored (RFC 9112 2.2)", raw: "\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"},
		{name: "percent-encoded path decoded, raw kept", raw: "GET /a%2Fb%20c HTTP/1.1\r\nHost: x\r\n\r\n",
			check: func(t *testing.T, r *http.Request, _ parsedHead) {
				if r.URL.Path != "/a/b c" || r.URL.EscapedPath() != "/a%2Fb%20c" {
					t.Errorf("path %q escaped %q", r.URL.Path, r.URL.EscapedPath())
				}
			}},
		{name: "absolute form sets host", raw: "GET http://origin.test/p?q HTTP/1.1\r\nHost: other\r\n\r\n",
			check: func(t *testing.T, r *http.Request, _ parsedHead) {
				if r.Host != "origin.test" || r.URL.Path != "/p" {
					t.Errorf("host %q path %q", r.Host, r.URL.Path)
				}
			}},
		{name: "OPTIONS *", raw: "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"},
		{name: "HTTP/1.0 closes by default", raw: "GET / HTTP/1.0\r\n\r\n",
			check: func(t *testing.T, r *http.Request, ph parsedHead) {
				if !ph.closeAfter || r.ProtoMinor != 0 {
					t.Errorf("closeAfter %v minor %d", ph.closeAfter, r.ProtoMinor)
				}
			}},
		{name: "HTTP/1.0 keep-alive", raw: "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
			check: func(t *testing.T, _ *http.Request, ph parsedHead) {
				if ph.closeAfter {
					t.Error("closeAfter with keep-alive")
				}
			}},
		{name: "Connection: close", raw: "GET / HTTP/1.1\r\nHost: x\r\nConnection: foo, close\r\n\r\n",
			check: func(t *testing.T, _ *http.Request, ph parsedHead) {
				if !ph.closeAfter {
					t.Error("not closing")
				}
			}},
		{name: "chunked body", raw: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n",
			check: func(t *testing.T, r *http.Request, ph parsedHead) {
				if !ph.chunked || r.ContentLength != -1 || len(r.TransferEncoding) != 1 {
					t.Errorf("chunked %v length %d te %v", ph.chunked, r.ContentLength, r.TransferEncoding)
				}
			}},
		{name: "identical duplicate Content-Length accepted", raw: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
			check: func(t *testing.T, r *http.Request, _ parsedHead) {
				if r.ContentLength != 3 {
					t.Errorf("length %d", r.ContentLength)
				}
			}},
		{name: "repeated header fields keep order", raw: "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nx-a: 2\r\n\r\n",
			check: func(t *testing.T, r *http.Request, _ parsedHead) {
				if got := strings.Join(r.Header["X-A"], ","); got != "1,2" {
					t.Errorf("X-A = %s", got)
				}
			}},
		{name: "expect 100-continue", raw: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\n",
			check: func(t *testing.T, _ *http.Request, ph parsedHead) {
				if !ph.expect100 {
					t.Error("expect100 not set")
				}
			}},
		// Refusals.
		{name: "RFC 9112 6.1: CL with TE", raw: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", status: 400},
		{name: "TE with CL after it", raw: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n", status: 400},
		{name: "differing Content-Length", raw: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", status: 400},
		{name: "Content-Length list", raw: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\n", status: 400},
		{name: "signed Content-Length", raw: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\n", status: 400},
		{name: "negative Content-Length", raw: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", status: 400},
		{name: "huge Content-Length", raw: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n", status: 400},
		{name: "unknown transfer coding", raw: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", status: 501},
		{name: "TE twice", raw: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", status: 400},
		{name: "TE in HTTP/1.0", raw: "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", status: 400},
		{name: "missing Host", raw: "GET / HTTP/1.1\r\n\r\n", status: 400},
		{name: "two Host headers", raw: "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", status: 400},
		{name: "bad Host", raw: "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", status: 400},
		{name: "obs-fold", raw: "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  continued\r\n\r\n", status: 400},
		{name: "space before colon", raw: "GET / HTTP/1.1\r\nHost : x\r\n\r\n", status: 400},
		{name: "no colon", raw: "GET / HTTP/1.1\r\nHost: x\r\nnocolon\r\n\r\n", status: 400},
		{name: "NUL in value", raw: "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", status: 400},
		{name: "bare CR in value", raw: "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", status: 400},
		{name: "invalid header name", raw: "GET / HTTP/1.1\r\nHost: x\r\nX(A): 1\r\n\r\n", status: 400},
		{name: "double space in request line", raw: "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", status: 400},
		{name: "missing version", raw: "GET /\r\nHost: x\r\n\r\n", status: 400},
		{name: "RFC 9110 2.5: a higher HTTP/1 minor version is served as 1.1", raw: "GET / HTTP/1.2\r\nHost: x\r\n\r\n",
			check: func(t *testing.T, r *http.Request, _ parsedHead) {
				if r.ProtoMinor != 1 {
					t.Errorf("minor %d", r.ProtoMinor)
				}
			}},
		{name: "HTTP/2.0 on an HTTP/1 connection", raw: "GET / HTTP/2.0\r\nHost: x\r\n\r\n", status: 505},
		{name: "invalid method", raw: "G(T / HTTP/1.1\r\nHost: x\r\n\r\n", status: 400},
		{name: "unsupported Expect", raw: "GET / HTTP/1.1\r\nHost: x\r\nExpect: magic\r\n\r\n", status: 417},
		{name: "CONNECT", raw: "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", status: 405},
		{name: "101 fields", raw: "GET / HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-A: 1\r\n", 100) + "\r\n", status: 431},
		{name: "header block over the limit", raw: "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 2000) + "\r\n\r\n", status: 431},
		{name: "request line over the limit", raw: "GET /" + strings.Repeat("a", 2000) + " HTTP/1.1\r\nHost: x\r\n\r\n", status: 414},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, ph, err := parseHead(tc.raw, 1024)
			if tc.status != 0 {
				var re *requestError
				if !errors.As(err, &re) || re.Status != tc.status {
					t.Fatalf("err = %v, want status %d", err, tc.status)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				tc.check(t, r, ph)
			}
		})
	}
}

func TestReadHeadIdleClose(t *testing.T) {
	var hb headBuf
	if err := readHead(bufio.NewReader(strings.NewReader("")), &hb, 1024); err != errIdleClose {
		t.Fatalf("empty stream: %v, want errIdleClose", err)
	}
}

func FuzzParseRequest(f *testing.F) {
	f.Add("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	f.Add("POST /a?b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
	f.Add("GET http://h/p HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\n")
	f.Fuzz(func(t *testing.T, raw string) {
		r, ph, err := parseHead(raw, 4096)
		if err != nil {
			return
		}
		if ph.chunked && ph.contentLength >= 0 {
			t.Fatalf("accepted both framings: %q", raw)
		}
		for k, vs := range r.Header {
			for _, v := range vs {
				if strings.ContainsAny(k+v, "\r\n\x00") {
					t.Fatalf("header %q: %q accepted from %q", k, v, raw)
				}
			}
		}
	})
}

// TestHeadBuffered: whether the buffer holds a whole request head, with the
// blank lines a request may be preceded by not counting as one.
func TestHeadBuffered(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     bool
	}{
		{"nothing", "", false},
		{"whole head", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", true},
		{"part of a head", "GET / HTTP/1.1\r\nHost: x\r\n", false},
		{"first line cut", "GET / HT", false},
		{"blank lines only", "\r\n\r\n", false},
		{"blank lines, then a head", "\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", true},
		{"bare LF", "GET / HTTP/1.1\nHost: x\n\n", true},
		{"a head and part of the next", "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\n", true},
		{"a body ending in an empty line", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n\r\n\r\n", true},
		{"a head with part of its body", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nabc", true},
	} {
		br := bufio.NewReader(strings.NewReader(tc.in))
		br.Peek(1)
		if got := headBuffered(br); got != tc.want {
			t.Errorf("%s: headBuffered = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestRepeatedHeadReused checks that a connection's unchanged head is parsed
// without a copy, and that a changed one is never answered from the last.
func TestRepeatedHeadReused(t *testing.T) {
	var hb headBuf
	var vals hdrvals.Arena
	parse := func(raw string) *http.Request {
		t.Helper()
		br := bufio.NewReaderSize(strings.NewReader(raw), 4096)
		if err := readHead(br, &hb, 8192); err != nil {
			t.Fatal(err)
		}
		r := &http.Request{Header: http.Header{}}
		var u url.URL
		var ph parsedHead
		vals.Reset()
		if err := parseRequest(&hb, r, &u, &ph, &vals); err != nil {
			t.Fatal(err)
		}
		r.URL = &u
		return r
	}
	a := "GET /a?x=1 HTTP/1.1\r\nHost: one.test\r\nX-Id: 1\r\n\r\n"
	b := "GET /a?x=2 HTTP/1.1\r\nHost: one.test\r\nX-Id: 2\r\n\r\n"
	for i, tc := range []struct {
		raw        string
		query, xid string
	}{{a, "x=1", "1"}, {a, "x=1", "1"}, {b, "x=2", "2"}, {a, "x=1", "1"}} {
		r := parse(tc.raw)
		if r.URL.RawQuery != tc.query || r.Header.Get("X-Id") != tc.xid || r.Host != "one.test" {
			t.Errorf("request %d: query %q X-Id %q host %q, want %q %q one.test", i, r.URL.RawQuery, r.Header.Get("X-Id"), r.Host, tc.query, tc.xid)
		}
	}

	// The same head again: the block string is the last one (the
	// header map and value slices are reused already), so the parse
	// allocates nothing.
	sr := strings.NewReader(a)
	br := bufio.NewReaderSize(sr, 4096)
	r := &http.Request{Header: http.Header{}}
	var u url.URL
	var ph parsedHead
	allocs := testing.AllocsPerRun(100, func() {
		sr.Reset(a)
		br.Reset(sr)
		if err := readHead(br, &hb, 8192); err != nil {
			t.Fatal(err)
		}
		clear(r.Header)
		vals.Reset()
		if err := parseRequest(&hb, r, &u, &ph, &vals); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("repeated head: %v allocations per parse, want 0", allocs)
	}
}

// reqHeadOutcome is what reading and parsing one request head gave.
type reqHeadOutcome struct {
	raw     string
	fields  int
	rest    string
	err     string
	request string // the parsed request, printed (see printRequest)
}

// readReqHeadWith reads and parses input's head with hb, the input arriving
// in pieces as h1headtest.Pieces says and the buffer filled before the head
// is read, as the read loop has it.
func readReqHeadWith(hb *headBuf, input string, pieces, max int) reqHeadOutcome {
	rd := h1headtest.Pieces(input, pieces)
	br := bufio.NewReaderSize(rd, 4096)
	br.Peek(1)
	err := readHead(br, hb, max)
	rest, _ := io.ReadAll(br)
	o := reqHeadOutcome{rest: string(rest), err: fmt.Sprint(err)}
	if err != nil {
		return o
	}
	o.raw, o.fields = string(hb.raw), hb.fields
	r := &http.Request{Header: http.Header{"Stale": {"from the last request"}}}
	clear(r.Header) // as readRequest clears it
	var u url.URL
	var ph parsedHead
	var vals hdrvals.Arena
	if err := parseRequest(hb, r, &u, &ph, &vals); err != nil {
		o.err = "parse: " + err.Error()
		return o
	}
	r.URL = &u
	o.request = printRequest(r, &ph)
	return o
}

// printRequest prints every field parseRequest sets.
func printRequest(r *http.Request, ph *parsedHead) string {
	keys := slices.Sorted(maps.Keys(r.Header))
	var hdr strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&hdr, "%s=%q(cap %d) ", k, r.Header[k], cap(r.Header[k]))
	}
	return fmt.Sprintf("%s %q %s %d.%d host=%q url=%#v cl=%d te=%v close=%v ph=%+v header: %s",
		r.Method, r.RequestURI, r.Proto, r.ProtoMajor, r.ProtoMinor, r.Host, *r.URL, r.ContentLength, r.TransferEncoding, r.Close, *ph, hdr.String())
}

// FuzzRequestHeadMemo checks the connection's memory of its last request
// head (headBuf.wire): reading a sequence of heads on one connection gives,
// head after head, exactly what reading each on a fresh connection gives,
// whether the head repeats, changes, fails, arrives in pieces or is read
// with another limit.
func FuzzRequestHeadMemo(f *testing.F) {
	wrk := "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
	f.Add(wrk, wrk, uint8(0))
	f.Add(wrk+"GET", "GET /b HTTP/1.1\r\nHost: x\r\n\r\n", uint8(5))
	f.Add("\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", "GET / HTTP/1.1\r\nHost: x\r\nBad\x00: 1\r\n\r\n", uint8(1))
	f.Add("GET / HTTP/1.1\nHost: x\n\n", "GET / HTTP/1.1\r\nHost: x\r\n", uint8(0))
	f.Add("POST /up?x=1 HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 3\r\nConnection: close\r\nExpect: 100-continue\r\n\r\nabc",
		"POST http://y.test/up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", uint8(2))
	f.Add("GET /%41 HTTP/1.0\r\nConnection: keep-alive\r\nUser-Agent: a\r\n\r\n", "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", uint8(1))
	f.Fuzz(func(t *testing.T, a, b string, chunk uint8) {
		h1headtest.CheckMemo(t, a, b, chunk, 8192, readReqHeadWith)
	})
}

// TestRequestHeadMemo: a repeated head in the buffer is recognized (the
// block is left as the first read made it), anything else is read again.
func TestRequestHeadMemo(t *testing.T) {
	const head = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
	var hb headBuf
	if first := readReqHeadWith(&hb, head+"GET", 0, 8192); first.err != "<nil>" || string(hb.wire) != head {
		t.Fatalf("first read %+v, remembered %q", first, hb.wire)
	}
	hb.raw = append(hb.raw[:0], "marker"...) // shows whether the head was read line by line
	if again := readReqHeadWith(&hb, head+"GET", 0, 8192); again.raw != "marker" || again.rest != "GET" {
		t.Fatalf("repeated head read again or misread: %+v", again)
	}
	if other := readReqHeadWith(&hb, strings.Replace(head, "x", "y", 1), 0, 8192); other.raw != "GET / HTTP/1.1\x00Host: y\x00\x00" {
		t.Fatalf("changed head: %+v", other)
	}
	if pieces := readReqHeadWith(&hb, head, 3, 8192); pieces.err != "<nil>" || len(hb.wire) != 0 {
		t.Fatalf("head in pieces: %+v, remembered %q (its bytes are not all in the buffer)", pieces, hb.wire)
	}
}
