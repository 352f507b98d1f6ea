package e2e

import (
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// TestWeightedSplit sends 500 requests, 10 at a time, to weighted rules and
// checks each backend's share is within 5% of the 500 requests of its
// weight's share (the Gateway API conformance tolerance).
func TestWeightedSplit(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	port := freePort(t, ip)
	var cfg strings.Builder
	cfg.WriteString(gatewayYAML(ip, listener{name: "http", port: port}))
	for _, n := range []string{"a90", "b10", "c50", "d50", "e1", "f0"} {
		cfg.WriteString(newBackend(t, n).yaml())
	}
	cfg.WriteString(`---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: split
  namespace: default
spec:
  parentRefs:
  - name: gw
  hostnames: ["split.test"]
  rules:
  - matches: [{path: {type: PathPrefix, value: /ninety}}]
    backendRefs: [` + wref("a90", 90) + `, ` + wref("b10", 10) + `]
  - matches: [{path: {type: PathPrefix, value: /fifty}}]
    backendRefs: [` + wref("c50", 50) + `, ` + wref("d50", 50) + `]
  - matches: [{path: {type: PathPrefix, value: /zero}}]
    backendRefs: [` + wref("e1", 1) + `, ` + wref("f0", 0) + `]
  - matches: [{path: {type: PathPrefix, value: /unresolved}}]
    backendRefs: [` + ref("does-not-exist") + `]
`)
	g := startGateway(t, ip, cfg.String())

	tests := []struct {
		path string
		want map[string]float64 // backend -> expected share
	}{
		{"/ninety", map[string]float64{"a90": 0.9, "b10": 0.1}},
		{"/fifty", map[string]float64{"c50": 0.5, "d50": 0.5}},
		{"/zero", map[string]float64{"e1": 1, "f0": 0}},
	}
	for _, tc := range tests {
		t.Run(strings.TrimPrefix(tc.path, "/"), func(t *testing.T) {
			// With 500 samples a correct 50/50 split still leaves the
			// ±5% band about 2.5% of the time (2.2 sigma), so one
			// fresh sample is allowed before failing; a wrong split
			// fails both.
			var problems []string
			for attempt := 1; attempt <= 2; attempt++ {
				counts := sendConcurrent(t, g.url(port, tc.path), "split.test", 500, 10)
				problems = checkShares(counts, tc.want, 500, 0.05)
				if len(problems) == 0 {
					t.Logf("attempt %d: %v", attempt, counts)
					return
				}
				t.Logf("attempt %d out of tolerance: %v: %s", attempt, counts, strings.Join(problems, "; "))
			}
			t.Fatalf("split for %s out of tolerance twice: %s", tc.path, strings.Join(problems, "; "))
		})
	}
	t.Run("weight 0 gets nothing", func(t *testing.T) {
		// Covered by the counts above; restated with its own check so a
		// single request to f0 is reported precisely.
		counts := sendConcurrent(t, g.url(port, "/zero"), "split.test", 100, 10)
		if counts["f0"] != 0 || counts["e1"] != 100 {
			t.Fatalf("counts %v, want all 100 on e1 and none on the weight-0 backend", counts)
		}
	})
	t.Run("only backendRef unresolved gives 500", func(t *testing.T) {
		for i := 0; i < 5; i++ {
			r := get(t, g.url(port, "/unresolved"), "split.test")
			if r.status != http.StatusInternalServerError {
				t.Fatalf("got %v, want 500", r)
			}
		}
	})
}

// sendConcurrent sends n GETs to url with workers in parallel and counts
// responses by backend name; other outcomes are counted under "status N"
// or "error".
func sendConcurrent(t *testing.T, url, host string, n, workers int) map[string]int {
	t.Helper()
	c := newClient()
	defer c.CloseIdleConnections()
	jobs := make(chan int, n)
	for i := 0; i < n; i++ {
		jobs <- i
	}
	close(jobs)
	var mu sync.Mutex
	counts := map[string]int{}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				r, err := tryDo(c, request{url: url, host: host})
				key := ""
				switch {
				case err != nil:
					key = "error"
				case r.status != http.StatusOK:
					key = fmt.Sprintf("status %d", r.status)
				default:
					key = r.backend()
				}
				mu.Lock()
				counts[key]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return counts
}

// checkShares compares counts with the expected shares of total.
func checkShares(counts map[string]int, want map[string]float64, total int, tolerance float64) []string {
	var problems []string
	for k, n := range counts {
		if _, ok := want[k]; !ok {
			problems = append(problems, fmt.Sprintf("%d responses from unexpected %q", n, k))
		}
	}
	for name, share := range want {
		got := counts[name]
		dev := math.Abs(float64(got)-share*float64(total)) / float64(total)
		if dev > tolerance || (share == 0 && got != 0) {
			problems = append(problems, fmt.Sprintf("%s got %d of %d, want %.0f ±%.0f", name, got, total, share*float64(total), tolerance*float64(total)))
		}
	}
	return problems
}
