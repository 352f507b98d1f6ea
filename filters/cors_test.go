package filters

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/meshgate/meshgate/ir"
)

// conformanceCORS is the HTTPRouteCORS conformance test's first rule.
var conformanceCORS = &ir.CORS{
	AllowOrigins:     []string{"https://www.foo.com", "https://*.bar.com"},
	AllowMethods:     []string{"GET", "OPTIONS"},
	AllowHeaders:     []string{"x-header-1", "x-header-2"},
	ExposeHeaders:    []string{"x-header-3", "x-header-4"},
	AllowCredentials: true,
	MaxAge:           3600,
}

func mustCORS(t testing.TB, c *ir.CORS) *CORS {
	t.Helper()
	cs, err := NewCORS(c)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func TestCORSAllowed(t *testing.T) {
	cases := []struct {
		origins []string
		origin  string
		want    bool
	}{
		{[]string{"https://www.foo.com"}, "https://www.foo.com", true},
		{[]string{"https://www.foo.com"}, "https://WWW.Foo.com", true},
		{[]string{"https://www.foo.com"}, "https://www.foo.com:443", true},
		{[]string{"https://www.foo.com"}, "https://www.foo.com:8443", false},
		{[]string{"https://www.foo.com"}, "http://www.foo.com", false},
		{[]string{"https://www.foo.com"}, "https://foo.com", false},
		{[]string{"https://www.foo.com"}, "https://www.foo.com.evil.com", false},
		{[]string{"https://www.foo.com"}, "https://www.foo.com/", false},
		{[]string{"https://www.foo.com"}, "null", false},
		{[]string{"https://www.foo.com"}, "", false},
		{[]string{"http://localhost:3000"}, "http://localhost:3000", true},
		{[]string{"http://localhost:3000"}, "http://localhost", false},
		{[]string{"http://localhost"}, "http://localhost:80", true},
		{[]string{"https://*.bar.com"}, "https://www.bar.com", true},
		{[]string{"https://*.bar.com"}, "https://xpto.www.bar.com", true},
		{[]string{"https://*.bar.com"}, "https://bar.com", false},
		{[]string{"https://*.bar.com"}, "https://.bar.com", false},
		{[]string{"https://*.bar.com"}, "https://foobar.com", false},
		{[]string{"https://*.bar.com"}, "http://www.bar.com", false},
		{[]string{"https://*.bar.com:8443"}, "https://a.bar.com:8443", true},
		{[]string{"https://*.bar.com:8443"}, "https://a.bar.com", false},
		{[]string{"https://*"}, "https://anything.test", true},
		{[]string{"https://*"}, "http://anything.test", false},
		{[]string{"http://[::1]:8080"}, "http://[::1]:8080", true},
		{[]string{"*"}, "https://foobar.com:12345", true},
		{[]string{"*"}, "null", true},
		{nil, "https://www.foo.com", false},
	}
	for _, c := range cases {
		cs := mustCORS(t, &ir.CORS{AllowOrigins: c.origins})
		if got := cs.Allowed(c.origin); got != c.want {
			t.Errorf("origins %q, Origin %q: allowed %v, want %v", c.origins, c.origin, got, c.want)
		}
	}
}

func TestNewCORSErrors(t *testing.T) {
	for _, c := range []*ir.CORS{
		nil,
		{AllowOrigins: []string{"*", "https://a.test"}},
		{AllowOrigins: []string{"ftp://a.test"}},
		{AllowOrigins: []string{"https://a.*.test"}},
		{AllowOrigins: []string{"https://a.test:0"}},
		{AllowOrigins: []string{"https://a.test:99999"}},
		{AllowOrigins: []string{"https://"}},
		{AllowMethods: []string{"*", "GET"}},
		{AllowHeaders: []string{"*", "x-a"}},
		{AllowHeaders: []string{"x a"}},
	} {
		if _, err := NewCORS(c); err == nil {
			t.Errorf("NewCORS(%+v): no error", c)
		}
	}
}

func TestCORSPreflight(t *testing.T) {
	type hdrs map[string]string
	cases := []struct {
		name   string
		cfg    *ir.CORS
		req    hdrs
		want   hdrs     // exact values
		absent []string // headers that must not be set
	}{
		{
			name: "exact origin",
			cfg:  conformanceCORS,
			req:  hdrs{"Origin": "https://www.foo.com", "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "x-header-1, x-header-2"},
			want: hdrs{
				"Access-Control-Allow-Origin":      "https://www.foo.com",
				"Access-Control-Allow-Methods":     "GET, OPTIONS",
				"Access-Control-Allow-Headers":     "x-header-1, x-header-2",
				"Access-Control-Expose-Headers":    "x-header-3, x-header-4",
				"Access-Control-Max-Age":           "3600",
				"Access-Control-Allow-Credentials": "true",
				"Vary":                             "Origin",
			},
		},
		{
			name: "wildcard subdomain, several labels",
			cfg:  conformanceCORS,
			req:  hdrs{"Origin": "https://xpto.www.bar.com", "Access-Control-Request-Method": "GET"},
			want: hdrs{
				"Access-Control-Allow-Origin":      "https://xpto.www.bar.com",
				"Access-Control-Allow-Methods":     "GET, OPTIONS",
				"Access-Control-Allow-Credentials": "true",
				"Access-Control-Max-Age":           "3600",
			},
		},
		{
			name:   "denied origin",
			cfg:    conformanceCORS,
			req:    hdrs{"Origin": "https://foobar.com", "Access-Control-Request-Method": "GET"},
			want:   hdrs{"Vary": "Origin"},
			absent: []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Methods", "Access-Control-Allow-Credentials", "Access-Control-Max-Age", "Access-Control-Expose-Headers"},
		},
		{
			name:   "star methods echo the requested one, no credentials",
			cfg:    &ir.CORS{AllowOrigins: []string{"https://www.foo.com"}, AllowMethods: []string{"*"}},
			req:    hdrs{"Origin": "https://www.foo.com", "Access-Control-Request-Method": "POST"},
			want:   hdrs{"Access-Control-Allow-Origin": "https://www.foo.com", "Access-Control-Allow-Methods": "POST", "Access-Control-Max-Age": "5"},
			absent: []string{"Access-Control-Allow-Credentials", "Access-Control-Allow-Headers"},
		},
		{
			name:   "star origin without credentials answers *",
			cfg:    &ir.CORS{AllowOrigins: []string{"*"}, AllowMethods: []string{"PUT"}},
			req:    hdrs{"Origin": "https://foobar.com:12345", "Access-Control-Request-Method": "PUT"},
			want:   hdrs{"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "PUT"},
			absent: []string{"Access-Control-Allow-Credentials", "Vary"},
		},
		{
			name: "star everything with credentials echoes origin, method and headers",
			cfg:  &ir.CORS{AllowOrigins: []string{"*"}, AllowMethods: []string{"*"}, AllowHeaders: []string{"*"}, ExposeHeaders: []string{"*", "x-up"}, AllowCredentials: true},
			req:  hdrs{"Origin": "https://other.foo.com", "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "x-header-1, x-header-2"},
			want: hdrs{
				"Access-Control-Allow-Origin":      "https://other.foo.com",
				"Access-Control-Allow-Methods":     "PUT",
				"Access-Control-Allow-Headers":     "x-header-1, x-header-2",
				"Access-Control-Allow-Credentials": "true",
				"Access-Control-Expose-Headers":    "x-up",
				"Vary":                             "Origin",
			},
		},
		{
			name:   "star headers without request headers omit Allow-Headers",
			cfg:    &ir.CORS{AllowOrigins: []string{"*"}, AllowHeaders: []string{"*"}, ExposeHeaders: []string{"*"}},
			req:    hdrs{"Origin": "https://a.test", "Access-Control-Request-Method": "GET"},
			want:   hdrs{"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": "*"},
			absent: []string{"Access-Control-Allow-Headers", "Access-Control-Allow-Methods"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cs := mustCORS(t, c.cfg)
			r := httptest.NewRequest(http.MethodOptions, "http://gw.test/cors", nil)
			for k, v := range c.req {
				r.Header.Set(k, v)
			}
			if !IsPreflight(r) {
				t.Fatal("not a preflight")
			}
			w := httptest.NewRecorder()
			cs.ServePreflight(w, r)
			if w.Code != http.StatusNoContent {
				t.Errorf("status %d, want 204", w.Code)
			}
			for k, v := range c.want {
				if got := w.Header().Values(k); len(got) != 1 || got[0] != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
			for _, k := range c.absent {
				if got, ok := w.Header()[k]; ok {
					t.Errorf("%s: %q, want none", k, got)
				}
			}
		})
	}
}

func TestIsPreflight(t *testing.T) {
	for _, c := range []struct {
		method string
		h      http.Header
		want   bool
	}{
		{"OPTIONS", http.Header{"Origin": {"https://a.test"}, "Access-Control-Request-Method": {"GET"}}, true},
		{"OPTIONS", http.Header{"Origin": {"https://a.test"}}, false},
		{"OPTIONS", http.Header{"Access-Control-Request-Method": {"GET"}}, false},
		{"GET", http.Header{"Origin": {"https://a.test"}, "Access-Control-Request-Method": {"GET"}}, false},
	} {
		r := &http.Request{Method: c.method, Header: c.h}
		if got := IsPreflight(r); got != c.want {
			t.Errorf("%s %v: %v, want %v", c.method, c.h, got, c.want)
		}
	}
}

func TestCORSApply(t *testing.T) {
	cases := []struct {
		name     string
		cfg      *ir.CORS
		origin   string
		upstream http.Header
		want     http.Header
	}{
		{
			name:     "allowed with credentials and expose, upstream Vary kept",
			cfg:      conformanceCORS,
			origin:   "https://www.bar.com",
			upstream: http.Header{"Vary": {"Accept-Encoding"}, "Access-Control-Allow-Origin": {"https://upstream.test"}},
			want: http.Header{
				"Vary":                             {"Accept-Encoding", "Origin"},
				"Access-Control-Allow-Origin":      {"https://www.bar.com"},
				"Access-Control-Allow-Credentials": {"true"},
				"Access-Control-Expose-Headers":    {"x-header-3, x-header-4"},
			},
		},
		{
			name:     "denied: no CORS headers, Vary: Origin",
			cfg:      conformanceCORS,
			origin:   "https://foobar.com",
			upstream: http.Header{"Vary": {"origin"}},
			want:     http.Header{"Vary": {"origin"}},
		},
		{
			name:   "star origin, no credentials",
			cfg:    &ir.CORS{AllowOrigins: []string{"*"}},
			origin: "https://foobar.com",
			want:   http.Header{"Access-Control-Allow-Origin": {"*"}},
		},
		{
			name:     "no credentials drops the upstream's",
			cfg:      &ir.CORS{AllowOrigins: []string{"https://a.test"}},
			origin:   "https://a.test",
			upstream: http.Header{"Access-Control-Allow-Credentials": {"true"}},
			want:     http.Header{"Access-Control-Allow-Origin": {"https://a.test"}, "Vary": {"Origin"}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cs := mustCORS(t, c.cfg)
			h := c.upstream
			if h == nil {
				h = http.Header{}
			}
			cs.Apply(h, c.origin)
			cs.Apply(h, c.origin) // idempotent
			if !reflect.DeepEqual(h, c.want) {
				t.Errorf("got %v, want %v", h, c.want)
			}
		})
	}
}

func TestCORSNoOriginNoAllocs(t *testing.T) {
	cs := mustCORS(t, conformanceCORS)
	r := &http.Request{Method: http.MethodGet, Header: http.Header{"Accept": {"*/*"}}}
	if n := testing.AllocsPerRun(100, func() {
		if IsPreflight(r) {
			t.Fatal("preflight")
		}
		if o, ok := Origin(r.Header); ok {
			cs.Apply(r.Header, o)
		}
	}); n != 0 {
		t.Errorf("%v allocs, want 0", n)
	}
	// An allowed origin matched against precompiled patterns does not
	// allocate either (the header value is the request's).
	if n := testing.AllocsPerRun(100, func() {
		if !cs.Allowed("https://xpto.www.bar.com") {
			t.Fatal("not allowed")
		}
	}); n != 0 {
		t.Errorf("Allowed: %v allocs, want 0", n)
	}
}

func BenchmarkCORSApply(b *testing.B) {
	cs := mustCORS(b, conformanceCORS)
	h := http.Header{}
	b.ReportAllocs()
	for b.Loop() {
		cs.Apply(h, "https://www.bar.com")
	}
}
