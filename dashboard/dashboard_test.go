package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/dataplane"
	"github.com/meshgate/meshgate/healthcheck"
	"github.com/meshgate/meshgate/ir"
	"github.com/meshgate/meshgate/obs"
	"github.com/meshgate/meshgate/rollout"
	"github.com/meshgate/meshgate/server"
	"github.com/meshgate/meshgate/upstream"
)

func pf(f float64) *float64 { return &f }

func eqp(a, b *float64) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func show(p *float64) string {
	if p == nil {
		return "nil"
	}
	return fmt.Sprint(*p)
}

func checkMetrics(t *testing.T, what string, got Metrics, requests, errors uint64, rate float64, errPct, p99 *float64) {
	t.Helper()
	if got.Requests != requests || got.Errors != errors || got.Rate != rate || !eqp(got.ErrorPct, errPct) || !eqp(got.P99Ms, p99) {
		t.Errorf("%s: got requests=%d errors=%d rate=%v errPct=%s p99=%s; want %d %d %v %s %s", what,
			got.Requests, got.Errors, got.Rate, show(got.ErrorPct), show(got.P99Ms),
			requests, errors, rate, show(errPct), show(p99))
	}
}

func TestWindowAggregation(t *testing.T) {
	clk := &clock{t: time.Unix(1_700_000_000, 300_000_000)}
	d := New(Options{Config: testConfig, Now: clk.Now})

	for i := range 90 {
		ep := "10.0.1.11:8080"
		if i%2 == 1 {
			ep = "10.0.1.12:8080"
		}
		d.ObserveRequest(req(storefront, v1, ep, 200, 10*time.Millisecond))
	}
	for range 10 {
		d.ObserveRequest(req(storefront, v2, "10.0.1.21:8080", 503, 200*time.Millisecond))
	}
	for range 3 {
		r := req("", "", "", 404, time.Millisecond)
		r.Reason = "no_route"
		d.ObserveRequest(r)
	}

	s := d.Snapshot()
	if s.WindowSeconds != 10 {
		t.Fatalf("window %d, want 10", s.WindowSeconds)
	}
	rt := findRoute(t, s, storefront)
	checkMetrics(t, "route", rt.Metrics, 100, 10, 10, pf(10), pf(200))
	b1, b2 := findBackend(t, rt, v1), findBackend(t, rt, v2)
	checkMetrics(t, "v1", b1.Metrics, 90, 0, 9, pf(0), pf(10))
	checkMetrics(t, "v2", b2.Metrics, 10, 10, 1, pf(100), pf(200))
	if b1.ConfiguredPct != 90 || b2.ConfiguredPct != 10 || !eqp(b1.ObservedPct, pf(90)) || !eqp(b2.ObservedPct, pf(10)) {
		t.Errorf("split: configured %v/%v observed %s/%s", b1.ConfiguredPct, b2.ConfiguredPct, show(b1.ObservedPct), show(b2.ObservedPct))
	}
	checkMetrics(t, "endpoint a", findEndpoint(t, b1, "10.0.1.11:8080").Metrics, 45, 0, 4.5, pf(0), pf(10))
	if e := findEndpoint(t, b2, "10.0.1.21:8080"); e.Health != "failing" || e.Ejection != "not ejected" {
		t.Errorf("v2 endpoint health %q %q, want failing, not ejected", e.Health, e.Ejection)
	}
	if e := findEndpoint(t, b1, "10.0.1.12:8080"); e.Health != "healthy" {
		t.Errorf("v1 endpoint health %q", e.Health)
	}
	api := findRoute(t, s, apiRoute)
	checkMetrics(t, "api", api.Metrics, 0, 0, 0, nil, nil)
	if len(api.Matches) != 2 || api.Matches[0] != "PathPrefix /v1 · GET · header x-api-version=1" || api.Matches[1] != "Exact /healthz" {
		t.Errorf("api matches %q", api.Matches)
	}
	if b := api.Backends[0]; b.ObservedPct != nil || b.ConfiguredPct != 100 {
		t.Errorf("api backend share %v/%s", b.ConfiguredPct, show(b.ObservedPct))
	}
	l := s.Listeners[0]
	if l.Requests != 103 || l.Unmatched != 3 || l.Errors != 13 {
		t.Errorf("listener requests=%d unmatched=%d errors=%d, want 103 3 13", l.Requests, l.Unmatched, l.Errors)
	}
	if s.Totals.Requests != 103 || s.Totals.Connections != nil {
		t.Errorf("totals %+v", s.Totals)
	}

	// Five seconds later: the first second is still in the window.
	clk.Add(5 * time.Second)
	for range 10 {
		d.ObserveRequest(req(storefront, v1, "10.0.1.11:8080", 200, 30*time.Millisecond))
	}
	rt = findRoute(t, d.Snapshot(), storefront)
	checkMetrics(t, "route +5s", rt.Metrics, 110, 10, 11, pf(9.09), pf(200))

	// Ten seconds after the start the first second has left the window.
	clk.Add(5 * time.Second)
	s = d.Snapshot()
	rt = findRoute(t, s, storefront)
	checkMetrics(t, "route +10s", rt.Metrics, 10, 0, 1, pf(0), pf(30))
	if b1, b2 := findBackend(t, rt, v1), findBackend(t, rt, v2); !eqp(b1.ObservedPct, pf(100)) || !eqp(b2.ObservedPct, pf(0)) {
		t.Errorf("observed +10s %s/%s, want 100/0", show(b1.ObservedPct), show(b2.ObservedPct))
	}
	if e := findEndpoint(t, findBackend(t, rt, v2), "10.0.1.21:8080"); e.Health != "healthy" {
		t.Errorf("v2 endpoint with no traffic: %q", e.Health)
	}

	// Then nothing is left, and the idle series are forgotten.
	clk.Add(6 * time.Second)
	s = d.Snapshot()
	checkMetrics(t, "route +16s", findRoute(t, s, storefront).Metrics, 0, 0, 0, nil, nil)
	n, nl := d.edges.Size(), d.listeners.Size()
	if n != 0 || nl != 0 {
		t.Errorf("%d edge and %d listener series kept after the window", n, nl)
	}
}

// TestListenerTotalsPastEdgeCap checks that a listener's figures count
// every request: those of its edges, which collect sums, and those that
// found no edge series because the cap was reached.
func TestListenerTotalsPastEdgeCap(t *testing.T) {
	clk := &clock{t: time.Unix(1_700_000_000, 300_000_000)}
	d := New(Options{Config: testConfig, Now: clk.Now})
	d.maxEdges = 1
	for range 4 {
		d.ObserveRequest(req(storefront, v1, "10.0.1.11:8080", 200, 10*time.Millisecond))
	}
	for range 6 {
		d.ObserveRequest(req(storefront, v2, "10.0.1.21:8080", 503, 200*time.Millisecond))
	}
	if n := d.edges.Size(); n != 1 {
		t.Fatalf("%d edge series, want the cap, 1", n)
	}
	s := d.Snapshot()
	checkMetrics(t, "v1", findBackend(t, findRoute(t, s, storefront), v1).Metrics, 4, 0, 0.4, pf(0), pf(10))
	l := s.Listeners[0]
	if l.Requests != 10 || l.Errors != 6 {
		t.Errorf("listener requests=%d errors=%d, want 10 6", l.Requests, l.Errors)
	}
	if s.Totals.Requests != 10 {
		t.Errorf("totals %d requests, want 10", s.Totals.Requests)
	}
}

func TestWindowRoundsUp(t *testing.T) {
	d := New(Options{Window: 2500 * time.Millisecond})
	if d.buckets != 3 {
		t.Fatalf("buckets %d, want 3", d.buckets)
	}
}

func TestQuantile(t *testing.T) {
	var a agg
	for i := 1; i <= 1000; i++ {
		b := bucket{requests: 1, timed: 1, maxLatency: time.Duration(i) * time.Millisecond}
		b.hist[histIndex(time.Duration(i)*time.Millisecond)] = 1
		a.addBucket(&b)
	}
	p99, ok := a.quantile(0.99)
	// The true p99 is 990 ms; the sketch is within one bucket (19 %).
	if !ok || p99 < 990*time.Millisecond || p99 > 990*time.Millisecond*119/100 {
		t.Errorf("p99 = %v, want 990ms..1178ms", p99)
	}
	p50, _ := a.quantile(0.5)
	if p50 < 500*time.Millisecond || p50 > 500*time.Millisecond*119/100 {
		t.Errorf("p50 = %v", p50)
	}
	if histIndex(time.Hour) != histBuckets-1 {
		t.Errorf("an hour is not in the last bucket")
	}
	durations := []time.Duration{0, 1, time.Microsecond, histBase, histBase + 1, time.Millisecond, time.Second, time.Minute, math.MaxInt64}
	for i := range histBuckets {
		// Every bound and the least value past it.
		durations = append(durations, histUpper(i)-1, histUpper(i), histUpper(i)+1)
	}
	for _, d := range durations {
		i := histIndex(d)
		if i == histBuckets-1 {
			continue // the last bucket takes everything longer
		}
		if d > histUpper(i) || (i > 0 && d <= histUpper(i-1)) {
			t.Errorf("histIndex(%v) = %d covers (%v, %v]", d, i, histUpper(i-1), histUpper(i))
		}
	}
	if _, ok := (&agg{}).quantile(0.99); ok {
		t.Error("quantile of nothing is ok")
	}
}

func TestInvalidBackendAndUpgrades(t *testing.T) {
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	cfg := testConfig()
	rt := cfg.Listeners[0].Hosts[0].Routes[0]
	rt.Backends = append(rt.Backends, ir.WeightedBackend{Weight: 100})
	d := New(Options{Config: func() *ir.Config { return cfg }, Now: clk.Now})
	for range 4 {
		r := req(storefront, "", "", 500, time.Millisecond)
		r.Reason = "no_valid_backend"
		d.ObserveRequest(r)
	}
	for range 4 {
		r := req(storefront, v1, "10.0.1.11:8080", 101, time.Hour)
		r.Upgrade = "websocket"
		d.ObserveRequest(r)
	}
	s := d.Snapshot()
	route := findRoute(t, s, storefront)
	inv := route.Backends[2]
	if inv.Name != "invalid reference" || inv.Valid || inv.ConfiguredPct != 50 || !eqp(inv.ObservedPct, pf(50)) || inv.Errors != 4 {
		t.Errorf("invalid backend view %+v observed %s", inv, show(inv.ObservedPct))
	}
	b1 := findBackend(t, route, v1)
	// Tunnels count as requests, but their lifetime is not a latency.
	checkMetrics(t, "v1 tunnels", b1.Metrics, 4, 0, 0.4, pf(0), nil)
}

func TestErrorRing(t *testing.T) {
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	d := New(Options{Config: testConfig, Now: clk.Now})
	d.ObserveRequest(req(storefront, v1, "10.0.1.11:8080", 200, time.Millisecond))
	r := req(storefront, v1, "10.0.1.11:8080", 302, time.Millisecond)
	r.Reason = "redirect"
	d.ObserveRequest(r)
	if got := d.Snapshot().Errors; len(got) != 0 {
		t.Fatalf("a 200 and a redirect are not errors: %+v", got)
	}
	for i := range 60 {
		r := req(storefront, v2, "10.0.1.21:8080", 502+i%3, time.Millisecond)
		r.Path = fmt.Sprintf("/item/%d", i)
		d.ObserveRequest(r)
		clk.Add(time.Millisecond)
	}
	long := req(storefront, v2, "10.0.1.21:8080", 0, time.Millisecond)
	long.Reason = "client_canceled"
	long.Path = "/" + strings.Repeat("é", 150) + "\xff"
	d.ObserveRequest(long)
	// The record is reused by the data plane: the entry must not change.
	long.Reset()

	errs := d.Snapshot().Errors
	if len(errs) != ringSize {
		t.Fatalf("%d errors kept, want %d", len(errs), ringSize)
	}
	first := errs[0]
	if first.Reason != "client_canceled" || first.Status != 0 || first.Route != storefront || first.Endpoint != "10.0.1.21:8080" || first.Method != "GET" {
		t.Errorf("newest error %+v", first)
	}
	if len(first.Path) > maxPath+len("…") || !utf8.ValidString(first.Path) || !strings.HasSuffix(first.Path, "…") {
		t.Errorf("path not cut to %d valid bytes: %d bytes %q", maxPath, len(first.Path), first.Path)
	}
	if errs[1].Path != "/item/59" || errs[ringSize-1].Path != "/item/11" {
		t.Errorf("ring order: %q ... %q", errs[1].Path, errs[ringSize-1].Path)
	}
	if errs[1].Time.Before(errs[2].Time) {
		t.Error("errors not newest first")
	}
}

func TestReloadRing(t *testing.T) {
	d := New(Options{})
	t0 := time.Unix(1_700_000_000, 0)
	for i := 1; i <= 55; i++ {
		r := &obs.Reload{Time: t0.Add(time.Duration(i) * time.Second), Generation: int64(i), OK: i%5 != 0,
			Duration: 1500 * time.Microsecond, Listeners: 2, Rejected: i % 2}
		if !r.OK {
			r.Generation = int64(i - 1)
			r.Error = "listener 0.0.0.0:80: address already in use"
		}
		d.ObserveReload(r)
	}
	s := d.Snapshot()
	if len(s.Reloads) != ringSize {
		t.Fatalf("%d reloads kept", len(s.Reloads))
	}
	if s.Generation != 54 {
		t.Errorf("generation %d, want 54 (the last applied)", s.Generation)
	}
	r := s.Reloads[0]
	if r.OK || r.Generation != 54 || r.Error == "" || r.DurationMs != 1.5 || r.Listeners != 2 || r.Rejected != 1 {
		t.Errorf("newest reload %+v", r)
	}
	if s.Reloads[1].Generation != 54 || !s.Reloads[1].OK || s.Reloads[ringSize-1].Generation != 6 {
		t.Errorf("reload order %+v ... %+v", s.Reloads[1], s.Reloads[ringSize-1])
	}
}

func TestSnapshotNeverShowsSecrets(t *testing.T) {
	notAfter := time.Date(2031, 5, 17, 12, 0, 0, 0, time.UTC)
	certPEM, keyPEM := selfSigned(t, notAfter)
	cfg := testConfig()
	cfg.Listeners = append(cfg.Listeners, &ir.Listener{
		Name: "0.0.0.0:8443", Address: "0.0.0.0:8443", Protocol: ir.ProtocolHTTPS,
		Certificates: []*ir.Certificate{
			{Name: "secret/infra/example-com", Hostnames: []string{"*.example.com"}, CertPEM: certPEM, KeyPEM: keyPEM},
			{Name: "secret/infra/broken", CertPEM: []byte("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")},
		},
		Hosts: []*ir.ListenerHost{{Name: "infra/edge/https", Hostname: "*.example.com", Routes: []*ir.Route{{
			Name: "shop/checkout",
			Match: ir.Match{Path: ir.PathMatch{Type: ir.PathPrefix, Value: "/checkout"}, Headers: []ir.StringMatch{
				{Type: ir.MatchExact, Name: "Authorization", Value: "Bearer hunter2"},
			}},
			Backends: []ir.WeightedBackend{{Weight: 1, Target: &ir.Backend{
				Name: "backend/shop/checkout", Protocol: ir.BackendHTTP1,
				TLS:       &ir.UpstreamTLS{ServerName: "checkout.internal", CAPEM: certPEM, CAName: "configmap/shop/ca"},
				Endpoints: []ir.Endpoint{{Address: "10.0.4.1:8443"}},
			}}},
		}}}},
	})
	d := New(Options{Config: func() *ir.Config { return cfg }})
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/dashboard/api/snapshot")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("snapshot: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, bad := range []string{"BEGIN", "PRIVATE", "hunter2", string(certPEM[30:60]), string(keyPEM[30:60])} {
		if bytes.Contains(body, []byte(bad)) {
			t.Errorf("snapshot JSON contains %q", bad)
		}
	}
	var s Snapshot
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatal(err)
	}
	certs := s.Listeners[1].Certificates
	if len(certs) != 2 || certs[0].Name != "secret/infra/example-com" || certs[0].NotAfter == nil || !certs[0].NotAfter.Equal(notAfter) {
		t.Errorf("certificates %+v", certs)
	}
	if certs[1].NotAfter != nil {
		t.Errorf("unparsable certificate got an expiry")
	}
	b := s.Listeners[1].Routes[0].Backends[0]
	if b.TLS != "checkout.internal" {
		t.Errorf("backend TLS %q", b.TLS)
	}
	if m := s.Listeners[1].Routes[0].Matches[0]; !strings.Contains(m, "header Authorization=…") {
		t.Errorf("credential header match shown as %q", m)
	}
}

func TestStatsGauges(t *testing.T) {
	cfg := testConfig()
	cfg.Listeners = append(cfg.Listeners, &ir.Listener{Name: "0.0.0.0:5432", Address: "0.0.0.0:5432", Protocol: ir.ProtocolTCP,
		Hosts: []*ir.ListenerHost{{Name: "data/db/tcp", L4Routes: []*ir.L4Route{{Name: "data/postgres", Backends: []ir.WeightedBackend{
			{Weight: 1, Target: &ir.Backend{Name: "service/data/postgres:5432", Protocol: ir.BackendTCP, Endpoints: []ir.Endpoint{{Address: "10.0.3.5:5432"}}}},
		}}}}}})
	l4s := dataplane.L4Stats{Protocol: ir.ProtocolTCP}
	l4s.Active, l4s.Accepted = 4, 40
	st := dataplane.Stats{
		HTTP:    map[string]server.Stats{listenerAddr: {H1: 7, H2: 2}},
		L4:      map[string]dataplane.L4Stats{"0.0.0.0:5432": l4s},
		Tunnels: 3,
	}
	d := New(Options{Config: func() *ir.Config { return cfg }, Stats: func() dataplane.Stats { return st }})
	s := d.Snapshot()
	if s.Totals.Connections == nil || *s.Totals.Connections != 13 || *s.Totals.Tunnels != 3 {
		t.Errorf("totals %+v", s.Totals)
	}
	if g := s.Listeners[0].Gauges; len(g) != 2 || g[0].Value != 7 || g[1].Value != 2 {
		t.Errorf("HTTP gauges %+v", g)
	}
	l := s.Listeners[1]
	if len(l.L4Routes) != 1 || l.L4Routes[0].Name != "data/postgres" || l.L4Routes[0].Backends[0].Endpoints[0].Address != "10.0.3.5:5432" {
		t.Errorf("L4 routes %+v", l.L4Routes)
	}
	if l.Gauges[0] != (Gauge{"open connections", 4}) {
		t.Errorf("L4 gauges %+v", l.Gauges)
	}
}

func TestUpstreamState(t *testing.T) {
	st := dataplane.Stats{
		Backends: []upstream.BackendStats{
			{Name: apiBackend, Endpoints: 3, Healthy: 1, Ejected: 1, Panic: true},
			{Name: v1, Endpoints: 2, Healthy: 2},
		},
		Health: []healthcheck.EndpointStatus{
			{Backend: apiBackend, Address: "10.0.2.11:9000", Healthy: true},
			{Backend: apiBackend, Address: "10.0.2.12:9000", Healthy: false},
		},
	}
	d := New(Options{Config: testConfig, Stats: func() dataplane.Stats { return st }})
	s := d.Snapshot()
	api := findBackend(t, findRoute(t, s, apiRoute), apiBackend)
	if api.Ejected == nil || *api.Ejected != 1 || api.Unhealthy == nil || *api.Unhealthy != 1 || !api.Panic {
		t.Errorf("api backend: ejected %s unhealthy %s panic %v, want 1, 1, true", showInt(api.Ejected), showInt(api.Unhealthy), api.Panic)
	}
	if e := findEndpoint(t, api, "10.0.2.12:9000"); e.Health != "unhealthy" || e.Ejection != "unknown" {
		t.Errorf("failing health check: %q %q, want unhealthy, unknown", e.Health, e.Ejection)
	}
	if e := findEndpoint(t, api, "10.0.2.11:9000"); e.Health != "healthy" {
		t.Errorf("passing health check: %q", e.Health)
	}
	rt := findRoute(t, s, storefront)
	b1 := findBackend(t, rt, v1)
	if b1.Ejected == nil || *b1.Ejected != 0 || b1.Unhealthy == nil || *b1.Unhealthy != 0 || b1.Panic {
		t.Errorf("v1 backend: ejected %s unhealthy %s panic %v, want 0, 0, false", showInt(b1.Ejected), showInt(b1.Unhealthy), b1.Panic)
	}
	if e := findEndpoint(t, b1, "10.0.1.11:8080"); e.Ejection != "not ejected" {
		t.Errorf("v1 endpoint ejection %q", e.Ejection)
	}
	// No balancer state for v2: no counts.
	if b2 := findBackend(t, rt, v2); b2.Ejected != nil || b2.Unhealthy != nil {
		t.Errorf("v2 backend without state: ejected %s unhealthy %s", showInt(b2.Ejected), showInt(b2.Unhealthy))
	}
}

func showInt(p *int) string {
	if p == nil {
		return "nil"
	}
	return strconv.Itoa(*p)
}

func TestObserveRequestDoesNotAllocate(t *testing.T) {
	d := New(Options{Config: testConfig})
	r := req(storefront, v1, "10.0.1.11:8080", 200, time.Millisecond)
	d.ObserveRequest(r)
	if n := testing.AllocsPerRun(1000, func() { d.ObserveRequest(r) }); n != 0 {
		t.Errorf("ObserveRequest allocates %v times per request", n)
	}
}

func TestPageAndAssets(t *testing.T) {
	d := New(Options{Config: testConfig})
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	for path, ctype := range map[string]string{
		"/dashboard/":          "text/html",
		"/dashboard/app.js":    "text/javascript",
		"/dashboard/style.css": "text/css",
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), ctype) {
			t.Errorf("%s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("%s: CSP %q", path, csp)
		}
	}
	// Nothing is loaded from elsewhere: no absolute URLs, imports or
	// protocol-relative references in the embedded assets.
	external := regexp.MustCompile(`(?i:(https?:)?//[a-z0-9.-]+\.[a-z]{2,})|@import|url\(`)
	fs.WalkDir(assets, "assets", func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, _ := assets.ReadFile(path)
		if m := external.Find(b); m != nil {
			t.Errorf("%s references %q", path, m)
		}
		return nil
	})
}

// wsURL is the WebSocket address of srv.
func wsURL(srv *httptest.Server) string {
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/dashboard/ws"
}

func TestWebSocketPushes(t *testing.T) {
	d := New(Options{Config: testConfig, Interval: 20 * time.Millisecond})
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	defer d.Close()
	c, _, err := websocket.DefaultDialer.Dial(wsURL(srv), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	var s Snapshot
	if err := c.ReadJSON(&s); err != nil {
		t.Fatal(err)
	}
	if r := findRoute(t, &s, storefront); r.Requests != 0 {
		t.Fatalf("first snapshot has %d requests", r.Requests)
	}
	d.ObserveRequest(req(storefront, v1, "10.0.1.11:8080", 200, time.Millisecond))
	for {
		if err := c.ReadJSON(&s); err != nil {
			t.Fatal(err)
		}
		if findRoute(t, &s, storefront).Requests == 1 {
			break
		}
	}
}

func TestOriginCheck(t *testing.T) {
	d := New(Options{Config: testConfig})
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	defer d.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, tc := range []struct {
		origin string
		ok     bool
	}{
		{"", true},
		{"http://" + host, true},
		{"http://evil.example", false},
		{"http://" + host + ".evil.example", false},
		{"null", false},
	} {
		h := http.Header{}
		if tc.origin != "" {
			h.Set("Origin", tc.origin)
		}
		c, resp, err := websocket.DefaultDialer.Dial(wsURL(srv), h)
		if tc.ok {
			if err != nil {
				t.Errorf("origin %q refused: %v", tc.origin, err)
				continue
			}
			c.Close()
			continue
		}
		if err == nil {
			c.Close()
			t.Errorf("origin %q accepted", tc.origin)
			continue
		}
		if resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("origin %q: %v, want 403", tc.origin, err)
		}
	}
}

func TestClientCap(t *testing.T) {
	d := New(Options{Config: testConfig, MaxClients: 2})
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	defer d.Close()
	var conns []*websocket.Conn
	for range 2 {
		c, _, err := websocket.DefaultDialer.Dial(wsURL(srv), nil)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	// The client side returns at the 101; the server registers the client
	// just after, so wait for both before counting on a full house.
	waitFor(t, "both clients registered", func() bool { return d.Clients() == 2 })
	_, resp, err := websocket.DefaultDialer.Dial(wsURL(srv), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("third client: %v, want 503", err)
	}
	conns[0].Close()
	waitFor(t, "a client slot to free up", func() bool { return d.Clients() < 2 })
	c, _, err := websocket.DefaultDialer.Dial(wsURL(srv), nil)
	if err != nil {
		t.Fatalf("client after one left: %v", err)
	}
	c.Close()
	conns[1].Close()
}

// waitFor polls cond for a bounded time.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// bigConfig is testConfig plus many routes, for snapshots of about a
// megabyte.
func bigConfig() *ir.Config {
	cfg := testConfig()
	h := cfg.Listeners[0].Hosts[0]
	for i := range 400 {
		var bs []ir.WeightedBackend
		for j := range 2 {
			b := &ir.Backend{Name: fmt.Sprintf("service/load/svc-%d-%d:8080", i, j), Protocol: ir.BackendHTTP1}
			for k := range 3 {
				b.Endpoints = append(b.Endpoints, ir.Endpoint{Address: fmt.Sprintf("10.%d.%d.%d:8080", i/200, i%200, j*10+k)})
			}
			bs = append(bs, ir.WeightedBackend{Weight: int32(50 + j), Target: b})
		}
		h.Routes = append(h.Routes, &ir.Route{Name: fmt.Sprintf("load/route-%03d", i), Hostnames: []string{"load.example.com"},
			Match: ir.Match{Path: ir.PathMatch{Type: ir.PathPrefix, Value: fmt.Sprintf("/r/%d", i)}}, Backends: bs})
	}
	return cfg
}

func TestSlowClientNeverBlocks(t *testing.T) {
	cfg := bigConfig()
	d := New(Options{Config: func() *ir.Config { return cfg }, Interval: time.Hour})
	// Keep the stuck client connected for the whole test.
	d.hub.writeTimeout = 10 * time.Minute
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	defer d.Close()

	dialer := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			c.(*net.TCPConn).SetReadBuffer(4096)
		}
		return c, err
	}}
	c, _, err := dialer.Dial(wsURL(srv), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close() // never read
	waitFor(t, "the client to register", func() bool { return d.Clients() == 1 })

	done := make(chan struct{})
	go func() {
		defer close(done)
		r := req(storefront, v1, "10.0.1.11:8080", 200, time.Millisecond)
		// Push until the stuck client's queue overflows: its writer is
		// blocked on a full socket by then.
		for i := 0; i < 5000 && d.hub.dropped.Load() == 0; i++ {
			d.broadcast()
			for range 100 {
				d.ObserveRequest(r)
			}
		}
		for range 100_000 {
			d.ObserveRequest(r)
		}
		for range 20 {
			d.broadcast()
		}
	}()
	select {
	case <-done:
	case <-time.After(3 * time.Minute):
		t.Fatal("ObserveRequest or a snapshot push blocked on a slow client")
	}
	if d.hub.dropped.Load() == 0 {
		t.Fatal("no snapshot was dropped for the stuck client")
	}
	d.hub.mu.Lock()
	for cl := range d.hub.clients {
		if n := len(cl.send); n > queueLen {
			t.Errorf("client queue holds %d snapshots", n)
		}
	}
	d.hub.mu.Unlock()
	d.Close()
	waitFor(t, "Close to disconnect the client", func() bool { return d.Clients() == 0 })
}

func TestOfferKeepsNewest(t *testing.T) {
	c := &client{send: make(chan []byte, queueLen)}
	for i := range 5 {
		c.offer([]byte{byte(i)})
	}
	if a, b := <-c.send, <-c.send; a[0] != 3 || b[0] != 4 {
		t.Errorf("queue kept %d, %d; want the newest two, 3 and 4", a[0], b[0])
	}
}

func TestCloseRefusesClients(t *testing.T) {
	d := New(Options{Config: testConfig})
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	d.Close()
	_, resp, err := websocket.DefaultDialer.Dial(wsURL(srv), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("client after Close: %v, want 503", err)
	}
}

func TestConcurrentObserveAndSnapshot(t *testing.T) {
	d := New(Options{Config: testConfig})
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			r := req(storefront, v1, "10.0.1.11:8080", 200+300*(g%2), time.Millisecond)
			for range 2000 {
				d.ObserveRequest(r)
			}
			d.ObserveReload(&obs.Reload{Generation: int64(g), OK: true})
		}()
	}
	for range 20 {
		if _, err := json.Marshal(d.Snapshot()); err != nil {
			t.Fatal(err)
		}
	}
	for range 4 {
		<-done
	}
	if got := findRoute(t, d.Snapshot(), storefront).Requests; got != 8000 {
		t.Errorf("route counted %d requests, want 8000", got)
	}
}

// TestSnapshotCarriesRollouts: the snapshot shows each Rollout of a real
// engine (phase, step, weight, the figures of its window) and, once the
// canary breaches a threshold, RolledBack with the reason and the figures
// that made it roll back, in the JSON browsers get.
func TestSnapshotCarriesRollouts(t *testing.T) {
	snap, err := config.Parse("test.yaml", []byte(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: app, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - name: main
    backendRefs:
    - {name: app-stable, port: 80}
    - {name: app-canary, port: 80, weight: 0}
---
apiVersion: gateway.meshgate.dev/v1alpha1
kind: Rollout
metadata: {name: app, namespace: default}
spec:
  targetRef: {kind: HTTPRoute, name: app, ruleName: main}
  stableBackend: {name: app-stable}
  canaryBackend: {name: app-canary}
  steps:
  - {weight: 5, minDuration: 10s, minRequests: 20}
  - {weight: 25, minDuration: 10s, minRequests: 20}
  - {weight: 100, minDuration: 10s, minRequests: 20}
  analysis: {maxErrorRate: "1"}
`))
	if err != nil || len(snap.Rejected) > 0 {
		t.Fatalf("parse: %v %v", err, snap.Rejected)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e := rollout.NewEngine(rollout.NewSink(), true)
	e.Now = func() time.Time { return now }
	e.Prepare(snap)
	serve := func(backend string, n, status int) {
		for range n {
			e.Sink.ObserveRequest(&obs.Request{Route: "default/app", Backend: "service/default/" + backend + ":80", Status: status, Duration: 4 * time.Millisecond})
		}
	}
	d := New(Options{Config: testConfig, Rollouts: e.Views})
	get := func() *Rollout {
		t.Helper()
		var s Snapshot
		b, err := d.snapshotJSON()
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatal(err)
		}
		if len(s.Rollouts) != 1 {
			t.Fatalf("snapshot has %d rollouts, want 1: %s", len(s.Rollouts), b)
		}
		return s.Rollouts[0]
	}

	r := get()
	if r.Name != "default/app" || r.Target != "HTTPRoute app" || r.Rule != "main" || r.StableBackend != "app-stable" || r.CanaryBackend != "app-canary" ||
		r.Phase != "Progressing" || r.Step != 1 || r.Steps != 3 || r.CanaryWeight != 5 || r.StepStartedAt == nil || r.RollbackReason != "" {
		t.Fatalf("at start: %+v", r)
	}

	// Step 1 passes; step 2 measures a window.
	serve("app-canary", 30, 200)
	serve("app-stable", 300, 200)
	now = now.Add(10 * time.Second)
	e.Tick()
	serve("app-canary", 40, 200)
	serve("app-stable", 160, 200)
	now = now.Add(time.Second)
	e.Tick()
	r = get()
	if r.Phase != "Progressing" || r.Step != 2 || r.CanaryWeight != 25 || r.Canary == nil || r.Stable == nil ||
		r.Canary.Requests != 40 || r.Canary.Errors != 0 || r.Canary.ErrorPct != 0 || r.Canary.P99 == "" || r.Stable.Requests != 160 {
		t.Fatalf("in step 2: %+v canary %+v stable %+v", r, r.Canary, r.Stable)
	}

	// The canary fails: rolled back, with why and the window's figures.
	serve("app-canary", 10, 503)
	now = now.Add(time.Second)
	e.Tick()
	r = get()
	if r.Phase != "RolledBack" || r.CanaryWeight != 0 || r.Step != 2 || r.RollbackReason != "ThresholdBreached" ||
		!strings.Contains(r.RollbackMessage, "canary error rate 20.00% > maxErrorRate 1% (10 of 50 requests failed; stable 0.00%)") {
		t.Fatalf("after the breach: %+v", r)
	}
	if r.Canary == nil || r.Canary.Requests != 50 || r.Canary.Errors != 10 || r.Canary.ErrorPct != 20 || r.Stable == nil || r.Stable.Requests != 160 {
		t.Fatalf("figures of the rolled back window: canary %+v stable %+v", r.Canary, r.Stable)
	}

	// Without Options.Rollouts the list is empty, not null.
	b, err := New(Options{Config: testConfig}).snapshotJSON()
	if err != nil || !bytes.Contains(b, []byte(`"rollouts":[]`)) {
		t.Errorf("snapshot without rollouts: %v %s", err, b)
	}
}

// TestEdgeMemoAfterDrop: a record whose memo holds an edge series that was
// dropped (idle for a window) counts its next request in a new series,
// not in the dropped one.
func TestEdgeMemoAfterDrop(t *testing.T) {
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	d := New(Options{Config: testConfig, Now: clk.Now})
	r := req(storefront, v1, "10.0.1.11:8080", 200, time.Millisecond)
	d.ObserveRequest(r)
	d.ObserveRequest(r) // through the memo
	checkMetrics(t, "before", findRoute(t, d.Snapshot(), storefront).Metrics, 2, 0, 0.2, pf(0), pf(1))
	clk.Add(11 * time.Second)
	d.Snapshot() // drops the idle series
	if n := d.edges.Size(); n != 0 {
		t.Fatalf("%d edge series kept after an idle window", n)
	}
	d.ObserveRequest(r)
	checkMetrics(t, "after the drop", findRoute(t, d.Snapshot(), storefront).Metrics, 1, 0, 0.1, pf(0), pf(1))
}

// TestObserveRequestTakesRecordTime: a request counts in the second it
// ended (Start+Duration), not the second the dashboard's clock shows; a
// record without a Start counts now.
func TestObserveRequestTakesRecordTime(t *testing.T) {
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	d := New(Options{Config: testConfig, Now: clk.Now})
	ended := func(ago time.Duration) *obs.Request {
		r := req(storefront, v1, "10.0.1.11:8080", 200, time.Millisecond)
		r.Start = clk.t.Add(-ago - r.Duration)
		return r
	}
	d.ObserveRequest(ended(0))
	d.ObserveRequest(ended(2 * time.Second))
	d.ObserveRequest(ended(30 * time.Second)) // long before the window
	d.ObserveRequest(req(storefront, v1, "10.0.1.11:8080", 200, time.Millisecond))
	checkMetrics(t, "route", findRoute(t, d.Snapshot(), storefront).Metrics, 3, 0, 0.3, pf(0), pf(1))
}

// TestSeriesLateRecords: a record that finishes in an earlier second than
// the last one counted (requests end on several cores at once) counts in
// its own second while it is in the window and is dropped after; the
// newest second keeps counting.
func TestSeriesLateRecords(t *testing.T) {
	s := newSeries(10)
	for _, sec := range []int64{100, 102, 101, 102, 102, 92, 94, 103} {
		s.add(sec, false, time.Millisecond)
	}
	per := map[int64]uint64{}
	for _, b := range s.buckets {
		if b.requests > 0 {
			per[b.sec] = b.requests
		}
	}
	// 92 is outside the window ending at 102 (93..102); 94 is inside.
	want := map[int64]uint64{94: 1, 100: 1, 101: 1, 102: 3, 103: 1}
	if fmt.Sprint(per) != fmt.Sprint(want) {
		t.Errorf("requests by second %v, want %v", per, want)
	}
	var a agg
	s.read(103, &a)
	if a.requests != 7 { // 94..103: 94, 100, 101, 102 (3), 103
		t.Errorf("window ending at 103 holds %d requests, want 7", a.requests)
	}
}

// TestEndSecond: endSecond agrees with start.Add(d).Unix() across second
// boundaries, for negative durations and for times before 1970.
func TestEndSecond(t *testing.T) {
	starts := []time.Time{time.Unix(1_700_000_000, 999_999_999), time.Unix(1_700_000_000, 0), time.Unix(-5, 3), time.Now()}
	durations := []time.Duration{0, 1, -1, time.Millisecond, time.Second, time.Second - 1, -time.Second, 90 * time.Minute, -1500 * time.Millisecond}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 1000 {
		starts = append(starts, time.Unix(rng.Int64N(4_000_000_000)-1_000_000_000, rng.Int64N(1e9)))
	}
	for _, s := range starts {
		random := time.Duration(rng.Int64N(int64(time.Hour)) - int64(time.Minute))
		for _, d := range append(durations, random) {
			if got, want := endSecond(s, d), s.Add(d).Unix(); got != want {
				t.Errorf("endSecond(%v, %v) = %d, want %d", s, d, got, want)
			}
		}
	}
}
