package proxy

import (
	"net/http"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

func TestRemoveHopByHop(t *testing.T) {
	h := http.Header{
		"Connection":       {"keep-alive, X-Gw-Auth", "x-other"},
		"X-Gw-Auth":        {"client-forged"},
		"X-Other":          {"1"},
		"Keep-Alive":       {"timeout=5"},
		"Proxy-Connection": {"keep-alive"},
		"Te":               {"trailers"},
		"Upgrade":          {"websocket"},
		"Trailer":          {"X"},
		"X-Kept":           {"yes"},
	}
	RemoveHopByHop(h)
	if want := (http.Header{"X-Kept": {"yes"}}); !reflect.DeepEqual(h, want) {
		t.Errorf("after RemoveHopByHop: %v, want %v", h, want)
	}
}

func TestForwardedPolicy(t *testing.T) {
	trusted := ForwardedPolicy{Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	tests := []struct {
		name   string
		policy ForwardedPolicy
		remote string
		tls    bool
		in     http.Header
		want   http.Header
	}{
		{
			name: "untrusted client's claims are replaced", remote: "192.0.2.1:5000",
			in:   http.Header{"X-Forwarded-For": {"1.2.3.4"}, "X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"evil"}, "Forwarded": {"for=1.2.3.4"}},
			want: http.Header{"X-Forwarded-For": {"192.0.2.1"}, "X-Forwarded-Proto": {"http"}, "X-Forwarded-Host": {"example.com"}, "Forwarded": {"for=192.0.2.1;host=example.com;proto=http"}},
		},
		{
			name: "trusted proxy's chain is extended", policy: trusted, remote: "10.1.2.3:5000", tls: true,
			in:   http.Header{"X-Forwarded-For": {"198.51.100.7"}, "X-Forwarded-Proto": {"http"}, "Forwarded": {"for=198.51.100.7"}},
			want: http.Header{"X-Forwarded-For": {"198.51.100.7, 10.1.2.3"}, "X-Forwarded-Proto": {"http"}, "X-Forwarded-Host": {"example.com"}, "Forwarded": {"for=198.51.100.7, for=10.1.2.3;host=example.com;proto=https"}},
		},
		{
			name: "ipv6 client is quoted in Forwarded", remote: "[2001:db8::1]:443", tls: true,
			in:   http.Header{},
			want: http.Header{"X-Forwarded-For": {"2001:db8::1"}, "X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"example.com"}, "Forwarded": {`for="[2001:db8::1]";host=example.com;proto=https`}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Without a memo, then twice with one (worked out, then reused).
			var memo ForwardedMemo
			for i, m := range []*ForwardedMemo{nil, &memo, &memo} {
				h := tc.in.Clone()
				tc.policy.Apply(h, tc.remote, "example.com", tc.tls, nil, m)
				if !reflect.DeepEqual(h, tc.want) {
					t.Errorf("call %d: got  %v\nwant %v", i, h, tc.want)
				}
			}
			// Worked out into fields for the upstream client's lines
			// (ApplyTo, ApplySharedTo): the header keeps none of the
			// fields they carry, and the two together say what Apply
			// says.
			var shared *ForwardedMemo
			for i := range 4 {
				h := tc.in.Clone()
				var f ForwardedFields
				if i < 2 {
					tc.policy.ApplyTo(&f, h, tc.remote, "example.com", tc.tls, &memo)
				} else {
					shared = tc.policy.ApplySharedTo(&f, h, tc.remote, "example.com", tc.tls, shared)
				}
				for k, v := range map[string]string{"X-Forwarded-For": f.For, "Forwarded": f.Forwarded, "X-Forwarded-Proto": f.Proto, "X-Forwarded-Host": f.Host} {
					if _, in := h[k]; in && v != "" {
						t.Errorf("ApplyTo %d: %s both in the header and the fields", i, k)
					}
				}
				f.AddTo(h, nil)
				if !reflect.DeepEqual(h, tc.want) {
					t.Errorf("ApplyTo %d, header and fields: got  %v\nwant %v", i, h, tc.want)
				}
			}
		})
	}
	h := http.Header{}
	(&ForwardedPolicy{}).Apply(h, "127.0.0.1:1", "host:8080", false, nil, nil)
	if got := h.Get("Forwarded"); got != `for=127.0.0.1;host="host:8080";proto=http` {
		t.Errorf("host with port not quoted: %s", got)
	}
}

func TestForwardedPolicyRemovesClientIdentityClaims(t *testing.T) {
	trusted := ForwardedPolicy{Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	for _, tc := range []struct {
		name   string
		remote string
		keep   bool
	}{
		{"untrusted client", "203.0.113.7:5000", false},
		{"trusted proxy", "10.1.2.3:5000", true},
	} {
		h := http.Header{}
		for _, k := range untrustedClientHeaders {
			h.Set(k, "spoofed")
		}
		trusted.Apply(h, tc.remote, "example.com", false, nil, nil)
		for _, k := range untrustedClientHeaders {
			if got := h.Get(k) != ""; got != tc.keep {
				t.Errorf("%s: %s kept=%v, want %v", tc.name, k, got, tc.keep)
			}
		}
	}
}

func TestSetClientIdentity(t *testing.T) {
	for _, c := range []struct {
		name     string
		in       http.Header
		identity string
		want     []string
	}{
		{"spoofed copies removed, identity set", http.Header{"X-Client-Id": {"spoofed", "again"}}, "Hash=ab", []string{"Hash=ab"}},
		{"spoofed copy removed, no identity", http.Header{"X-Client-Id": {"spoofed"}}, "", nil},
		{"nothing sent", http.Header{}, "Hash=ab", []string{"Hash=ab"}},
	} {
		SetClientIdentity(c.in, "X-Client-Id", c.identity)
		if got := c.in["X-Client-Id"]; !slices.Equal(got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

func TestForwardedValue(t *testing.T) {
	tests := []struct{ in, want string }{
		{"example.com", "example.com"},
		{"example.com:8443", `"example.com:8443"`},
		{"[2001:db8::1]:443", `"[2001:db8::1]:443"`},
		{`a"b\c`, `"a\"b\\c"`},
		{"", ""},
	}
	for _, tc := range tests {
		q, v := forwardedValue(tc.in)
		if got := q + v + q; got != tc.want {
			t.Errorf("forwardedValue(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// TestHeaderSetsMatchLists keeps the switch-based membership checks and
// the lists deleteAll walks in step, and checks deleteAll on both paths.
func TestHeaderSetsMatchLists(t *testing.T) {
	for _, set := range []struct {
		names []string
		is    func(string) bool
	}{{hopHeaders, isHopHeader}, {untrustedClientHeaders, isUntrustedClientHeader}} {
		for _, k := range set.names {
			if !set.is(k) {
				t.Errorf("%s is in the list but not in the switch", k)
			}
		}
		for _, size := range []int{1, 4 * len(set.names)} {
			h := http.Header{"Accept": {"*/*"}}
			for i := 1; i < size; i++ {
				h["X-Other-"+strconv.Itoa(i)] = []string{"v"}
			}
			for _, k := range set.names {
				h[k] = []string{"v"}
			}
			deleteAll(h, set.names, set.is)
			if len(h) != size {
				t.Errorf("after deleteAll with %d other fields: %d fields left, want %d", size, len(h), size)
			}
			for _, k := range set.names {
				if _, ok := h[k]; ok {
					t.Errorf("%s survived deleteAll with %d other fields", k, size)
				}
			}
		}
	}
}

// TestForwardedMemo is one connection's requests in a row: the memo must
// never hand out what it kept for another peer, host, scheme or policy.
func TestForwardedMemo(t *testing.T) {
	plain := &ForwardedPolicy{}
	trusting := &ForwardedPolicy{Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	steps := []struct {
		name   string
		policy *ForwardedPolicy
		remote string
		host   string
		tls    bool
		in     http.Header
		xff    string
		fwd    string
	}{
		{"first request", plain, "10.0.0.1:1000", "a.example", false, nil, "10.0.0.1", "for=10.0.0.1;host=a.example;proto=http"},
		{"same again", plain, "10.0.0.1:1000", "a.example", false, nil, "10.0.0.1", "for=10.0.0.1;host=a.example;proto=http"},
		{"another host", plain, "10.0.0.1:1000", "b.example", false, nil, "10.0.0.1", "for=10.0.0.1;host=b.example;proto=http"},
		{"another scheme", plain, "10.0.0.1:1000", "b.example", true, nil, "10.0.0.1", "for=10.0.0.1;host=b.example;proto=https"},
		{"another peer", plain, "[2001:db8::2]:1000", "b.example", true, nil, "2001:db8::2", `for="[2001:db8::2]";host=b.example;proto=https`},
		{"reloaded policy trusts the peer", trusting, "10.0.0.1:1000", "b.example", true,
			http.Header{"X-Forwarded-For": {"192.0.2.9"}}, "192.0.2.9, 10.0.0.1", "for=10.0.0.1;host=b.example;proto=https"},
		{"its chain is not kept", trusting, "10.0.0.1:1000", "b.example", true,
			http.Header{"X-Forwarded-For": {"192.0.2.7"}}, "192.0.2.7, 10.0.0.1", "for=10.0.0.1;host=b.example;proto=https"},
		{"untrusting policy again", plain, "10.0.0.1:1000", "b.example", true,
			http.Header{"X-Forwarded-For": {"192.0.2.7"}}, "10.0.0.1", "for=10.0.0.1;host=b.example;proto=https"},
	}
	check := func(name string, h http.Header, xff, fwd string) {
		t.Helper()
		if got := h.Get("X-Forwarded-For"); got != xff {
			t.Errorf("%s: X-Forwarded-For %q, want %q", name, got, xff)
		}
		if got := h.Get("Forwarded"); got != fwd {
			t.Errorf("%s: Forwarded %q, want %q", name, got, fwd)
		}
	}
	var memo ForwardedMemo
	for _, st := range steps {
		h := st.in.Clone()
		if h == nil {
			h = http.Header{}
		}
		st.policy.Apply(h, st.remote, st.host, st.tls, nil, &memo)
		check("Apply, "+st.name, h, st.xff, st.fwd)
	}

	// The same steps through ApplyShared: the memo it returns is reused
	// while it fits, and one it was given is never changed.
	var shared *ForwardedMemo
	for i, st := range steps {
		h := st.in.Clone()
		if h == nil {
			h = http.Header{}
		}
		var before ForwardedMemo
		if shared != nil {
			before = *shared
		}
		got := st.policy.ApplyShared(h, st.remote, st.host, st.tls, shared)
		check("ApplyShared, "+st.name, h, st.xff, st.fwd)
		if shared != nil && *shared != before {
			t.Errorf("ApplyShared, %s: changed the memo it was given", st.name)
		}
		fits := i > 0 && steps[i-1].policy == st.policy && steps[i-1].remote == st.remote && steps[i-1].host == st.host && steps[i-1].tls == st.tls
		if fits != (got == shared) {
			t.Errorf("ApplyShared, %s: memo reused = %v, want %v", st.name, got == shared, fits)
		}
		shared = got
	}
}

// TestForwardedApplySharedConcurrent: the streams of one connection apply
// the policy at once, sharing a memo through an atomic.Value (run with
// -race).
func TestForwardedApplySharedConcurrent(t *testing.T) {
	p := &ForwardedPolicy{}
	var slot atomic.Value
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				host := "a.example"
				if (g+i)%5 == 0 {
					host = "b.example"
				}
				h := http.Header{}
				old, _ := slot.Load().(*ForwardedMemo)
				if m := p.ApplyShared(h, "10.0.0.1:1000", host, true, old); m != old {
					slot.Store(m)
				}
				if want := "for=10.0.0.1;host=" + host + ";proto=https"; h.Get("Forwarded") != want {
					t.Errorf("Forwarded %q, want %q", h.Get("Forwarded"), want)
					return
				}
			}
		}()
	}
	wg.Wait()
}
