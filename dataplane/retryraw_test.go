package dataplane

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshgate/meshgate/ir"
)

// TestRetryRawHead: a route whose retry policy names status codes passes
// response heads as header lines (no map), and a discarded attempt's lines
// never reach the client: not with the answer of the next attempt, not
// with the gateway's own error when the next attempt fails.
func TestRetryRawHead(t *testing.T) {
	var n atomic.Int32
	live := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%2 == 1 {
			w.Header().Set("X-Attempt", "first")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("X-Attempt", "second")
		io.WriteString(w, "ok")
	}))
	defer live.Close()
	dead := freeAddr(t) // nothing listens: the retry's connection fails
	policy := &ir.Retry{Attempts: 1, Codes: []int{503}, BudgetPercent: 100, MinRetryConcurrency: 10}
	retried := &ir.Backend{Name: "backend/default/retried", Protocol: ir.BackendHTTP1,
		Endpoints: []ir.Endpoint{{Address: live.Listener.Addr().String()}}}
	halfDead := &ir.Backend{Name: "backend/default/half-dead", Protocol: ir.BackendHTTP1,
		Endpoints: []ir.Endpoint{{Address: live.Listener.Addr().String()}, {Address: dead}}}
	route := func(path string, b *ir.Backend) *ir.Route {
		return &ir.Route{Name: "default" + path, Match: ir.Match{Path: ir.PathMatch{Type: ir.PathPrefix, Value: path}},
			Retry: policy, Backends: []ir.WeightedBackend{{Weight: 1, Target: b}}}
	}
	addr := serveRoutes(t, route("/retried", retried), route("/half-dead", halfDead))
	c := &http.Client{Timeout: 5 * time.Second}
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := c.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	for i := range 3 {
		n.Store(0)
		resp, body := get("/retried")
		if resp.StatusCode != 200 || body != "ok" || strings.Join(resp.Header.Values("X-Attempt"), ",") != "second" {
			t.Errorf("retried %d: %d %q X-Attempt %q, want 200 ok and only the second attempt's", i, resp.StatusCode, body, resp.Header.Values("X-Attempt"))
		}
	}
	// The first attempt goes to the live endpoint (its 503 is discarded,
	// and the retry, sent elsewhere, cannot connect) or to the dead one.
	// Either way the client gets the gateway's own error, which must not
	// carry the discarded answer's fields.
	sawDiscard := false
	for range 20 {
		n.Store(0)
		resp, _ := get("/half-dead")
		if resp.StatusCode < 500 {
			t.Fatalf("half-dead: %d, want the gateway's error", resp.StatusCode)
		}
		if got := resp.Header.Values("X-Attempt"); len(got) > 0 {
			t.Errorf("gateway error %d carries a discarded attempt's X-Attempt %q", resp.StatusCode, got)
		}
		sawDiscard = sawDiscard || n.Load() == 1
	}
	if !sawDiscard {
		t.Error("no request had its first answer discarded and then failed: the case was not exercised")
	}
}
