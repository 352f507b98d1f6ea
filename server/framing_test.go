package server

import (
	"strings"
	"testing"
)

func TestFramingScan(t *testing.T) {
	many := "GET / HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-A: 1\r\n", MaxHeaderFields) + "\r\n"
	tests := []struct {
		name   string
		stream string
		want   []Verdict
	}{
		{
			name:   "plain requests pipelined",
			stream: "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
			want:   []Verdict{{}, {}},
		},
		{
			name:   "content-length body is skipped, even when it looks like headers",
			stream: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 57\r\n\r\nGET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n",
			want:   []Verdict{{}, {}},
		},
		{
			name:   "chunked body with extensions and trailer",
			stream: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n3\r\n\r\n\r\n0\r\nX-Trailer: 1\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
			want:   []Verdict{{}, {}},
		},
		{
			name:   "RFC 9112 6.1: Content-Length with Transfer-Encoding is refused and the rest ignored",
			stream: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
			want:   []Verdict{{Status: 400, Reason: "request has both Content-Length and Transfer-Encoding", CloseAfter: true}},
		},
		{
			name:   "header names are case-insensitive",
			stream: "POST / HTTP/1.1\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n\r\n",
			want:   []Verdict{{Status: 400, Reason: "request has both Content-Length and Transfer-Encoding", CloseAfter: true}},
		},
		{
			name:   "too many header fields",
			stream: many,
			want:   []Verdict{{Status: 431, Reason: "more than 100 header fields", CloseAfter: true}},
		},
		{
			name:   "exactly the limit is fine",
			stream: "GET / HTTP/1.1\r\n" + strings.Repeat("X-A: 1\r\n", MaxHeaderFields) + "\r\n",
			want:   []Verdict{{}},
		},
		{
			name:   "header block over the byte limit",
			stream: "GET / HTTP/1.1\r\nX-Big: " + strings.Repeat("a", 1024) + "\r\n\r\n",
			want:   []Verdict{{Status: 431, Reason: "request header block larger than 1024 bytes", CloseAfter: true}},
		},
		{
			name:   "upgrade ends the scan and closes after",
			stream: "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\nGET /x HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
			want:   []Verdict{{CloseAfter: true}},
		},
		{
			name:   "h2c preface stops the scan",
			stream: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04",
			want:   nil,
		},
		{
			name:   "bare LF line endings",
			stream: "GET / HTTP/1.1\nHost: x\n\nGET / HTTP/1.1\nHost: x\n\n",
			want:   []Verdict{{}, {}},
		},
	}
	for _, tc := range tests {
		for _, split := range []int{0, 1, 3, 7} {
			c := newFramingConn(nil, 1024)
			// Feed in pieces of `split` bytes (0: all at once) to show
			// the scan does not depend on read boundaries.
			s := tc.stream
			for len(s) > 0 {
				n := len(s)
				if split > 0 && split < n {
					n = split
				}
				c.scan([]byte(s[:n]))
				s = s[n:]
			}
			if len(c.verdicts) != len(tc.want) {
				t.Errorf("%s (split %d): verdicts = %+v, want %+v", tc.name, split, c.verdicts, tc.want)
				continue
			}
			for i := range tc.want {
				if got := c.next(); got != tc.want[i] {
					t.Errorf("%s (split %d): verdict %d = %+v, want %+v", tc.name, split, i, got, tc.want[i])
				}
			}
		}
	}
}

func FuzzFramingScan(f *testing.F) {
	f.Add([]byte("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c := newFramingConn(nil, 1024)
		c.scan(b)
		for range len(c.verdicts) + 1 {
			c.next()
		}
	})
}
