package e2e

import (
	"context"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestDashboardLive opens the real gateway's live dashboard in headless
// Chromium: it lists the routes of the config, and its request count for a
// route moves when traffic goes through the gateway.
func TestDashboardLive(t *testing.T) {
	t.Parallel()
	const chromium = "/usr/bin/chromium"
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("headless Chromium is required at %s (make test installs it): %v", chromium, err)
	}
	ip := newLoopbackIP(t)
	p := freePort(t, ip)
	be := newBackend(t, "live")
	g := startGateway(t, ip, gatewayYAML(ip, listener{name: "http", port: p})+be.yaml()+simpleRoute("live", nil, "live")+simpleRoute("other", []string{"other.test"}, "live"))

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()

	if err := chromedp.Do(bctx,
		chromedp.Navigate("http://"+g.adminAddr+"/dashboard/"),
		chromedp.WaitVisible(chromedp.CSS(`[data-test=route-name]`)),
	); err != nil {
		t.Fatalf("dashboard did not show routes: %v", err)
	}
	names, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](
		`[...document.querySelectorAll('[data-test=route-name]')].map(e => e.textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"default/live", "default/other"} {
		if !slices.Contains(names, want) {
			t.Errorf("dashboard shows routes %q, missing %q", names, want)
		}
	}
	if _, err := chromedp.Run(bctx, chromedp.Poll[bool](
		`document.querySelector('[data-test=status]').textContent === 'live'`)); err != nil {
		t.Fatalf("dashboard never went live: %v", err)
	}

	for i := 0; i < 30; i++ {
		if r := get(t, g.url(p, "/hello"), ""); r.status != 200 {
			t.Fatalf("request %d: %v", i, r)
		}
	}
	sel := `[data-route="default/live"] [data-test=route-requests]`
	moved, err := chromedp.Run(bctx, chromedp.Poll[string](`(() => {
		const e = document.querySelector('`+sel+`');
		return e && e.textContent !== '0' ? e.textContent : null;
	})()`))
	if err != nil {
		t.Fatalf("request count never moved: %v", err)
	}
	if n, err := strconv.Atoi(moved); err != nil || n < 30 {
		t.Errorf("dashboard counts %q requests for default/live, want at least 30", moved)
	}
}
