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
