package e2e

import (
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// Helpers shared by the TestTraffic* tests (TrafficPolicy, FaultInjection,
// HTTPRoute retry and sessionPersistence).

// trafficBackendYAML is a Meshgate Backend with one endpoint on 127.0.0.1
// per port, in order.
func trafficBackendYAML(name string, ports ...int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `---
apiVersion: gateway.meshgate.dev/v1alpha1
kind: Backend
metadata:
  name: %s
  namespace: default
spec:
  endpoints:
`, name)
	for _, p := range ports {
		fmt.Fprintf(&b, "  - address: 127.0.0.1\n    port: %d\n", p)
	}
	return b.String()
}

// trafficPolicy is a TrafficPolicy in namespace default with one targetRef
// (kind HTTPRoute, Backend or Gateway, an optional sectionName) and spec, the
// sections as YAML indented by two spaces under spec.
func trafficPolicy(name, kind, target, section, spec string) string {
	group := "gateway.networking.k8s.io"
	if kind == "Backend" {
		group = "gateway.meshgate.dev"
	}
	sec := ""
	if section != "" {
		sec = ", sectionName: " + section
	}
	return fmt.Sprintf(`---
apiVersion: gateway.meshgate.dev/v1alpha1
kind: TrafficPolicy
metadata:
  name: %s
  namespace: default
spec:
  targetRefs: [{group: %s, kind: %s, name: %s%s}]
%s
`, name, group, kind, target, sec, indent(spec, 2))
}

// within5Sigma reports whether got successes out of n are within five
// standard deviations of a binomial(n, p): |got - np| <= 5 sqrt(np(1-p)).
// A correct implementation leaves that band about once in 1.7 million
// runs; the description says what was expected.
func within5Sigma(got, n int, p float64) (bool, string) {
	mean := float64(n) * p
	tol := 5 * math.Sqrt(mean*(1-p))
	ok := math.Abs(float64(got)-mean) <= tol
	return ok, fmt.Sprintf("%d of %d, want %.1f ± %.1f (5 sigma)", got, n, mean, tol)
}

// failFirst is a backend hook that answers 503 to the first n requests for
// each distinct path+query named by the "fail" query parameter (n = its
// value), and lets every later one through to the echo. It counts the
// requests it saw per path+query.
type failFirst struct {
	mu    sync.Mutex
	count map[string]int
}

func newFailFirst() *failFirst { return &failFirst{count: map[string]int{}} }

func (f *failFirst) hook(w http.ResponseWriter, r *http.Request) bool {
	n := 0
	fmt.Sscanf(r.URL.Query().Get("fail"), "%d", &n)
	key := r.URL.RequestURI()
	f.mu.Lock()
	f.count[key]++
	c := f.count[key]
	f.mu.Unlock()
	if c <= n {
		w.Header().Set("X-Attempt", fmt.Sprint(c))
		http.Error(w, "scripted failure", http.StatusServiceUnavailable)
		return true
	}
	return false
}

// seen is how many requests for uri (path and query) the hook saw.
func (f *failFirst) seen(uri string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.count[uri]
}

// countBy counts results by the answering backend's name ("status N"
// for answers that are not a backend echo with 200).
func countBy(rs []result) map[string]int {
	m := map[string]int{}
	for _, r := range rs {
		if r.status == http.StatusOK && r.backend() != "" {
			m[r.backend()]++
		} else {
			m[fmt.Sprintf("status %d", r.status)]++
		}
	}
	return m
}

// getN sends n sequential GETs of url with Host host and extra headers h.
func getN(t *testing.T, c *http.Client, n int, url, host string, h http.Header) []result {
	t.Helper()
	out := make([]result, 0, n)
	for i := 0; i < n; i++ {
		out = append(out, do(t, c, request{url: url, host: host, header: h}))
	}
	return out
}
