package main

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestReadResponse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		status  int
		keep    bool
		wantErr bool
	}{
		{name: "content-length", in: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", status: 200, keep: true},
		{name: "chunked with trailer", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n", status: 200, keep: true},
		{name: "connection close", in: "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", status: 503, keep: false},
		{name: "HTTP/1.0 keep-alive", in: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", status: 200, keep: true},
		{name: "HTTP/1.0 default close", in: "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", status: 200, keep: false},
		{name: "body to EOF", in: "HTTP/1.1 200 OK\r\n\r\nall of it", status: 200, keep: false},
		{name: "304 has no body", in: "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", status: 304, keep: true},
		{name: "bad status line", in: "HTTP/1.1 2x0 OK\r\n\r\n", wantErr: true},
		{name: "not HTTP", in: "SSH-2.0-OpenSSH\r\n", wantErr: true},
		{name: "bad content-length", in: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", wantErr: true},
		{name: "short body", in: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", wantErr: true},
		{name: "bad chunk size", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReader(strings.NewReader(tt.in))
			status, keep, err := readResponse(br)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("readResponse(%q) = %d, %v, nil; want an error", tt.in, status, keep)
				}
				return
			}
			if err != nil || status != tt.status || keep != tt.keep {
				t.Fatalf("readResponse(%q) = %d, %v, %v; want %d, %v, nil", tt.in, status, keep, err, tt.status, tt.keep)
			}
			if rest, _ := br.Peek(1); len(rest) != 0 {
				t.Errorf("readResponse(%q) left %q unread", tt.in, rest)
			}
		})
	}
}

// TestRun sends a whole schedule to a loopback server and checks that every
// request is counted once, as the server answered it.
func TestRun(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL + "/"
	closed.Close()
	tests := []struct {
		name                   string
		handler                http.HandlerFunc
		url                    string // instead of the server's
		ok, non2xx, errs, lats int
	}{
		{name: "ok", handler: func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hello")) }, ok: 40, lats: 40},
		{name: "chunked and closing", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			w.Write([]byte("a"))
			w.(http.Flusher).Flush()
			w.Write([]byte("b"))
		}, ok: 40, lats: 40},
		{name: "errors answered", handler: func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusBadGateway) }, non2xx: 40, lats: 40},
		{name: "nothing listening", url: closedURL, errs: 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := tt.url
			if u == "" {
				srv := httptest.NewServer(tt.handler)
				defer srv.Close()
				u = srv.URL + "/path?q=1"
			}
			cfg, err := newConfig(u, 200, 4, 200*time.Millisecond, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			res := run(cfg)
			if res.sent != 40 || res.ok != tt.ok || res.non2xx != tt.non2xx || res.errs != tt.errs || len(res.lat) != tt.lats {
				t.Fatalf("run: sent %d ok %d non2xx %d errors %d latencies %d (first error %q); want 40, %d, %d, %d, %d",
					res.sent, res.ok, res.non2xx, res.errs, len(res.lat), res.firstErr, tt.ok, tt.non2xx, tt.errs, tt.lats)
			}
			line := res.String()
			for _, want := range []string{"rate=200 ", "conns=4 ", "sent=40 "} {
				if !strings.Contains(line, want) {
					t.Errorf("summary %q lacks %q", line, want)
				}
			}
			if tt.errs > 0 && (res.firstErr == "" || !strings.Contains(line, "p50_ms=- ")) {
				t.Errorf("summary %q: want the first error and no percentiles", line)
			}
		})
	}
}

func TestNewConfig(t *testing.T) {
	tests := []struct {
		url        string
		rate       float64
		conns      int
		addr, path string
		wantErr    bool
	}{
		{url: "http://127.0.0.1:8083/", rate: 10, conns: 1, addr: "127.0.0.1:8083", path: "/"},
		{url: "http://127.0.0.1/a?b=c", rate: 10, conns: 1, addr: "127.0.0.1:80", path: "/a?b=c"},
		{url: "https://127.0.0.1/", rate: 10, conns: 1, wantErr: true},
		{url: "127.0.0.1:80", rate: 10, conns: 1, wantErr: true},
		{url: "http://127.0.0.1/", rate: 0, conns: 1, wantErr: true},
		{url: "http://127.0.0.1/", rate: 10, conns: 0, wantErr: true},
	}
	for _, tt := range tests {
		cfg, err := newConfig(tt.url, tt.rate, tt.conns, time.Second, time.Second)
		if (err != nil) != tt.wantErr {
			t.Errorf("newConfig(%q, %v, %d) error = %v, want error %v", tt.url, tt.rate, tt.conns, err, tt.wantErr)
			continue
		}
		if err == nil && (cfg.addr != tt.addr || cfg.path != tt.path) {
			t.Errorf("newConfig(%q): addr %q path %q, want %q %q", tt.url, cfg.addr, cfg.path, tt.addr, tt.path)
		}
	}
}
