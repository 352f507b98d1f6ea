package server

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// rawHeadHandler answers with header lines set through SetRawHeader, as
// the upstream HTTP/1.1 client does for a proxied response (see
// proxy.RawHeadSink), from the query: cl (Content-Length, -1 for none),
// date (whether the lines carry Date), status, close (a field in the
// header map too), big (a body too long to be held back and counted),
// bighead (6000-byte fields in the lines and in the map: a head larger
// than the connection's write buffer).
type rawHeadHandler struct{}

func (rawHeadHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	lines := "Server: upstream\r\nX-A: 1\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n"
	date := q.Get("date") == "1"
	if date {
		lines += "Date: Mon, 02 Jan 2006 15:04:05 GMT\r\n"
	}
	cl := int64(-1)
	if q.Get("cl") == "5" {
		cl = 5
	}
	if q.Get("close") == "1" {
		w.Header()["Connection"] = []string{"close"}
	}
	if q.Get("bighead") == "1" {
		lines += "X-Big: " + strings.Repeat("b", 6000) + "\r\n"
		w.Header()["X-Map"] = []string{strings.Repeat("m", 6000)}
	}
	w.Header()["X-Gateway"] = []string{"g"}
	w.(interface {
		SetRawHeader([]byte, int64, bool)
	}).SetRawHeader([]byte(lines), cl, date)
	status := http.StatusOK
	if q.Get("status") == "204" {
		status = http.StatusNoContent
	}
	w.WriteHeader(status)
	switch {
	case status == http.StatusNoContent:
	case q.Get("big") == "1":
		io.WriteString(w, strings.Repeat("x", 5000)) // over what is held back to count
	default:
		io.WriteString(w, "hello")
	}
}

func TestSetRawHeader(t *testing.T) {
	l := serveTest(t, rawHeadHandler{}, Limits{})
	cases := []struct {
		name, method, query string
		wantCL              string // "" for none
		wantChunked         bool
		wantDate            string // "" for the server's own
		wantBody            string
		wantClose           bool
		wantBigHead         bool
	}{
		{name: "length and date from the lines", method: "GET", query: "cl=5&date=1", wantCL: "5", wantDate: "Mon, 02 Jan 2006 15:04:05 GMT", wantBody: "hello"},
		{name: "server adds Date", method: "GET", query: "cl=5", wantCL: "5", wantBody: "hello"},
		{name: "no length: the server counts the small body", method: "GET", query: "", wantCL: "5", wantBody: "hello"},
		{name: "no length, long body: chunked", method: "GET", query: "big=1", wantChunked: true, wantBody: strings.Repeat("x", 5000)},
		{name: "HEAD keeps the length", method: "HEAD", query: "cl=5", wantCL: "5"},
		{name: "204 drops the length", method: "GET", query: "cl=5&status=204"},
		{name: "map fields still count", method: "GET", query: "cl=5&close=1", wantCL: "5", wantBody: "hello", wantClose: true},
		{name: "head larger than the write buffer", method: "GET", query: "cl=5&bighead=1", wantCL: "5", wantBody: "hello", wantBigHead: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cc := dialConf(t, l.Addr().String())
			cc.writeNow(tc.method + " /?" + tc.query + " HTTP/1.1\r\nHost: x\r\n\r\n")
			resp, body, err := cc.read(tc.method)
			if err != nil || string(body) != tc.wantBody {
				t.Fatalf("body %q (%v), want %q", body, err, tc.wantBody)
			}
			h := resp.Header
			if h.Get("Server") != "upstream" || h.Get("X-A") != "1" || h.Get("X-Gateway") != "g" ||
				strings.Join(h.Values("Set-Cookie"), ",") != "a=1,b=2" {
				t.Errorf("header %v", h)
			}
			if got := h.Get("Content-Length"); got != tc.wantCL && !(tc.method == "HEAD" && resp.ContentLength == 5) {
				t.Errorf("Content-Length %q, want %q", got, tc.wantCL)
			}
			if chunked := len(resp.TransferEncoding) > 0; chunked != tc.wantChunked {
				t.Errorf("chunked %v, want %v", chunked, tc.wantChunked)
			}
			if d := h.Values("Date"); len(d) != 1 || (tc.wantDate != "" && d[0] != tc.wantDate) {
				t.Errorf("Date %q, want one (%q)", d, tc.wantDate)
			}
			if big := h.Get("X-Big") == strings.Repeat("b", 6000) && h.Get("X-Map") == strings.Repeat("m", 6000); big != tc.wantBigHead {
				t.Errorf("6000-byte fields arrived whole: %v, want %v", big, tc.wantBigHead)
			}
			if resp.Close != tc.wantClose {
				t.Errorf("close %v, want %v", resp.Close, tc.wantClose)
			}
			if !tc.wantClose {
				// The connection carries a second request.
				cc.writeNow("GET /?cl=5 HTTP/1.1\r\nHost: x\r\n\r\n")
				if _, body, err := cc.read("GET"); err != nil || string(body) != "hello" {
					t.Fatalf("second response body %q, %v", body, err)
				}
			}
		})
	}
}
