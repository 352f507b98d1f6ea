package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/meshgate/meshgate/internal/h1head/h1headtest"
)

// FuzzReadResponseHead feeds arbitrary upstream response heads to the
// parser. Whatever it accepts must be safe to relay: no field value with
// CR, LF or NUL, no hop-by-hop field left, and a Content-Length that
// agrees with the framing it reports. The header lines of raw mode
// (Outbound.RawHead) must say the same as the header map.
func FuzzReadResponseHead(f *testing.F) {
	for _, seed := range []string{
		"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nServer: nginx\r\nETag: \"x\"\r\nConnection: keep-alive, X-Drop\r\nX-Drop: 1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
		"HTTP/1.0 404 Not Found\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\n\r\n",
		"HTTP/1.1 200 OK\r\n Folded: x\r\n\r\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		w := httptest.NewRecorder()
		var resp respHead
		var sc respScratch
		resp.reset()
		if err := readResponseHead(bufio.NewReaderSize(strings.NewReader(raw), 4096), w, &resp, 64<<10, &sc, false); err != nil {
			return
		}
		var rawResp respHead
		var rawSC respScratch
		rawResp.reset()
		rw := httptest.NewRecorder()
		if err := readResponseHead(bufio.NewReaderSize(strings.NewReader(raw), 4096), rw, &rawResp, 64<<10, &rawSC, true); err != nil {
			t.Fatalf("raw mode rejects what map mode took: %v", err)
		}
		if len(rw.Header()) != 0 {
			t.Fatalf("raw mode filled the header map: %v", rw.Header())
		}
		if got, want := linesHeader(t, rawSC.out), w.Header(); !sameHeader(got, want) {
			t.Fatalf("raw lines %q say %v, the map %v", rawSC.out, got, want)
		}
		_, hasDate := w.Header()["Date"]
		if rawResp.hasDate != hasDate || rawResp.status != resp.status || rawResp.contentLength != resp.contentLength ||
			rawResp.chunked != resp.chunked || rawResp.close != resp.close || rawResp.ambiguous != resp.ambiguous {
			t.Fatalf("raw mode framing %+v, map mode %+v", rawResp, resp)
		}
		for k, vs := range w.Header() {
			if isResponseHop(k) {
				t.Fatalf("hop-by-hop field %q kept", k)
			}
			for _, v := range vs {
				if strings.ContainsAny(v, "\r\n\x00") {
					t.Fatalf("field %q value %q has CR, LF or NUL", k, v)
				}
			}
		}
		if resp.status < 100 || resp.status > 999 {
			t.Fatalf("status %d accepted", resp.status)
		}
		switch {
		case resp.chunked && resp.contentLength != -1:
			t.Fatalf("chunked with content length %d", resp.contentLength)
		case resp.contentLength >= 0 && withoutLeadingZeros(resp.contentLengthRaw) != strconv.FormatInt(resp.contentLength, 10):
			t.Fatalf("content length %d from %q", resp.contentLength, resp.contentLengthRaw)
		}
	})
}

// withoutLeadingZeros is the decimal s without its leading zeros, "0" for
// zero in any spelling ("00").
func withoutLeadingZeros(s string) string {
	if t := strings.TrimLeft(s, "0"); t != "" || s == "" {
		return t
	}
	return "0"
}

// linesHeader parses header lines "Name: value\r\n" as the client would.
func linesHeader(t *testing.T, b []byte) http.Header {
	t.Helper()
	h := http.Header{}
	for len(b) > 0 {
		i := bytes.Index(b, []byte("\r\n"))
		if i < 0 {
			t.Fatalf("unterminated line %q", b)
		}
		line := string(b[:i])
		b = b[i+2:]
		k, v, ok := strings.Cut(line, ": ")
		if !ok || strings.ContainsAny(v, "\r\n\x00") || k != textproto.CanonicalMIMEHeaderKey(k) {
			t.Fatalf("malformed line %q", line)
		}
		h[k] = append(h[k], v)
	}
	return h
}

func sameHeader(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, va := range a {
		if !slices.Equal(va, b[k]) {
			return false
		}
	}
	return true
}

// TestReadResponseHeadRaw checks raw mode on a head with every kind of
// field: hop-by-hop ones and those Connection names are dropped, the rest
// kept in order, canonical, duplicates included, and the map untouched.
func TestReadResponseHeadRaw(t *testing.T) {
	head := "HTTP/1.1 200 OK\r\nServer: nginx\r\ndate: Fri, 27 Nov 2026 14:00:00 GMT\r\nContent-Type: text/plain\r\n" +
		"Content-Length: 5\r\nConnection: keep-alive, X-Internal\r\nX-Internal: secret\r\nKeep-Alive: timeout=5\r\n" +
		"Set-Cookie: a=1\r\nETag: \"x\"\r\nset-cookie: b=2\r\nTrailer: X-T\r\n\r\nhello"
	w := httptest.NewRecorder()
	var resp respHead
	var sc respScratch
	resp.reset()
	br := bufio.NewReader(strings.NewReader(head))
	if err := readResponseHead(br, w, &resp, 64<<10, &sc, true); err != nil {
		t.Fatal(err)
	}
	want := "Server: nginx\r\nDate: Fri, 27 Nov 2026 14:00:00 GMT\r\nContent-Type: text/plain\r\n" +
		"Set-Cookie: a=1\r\nEtag: \"x\"\r\nSet-Cookie: b=2\r\n"
	if string(sc.out) != want {
		t.Errorf("lines\n%q\nwant\n%q", sc.out, want)
	}
	if !resp.hasDate || resp.contentLength != 5 || resp.status != 200 || len(w.Header()) != 0 {
		t.Errorf("hasDate %v, content length %d, status %d, map %v", resp.hasDate, resp.contentLength, resp.status, w.Header())
	}
	if rest, _ := io.ReadAll(br); string(rest) != "hello" {
		t.Errorf("body %q left to read", rest)
	}
}

func TestReadResponseHeadContentLength(t *testing.T) {
	tests := []struct {
		value string
		ok    bool
	}{
		{"5", true}, {"0", true}, {"005", true}, {"+5", false}, {"-1", false}, {"5 5", false}, {"0x5", false}, {"", false},
	}
	for _, tc := range tests {
		t.Run(tc.value, func(t *testing.T) {
			var resp respHead
			var sc respScratch
			resp.reset()
			raw := "HTTP/1.1 200 OK\r\nContent-Length: " + tc.value + "\r\n\r\n"
			err := readResponseHead(bufio.NewReader(strings.NewReader(raw)), httptest.NewRecorder(), &resp, 64<<10, &sc, false)
			if (err == nil) != tc.ok {
				t.Fatalf("Content-Length %q: error %v, want ok=%v", tc.value, err, tc.ok)
			}
		})
	}
}

// TestReadResponseHeadOWS checks that only spaces and tabs around a value
// are trimmed: another control byte there makes the head invalid.
func TestReadResponseHeadOWS(t *testing.T) {
	for _, tc := range []struct {
		field, want string // want "" for an error
	}{
		{"X-A: v", "v"}, {"X-A:v", "v"}, {"X-A: \t v w \t", "v w"}, {"X-A:", "-"}, {"X-A: \fv", ""}, {"X-A: v\v", ""},
	} {
		var resp respHead
		var sc respScratch
		resp.reset()
		w := httptest.NewRecorder()
		err := readResponseHead(bufio.NewReader(strings.NewReader("HTTP/1.1 200 OK\r\n"+tc.field+"\r\n\r\n")), w, &resp, 64<<10, &sc, false)
		switch got := w.Header()["X-A"]; {
		case tc.want == "" && err == nil:
			t.Errorf("%q: accepted as %q", tc.field, got)
		case tc.want == "-" && (err != nil || len(got) != 1 || got[0] != ""):
			t.Errorf("%q: %q, %v; want an empty value", tc.field, got, err)
		case tc.want != "" && tc.want != "-" && (err != nil || len(got) != 1 || got[0] != tc.want):
			t.Errorf("%q: %q, %v; want %q", tc.field, got, err, tc.want)
		}
	}
}

// TestReadResponseHeadRawDrops: in raw mode, fields Connection names are
// taken out of the lines already written, whichever side of it they are,
// and whether a Date line is left is worked out again; the scratch serves
// the next head afresh.
func TestReadResponseHeadRawDrops(t *testing.T) {
	var sc respScratch
	for _, tc := range []struct {
		name, head, want string
		hasDate          bool
	}{
		{"Date named", "HTTP/1.1 200 OK\r\nDate: Fri, 27 Nov 2026 14:00:00 GMT\r\nX-A: 1\r\nConnection: date\r\n\r\n", "X-A: 1\r\n", false},
		{"before and after", "HTTP/1.1 200 OK\r\nX-B: 1\r\nDate: d\r\nConnection: X-B, x-c\r\nX-C: 2\r\nX-D: 3\r\nX-B: 4\r\n\r\n", "Date: d\r\nX-D: 3\r\n", true},
		{"every field", "HTTP/1.1 200 OK\r\nX-E: 1\r\nConnection: X-E\r\n\r\n", "", false},
		{"nothing named", "HTTP/1.1 200 OK\r\nX-F: 1\r\n\r\n", "X-F: 1\r\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var resp respHead
			resp.reset()
			if err := readResponseHead(bufio.NewReader(strings.NewReader(tc.head)), httptest.NewRecorder(), &resp, 64<<10, &sc, true); err != nil {
				t.Fatal(err)
			}
			if string(sc.out) != tc.want || resp.hasDate != tc.hasDate {
				t.Errorf("lines %q hasDate %v, want %q %v", sc.out, resp.hasDate, tc.want, tc.hasDate)
			}
		})
	}
}

// headOutcome is what reading one response head gave: the framing, the
// header lines of raw mode, what was left unread, and whether it failed.
type headOutcome struct {
	resp  respHead
	lines string
	rest  string
	err   bool
}

// readHeadWith reads input's head in raw mode with sc, the input arriving
// in pieces as h1headtest.Pieces says.
func readHeadWith(sc *respScratch, input string, pieces, max int) headOutcome {
	rd := h1headtest.Pieces(input, pieces)
	br := bufio.NewReaderSize(rd, 4096)
	var resp respHead
	resp.reset()
	err := readResponseHead(br, httptest.NewRecorder(), &resp, max, sc, true)
	rest, _ := io.ReadAll(br)
	o := headOutcome{resp: resp, rest: string(rest), err: err != nil}
	if err == nil {
		o.lines = string(sc.out)
	}
	return o
}

// FuzzResponseHeadMemo checks the upstream connection's memory of its last
// response head (respMemo): reading a sequence of heads on one connection
// gives, head after head, exactly what parsing each on a fresh connection
// gives, whether the head repeats, changes, fails, arrives in pieces or
// comes with another limit.
func FuzzResponseHeadMemo(f *testing.F) {
	const nginx = "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sat, 28 Nov 2026 15:00:00 GMT\r\nContent-Type: text/plain\r\nContent-Length: 19\r\nConnection: keep-alive\r\n\r\n"
	f.Add(nginx+"hello from backend\n", nginx+"hello from backend\n", uint8(0))
	f.Add(nginx+"body", strings.Replace(nginx, "15:00:00", "15:00:01", 1)+"body", uint8(0))
	f.Add("HTTP/1.1 200 OK\r\nConnection: X-A\r\nX-A: 1\r\nX-B: 2\r\n\r\n", "HTTP/1.1 200 OK\r\nConnection: X-A\r\nX-A: 1\r\nX-B: 2\r\n\r\n", uint8(7))
	f.Add("HTTP/1.1 200 OK\r\nX: 1\r\n\r\n", "HTTP/1.1 200 OK\r\nX: 1\r\n", uint8(0))
	f.Add("HTTP/1.1 204 No Content\r\n\r\n", "HTTP/1.1 204 No Content\r\nBad Name: x\r\n\r\n", uint8(3))
	f.Add("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", "HTTP/1.1 100 Continue\r\n\r\n", uint8(0))
	f.Fuzz(func(t *testing.T, a, b string, chunk uint8) {
		h1headtest.CheckMemo(t, a, b, chunk, 64<<10, readHeadWith)
	})
}

// TestResponseHeadMemo: a repeated head is recognized (the parse is not
// run: its lines are what the first parse left), anything else is parsed.
func TestResponseHeadMemo(t *testing.T) {
	const head = "HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 2\r\n\r\n"
	var sc respScratch
	first := readHeadWith(&sc, head+"ok", 0, 64<<10)
	if first.err || len(sc.memo.head) != len(head) {
		t.Fatalf("first read %+v, remembered %q", first, sc.memo.head)
	}
	sc.out = append(sc.out[:0], "X-Marker: 1\r\n"...) // shows whether the parse ran
	if again := readHeadWith(&sc, head+"ok", 0, 64<<10); again.lines != "X-Marker: 1\r\n" || again.rest != "ok" || again.resp != first.resp {
		t.Fatalf("repeated head parsed again or misread: %+v", again)
	}
	other := readHeadWith(&sc, strings.Replace(head, "x", "y", 1)+"ok", 0, 64<<10)
	if other.lines != "Server: y\r\n" || string(sc.memo.head) != strings.Replace(head, "x", "y", 1) {
		t.Fatalf("changed head: %+v, remembered %q", other, sc.memo.head)
	}
	if bad := readHeadWith(&sc, "HTTP/1.1 200 OK\r\nServer: y\r\nBad Name: 1\r\n\r\n", 0, 64<<10); !bad.err || len(sc.memo.head) != 0 {
		t.Fatalf("malformed head: %+v, remembered %q", bad, sc.memo.head)
	}
	if pieces := readHeadWith(&sc, head, 7, 64<<10); pieces.err || len(sc.memo.head) != 0 {
		t.Fatalf("head in pieces: %+v, remembered %q (its bytes are not all in the buffer)", pieces, sc.memo.head)
	}
}
