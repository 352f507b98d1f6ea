package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// planRoute is an HTTPRoute "api" on gw for host api.test splitting /v1
// between backends a and b by weight.
func planRoute(wa, wb int) string {
	return `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: api, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: [api.test]
  rules:
  - matches: [{path: {type: PathPrefix, value: /v1}}]
    backendRefs: [` + wref("a", wa) + `, ` + wref("b", wb) + `]
`
}

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPlanFiles covers `gateway plan --config NEW --config-old OLD`: exit 0
// and "No changes" for the same config, 2 with the listener, route and
// weight changes spelled out, 1 when NEW has a rejected object or does not
// parse, and --output json.
func TestPlanFiles(t *testing.T) {
	t.Parallel()
	base := gatewayYAML("127.0.0.1", listener{name: "http", port: 18080}) + backendYAML("a", 9001) + backendYAML("b", 9002)
	oldPath := writeTemp(t, "old.yaml", base+planRoute(90, 10))

	t.Run("no change", func(t *testing.T) {
		code, out := runCLI(t, "plan", "--config", writeTemp(t, "new.yaml", base+planRoute(90, 10)), "--config-old", oldPath)
		if code != 0 || !strings.Contains(out, "No changes") {
			t.Fatalf("exit %d, want 0 and No changes:\n%s", code, out)
		}
	})

	t.Run("weight change", func(t *testing.T) {
		code, out := runCLI(t, "plan", "--config", writeTemp(t, "new.yaml", base+planRoute(50, 50)), "--config-old", oldPath)
		if code != 2 {
			t.Fatalf("exit %d, want 2:\n%s", code, out)
		}
		for _, want := range []string{"~ default/api rule 0 match 0 [127.0.0.1:18080]", "weight backend/default/a: 90 → 50 (share 90% → 50%)",
			"weight backend/default/b: 10 → 50", "Plan: 0 to add, 0 to remove, 1 to change."} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("listener and route added, match changed", func(t *testing.T) {
		cfg := gatewayYAML("127.0.0.1", listener{name: "http", port: 18080}, listener{name: "admin", port: 18081, hostname: "admin.test"}) +
			backendYAML("a", 9001) + backendYAML("b", 9002) + strings.Replace(planRoute(90, 10), "value: /v1", "value: /v2", 1) + `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: extra, namespace: default}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  rules:
  - matches: [{path: {type: Exact, value: /health}, method: GET}]
    backendRefs: [` + ref("a") + `]
`
		code, out := runCLI(t, "plan", "--config", writeTemp(t, "new.yaml", cfg), "--config-old", oldPath)
		if code != 2 {
			t.Fatalf("exit %d, want 2:\n%s", code, out)
		}
		for _, want := range []string{"+ 127.0.0.1:18081: HTTP", "+ default/gw/admin [127.0.0.1:18081]: hostname admin.test",
			"match: PathPrefix /v1 → PathPrefix /v2", "+ default/extra rule 0 match 0 [127.0.0.1:18080]", "when Exact /health, method GET"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("rejected object", func(t *testing.T) {
		bad := base + planRoute(90, 10) + `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: bad-regex, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: RegularExpression, value: "/x/(unclosed"}}]
    backendRefs: [` + ref("a") + `]
`
		code, out := runCLI(t, "plan", "--config", writeTemp(t, "new.yaml", bad), "--config-old", oldPath)
		if code != 1 || !regexp.MustCompile(`! HTTPRoute default/bad-regex \(newly rejected\): .*spec\.rules\[0\]`).MatchString(out) {
			t.Fatalf("exit %d, want 1 and the rejection:\n%s", code, out)
		}
	})

	t.Run("parse error", func(t *testing.T) {
		code, out := runCLI(t, "plan", "--config", writeTemp(t, "new.yaml", "kind: [unclosed\n"), "--config-old", oldPath)
		if code != 1 || !strings.Contains(out, "new config cannot be used") {
			t.Fatalf("exit %d, want 1:\n%s", code, out)
		}
	})

	t.Run("json", func(t *testing.T) {
		code, out := runCLI(t, "plan", "--output", "json", "--config", writeTemp(t, "new.yaml", base+planRoute(50, 50)), "--config-old", oldPath)
		if code != 2 {
			t.Fatalf("exit %d, want 2:\n%s", code, out)
		}
		var p struct {
			Changes []struct {
				Op, Kind, ID, Route string
				Details             []string
			}
		}
		if err := json.Unmarshal([]byte(out), &p); err != nil {
			t.Fatalf("%v:\n%s", err, out)
		}
		if len(p.Changes) != 1 || p.Changes[0].Op != "changed" || p.Changes[0].Kind != "route" || p.Changes[0].Route != "default/api" {
			t.Fatalf("changes = %+v", p.Changes)
		}
	})
}

// TestPlanAgainstRunning covers `gateway plan --against ADMIN`: the
// running config is the old one, and the affected route's live requests
// per second (under a bounded load loop) and its listener's connections
// are shown; the same diff is logged as "config diff" when it is applied.
func TestPlanAgainstRunning(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	port := freePort(t, ip)
	a, b := newBackend(t, "a"), newBackend(t, "b")
	base := gatewayYAML(ip, listener{name: "http", port: port}) + a.yaml() + b.yaml()
	g := startGateway(t, ip, base+planRoute(90, 10))

	// Same config: no change, exit 0, no live figures needed.
	code, out := runCLI(t, "plan", "--config", writeTemp(t, "same.yaml", base+planRoute(90, 10)), "--against", g.adminAddr)
	if code != 0 || !strings.Contains(out, "No changes") {
		t.Fatalf("same config: exit %d, want 0:\n%s", code, out)
	}

	// Load on the route for as long as the plan samples (bounded).
	stop := make(chan struct{})
	var wg sync.WaitGroup
	c := newClient()
	defer c.CloseIdleConnections()
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				select {
				case <-stop:
					return
				default:
				}
				tryDo(c, request{url: g.url(port, "/v1/load"), host: "api.test"})
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	newCfg := base + planRoute(50, 50)
	code, out = runCLI(t, "plan", "--config", writeTemp(t, "new.yaml", newCfg), "--against", "http://"+g.adminAddr)
	close(stop)
	wg.Wait()
	if code != 2 {
		t.Fatalf("exit %d, want 2:\n%s", code, out)
	}
	if !strings.Contains(out, "weight backend/default/a: 90 → 50") {
		t.Errorf("output lacks the weight change:\n%s", out)
	}
	m := regexp.MustCompile(`route default/api: ([0-9.]+) req/s`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no live rps for default/api:\n%s", out)
	}
	if rps, _ := strconv.ParseFloat(m[1], 64); rps <= 0 {
		t.Errorf("live rps %v, want > 0:\n%s", rps, out)
	}
	if !regexp.MustCompile(`listener ` + regexp.QuoteMeta(g.addr(port)) + `: [1-9][0-9]* open connection`).MatchString(out) {
		t.Errorf("no open connections shown for %s:\n%s", g.addr(port), out)
	}

	// The reload logs the same diff.
	g.reload(newCfg)
	e := g.findLog("config diff", func(e map[string]any) bool { return e["changed"] == float64(1) })
	if e == nil {
		t.Fatalf("no config diff log with 1 change")
	}
	if s, _ := json.Marshal(e["changes"]); !strings.Contains(string(s), "weight backend/default/a: 90 → 50") {
		t.Errorf("config diff changes = %s", s)
	}
}
