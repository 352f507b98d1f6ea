package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

// browserHeader is a typical browser request header as the HTTP/1.1
// server parses it (Host is not in the map).
func browserHeader() http.Header {
	return http.Header{
		"User-Agent":      {"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"},
		"Accept":          {"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
		"Accept-Language": {"en-US,en;q=0.9"},
		"Accept-Encoding": {"gzip, deflate, br"},
		"Connection":      {"keep-alive"},
		"Cookie":          {"session=abc123; theme=dark"},
		"Cache-Control":   {"max-age=0"},
	}
}

// BenchmarkRequestHeaders is the gateway's header work on a request
// before it goes upstream: hop-by-hop removal and X-Forwarded-*/Forwarded,
// with the value storage the HTTP/1.1 server provides.
func BenchmarkRequestHeaders(b *testing.B) {
	base := browserHeader()
	h := http.Header{}
	p := &ForwardedPolicy{}
	vals := make([]string, 4)
	var memo ForwardedMemo // the connection's, as the HTTP/1.1 server keeps it
	b.ReportAllocs()
	for b.Loop() {
		clear(h)
		for k, v := range base {
			h[k] = v
		}
		RemoveHopByHop(h)
		p.Apply(h, "192.0.2.10:51234", "shop.example.com", true, vals, &memo)
	}
}

// BenchmarkWriteRequestHead is writing a browser request's head to an
// upstream connection's buffer.
func BenchmarkWriteRequestHead(b *testing.B) {
	h := browserHeader()
	RemoveHopByHop(h)
	out := &Outbound{Method: http.MethodGet, RequestURI: "/products/42?ref=home", Host: "shop.example.com", Header: h}
	bw := bufio.NewWriterSize(io.Discard, 4096)
	b.ReportAllocs()
	for b.Loop() {
		var chunked bool
		if err := writeRequestHead(bw, out, &chunked); err != nil {
			b.Fatal(err)
		}
		bw.Flush()
	}
}

// BenchmarkRelayResponse is reading an nginx response head and copying a
// 16 KiB body to the client writer.
func BenchmarkRelayResponse(b *testing.B) {
	body := strings.Repeat("x", 16<<10)
	raw := []byte("HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Thu, 26 Nov 2026 07:00:00 GMT\r\n" +
		"Content-Type: text/html\r\nContent-Length: 16384\r\nConnection: keep-alive\r\nETag: \"6925a3b0-4000\"\r\n" +
		"Accept-Ranges: bytes\r\n\r\n" + body)
	rd := bytes.NewReader(raw)
	br := bufio.NewReaderSize(rd, 4096)
	w := &discardWriter{h: http.Header{}}
	var sc respScratch
	var lr io.LimitedReader
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(raw)
		br.Reset(rd)
		clear(w.h)
		var resp respHead
		resp.reset()
		if err := readResponseHead(br, w, &resp, 64<<10, &sc, false); err != nil {
			b.Fatal(err)
		}
		if _, err := relayResponse(br, &lr, &resp, http.MethodGet, w, w.WriteHeader, nil, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// nginxHead is the response head the benchmark's backend (nginx returning
// a short text) sends.
const nginxHead = "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sat, 28 Nov 2026 15:00:00 GMT\r\n" +
	"Content-Type: text/plain\r\nContent-Length: 19\r\nConnection: keep-alive\r\n\r\n"

// BenchmarkReadResponseHead is parsing an nginx response head: into the
// header lines the HTTP/1.1 server writes as they are (raw, the proxied
// HTTP/1.1 path), the same head every time (the connection's memo
// recognizes it) or two heads in turn (Date differs: parsed every time);
// and into a header map (the other paths).
func BenchmarkReadResponseHead(b *testing.B) {
	other := strings.Replace(nginxHead, "15:00:00", "15:00:01", 1)
	for _, c := range []struct {
		name  string
		raw   bool
		heads []string
	}{
		{"raw-repeated", true, []string{nginxHead}},
		{"raw-changing", true, []string{nginxHead, other}},
		{"map", false, []string{nginxHead}},
	} {
		b.Run(c.name, func(b *testing.B) {
			rd := strings.NewReader("")
			br := bufio.NewReaderSize(rd, 4096)
			w := &discardWriter{h: http.Header{}}
			var sc respScratch
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				rd.Reset(c.heads[i%len(c.heads)])
				i++
				br.Reset(rd)
				clear(w.h)
				var resp respHead
				resp.reset()
				if err := readResponseHead(br, w, &resp, 64<<10, &sc, c.raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
