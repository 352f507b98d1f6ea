package dataplane

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"

	"github.com/meshgate/meshgate/ir"
)

// TestForwardedFields: the forwarding fields reach the backend the same
// whether the HTTP/1.1 client writes them as lines (a plain route) or they
// go through the header map because something may read or edit them
// first (route and backend header filters, an HTTP/2 upstream); the
// client's own copies never get through.
func TestForwardedFields(t *testing.T) {
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var got []string
		for _, k := range []string{"X-Forwarded-For", "Forwarded", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Real-Ip"} {
			got = append(got, k+"="+strings.Join(r.Header.Values(k), "|"))
		}
		io.WriteString(w, strings.Join(got, "\n"))
	})
	h1 := httptest.NewServer(echo)
	defer h1.Close()
	h2 := httptest.NewServer(h2c.NewHandler(echo, &http2.Server{}))
	defer h2.Close()
	backend := func(name string, p ir.BackendProtocol, srv *httptest.Server) *ir.Backend {
		return &ir.Backend{Name: "backend/default/" + name, Protocol: p, Endpoints: []ir.Endpoint{{Address: srv.Listener.Addr().String()}}}
	}
	plain, viaH2 := backend("h1", ir.BackendHTTP1, h1), backend("h2", ir.BackendH2C, h2)
	// The mirror's copies report what they carried.
	mirrored := make(chan string, 4)
	mirror := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var got []string
		for _, k := range []string{"X-Forwarded-For", "Forwarded", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Real-Ip"} {
			got = append(got, k+"="+strings.Join(r.Header.Values(k), "|"))
		}
		mirrored <- strings.Join(got, "\n")
	}))
	defer mirror.Close()
	mirrorTarget := backend("mirror", ir.BackendHTTP1, mirror)
	modifier := func(m ir.HeaderModifier) []ir.Filter {
		return []ir.Filter{{Type: ir.FilterRequestHeaderModifier, RequestHeaderModifier: &m}}
	}
	route := func(path string, b *ir.Backend, rule, backendFilters []ir.Filter) *ir.Route {
		return &ir.Route{Name: "default" + path, Match: ir.Match{Path: ir.PathMatch{Type: ir.PathPrefix, Value: path}},
			Filters: rule, Backends: []ir.WeightedBackend{{Weight: 1, Target: b, Filters: backendFilters}}}
	}
	addr := serveRoutes(t,
		route("/plain", plain, nil, nil),
		route("/rule-filter", plain, modifier(ir.HeaderModifier{Remove: []string{"X-Forwarded-For"}, Set: []ir.Header{{Name: "X-Forwarded-Host", Value: "set-by-filter"}}}), nil),
		route("/backend-filter", plain, nil, modifier(ir.HeaderModifier{Add: []ir.Header{{Name: "X-Forwarded-Proto", Value: "added"}}})),
		route("/h2", viaH2, nil, nil),
		route("/other-filter", plain, modifier(ir.HeaderModifier{Set: []ir.Header{{Name: "x-other", Value: "1"}}}), nil),
		route("/mirror", plain, []ir.Filter{{Type: ir.FilterRequestMirror, RequestMirror: &ir.Mirror{Target: mirrorTarget, Percent: 100}}}, nil),
	)
	standard := "X-Forwarded-For=127.0.0.1\nForwarded=for=127.0.0.1;host=\"fwd.test:80\";proto=http\nX-Forwarded-Proto=http\nX-Forwarded-Host=fwd.test:80\nX-Real-Ip="
	for _, tc := range []struct{ path, want string }{
		{"/plain", standard},
		{"/rule-filter", "X-Forwarded-For=\nForwarded=for=127.0.0.1;host=\"fwd.test:80\";proto=http\nX-Forwarded-Proto=http\nX-Forwarded-Host=set-by-filter\nX-Real-Ip="},
		{"/backend-filter", strings.Replace(standard, "X-Forwarded-Proto=http", "X-Forwarded-Proto=http|added", 1)},
		{"/h2", standard},
		{"/other-filter", standard},
		{"/mirror", standard},
	} {
		t.Run(tc.path, func(t *testing.T) {
			// Twice on one connection: the second request takes the
			// connection's memo.
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			spoofed := "GET " + tc.path + " HTTP/1.1\r\nHost: fwd.test:80\r\nX-Forwarded-For: 203.0.113.9\r\nForwarded: for=203.0.113.9\r\n" +
				"X-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.test\r\nX-Real-Ip: 203.0.113.9\r\n\r\n"
			br := bufio.NewReader(c)
			for i := range 2 {
				c.SetDeadline(time.Now().Add(5 * time.Second))
				io.WriteString(c, spoofed)
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(body) != tc.want {
					t.Errorf("request %d: backend got\n%s\nwant\n%s", i, body, tc.want)
				}
				if tc.path == "/mirror" {
					select {
					case got := <-mirrored:
						if got != tc.want {
							t.Errorf("request %d: mirror got\n%s\nwant\n%s", i, got, tc.want)
						}
					case <-time.After(5 * time.Second):
						t.Fatalf("request %d: no mirrored copy", i)
					}
				}
			}
		})
	}
}
