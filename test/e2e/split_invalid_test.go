package e2e

import (
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// splitZ is the two-sided 99.9% normal quantile: a correct split leaves
// its interval once in a thousand runs.
const splitZ = 3.29

// binomialHalfWidth is the half width of the 99.9% interval of an observed
// share around p over n independent picks (normal approximation).
func binomialHalfWidth(p float64, n int) float64 {
	return splitZ * math.Sqrt(p*(1-p)/float64(n))
}

// splitTally is what n requests to one split got back.
type splitTally struct {
	byBackend  map[string]int // 200s, by the echoing backend's name
	gateway500 int            // the gateway's own 500 no_valid_backend
	other      map[string]int // anything else, by a short description
	examples   []string       // the first few of other
}

// sendSplit sends n GETs with workers in parallel and sorts the answers.
// Routing is random per request (router.Route.Pick uses math/rand/v2's
// global source, which cannot be seeded), so the tests bound the shares
// statistically.
func sendSplit(t *testing.T, url, host string, n, workers int) splitTally {
	t.Helper()
	c := newClient()
	defer c.CloseIdleConnections()
	jobs := make(chan struct{}, n)
	for i := 0; i < n; i++ {
		jobs <- struct{}{}
	}
	close(jobs)
	tally := splitTally{byBackend: map[string]int{}, other: map[string]int{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				r, err := tryDo(c, request{url: url, host: host})
				mu.Lock()
				switch {
				case err != nil:
					tally.note("error: "+err.Error(), err.Error())
				case r.status == http.StatusOK && r.echo != nil && r.header.Get("X-Backend") == r.echo.Name:
					tally.byBackend[r.echo.Name]++
				case r.status == http.StatusInternalServerError &&
					r.body == "Internal Server Error (no_valid_backend)\n" &&
					r.header.Get("X-Backend") == "" &&
					strings.HasPrefix(r.header.Get("Content-Type"), "text/plain"):
					tally.gateway500++
				default:
					tally.note(fmt.Sprintf("status %d", r.status), r.String())
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return tally
}

func (s *splitTally) note(key, example string) {
	s.other[key]++
	if len(s.examples) < 5 {
		s.examples = append(s.examples, example)
	}
}

// checkShare reports whether got of n is within the 99.9% interval around
// p, and describes the comparison.
func checkShare(name string, got, n int, p float64) (bool, string) {
	h := binomialHalfWidth(p, n)
	share := float64(got) / float64(n)
	lo, hi := math.Ceil((p-h)*float64(n)), math.Floor((p+h)*float64(n))
	return math.Abs(share-p) <= h, fmt.Sprintf("%s: %d of %d (%.2f%%), want %.0f%% ±%.2f%% (%v..%v)", name, got, n, 100*share, 100*p, 100*h, lo, hi)
}

// TestSplitInvalid pins reliability row 34's missing part: in a weighted
// split where one backendRef cannot be resolved (a Service that does not
// exist), that backendRef keeps its weight and its share of requests gets
// the gateway's 500, while every other request reaches the valid backend;
// and a plain two-backend split lands within the same kind of bound.
func TestSplitInvalid(t *testing.T) {
	t.Parallel()
	const n = 2000
	ip := newLoopbackIP(t)
	port := freePort(t, ip)
	ok80 := newBackend(t, "inv-ok80")
	s90 := newBackend(t, "inv-s90")
	s10 := newBackend(t, "inv-s10")
	cfg := gatewayYAML(ip, listener{name: "http", port: port}) + ok80.yaml() + s90.yaml() + s10.yaml() + `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: split-invalid
  namespace: default
spec:
  parentRefs:
  - name: gw
  hostnames: ["split-invalid.test"]
  rules:
  - matches: [{path: {type: PathPrefix, value: /mixed}}]
    backendRefs:
    - ` + wref("inv-ok80", 80) + `
    - {name: no-such-service, port: 80, weight: 20}
  - matches: [{path: {type: PathPrefix, value: /ninety}}]
    backendRefs: [` + wref("inv-s90", 90) + `, ` + wref("inv-s10", 10) + `]
`
	g := startGateway(t, ip, cfg)

	t.Run("invalid backendRef gets its share of 500s", func(t *testing.T) {
		tally := sendSplit(t, g.url(port, "/mixed"), "split-invalid.test", n, 10)
		t.Logf("200s by backend %v, gateway 500s %d, other %v", tally.byBackend, tally.gateway500, tally.other)
		if len(tally.other) > 0 {
			t.Errorf("answers that are neither the valid backend's 200 nor the gateway's 500 no_valid_backend: %v, e.g. %q", tally.other, tally.examples)
		}
		for name, k := range tally.byBackend {
			if name != "inv-ok80" {
				t.Errorf("%d 200s from %q, want 200s only from inv-ok80", k, name)
			}
		}
		if got := tally.byBackend["inv-ok80"] + tally.gateway500; got != n {
			t.Errorf("%d of %d requests were the valid backend's 200 or the gateway's 500", got, n)
		}
		if in, desc := checkShare("gateway 500s", tally.gateway500, n, 0.2); !in {
			t.Errorf("share out of the 99.9%% binomial interval: %s", desc)
		} else {
			t.Log(desc)
		}
		// Every 200 was the backend's answer and no 500 reached it.
		if seen := len(ok80.requests()); seen != tally.byBackend["inv-ok80"] {
			t.Errorf("inv-ok80 received %d requests, but %d 200s came back from it", seen, tally.byBackend["inv-ok80"])
		}
		if e := g.findLog("request failed", func(e map[string]any) bool {
			return e["reason"] != "no_valid_backend"
		}); e != nil {
			t.Errorf("the gateway logged a failure other than no_valid_backend: %v", e)
		}
	})

	t.Run("two-backend 90/10 split", func(t *testing.T) {
		tally := sendSplit(t, g.url(port, "/ninety"), "split-invalid.test", n, 10)
		t.Logf("200s by backend %v, gateway 500s %d, other %v", tally.byBackend, tally.gateway500, tally.other)
		if len(tally.other) > 0 || tally.gateway500 > 0 {
			t.Errorf("failed answers: %d gateway 500s, other %v, e.g. %q", tally.gateway500, tally.other, tally.examples)
		}
		for name, k := range tally.byBackend {
			if name != "inv-s90" && name != "inv-s10" {
				t.Errorf("%d 200s from unexpected %q", k, name)
			}
		}
		if got := tally.byBackend["inv-s90"] + tally.byBackend["inv-s10"]; got != n {
			t.Errorf("%d of %d requests answered by the split's backends", got, n)
		}
		if in, desc := checkShare("inv-s10", tally.byBackend["inv-s10"], n, 0.1); !in {
			t.Errorf("share out of the 99.9%% binomial interval: %s", desc)
		} else {
			t.Log(desc)
		}
	})
}
