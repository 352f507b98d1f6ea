package filters

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/meshgate/meshgate/ir"
)

func sessionBackends() []ir.WeightedBackend {
	return []ir.WeightedBackend{
		{Weight: 90, Target: &ir.Backend{Name: "service/default/stable:80", Endpoints: []ir.Endpoint{
			{Address: "10.0.0.1:8080"}, {Address: "10.0.0.2:8080"},
		}}},
		{Weight: 1, Target: nil}, // an invalid backendRef
		{Weight: 0, Target: &ir.Backend{Name: "service/default/canary:80", Endpoints: []ir.Endpoint{
			{Address: "10.0.1.1:8080", Draining: true}, {Address: "[fd00::1]:8080"},
		}}},
	}
}

// TestSessionRoundTrip issues a token with one response and reads it back
// from the next request, for both cookie and header sessions.
func TestSessionRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		p    ir.SessionPersistence
		// carry turns the response headers into the next request's.
		carry func(resp http.Header, req *http.Request)
	}{
		{name: "cookie", p: ir.SessionPersistence{Type: ir.SessionCookie, Name: "sticky"},
			carry: func(resp http.Header, req *http.Request) {
				for _, c := range (&http.Response{Header: resp}).Cookies() {
					req.AddCookie(c)
				}
			}},
		{name: "cookie default name", p: ir.SessionPersistence{Type: ir.SessionCookie},
			carry: func(resp http.Header, req *http.Request) {
				for _, c := range (&http.Response{Header: resp}).Cookies() {
					req.AddCookie(c)
				}
			}},
		{name: "header", p: ir.SessionPersistence{Type: ir.SessionHeader, Name: "x-session"},
			carry: func(resp http.Header, req *http.Request) {
				req.Header.Set("X-Session", resp.Get("x-session"))
			}},
	}
	backends := sessionBackends()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := CompileSession(&tc.p)
			req := httptest.NewRequest("GET", "/", nil)
			if tok, ok := s.Lookup(req); ok {
				t.Fatalf("fresh request has token %q", tok)
			}
			resp := http.Header{}
			s.Issue(resp, Token("service/default/canary:80", "[fd00::1]:8080"), false)
			next := httptest.NewRequest("GET", "/", nil)
			next.AddCookie(&http.Cookie{Name: "other", Value: "x"})
			tc.carry(resp, next)
			tok, ok := s.Lookup(next)
			if !ok {
				t.Fatalf("no token after issuing; response headers %v, request %v", resp, next.Header)
			}
			i, addr, ok := Resolve(tok, backends)
			if !ok || i != 2 || addr != "[fd00::1]:8080" {
				t.Fatalf("Resolve = %d %q %v, want 2 [fd00::1]:8080 true", i, addr, ok)
			}
		})
	}
}

func TestSessionLookupCookie(t *testing.T) {
	t.Parallel()
	s := CompileSession(&ir.SessionPersistence{Type: ir.SessionCookie, Name: "sid"})
	tests := []struct {
		name    string
		cookies []string
		want    string
		wantOK  bool
	}{
		{name: "none"},
		{name: "alone", cookies: []string{"sid=abc"}, want: "abc", wantOK: true},
		{name: "among others", cookies: []string{"a=1; sid=abc; b=2"}, want: "abc", wantOK: true},
		{name: "second header line", cookies: []string{"a=1", "sid=abc"}, want: "abc", wantOK: true},
		{name: "first of two wins", cookies: []string{"sid=first; sid=second"}, want: "first", wantOK: true},
		{name: "quoted", cookies: []string{`sid="abc"`}, want: "abc", wantOK: true},
		{name: "prefix of another name", cookies: []string{"sidx=abc; xsid=def"}},
		{name: "name is case-sensitive", cookies: []string{"SID=abc"}},
		{name: "empty value skipped", cookies: []string{"sid=; sid=abc"}, want: "abc", wantOK: true},
		{name: "only empty", cookies: []string{"sid="}},
		{name: "no value", cookies: []string{"sid"}},
		{name: "extra spaces", cookies: []string{"a=1;   sid=abc  "}, want: "abc", wantOK: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			for _, c := range tc.cookies {
				r.Header.Add("Cookie", c)
			}
			got, ok := s.Lookup(r)
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("Lookup = %q %v, want %q %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestSessionLookupHeader(t *testing.T) {
	t.Parallel()
	s := CompileSession(&ir.SessionPersistence{Type: ir.SessionHeader, Name: "x-session-id"})
	tests := []struct {
		name   string
		h      http.Header
		want   string
		wantOK bool
	}{
		{name: "none", h: http.Header{}},
		{name: "present", h: http.Header{"X-Session-Id": {"tok"}}, want: "tok", wantOK: true},
		{name: "first of repeated", h: http.Header{"X-Session-Id": {"a", "b"}}, want: "a", wantOK: true},
		{name: "empty", h: http.Header{"X-Session-Id": {""}}},
		{name: "a cookie of that name is not the header", h: http.Header{"Cookie": {"x-session-id=tok"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := s.Lookup(&http.Request{Header: tc.h})
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("Lookup = %q %v, want %q %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
	var nilSession *Session
	if _, ok := nilSession.Lookup(&http.Request{Header: http.Header{"X-Session-Id": {"tok"}}}); ok {
		t.Error("a nil session found a token")
	}
}

func TestSessionLookupAllocs(t *testing.T) {
	hs := CompileSession(&ir.SessionPersistence{Type: ir.SessionHeader, Name: "x-session"})
	cs := CompileSession(&ir.SessionPersistence{Type: ir.SessionCookie, Name: "sid"})
	r := &http.Request{Header: http.Header{
		"X-Session": {"tok"},
		"Cookie":    {"a=1; b=2", "c=3; sid=tok; d=4"},
	}}
	for name, s := range map[string]*Session{"header": hs, "cookie": cs} {
		if n := testing.AllocsPerRun(100, func() {
			if _, ok := s.Lookup(r); !ok {
				t.Fatal("no token")
			}
		}); n != 0 {
			t.Errorf("%s Lookup: %v allocs, want 0", name, n)
		}
	}
}

func TestSessionIssue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		p      ir.SessionPersistence
		secure bool
		want   string // the header value added
		header string // the header it goes in
	}{
		{name: "browser-session cookie", p: ir.SessionPersistence{Type: ir.SessionCookie, Name: "sid"},
			header: "Set-Cookie", want: "sid=TOK; Path=/; HttpOnly; SameSite=Lax"},
		{name: "secure", p: ir.SessionPersistence{Type: ir.SessionCookie, Name: "sid"}, secure: true,
			header: "Set-Cookie", want: "sid=TOK; Path=/; HttpOnly; SameSite=Lax; Secure"},
		{name: "permanent", p: ir.SessionPersistence{Type: ir.SessionCookie, Name: "sid", Permanent: true, AbsoluteTimeout: time.Hour},
			header: "Set-Cookie", want: "sid=TOK; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax"},
		{name: "permanent rounds up", p: ir.SessionPersistence{Type: ir.SessionCookie, Name: "sid", Permanent: true, AbsoluteTimeout: 1500 * time.Millisecond},
			header: "Set-Cookie", want: "sid=TOK; Path=/; Max-Age=2; HttpOnly; SameSite=Lax"},
		{name: "timeout without permanent is a browser-session cookie", p: ir.SessionPersistence{Type: ir.SessionCookie, Name: "sid", AbsoluteTimeout: time.Hour},
			header: "Set-Cookie", want: "sid=TOK; Path=/; HttpOnly; SameSite=Lax"},
		{name: "permanent without timeout", p: ir.SessionPersistence{Type: ir.SessionCookie, Name: "sid", Permanent: true},
			header: "Set-Cookie", want: "sid=TOK; Path=/; HttpOnly; SameSite=Lax"},
		{name: "header", p: ir.SessionPersistence{Type: ir.SessionHeader, Name: "x-session"}, secure: true,
			header: "X-Session", want: "TOK"},
		{name: "default header name", p: ir.SessionPersistence{Type: ir.SessionHeader},
			header: "Meshgate-Session", want: "TOK"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := CompileSession(&tc.p)
			h := http.Header{"Set-Cookie": {"backend=1"}}
			s.Issue(h, "TOK", tc.secure)
			vals := h[tc.header]
			if len(vals) == 0 || vals[len(vals)-1] != tc.want {
				t.Fatalf("%s = %q, want last %q", tc.header, vals, tc.want)
			}
			if h.Get("Set-Cookie") != "backend=1" {
				t.Errorf("the backend's Set-Cookie was lost: %q", h["Set-Cookie"])
			}
			if tc.p.Type == ir.SessionCookie {
				c, err := http.ParseSetCookie(tc.want)
				if err != nil || c.Name != "sid" || c.Value != "TOK" || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Secure != tc.secure {
					t.Errorf("net/http reads %q as %+v (err %v)", tc.want, c, err)
				}
			}
		})
	}
	// Nothing to issue, or nowhere to issue it: no change.
	s := CompileSession(&ir.SessionPersistence{Type: ir.SessionCookie, Name: "sid"})
	h := http.Header{}
	s.Issue(h, "", false)
	(*Session)(nil).Issue(h, "TOK", false)
	s.Issue(nil, "TOK", false)
	if len(h) != 0 {
		t.Errorf("headers changed: %v", h)
	}
	if CompileSession(nil) != nil {
		t.Error("CompileSession(nil) != nil")
	}
}

func TestSessionToken(t *testing.T) {
	t.Parallel()
	a := Token("service/default/stable:80", "10.0.0.1:8080")
	if a != Token("service/default/stable:80", "10.0.0.1:8080") {
		t.Fatal("Token is not stable")
	}
	// Pinned so that a change of derivation, which would re-shuffle every
	// client on upgrade, is a deliberate one.
	if want := "HIMyVFapAsQGQn4d"; a != want {
		t.Fatalf("Token = %q, want %q", a, want)
	}
	seen := map[string]string{}
	for _, in := range [][2]string{
		{"service/default/stable:80", "10.0.0.1:8080"},
		{"service/default/stable:80", "10.0.0.2:8080"},
		{"service/default/canary:80", "10.0.0.1:8080"},
		// The separator keeps the split between name and address.
		{"service/default/stable:8", "010.0.0.1:8080"},
		{"", ""},
	} {
		tok := Token(in[0], in[1])
		if len(tok) != 16 {
			t.Errorf("Token%q = %q: length %d, want 16", in, tok, len(tok))
		}
		if strings.Trim(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			t.Errorf("Token%q = %q: not base64url", in, tok)
		}
		for _, part := range []string{"10.0.0", "8080", "stable", "canary"} {
			if strings.Contains(tok, part) {
				t.Errorf("Token%q = %q shows %q", in, tok, part)
			}
		}
		if prev, dup := seen[tok]; dup {
			t.Errorf("Token%q = Token%s", in, prev)
		}
		seen[tok] = in[0] + " " + in[1]
		// Valid as a cookie value: net/http keeps it unquoted and intact.
		c := (&http.Cookie{Name: "s", Value: tok}).String()
		if c != "s="+tok {
			t.Errorf("cookie %q, want s=%s", c, tok)
		}
	}
	// Long names and addresses do not fit the stack buffer and must hash the same.
	long := strings.Repeat("n", 300)
	if Token(long, "1.2.3.4:5") == Token(long, "1.2.3.4:6") {
		t.Error("long names collide")
	}
}

func TestSessionResolve(t *testing.T) {
	t.Parallel()
	backends := sessionBackends()
	// The stable backend lost 10.0.0.2 and the canary was removed.
	later := []ir.WeightedBackend{
		{Weight: 100, Target: &ir.Backend{Name: "service/default/stable:80", Endpoints: []ir.Endpoint{{Address: "10.0.0.1:8080"}, {Address: "10.0.0.3:8080"}}}},
	}
	tests := []struct {
		name     string
		token    string
		backends []ir.WeightedBackend
		wantIdx  int
		wantAddr string
		wantOK   bool
	}{
		{name: "first endpoint", token: Token("service/default/stable:80", "10.0.0.1:8080"), backends: backends, wantIdx: 0, wantAddr: "10.0.0.1:8080", wantOK: true},
		{name: "second endpoint", token: Token("service/default/stable:80", "10.0.0.2:8080"), backends: backends, wantIdx: 0, wantAddr: "10.0.0.2:8080", wantOK: true},
		{name: "weight-0 backend still holds its sessions", token: Token("service/default/canary:80", "[fd00::1]:8080"), backends: backends, wantIdx: 2, wantAddr: "[fd00::1]:8080", wantOK: true},
		{name: "draining endpoint still holds its sessions", token: Token("service/default/canary:80", "10.0.1.1:8080"), backends: backends, wantIdx: 2, wantAddr: "10.0.1.1:8080", wantOK: true},
		{name: "endpoint removed", token: Token("service/default/stable:80", "10.0.0.2:8080"), backends: later},
		{name: "backend removed", token: Token("service/default/canary:80", "[fd00::1]:8080"), backends: later},
		{name: "still present after change", token: Token("service/default/stable:80", "10.0.0.1:8080"), backends: later, wantIdx: 0, wantAddr: "10.0.0.1:8080", wantOK: true},
		{name: "address under another backend", token: Token("service/default/other:80", "10.0.0.1:8080"), backends: backends},
		{name: "raw address is not a token", token: "10.0.0.1:8080", backends: backends},
		{name: "garbage of the right length", token: "AAAAAAAAAAAAAAAA", backends: backends},
		{name: "empty", token: "", backends: backends},
		{name: "no backends", token: Token("service/default/stable:80", "10.0.0.1:8080")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			idx, addr, ok := Resolve(tc.token, tc.backends)
			if idx != tc.wantIdx || addr != tc.wantAddr || ok != tc.wantOK {
				t.Errorf("Resolve = %d %q %v, want %d %q %v", idx, addr, ok, tc.wantIdx, tc.wantAddr, tc.wantOK)
			}
			idx, addr, ok = NewSessionIndex(tc.backends).Resolve(tc.token)
			if idx != tc.wantIdx || addr != tc.wantAddr || ok != tc.wantOK {
				t.Errorf("SessionIndex.Resolve = %d %q %v, want %d %q %v", idx, addr, ok, tc.wantIdx, tc.wantAddr, tc.wantOK)
			}
		})
	}
	if _, _, ok := (*SessionIndex)(nil).Resolve(Token("service/default/stable:80", "10.0.0.1:8080")); ok {
		t.Error("nil index resolved a token")
	}
}

func TestSessionResolveAllocs(t *testing.T) {
	backends := sessionBackends()
	tok := Token("service/default/canary:80", "[fd00::1]:8080")
	if n := testing.AllocsPerRun(100, func() {
		if _, _, ok := Resolve(tok, backends); !ok {
			t.Fatal("not resolved")
		}
	}); n != 0 {
		t.Errorf("Resolve: %v allocs, want 0", n)
	}
}
