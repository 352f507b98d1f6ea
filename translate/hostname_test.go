package translate

import (
	"math/rand/v2"
	"regexp"
	"strconv"
	"testing"
)

// hostnameRE is the Hostname pattern of the Gateway API CRDs, which
// validHostname implements by hand.
var hostnameRE = regexp.MustCompile(`^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

var hostnameSeeds = []struct {
	host string
	want bool
}{
	{"a", true},
	{"example.com", true},
	{"*.example.com", true},
	{"a-b.c0.d", true},
	{"0.0.0.0", true}, // the pattern allows it; checkHostname refuses IPs first
	{"", false},
	{"*", false},
	{"*.", false},
	{"*.*.example.com", false},
	{"a.*.example.com", false},
	{"-a.example.com", false},
	{"a-.example.com", false},
	{"a..b", false},
	{".a", false},
	{"a.", false},
	{"Example.com", false},
	{"a_b.com", false},
	{"a b", false},
	{"ä.com", false},
	{"a.b-", false},
}

func TestValidHostname(t *testing.T) {
	for _, tt := range hostnameSeeds {
		if got := validHostname(tt.host); got != tt.want {
			t.Errorf("validHostname(%q) = %v, want %v", tt.host, got, tt.want)
		}
		if got := hostnameRE.MatchString(tt.host); got != tt.want {
			t.Errorf("the CRD pattern says %v for %q, the table %v", got, tt.host, tt.want)
		}
	}
}

// FuzzValidHostname checks validHostname against the CRD pattern.
func FuzzValidHostname(f *testing.F) {
	for _, tt := range hostnameSeeds {
		f.Add(tt.host)
	}
	f.Fuzz(func(t *testing.T, h string) {
		if got, want := validHostname(h), hostnameRE.MatchString(h); got != want {
			t.Errorf("validHostname(%q) = %v, the CRD pattern says %v", h, got, want)
		}
	})
}

// hostSetsOverlap reports whether two routes' effective hostnames on one
// listener share a name; an empty set means any name the listener takes.
// It is the definition hostOverlap indexes.
func hostSetsOverlap(a, b []string) bool {
	if len(a) == 0 || len(b) == 0 {
		return true
	}
	for _, x := range a {
		for _, y := range b {
			if _, ok := intersectHostname(x, y); ok {
				return true
			}
		}
	}
	return false
}

// TestHostOverlap checks hostOverlap.first against the first route whose
// hostnames overlap by hostSetsOverlap, over random route sets drawn from
// hostnames that cover each other in every way.
func TestHostOverlap(t *testing.T) {
	names := []string{"a.x", "b.x", "*.x", "*.a.x", "c.a.x", "*.b.a.x", "x", "*.y", "a.y", "ax", "*.ax", "", "*.a.y"}
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func() []string {
		n := rng.IntN(3)
		if rng.IntN(6) == 0 {
			n = 0
		}
		hosts := make([]string, n)
		for i := range hosts {
			hosts[i] = names[rng.IntN(len(names))]
		}
		return hosts
	}
	for c := range 2000 {
		// Routes are added and queried in turns, as routes attach, so
		// the index is also extended after a question.
		x := &hostOverlap{}
		var routes []installedRoute
		for i := range rng.IntN(8) {
			r := installedRoute{kind: kindHTTPRoute, key: nsName{"ns", strconv.Itoa(i)}, hosts: pick()}
			routes = append(routes, r)
			x.add(r)
			if rng.IntN(2) == 0 {
				continue
			}
			q := pick()
			want, wantOK := installedRoute{}, false
			for _, r := range routes {
				if hostSetsOverlap(r.hosts, q) {
					want, wantOK = r, true
					break
				}
			}
			got, ok := x.first(q)
			if ok != wantOK || got.key != want.key {
				t.Fatalf("case %d: routes %v, query %q: got %v %v, want %v %v", c, routes, q, got.key, ok, want.key, wantOK)
			}
		}
	}
	var none *hostOverlap
	if _, ok := none.first(nil); ok {
		t.Error("an empty index found a route")
	}
}
