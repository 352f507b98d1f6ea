package e2e

import (
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestCanaryExample runs examples/canary as its README describes: the files
// in config/ are served, each step file replaces the route, and at each step
// the share of new users on the canary is measured (with a binomial
// tolerance), the tester header picks a version whatever the weights, and a
// client holding the session cookie never changes version.
func TestCanaryExample(t *testing.T) {
	root, err := findModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	read := func(rel string) string {
		b, err := os.ReadFile(filepath.Join(root, "examples/canary", rel))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	stable, canary := newBackend(t, "stable"), newBackend(t, "canary")
	ip := newLoopbackIP(t)
	port := freePort(t, ip)
	// The example's fixed ports become this test's.
	base := strings.NewReplacer(
		"port: 8080", "port: "+strconv.Itoa(port),
		"port: 9101", "port: "+strconv.Itoa(stable.port),
		"port: 9102", "port: "+strconv.Itoa(canary.port),
	)
	common := base.Replace(read("config/gateway.yaml") + "\n---\n" + read("config/services.yaml") + "\n---\n" + read("config/policy.yaml"))
	withRoute := func(route string) string { return common + "\n---\n" + route }

	g := startGateway(t, ip, withRoute(read("config/route.yaml")), "--bind-address", ip)
	url := g.url(port, "/")
	c := newClient()

	// One cookie holder from the start: it must keep its version through
	// every step (its version keeps a share of traffic until 100%).
	first := do(t, c, request{url: url})
	cookie := sessionCookie(first.header)
	if cookie == "" {
		t.Fatalf("no app-version cookie in the first answer: %v", first.header)
	}
	holderVersion := first.backend()

	const n = 400
	for _, step := range []struct {
		file   string
		canary float64
	}{
		{"config/route.yaml", 0.10},
		{"steps/50-percent.yaml", 0.50},
		{"steps/100-percent.yaml", 1.00},
	} {
		t.Run(step.file, func(t *testing.T) {
			if step.file != "config/route.yaml" {
				g.reload(withRoute(read(step.file)))
			}
			got := 0
			for i := 0; i < n; i++ {
				// A new user each time: no cookie.
				r := do(t, c, request{url: url})
				if r.status != http.StatusOK {
					t.Fatalf("request %d: %s", i, r)
				}
				if r.backend() == "canary" {
					got++
				}
			}
			mean := n * step.canary
			tol := 5 * math.Sqrt(n*step.canary*(1-step.canary))
			if math.Abs(float64(got)-mean) > tol {
				t.Errorf("%d of %d new users on the canary, want %.0f ± %.1f", got, n, mean, tol)
			}

			for _, tc := range []struct{ header, want string }{{"always", "canary"}, {"never", "stable"}} {
				r := do(t, c, request{url: url, header: http.Header{"X-Canary": {tc.header}}})
				if r.backend() != tc.want {
					t.Errorf("x-canary: %s went to %q, want %q", tc.header, r.backend(), tc.want)
				}
			}

			if step.canary < 1 || holderVersion == "canary" {
				for i := 0; i < 20; i++ {
					r := do(t, c, request{url: url, header: http.Header{"Cookie": {"app-version=" + cookie}}})
					if r.backend() != holderVersion {
						t.Fatalf("cookie holder moved from %q to %q at request %d", holderVersion, r.backend(), i)
					}
				}
			}
		})
	}
}

// sessionCookie is the app-version cookie's value in a response header.
func sessionCookie(h http.Header) string {
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if c.Name == "app-version" {
			return c.Value
		}
	}
	return ""
}
