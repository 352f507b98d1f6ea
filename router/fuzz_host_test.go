package router

// Host/authority normalization fuzzing (docs/reliability.md row 40) and the
// large-hostname-list case of row 8 (Caddy CVE-2026-27588: matching that
// turned case-sensitive past 100 hostnames).

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/meshgate/meshgate/ir"
)

// manyHostnames is n exact hostnames h0.many.test ... h(n-1).many.test.
func manyHostnames(n int) []string {
	hs := make([]string, n)
	for i := range hs {
		hs[i] = fmt.Sprintf("h%d.many.test", i)
	}
	return hs
}

// hostFuzzListener has a route with 150 hostnames, an exact, a wildcard and
// a catch-all route, and an exact and a wildcard listener host.
func hostFuzzListener() *ir.Listener {
	return &ir.Listener{
		Name: "0.0.0.0:80", Address: "0.0.0.0:80", Protocol: ir.ProtocolHTTP,
		Hosts: []*ir.ListenerHost{
			{Name: "any", Routes: []*ir.Route{
				newRoute("ns/many", prefixPath("/"), hostnames(manyHostnames(150)...)),
				newRoute("ns/exact", prefixPath("/"), hostnames("a.example.com")),
				newRoute("ns/wild", prefixPath("/"), hostnames("*.example.com")),
				newRoute("ns/any", prefixPath("/")),
			}},
			{Name: "lexact", Hostname: "exact.test", Routes: []*ir.Route{newRoute("ns/lexact", prefixPath("/"))}},
			{Name: "lwild", Hostname: "*.wild.test", Routes: []*ir.Route{newRoute("ns/lwild", prefixPath("/"))}},
		},
	}
}

func hostReq(host string) *http.Request {
	return &http.Request{Method: http.MethodGet, Host: host, URL: &url.URL{Path: "/"}, Header: http.Header{}}
}

// TestRouteWith150Hostnames: every one of a route's 150 hostnames matches,
// the last one too, whatever its case, port or trailing dot.
func TestRouteWith150Hostnames(t *testing.T) {
	t.Parallel()
	tb := mustCompile(t, hostFuzzListener())
	hs := manyHostnames(150)
	for _, i := range []int{0, 99, 100, 101, 149} {
		h := hs[i]
		for _, v := range []string{h, strings.ToUpper(h), "H" + h[1:] + ".", h + ":8080", strings.ToUpper(h) + ".:443"} {
			if got := id(tb.Match(hostReq(v))); got != "ns/many" {
				t.Errorf("Host %q: route %q, want ns/many", v, got)
			}
		}
	}
	for _, v := range []string{"h150.many.test", "many.test", "xh149.many.test"} {
		if got := id(tb.Match(hostReq(v))); got != "ns/any" {
			t.Errorf("Host %q: route %q, want ns/any", v, got)
		}
	}
}

func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - ('a' - 'A')
		}
	}
	return string(b)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// FuzzRequestHost checks requestHost, the one place a request's Host
// becomes a lookup key, and Match's use of it. Properties:
//
//   - it never panics; a host that fits in the buffer is never refused,
//     and what it returns is an ASCII-lowercase piece of the input;
//   - ASCII case does not matter (same key, same route);
//   - a ":port" suffix and a trailing dot do not matter (same key, same
//     route), alone or together, where the input has no port, is not an
//     unclosed "[" literal and does not already end in a dot;
//   - a plain hostname (no ":", "[" or trailing dot) is a fixed point, and
//     equals normalizeHostname's form of the same name when ASCII, so a
//     request host and a configured hostname compare alike.
func FuzzRequestHost(f *testing.F) {
	for _, s := range []string{
		"a.example.com", "A.Example.COM.:80", "h149.many.test", "H149.MANY.TEST.", "x.wild.test:8443",
		"[::1]:8080", "[::1", "[]", "::1", "a:b:c", "a..", ".", "", ":", "exact.test.", "EXACT.TEST:1",
		strings.Repeat("a", 300) + ".example.com", strings.Repeat("b", 256), "\xff.example.com", "a.example.com\x00",
	} {
		f.Add(s)
	}
	tb, err := Compile(hostFuzzListener())
	if err != nil {
		f.Fatal(err)
	}
	key := func(h string) (string, bool) {
		var buf [maxHost]byte
		b, ok := requestHost(h, &buf)
		return string(b), ok
	}
	route := func(h string) string { return id(tb.Match(hostReq(h))) }

	f.Fuzz(func(t *testing.T, h string) {
		k, ok := key(h)
		if !ok {
			if len(h) <= maxHost {
				t.Fatalf("%q (%d bytes) refused, but it fits in %d", h, len(h), maxHost)
			}
			if k != "" {
				t.Fatalf("%q refused but returned %q", h, k)
			}
		} else {
			if len(k) > maxHost || len(k) > len(h) {
				t.Fatalf("%q -> %q: longer than the input or the buffer", h, k)
			}
			if !strings.Contains(asciiLower(h), k) {
				t.Fatalf("%q -> %q: not a lowercased piece of the input", h, k)
			}
			if asciiLower(k) != k {
				t.Fatalf("%q -> %q: not lowercase", h, k)
			}
		}
		r := route(h)

		// Case.
		for _, v := range []string{asciiUpper(h), asciiLower(h)} {
			if k2, ok2 := key(v); k2 != k || ok2 != ok {
				t.Fatalf("case changes the key: %q -> %q %v, %q -> %q %v", h, k, ok, v, k2, ok2)
			}
			if r2 := route(v); r2 != r {
				t.Fatalf("case changes the route: %q -> %q, %q -> %q", h, r, v, r2)
			}
		}

		// Port and trailing dot.
		plain := !strings.ContainsRune(h, ':') && !strings.HasPrefix(h, "[")
		if plain && !strings.HasSuffix(h, ".") {
			for _, v := range []string{h + ":8080", h + ".", h + ".:443", h + ":"} {
				if k2, ok2 := key(v); k2 != k || ok2 != ok {
					t.Fatalf("port or trailing dot changes the key: %q -> %q %v, %q -> %q %v", h, k, ok, v, k2, ok2)
				}
				if r2 := route(v); r2 != r {
					t.Fatalf("port or trailing dot changes the route: %q -> %q, %q -> %q", h, r, v, r2)
				}
			}
			if ok {
				if k2, ok2 := key(k); !ok2 || k2 != k {
					t.Fatalf("not a fixed point: %q -> %q -> %q %v", h, k, k2, ok2)
				}
				if isASCII(h) && normalizeHostname(h) != k {
					t.Fatalf("request host and configured hostname differ: requestHost(%q) = %q, normalizeHostname = %q", h, k, normalizeHostname(h))
				}
			}
		}
		if strings.HasPrefix(h, "[") && strings.Contains(h, "]") {
			if k2, ok2 := key(h + ":8080"); k2 != k || ok2 != ok {
				t.Fatalf("port changes the key of a bracketed host: %q -> %q, %q -> %q", h, k, h+":8080", k2)
			}
		}
	})
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b)
}
