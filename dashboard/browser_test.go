package dashboard

import (
	"context"
	"math"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mgv1alpha1 "github.com/meshgate/meshgate/api/v1alpha1"

	"github.com/meshgate/meshgate/dataplane"
	"github.com/meshgate/meshgate/ir"
	"github.com/meshgate/meshgate/obs"
	"github.com/meshgate/meshgate/rollout"
	"github.com/meshgate/meshgate/server"
)

const chromiumPath = "/usr/bin/chromium"

// TestDashboardInChromium loads the page in headless Chromium: it shows the
// routes of the config and a live connection, and its numbers move when
// traffic is observed. With DASHBOARD_SCREENSHOT=path it also writes a
// full-page screenshot there (for the README); normal runs write nothing.
func TestDashboardInChromium(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("headless Chromium is required at %s: %v", chromiumPath, err)
	}
	shot := os.Getenv("DASHBOARD_SCREENSHOT")
	cfg := testConfig()
	if shot != "" {
		cfg = screenshotConfig(t)
	}
	d := New(Options{
		Config:   func() *ir.Config { return cfg },
		Stats:    fakeStats,
		Interval: 250 * time.Millisecond,
	})
	t0 := time.Now()
	d.ObserveReload(&obs.Reload{Time: t0.Add(-40 * time.Minute), Generation: 1, OK: true, Duration: 3 * time.Millisecond, Listeners: len(cfg.Listeners)})
	d.ObserveReload(&obs.Reload{Time: t0.Add(-12 * time.Minute), Generation: 1, Error: "listener 0.0.0.0:443: listen tcp 0.0.0.0:443: bind: address already in use", Duration: 2 * time.Millisecond, Listeners: len(cfg.Listeners)})
	d.ObserveReload(&obs.Reload{Time: t0.Add(-3 * time.Minute), Generation: 2, OK: true, Duration: 4 * time.Millisecond, Listeners: len(cfg.Listeners), Rejected: 1})

	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	defer d.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.WindowSize(1440, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()

	if err := chromedp.Do(bctx,
		chromedp.Navigate(srv.URL+"/dashboard/"),
		chromedp.WaitVisible(chromedp.CSS(`[data-test=route-name]`)),
	); err != nil {
		t.Fatalf("page did not show routes: %v", err)
	}
	names, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](
		`[...document.querySelectorAll('[data-test=route-name]')].map(e => e.textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{storefront, apiRoute} {
		if !slices.Contains(names, want) {
			t.Errorf("page shows routes %q, missing %q", names, want)
		}
	}
	if _, err := chromedp.Run(bctx, chromedp.Poll[bool](
		`document.querySelector('[data-test=status]').textContent === 'live'`)); err != nil {
		t.Fatalf("status never became live: %v", err)
	}

	sel := `[data-route="` + storefront + `"] [data-test=route-requests]`
	before, err := textOf(bctx, sel)
	if err != nil {
		t.Fatal(err)
	}
	if before != "0" {
		t.Fatalf("requests before any traffic: %q, want 0", before)
	}

	feed(d, 200, 200, time.Now())

	moved, err := chromedp.Run(bctx, chromedp.Poll[string](`(() => {
		const e = document.querySelector('`+sel+`');
		return e && e.textContent !== '0' ? e.textContent : null;
	})()`))
	if err != nil {
		t.Fatalf("request count never moved: %v", err)
	}
	if n, err := strconv.Atoi(moved); err != nil || n <= 0 {
		t.Errorf("request count %q, want a positive number", moved)
	}
	rate, err := textOf(bctx, `[data-route="`+storefront+`"] [data-test=route-rate] .kpi-value`)
	if err != nil || rate == "0/s" || rate == "–" {
		t.Errorf("route rate %q (%v), want > 0", rate, err)
	}
	shares, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](
		`[...document.querySelectorAll('[data-route="`+storefront+`"] [data-test=observed-share]')].map(e => e.textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	if len(shares) != 2 || !strings.HasSuffix(shares[0], "%") || shares[0] == "0%" {
		t.Errorf("observed split %q, want two percentages", shares)
	}
	// Everything came from the gateway itself.
	local, err := chromedp.Run(bctx, chromedp.Evaluate[bool](
		`performance.getEntriesByType('resource').every(e => e.name.startsWith(location.origin + '/'))`))
	if err != nil || !local {
		t.Errorf("page loaded resources from elsewhere (%v)", err)
	}

	if shot != "" {
		screenshot(bctx, t, d, shot)
	}

	// When the gateway goes away the page says so and keeps retrying.
	d.Close()
	if _, err := chromedp.Run(bctx, chromedp.Poll[bool](
		`document.querySelector('[data-test=status]').textContent === 'reconnecting'`)); err != nil {
		t.Fatalf("status never became reconnecting: %v", err)
	}
}

// screenshot lets the rates settle into a believable picture and writes a
// full-page PNG to path.
func screenshot(ctx context.Context, t *testing.T, d *Dashboard, path string) {
	feed(d, 2600, 5000, time.Now())
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`(() => {
		const e = document.querySelector('[data-test=total-requests]');
		return e && (e.textContent.endsWith('k') || parseInt(e.textContent, 10) > 5000);
	})()`)); err != nil {
		t.Fatal(err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot written to %s", path)
}

// feed observes a believable mix of traffic in random order: the
// storefront split 90/10 with a slower canary, the API with an endpoint
// answering some 503s, stray requests matching no route and (for the
// screenshot config) checkout with a failing endpoint and redirects.
func feed(d *Dashboard, storefrontN, apiN int, now time.Time) {
	rng := rand.New(rand.NewPCG(1, 2))
	lat := func(median time.Duration) time.Duration {
		return time.Duration(float64(median) * math.Exp(rng.NormFloat64()*0.45))
	}
	var recs []obs.Request
	add := func(f func(r *obs.Request)) {
		var r obs.Request
		r.Reset()
		r.Start, r.Listener, r.Method, r.Proto, r.Status = now, listenerAddr, "GET", "HTTP/2.0", 200
		f(&r)
		recs = append(recs, r)
	}
	for i := range storefrontN {
		add(func(r *obs.Request) {
			r.Route, r.Rule, r.Path = storefront, 0, "/products/"+strconv.Itoa(i%40)
			if rng.IntN(100) < 90 {
				r.Backend = v1
				r.Endpoint = []string{"10.0.1.11:8080", "10.0.1.12:8080"}[i%2]
				r.Duration = lat(18 * time.Millisecond)
			} else {
				r.Backend, r.Endpoint = v2, "10.0.1.21:8080"
				r.Duration = lat(26 * time.Millisecond)
			}
		})
	}
	for i := range apiN {
		add(func(r *obs.Request) {
			r.Route, r.Rule, r.Backend, r.Path = apiRoute, 0, apiBackend, "/v1/orders/"+strconv.Itoa(1000+i%300)
			r.Endpoint = []string{"10.0.2.11:9000", "10.0.2.12:9000", "10.0.2.13:9000"}[i%3]
			r.Duration = lat(7 * time.Millisecond)
			if r.Endpoint == "10.0.2.13:9000" && i%50 == 2 {
				r.Status, r.Reason, r.Duration = 503, "upstream_connect", lat(2*time.Millisecond)
			}
			if i%997 == 5 {
				r.Status, r.Reason, r.Duration = 504, "upstream_timeout", 15*time.Second
			}
		})
	}
	for i := range apiN / 400 {
		add(func(r *obs.Request) {
			r.Status, r.Reason, r.Path, r.Duration = 404, "no_route", "/wp-login.php?"+strconv.Itoa(i), 80*time.Microsecond
		})
	}
	if apiN >= 1000 {
		// The extra listener of the screenshot config.
		for i := range apiN / 4 {
			add(func(r *obs.Request) {
				r.Listener, r.Method, r.Route, r.Rule, r.Backend, r.Path = "0.0.0.0:8443", "POST", "shop/checkout", 0, "service/shop/checkout:8443", "/checkout/cart"
				r.Endpoint = []string{"10.0.4.11:8443", "10.0.4.12:8443"}[i%2]
				r.Duration = lat(45 * time.Millisecond)
				if r.Endpoint == "10.0.4.12:8443" {
					r.Status, r.Reason, r.Duration = 502, "upstream_reset", lat(3*time.Millisecond)
				}
			})
		}
		for range apiN / 20 {
			add(func(r *obs.Request) {
				r.Listener, r.Route, r.Rule, r.Path, r.Status, r.Reason, r.Duration = "0.0.0.0:8443", "shop/legacy", 0, "/old/catalog", 301, "redirect", 60*time.Microsecond
			})
		}
	}
	rng.Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
	for i := range recs {
		d.ObserveRequest(&recs[i])
	}
}

func fakeStats() dataplane.Stats {
	l4 := dataplane.L4Stats{Protocol: ir.ProtocolTCP}
	l4.Active, l4.Accepted, l4.ConnectFailed = 14, 1289, 2
	return dataplane.Stats{
		HTTP: map[string]server.Stats{
			listenerAddr:   {H1: 38, H2: 11},
			"0.0.0.0:8443": {H1: 5, H2: 57, TLSHandshakes: 9120, TLSHandshakeErrors: 3},
		},
		L4:      map[string]dataplane.L4Stats{"0.0.0.0:5432": l4},
		Tunnels: 6,
	}
}

// screenshotConfig is testConfig plus an HTTPS listener (a certificate,
// checkout and a redirect) and a TCP listener, for the README picture.
func screenshotConfig(t *testing.T) *ir.Config {
	cfg := testConfig()
	certPEM, keyPEM := selfSigned(t, time.Now().Add(83*24*time.Hour))
	https := &ir.Listener{
		Name: "0.0.0.0:8443", Address: "0.0.0.0:8443", Protocol: ir.ProtocolHTTPS,
		Certificates: []*ir.Certificate{{Name: "secret/infra/example-com-tls", Hostnames: []string{"*.example.com"}, CertPEM: certPEM, KeyPEM: keyPEM}},
		Hosts: []*ir.ListenerHost{{Name: "infra/edge/https", Hostname: "*.example.com", Routes: []*ir.Route{
			{
				Name: "shop/checkout", Hostnames: []string{"shop.example.com"},
				Match:    ir.Match{Path: ir.PathMatch{Type: ir.PathPrefix, Value: "/checkout"}, Method: "POST"},
				Timeouts: ir.Timeouts{Request: 10 * time.Second},
				Backends: []ir.WeightedBackend{{Weight: 1, Target: &ir.Backend{
					Name: "service/shop/checkout:8443", Protocol: ir.BackendHTTP1,
					TLS:       &ir.UpstreamTLS{ServerName: "checkout.shop.svc", CAName: "configmap/shop/internal-ca"},
					Endpoints: []ir.Endpoint{{Address: "10.0.4.11:8443"}, {Address: "10.0.4.12:8443"}},
				}}},
			},
			{
				Name: "shop/legacy", Hostnames: []string{"shop.example.com"},
				Match: ir.Match{Path: ir.PathMatch{Type: ir.PathPrefix, Value: "/old"}},
				Filters: []ir.Filter{{Type: ir.FilterRequestRedirect, RequestRedirect: &ir.Redirect{StatusCode: 301,
					Path: &ir.PathModifier{Type: ir.PrefixMatchReplace, Value: "/"}}}},
			},
		}}},
	}
	tcp := &ir.Listener{
		Name: "0.0.0.0:5432", Address: "0.0.0.0:5432", Protocol: ir.ProtocolTCP,
		Hosts: []*ir.ListenerHost{{Name: "data/db/postgres", L4Routes: []*ir.L4Route{{Name: "data/postgres", Backends: []ir.WeightedBackend{
			{Weight: 1, Target: &ir.Backend{Name: "service/data/postgres:5432", Protocol: ir.BackendTCP, Endpoints: []ir.Endpoint{{Address: "10.0.3.5:5432"}}}},
		}}}}},
	}
	cfg.Listeners = append(cfg.Listeners, https, tcp)
	return cfg
}

// TestRolloutsInChromium: the page shows each Rollout with its phase, step
// and weight, and for a rolled back one the reason with its figures.
func TestRolloutsInChromium(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("headless Chromium is required at %s: %v", chromiumPath, err)
	}
	started := metav1.NewTime(time.Now().Add(-20 * time.Second))
	views := []rollout.View{
		{Namespace: "default", Name: "app", Target: "HTTPRoute app", RuleName: "main", Stable: "app-stable", Canary: "app-canary", Steps: 4,
			Status: mgv1alpha1.RolloutStatus{Phase: mgv1alpha1.RolloutRolledBack, Step: 1, StepStartedAt: &started,
				Message: "rolled back at step 2/4 (25%): canary error rate 8.32% > maxErrorRate 1% (74 of 889 requests failed; stable 0.00%)",
				Canary:  &mgv1alpha1.RolloutMeasurement{Requests: 889, Errors: 74, ErrorRate: "8.32", P99: "8.74ms"},
				Stable:  &mgv1alpha1.RolloutMeasurement{Requests: 2894, ErrorRate: "0.00", P99: "4.22ms"},
				Conditions: []metav1.Condition{{Type: mgv1alpha1.RolloutConditionRolledBack, Status: metav1.ConditionTrue, Reason: "ThresholdBreached",
					Message: "rolled back at step 2/4 (25%): canary error rate 8.32% > maxErrorRate 1% (74 of 889 requests failed; stable 0.00%)"}}}},
		{Namespace: "default", Name: "web", Target: "HTTPRoute web", Stable: "web-v1", Canary: "web-v2", Steps: 3,
			Status: mgv1alpha1.RolloutStatus{Phase: mgv1alpha1.RolloutProgressing, Step: 2, CanaryWeight: 50, StepStartedAt: &started,
				Message: "step 2 passed: step 3/3, canary at 50%",
				Canary:  &mgv1alpha1.RolloutMeasurement{Requests: 120, ErrorRate: "0.00", P99: "5ms"},
				Stable:  &mgv1alpha1.RolloutMeasurement{Requests: 130, ErrorRate: "0.00", P99: "4ms"}}},
	}
	d := New(Options{Config: testConfig, Rollouts: func() []rollout.View { return views }, Interval: 250 * time.Millisecond})
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	defer d.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	if err := chromedp.Do(bctx,
		chromedp.Navigate(srv.URL+"/dashboard/"),
		chromedp.WaitVisible(chromedp.CSS(`[data-test=rollout]`)),
	); err != nil {
		t.Fatalf("page did not show rollouts: %v", err)
	}
	got, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('[data-test=rollout]')].map(r =>
		[r.dataset.rollout, r.querySelector('[data-test=rollout-phase]').textContent, r.querySelector('[data-test=rollout-step]').textContent,
		 r.querySelector('[data-test=rollout-weight]').textContent, (r.querySelector('[data-test=rollout-reason]') || {}).textContent || '',
		 r.querySelector('[data-test=rollout-canary-requests]').textContent, r.querySelector('[data-test=rollout-canary-errors]').textContent,
		 r.querySelector('[data-test=rollout-canary-p99]').textContent].join(' | '))`))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"default/app | RolledBack | 2/4 | 0% | ThresholdBreached: rolled back at step 2/4 (25%): canary error rate 8.32% > maxErrorRate 1% (74 of 889 requests failed; stable 0.00%) | 889 | 74 (8.32%) | 8.74ms",
		"default/web | Progressing | 3/3 | 50% |  | 120 | 0 (0.00%) | 5ms",
	}
	if !slices.Equal(got, want) {
		t.Errorf("rollouts shown:\n%q\nwant\n%q", got, want)
	}
}

// textOf reads the text of the element sel names in one evaluation. The page
// rebuilds its topology on every update, so a node found by one DevTools call
// may be gone by the next (chromedp.Text's "No node with given id found").
func textOf(ctx context.Context, sel string) (string, error) {
	return chromedp.Run(ctx, chromedp.Evaluate[string](
		`(() => { const e = document.querySelector(`+strconv.Quote(sel)+`); return e ? e.textContent : '<missing>'; })()`))
}
