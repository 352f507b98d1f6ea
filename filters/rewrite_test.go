package filters

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/meshgate/meshgate/ir"
)

// Cases are the expectations of conformance tests httproute-rewrite-path and
// httproute-rewrite-host, plus escaping edge cases.
func TestURLRewrite(t *testing.T) {
	t.Parallel()
	prefix := func(v string) *ir.PathModifier { return &ir.PathModifier{Type: ir.PrefixMatchReplace, Value: v} }
	full := func(v string) *ir.PathModifier { return &ir.PathModifier{Type: ir.FullPathReplace, Value: v} }
	tests := []struct {
		name        string
		cfg         ir.URLRewrite
		target      string
		matched     string
		wantHost    string
		wantPath    string // URL.Path
		wantEscaped string // URL.EscapedPath(); defaults to wantPath
		wantQuery   string
	}{
		{name: "prefix /prefix/one to /one", cfg: ir.URLRewrite{Path: prefix("/one")}, target: "/prefix/one/two", matched: "/prefix/one", wantPath: "/one/two"},
		{name: "strip prefix to / with rest", cfg: ir.URLRewrite{Path: prefix("/")}, target: "/strip-prefix/three", matched: "/strip-prefix", wantPath: "/three"},
		{name: "strip prefix to / exact", cfg: ir.URLRewrite{Path: prefix("/")}, target: "/strip-prefix", matched: "/strip-prefix", wantPath: "/"},
		{name: "full path", cfg: ir.URLRewrite{Path: full("/one")}, target: "/full/one/two", matched: "/full/one", wantPath: "/one"},
		{name: "full path with headers rule", cfg: ir.URLRewrite{Path: full("/test")}, target: "/full/rewrite-path-and-modify-headers/test", matched: "/full/rewrite-path-and-modify-headers", wantPath: "/test"},
		{name: "prefix with headers rule", cfg: ir.URLRewrite{Path: prefix("/prefix")}, target: "/prefix/rewrite-path-and-modify-headers/one", matched: "/prefix/rewrite-path-and-modify-headers", wantPath: "/prefix/one"},
		{name: "prefix keeps trailing slash", cfg: ir.URLRewrite{Path: prefix("/xyz")}, target: "/foo/", matched: "/foo", wantPath: "/xyz/"},
		{name: "prefix with trailing slash in match", cfg: ir.URLRewrite{Path: prefix("/xyz/")}, target: "/foo/bar", matched: "/foo/", wantPath: "/xyz/bar"},
		{name: "query kept", cfg: ir.URLRewrite{Path: prefix("/b")}, target: "/a/x?k=v&k=w", matched: "/a", wantPath: "/b/x", wantQuery: "k=v&k=w"},
		{name: "not a segment prefix: unchanged", cfg: ir.URLRewrite{Path: prefix("/b")}, target: "/ab/x", matched: "/a", wantPath: "/ab/x"},
		{name: "no matched prefix: unchanged", cfg: ir.URLRewrite{Path: prefix("/b")}, target: "/a/x", matched: "", wantPath: "/a/x"},
		{name: "raw path kept consistent", cfg: ir.URLRewrite{Path: prefix("/new")}, target: "/old/a%2Fb", matched: "/old", wantPath: "/new/a/b", wantEscaped: "/new/a%2Fb"},
		{name: "full path with escape", cfg: ir.URLRewrite{Path: full("/a%2Fb")}, target: "/x", matched: "/x", wantPath: "/a/b", wantEscaped: "/a%2Fb"},
		{name: "host rewrite", cfg: ir.URLRewrite{Hostname: ptr("one.example.org")}, target: "/one", wantHost: "one.example.org", wantPath: "/one"},
		{name: "host rewrite with path untouched", cfg: ir.URLRewrite{Hostname: ptr("test.example.org")}, target: "/rewrite-host-and-modify-headers", wantHost: "test.example.org", wantPath: "/rewrite-host-and-modify-headers"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rw, err := NewURLRewrite(&tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest(http.MethodGet, tc.target, nil)
			r.Host = "rewrite.example"
			r.URL.Host = "10.0.0.1:8080"
			rw.Apply(r, tc.matched)
			wantHost := tc.wantHost
			if wantHost == "" {
				wantHost = "rewrite.example"
			}
			if r.Host != wantHost {
				t.Errorf("Host = %q, want %q", r.Host, wantHost)
			}
			if r.URL.Host != "10.0.0.1:8080" {
				t.Errorf("URL.Host changed to %q", r.URL.Host)
			}
			if r.URL.Path != tc.wantPath {
				t.Errorf("Path = %q, want %q", r.URL.Path, tc.wantPath)
			}
			wantEsc := tc.wantEscaped
			if wantEsc == "" {
				wantEsc = tc.wantPath
			}
			if got := r.URL.EscapedPath(); got != wantEsc {
				t.Errorf("EscapedPath = %q, want %q", got, wantEsc)
			}
			if r.URL.RawPath != "" && r.URL.RawPath != wantEsc {
				t.Errorf("RawPath = %q inconsistent with Path %q", r.URL.RawPath, r.URL.Path)
			}
			if r.URL.RawQuery != tc.wantQuery {
				t.Errorf("RawQuery = %q, want %q", r.URL.RawQuery, tc.wantQuery)
			}
		})
	}
}

func TestNewURLRewriteErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  *ir.URLRewrite
	}{
		{name: "nil", cfg: nil},
		{name: "bad path type", cfg: &ir.URLRewrite{Path: &ir.PathModifier{Type: "Nope"}}},
		{name: "bad escape", cfg: &ir.URLRewrite{Path: &ir.PathModifier{Type: ir.PrefixMatchReplace, Value: "/%G0"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := NewURLRewrite(tc.cfg); err == nil {
				t.Error("want error")
			}
		})
	}
}

func BenchmarkURLRewrite(b *testing.B) {
	rw, err := NewURLRewrite(&ir.URLRewrite{Hostname: ptr("h"), Path: &ir.PathModifier{Type: ir.PrefixMatchReplace, Value: "/new"}})
	if err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/old/x/y?q=1", nil)
	b.ReportAllocs()
	for b.Loop() {
		r.URL.Path = "/old/x/y"
		rw.Apply(r, "/old")
	}
}
