package dataplane

import (
	"net/http"
	"strings"
	"testing"
)

func TestNormalizePath(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		err      bool
	}{
		{"/", "/", false},
		{"/a/b", "/a/b", false},
		{"/public/../admin", "/admin", false},
		{"/public/./x", "/public/x", false},
		{"/a/b/..", "/a/", false},
		{"/a/b/.", "/a/b/", false},
		{"/../../etc/passwd", "/etc/passwd", false},
		{"/api%2e/admin", "/api./admin", false},
		{"/public/%2e%2e/admin", "/admin", false},
		{"/public/%2E%2E/admin", "/admin", false},
		{"//admin", "/admin", false},
		{"/a//b///c", "/a/b/c", false},
		{"/%7euser", "/~user", false},
		{"/a%20b", "/a%20b", false},
		{"/a%3fb", "/a%3Fb", false},
		{"/a;b=c", "/a;b=c", false},
		{"/public/..;/admin", "", true}, // a dot segment to servers that strip ";" parameters
		{"/public/.;x/admin", "", true},
		{"/a;v=1/b", "/a;v=1/b", false},
		{"/a%2Fb", "", true},
		{"/a%2fb", "", true},
		{"/a%5Cb", "", true},
		{"/a\\b", "", true},
		{"/a%00b", "", true},
		{"/a#frag", "", true},
		{"/a%zz", "", true},
		{"/a%4", "", true},
		{"*", "*", false},
	} {
		got, changed, err := normalizePath(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("normalizePath(%q) error %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if tc.err {
			continue
		}
		if got != tc.want || changed != (got != tc.in) {
			t.Errorf("normalizePath(%q) = %q, %v; want %q", tc.in, got, changed, tc.want)
		}
	}
}

func TestNormalizeRequest(t *testing.T) {
	r, _ := http.NewRequest("GET", "http://x/public/%2e%2e/admin/a%7Eb?q=%2F", nil)
	r.RequestURI = "/public/%2e%2e/admin/a%7Eb?q=%2F"
	if err := normalizeRequest(r); err != nil {
		t.Fatal(err)
	}
	if r.URL.Path != "/admin/a~b" || r.RequestURI != "/admin/a~b?q=%2F" {
		t.Fatalf("Path %q RequestURI %q", r.URL.Path, r.RequestURI)
	}
}

func TestUnderscoreHeaders(t *testing.T) {
	h := http.Header{"X_forwarded_for": {"1.2.3.4"}, "X-Ok": {"1"}}
	if dropUnderscoreHeaders(h, true) != true || len(h) != 2 {
		t.Fatal("reject mode must report and keep the headers")
	}
	if dropUnderscoreHeaders(h, false) || len(h) != 1 || h.Get("X-Ok") != "1" {
		t.Fatalf("drop mode left %v", h)
	}
	h = http.Header{"X.forwarded.for": {"6.6.6.6"}, "X.custom": {"kept"}}
	dropUnderscoreHeaders(h, false)
	if len(h["X.forwarded.for"]) != 0 || h.Get("X.custom") != "kept" {
		t.Fatalf("dotted alias of X-Forwarded-For must go, other dotted names stay: %v", h)
	}
}

func BenchmarkNormalizeCleanPath(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		normalizePath("/api/v1/users/12345/orders")
	}
}

// FuzzNormalizePath: the canonical form is stable (normalizing it again
// changes nothing) and has no dot segment, "//", or refused encoding left.
func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"/", "/a/../b", "/%2e%2E/x", "//a//b", "/a%2Fb", "/a/./b/..", "/%7e", "/a%20b?x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		out, _, err := normalizePath(p)
		if err != nil || !strings.HasPrefix(p, "/") {
			return
		}
		again, changed, err := normalizePath(out)
		if err != nil || changed || again != out {
			t.Fatalf("not stable: %q -> %q -> %q (changed %v, err %v)", p, out, again, changed, err)
		}
		if strings.Contains(out, "//") || strings.Contains(out+"/", "/../") || strings.Contains(out+"/", "/./") {
			t.Fatalf("%q -> %q keeps a dot segment or //", p, out)
		}
		if up := strings.ToUpper(out); strings.Contains(up, "%2F") || strings.Contains(up, "%5C") || strings.Contains(up, "%00") {
			t.Fatalf("%q -> %q keeps a refused encoding", p, out)
		}
	})
}
