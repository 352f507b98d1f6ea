package filters

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/meshgate/meshgate/ir"
)

func ptr[T any](v T) *T { return &v }

// Cases are the expectations of conformance tests httproute-redirect-path,
// -port, -scheme, -host-and-status and -port-and-scheme, plus the
// HTTPPathModifier doc table.
func TestRedirect(t *testing.T) {
	t.Parallel()
	prefix := func(v string) *ir.PathModifier { return &ir.PathModifier{Type: ir.PrefixMatchReplace, Value: v} }
	full := func(v string) *ir.PathModifier { return &ir.PathModifier{Type: ir.FullPathReplace, Value: v} }
	tests := []struct {
		name       string
		cfg        ir.Redirect
		port       int
		tls        bool
		target     string // request URL path?query
		host       string
		matched    string
		wantLoc    string
		wantStatus int
	}{
		// httproute-redirect-path
		{name: "path: prefix", cfg: ir.Redirect{Path: prefix("/replacement-prefix")}, port: 80,
			target: "/original-prefix/lemon", matched: "/original-prefix", wantLoc: "http://gw/replacement-prefix/lemon"},
		{name: "path: full", cfg: ir.Redirect{Path: full("/full-path-replacement")}, port: 80,
			target: "/full/path/original", matched: "/full", wantLoc: "http://gw/full-path-replacement"},
		{name: "path: prefix and host", cfg: ir.Redirect{Hostname: ptr("example.org"), Path: prefix("/replacement-prefix")}, port: 80,
			target: "/path-and-host", matched: "/path-and-host", wantLoc: "http://example.org/replacement-prefix"},
		{name: "path: prefix and status", cfg: ir.Redirect{Path: prefix("/replacement-prefix"), StatusCode: 301}, port: 80,
			target: "/path-and-status", matched: "/path-and-status", wantLoc: "http://gw/replacement-prefix", wantStatus: 301},
		{name: "path: full and host", cfg: ir.Redirect{Hostname: ptr("example.org"), Path: full("/replacement-full")}, port: 80,
			target: "/full-path-and-host", matched: "/full-path-and-host", wantLoc: "http://example.org/replacement-full"},
		// HTTPPathModifier doc table
		{name: "doc table: /foo/bar /foo /xyz/", cfg: ir.Redirect{Path: prefix("/xyz/")}, port: 80, target: "/foo/bar", matched: "/foo", wantLoc: "http://gw/xyz/bar"},
		{name: "doc table: /foo/bar /foo/ /xyz", cfg: ir.Redirect{Path: prefix("/xyz")}, port: 80, target: "/foo/bar", matched: "/foo/", wantLoc: "http://gw/xyz/bar"},
		{name: "doc table: /foo/ /foo /xyz", cfg: ir.Redirect{Path: prefix("/xyz")}, port: 80, target: "/foo/", matched: "/foo", wantLoc: "http://gw/xyz/"},
		{name: "doc table: /foo/bar /foo empty", cfg: ir.Redirect{Path: prefix("")}, port: 80, target: "/foo/bar", matched: "/foo", wantLoc: "http://gw/bar"},
		{name: "doc table: /foo /foo empty", cfg: ir.Redirect{Path: prefix("")}, port: 80, target: "/foo", matched: "/foo", wantLoc: "http://gw/"},
		{name: "doc table: /foo/ /foo /", cfg: ir.Redirect{Path: prefix("/")}, port: 80, target: "/foo/", matched: "/foo", wantLoc: "http://gw/"},
		{name: "prefix / replaced", cfg: ir.Redirect{Path: prefix("/api")}, port: 80, target: "/x/y", matched: "/", wantLoc: "http://gw/api/x/y"},
		{name: "query is preserved", cfg: ir.Redirect{Path: prefix("/bar")}, port: 80, target: "/foo/x?a=1&b=%20", matched: "/foo", wantLoc: "http://gw/bar/x?a=1&b=%20"},
		{name: "no path modifier keeps escaped path", cfg: ir.Redirect{Hostname: ptr("example.org")}, port: 80, target: "/a%20b/c%2Fd", wantLoc: "http://example.org/a%20b/c%2Fd"},
		{name: "prefix escaped differently in request", cfg: ir.Redirect{Path: prefix("/new")}, port: 80, target: "/a%40b/c%20d", matched: "/a@b", wantLoc: "http://gw/new/c%20d"},
		{name: "prefix not segment-matched keeps path", cfg: ir.Redirect{Path: prefix("/bar")}, port: 80, target: "/foobar", matched: "/foo", wantLoc: "http://gw/foobar"},
		// httproute-redirect-port (listener on 80)
		{name: "port: explicit", cfg: ir.Redirect{Port: ptr[int32](8083)}, port: 80, target: "/port", wantLoc: "http://gw:8083/port"},
		{name: "port: and host", cfg: ir.Redirect{Hostname: ptr("example.org"), Port: ptr[int32](8083)}, port: 80, target: "/port-and-host", wantLoc: "http://example.org:8083/port-and-host"},
		{name: "port: and status", cfg: ir.Redirect{Port: ptr[int32](8083), StatusCode: 301}, port: 80, target: "/port-and-status", wantLoc: "http://gw:8083/port-and-status", wantStatus: 301},
		// httproute-redirect-scheme
		{name: "scheme: https", cfg: ir.Redirect{Scheme: ptr("https")}, port: 80, target: "/scheme", wantLoc: "https://gw/scheme"},
		{name: "scheme: and host", cfg: ir.Redirect{Scheme: ptr("https"), Hostname: ptr("example.org")}, port: 80, target: "/scheme-and-host", wantLoc: "https://example.org/scheme-and-host"},
		{name: "scheme: and status", cfg: ir.Redirect{Scheme: ptr("https"), StatusCode: 301}, port: 80, target: "/scheme-and-status", wantLoc: "https://gw/scheme-and-status", wantStatus: 301},
		// httproute-redirect-host-and-status
		{name: "host: only", cfg: ir.Redirect{Hostname: ptr("example.org")}, port: 80, target: "/hostname-redirect", wantLoc: "http://example.org/hostname-redirect"},
		{name: "host: and status", cfg: ir.Redirect{Hostname: ptr("example.org"), StatusCode: 301}, port: 80, target: "/host-and-status", wantLoc: "http://example.org/host-and-status", wantStatus: 301},
		// httproute-redirect-port-and-scheme, listener on 80
		{name: "l80: scheme nil port nil", cfg: ir.Redirect{Hostname: ptr("example.org")}, port: 80, target: "/p", wantLoc: "http://example.org/p"},
		{name: "l80: scheme nil port 80", cfg: ir.Redirect{Hostname: ptr("example.org"), Port: ptr[int32](80)}, port: 80, target: "/p", wantLoc: "http://example.org/p"},
		{name: "l80: scheme nil port 8080", cfg: ir.Redirect{Hostname: ptr("example.org"), Port: ptr[int32](8080)}, port: 80, target: "/p", wantLoc: "http://example.org:8080/p"},
		{name: "l80: scheme https port nil", cfg: ir.Redirect{Hostname: ptr("example.org"), Scheme: ptr("https")}, port: 80, target: "/p", wantLoc: "https://example.org/p"},
		{name: "l80: scheme https port 443", cfg: ir.Redirect{Hostname: ptr("example.org"), Scheme: ptr("https"), Port: ptr[int32](443)}, port: 80, target: "/p", wantLoc: "https://example.org/p"},
		{name: "l80: scheme https port 8443", cfg: ir.Redirect{Hostname: ptr("example.org"), Scheme: ptr("https"), Port: ptr[int32](8443)}, port: 80, target: "/p", wantLoc: "https://example.org:8443/p"},
		// listener on 8080
		{name: "l8080: scheme nil port nil", cfg: ir.Redirect{Hostname: ptr("example.org")}, port: 8080, target: "/p", wantLoc: "http://example.org:8080/p"},
		{name: "l8080: scheme nil port 80", cfg: ir.Redirect{Hostname: ptr("example.org"), Port: ptr[int32](80)}, port: 8080, target: "/p", wantLoc: "http://example.org/p"},
		{name: "l8080: scheme https port nil", cfg: ir.Redirect{Hostname: ptr("example.org"), Scheme: ptr("https")}, port: 8080, target: "/p", wantLoc: "https://example.org/p"},
		// HTTPS listener on 443
		{name: "l443: scheme nil port nil", cfg: ir.Redirect{Hostname: ptr("example.org")}, port: 443, tls: true, target: "/p", wantLoc: "https://example.org/p"},
		{name: "l443: scheme nil port 443", cfg: ir.Redirect{Hostname: ptr("example.org"), Port: ptr[int32](443)}, port: 443, tls: true, target: "/p", wantLoc: "https://example.org/p"},
		{name: "l443: scheme nil port 8443", cfg: ir.Redirect{Hostname: ptr("example.org"), Port: ptr[int32](8443)}, port: 443, tls: true, target: "/p", wantLoc: "https://example.org:8443/p"},
		{name: "l443: scheme http port nil", cfg: ir.Redirect{Hostname: ptr("example.org"), Scheme: ptr("http")}, port: 443, tls: true, target: "/p", wantLoc: "http://example.org/p"},
		{name: "l443: scheme http port 80", cfg: ir.Redirect{Hostname: ptr("example.org"), Scheme: ptr("http"), Port: ptr[int32](80)}, port: 443, tls: true, target: "/p", wantLoc: "http://example.org/p"},
		{name: "l443: scheme http port 8080", cfg: ir.Redirect{Hostname: ptr("example.org"), Scheme: ptr("http"), Port: ptr[int32](8080)}, port: 443, tls: true, target: "/p", wantLoc: "http://example.org:8080/p"},
		// Host header handling
		{name: "host: request port stripped", cfg: ir.Redirect{Scheme: ptr("https")}, port: 80, host: "gw:8080", target: "/p", wantLoc: "https://gw/p"},
		{name: "host: ipv6 literal", cfg: ir.Redirect{Port: ptr[int32](8443)}, port: 80, host: "[::1]:80", target: "/p", wantLoc: "http://[::1]:8443/p"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rd, err := NewRedirect(&tc.cfg, tc.port, tc.tls)
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest(http.MethodGet, tc.target, nil)
			r.Host = "gw"
			if tc.host != "" {
				r.Host = tc.host
			}
			w := httptest.NewRecorder()
			rd.Serve(w, r, tc.matched)
			want := tc.wantStatus
			if want == 0 {
				want = http.StatusFound
			}
			if w.Code != want {
				t.Errorf("status = %d, want %d", w.Code, want)
			}
			if got := w.Header().Get("Location"); got != tc.wantLoc {
				t.Errorf("Location = %q, want %q", got, tc.wantLoc)
			}
		})
	}
}

func TestNewRedirectErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  *ir.Redirect
	}{
		{name: "nil", cfg: nil},
		{name: "bad status", cfg: &ir.Redirect{StatusCode: 200}},
		{name: "bad scheme", cfg: &ir.Redirect{Scheme: ptr("ftp")}},
		{name: "bad port", cfg: &ir.Redirect{Port: ptr[int32](70000)}},
		{name: "bad path type", cfg: &ir.Redirect{Path: &ir.PathModifier{Type: "Nope", Value: "/"}}},
		{name: "relative path", cfg: &ir.Redirect{Path: &ir.PathModifier{Type: ir.FullPathReplace, Value: "x"}}},
		{name: "bad escape", cfg: &ir.Redirect{Path: &ir.PathModifier{Type: ir.FullPathReplace, Value: "/%zz"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := NewRedirect(tc.cfg, 80, false); err == nil {
				t.Error("want error")
			}
		})
	}
}

func BenchmarkRedirectLocation(b *testing.B) {
	rd, err := NewRedirect(&ir.Redirect{Scheme: ptr("https"), Path: &ir.PathModifier{Type: ir.PrefixMatchReplace, Value: "/new"}}, 80, false)
	if err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/old/x/y?q=1", nil)
	b.ReportAllocs()
	for b.Loop() {
		_ = rd.Location(r, "/old")
	}
}
