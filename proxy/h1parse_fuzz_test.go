package proxy

import (
	"bufio"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// FuzzReadResponseHead feeds arbitrary upstream response heads to the
// parser. Whatever it accepts must be safe to relay: no field value with
// CR, LF or NUL, no hop-by-hop field left, and a Content-Length that
// agrees with the framing it reports.
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
		if err := readResponseHead(bufio.NewReaderSize(strings.NewReader(raw), 4096), w, &resp, 64<<10, &sc); err != nil {
			return
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
		case resp.contentLength >= 0 && resp.contentLengthRaw != strconv.FormatInt(resp.contentLength, 10) &&
			strings.TrimLeft(resp.contentLengthRaw, "0") != strconv.FormatInt(resp.contentLength, 10):
			t.Fatalf("content length %d from %q", resp.contentLength, resp.contentLengthRaw)
		}
	})
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
			err := readResponseHead(bufio.NewReader(strings.NewReader(raw)), httptest.NewRecorder(), &resp, 64<<10, &sc)
			if (err == nil) != tc.ok {
				t.Fatalf("Content-Length %q: error %v, want ok=%v", tc.value, err, tc.ok)
			}
		})
	}
}
