package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Rollouts with --config: the gateway moves the canary weight itself,
// judging each step from its own measurements, and keeps progress in the
// --rollout-state file.

// rolloutYAML is a Gateway, the stable and canary Backends, an HTTPRoute
// whose rule "main" sends everything to stable, and a Rollout "app" with
// the given spec lines (steps, analysis, controls; indented 2).
func rolloutYAML(ip string, port int, stable, canary *backend, spec string) string {
	return gatewayYAML(ip, listener{name: "http", port: port}) + stable.yaml() + canary.yaml() + `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: app
  namespace: default
spec:
  parentRefs:
  - name: gw
  rules:
  - name: main
    backendRefs: [` + ref(stable.name) + `, ` + wref(canary.name, 0) + `]
---
apiVersion: gateway.meshgate.dev/v1alpha1
kind: Rollout
metadata:
  name: app
  namespace: default
spec:
  targetRef: {kind: HTTPRoute, name: app, ruleName: main}
  stableBackend: {name: ` + stable.name + `}
  canaryBackend: {name: ` + canary.name + `}
` + indent(spec, 2) + "\n"
}

// rolloutState is the state file's layout, as much as the tests read.
type rolloutState struct {
	Rollouts map[string]struct {
		Phase        string `json:"phase"`
		Step         int    `json:"step"`
		CanaryWeight int    `json:"canaryWeight"`
		Message      string `json:"message"`
		Canary       *struct {
			Requests int64  `json:"requests"`
			Errors   int64  `json:"errors"`
			Rate     string `json:"errorRate"`
		} `json:"canary"`
		Conditions []struct {
			Type, Status, Reason, Message string
		} `json:"conditions"`
	} `json:"rollouts"`
}

func readRolloutState(t *testing.T, path string) (phase string, step, weight int, msg string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		return "", 0, 0, ""
	}
	var st rolloutState
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("state file %s: %v\n%s", path, err, b)
	}
	r, ok := st.Rollouts["default/app"]
	if !ok {
		return "", 0, 0, ""
	}
	return r.Phase, r.Step, r.CanaryWeight, r.Message
}

// waitRollout polls the state file until want says yes or timeout passes.
func waitRollout(t *testing.T, path string, timeout time.Duration, what string, want func(phase string, step, weight int) bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		phase, step, weight, _ := readRolloutState(t, path)
		if want(phase, step, weight) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	phase, step, weight, msg := readRolloutState(t, path)
	b, _ := os.ReadFile(path)
	t.Fatalf("after %s, rollout not %s: phase %q step %d weight %d (%s)\n%s", timeout, what, phase, step, weight, msg, b)
}

// load sends GETs to url from 4 workers until the returned stop is called;
// it counts the answers per backend.
func load(t *testing.T, url string) (stop func() map[string]int) {
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
				resp, err := defaultClient.Do(req)
				if err != nil {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				seen[resp.Header.Get("X-Backend")+fmt.Sprint(resp.StatusCode)]++
				mu.Unlock()
			}
		}()
	}
	var once sync.Once
	stop = func() map[string]int {
		once.Do(func() { cancel(); wg.Wait() })
		mu.Lock()
		defer mu.Unlock()
		return seen
	}
	t.Cleanup(func() { stop() })
	return stop
}

// TestRolloutPromotedThroughEveryStep: a healthy canary goes 10% → 50% →
// 100% and the Rollout succeeds; then every request goes to it.
func TestRolloutPromotedThroughEveryStep(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	port := freePort(t, ip)
	stable, canary := newBackend(t, "stable"), newBackend(t, "canary")
	state := filepath.Join(t.TempDir(), "rollouts.json")
	g := startGateway(t, ip, rolloutYAML(ip, port, stable, canary, `steps:
- {weight: 10, minDuration: 1s, minRequests: 20}
- {weight: 50, minDuration: 1s, minRequests: 20}
- {weight: 100, minDuration: 1s, minRequests: 20}
analysis: {maxErrorRate: "1", maxP99Latency: 2s, maxErrorRateIncrease: "1"}`), "--rollout-state", state, "--rollout-interval", "100ms")
	stop := load(t, g.url(port, "/"))
	waitRollout(t, state, 30*time.Second, "Succeeded", func(p string, _, w int) bool { return p == "Succeeded" && w == 100 })
	stop()
	var weights []float64
	for _, e := range g.logs.entries() {
		if e["msg"] == "rollout step" {
			weights = append(weights, e["weight"].(float64))
		}
	}
	if fmt.Sprint(weights) != "[10 50 100]" {
		t.Errorf("steps logged at weights %v, want [10 50 100]", weights)
	}
	if g.findLog("rollout step passed", nil) == nil {
		t.Errorf("no \"rollout step passed\" log line")
	}
	time.Sleep(200 * time.Millisecond) // the reload of the last weight
	for i := 0; i < 50; i++ {
		r := get(t, g.url(port, "/"), "")
		if r.backend() != "canary" {
			t.Fatalf("after success request %d went to %q, want canary", i, r.backend())
		}
	}
}

// TestRolloutRollsBackFailingCanary: a canary answering 500 at 5% is rolled
// back to 0% well within its step's window, says why, and testers can still
// reach it with the override header.
func TestRolloutRollsBackFailingCanary(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	port := freePort(t, ip)
	stable, canary := newBackend(t, "stable"), newBackend(t, "canary")
	canary.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("X-Backend", "canary")
		w.WriteHeader(500)
		return true
	})
	state := filepath.Join(t.TempDir(), "rollouts.json")
	g := startGateway(t, ip, rolloutYAML(ip, port, stable, canary, `steps:
- {weight: 5, minDuration: 1m, minRequests: 100}
- {weight: 50, minDuration: 1m}
analysis: {maxErrorRate: "1", minRequests: 10}
override:
  header: {name: x-canary, value: "yes"}`), "--rollout-state", state, "--rollout-interval", "100ms")
	start := time.Now()
	stop := load(t, g.url(port, "/"))
	waitRollout(t, state, 30*time.Second, "RolledBack", func(p string, _, w int) bool { return p == "RolledBack" && w == 0 })
	took := time.Since(start)
	stop()
	if took >= time.Minute {
		t.Errorf("rolled back after %s, not within the 1m step", took)
	}
	_, _, _, msg := readRolloutState(t, state)
	if !strings.Contains(msg, "canary error rate 100.00% > maxErrorRate 1%") {
		t.Errorf("message %q does not give the measured error rate", msg)
	}
	if e := g.findLog("rollout rolled back", nil); e == nil {
		t.Errorf("no \"rollout rolled back\" log line")
	}
	time.Sleep(200 * time.Millisecond)
	for i := 0; i < 50; i++ {
		if r := get(t, g.url(port, "/"), ""); r.status != 200 || r.backend() != "stable" {
			t.Fatalf("after rollback request %d: %v, want 200 from stable", i, r)
		}
	}
	req, _ := http.NewRequest("GET", g.url(port, "/"), nil)
	req.Header.Set("x-canary", "yes")
	resp, err := defaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Backend") != "canary" {
		t.Errorf("override header went to %q, want canary", resp.Header.Get("X-Backend"))
	}
	if body := adminBody(t, g, "/metrics"); !strings.Contains(body, `meshgate_rollout_rollbacks_total{rollout="default/app"} 1`) ||
		!strings.Contains(body, `meshgate_rollout_weight{rollout="default/app"} 0`) {
		t.Errorf("metrics lack the rollback:\n%s", grepLines(body, "meshgate_rollout"))
	}
}

// TestRolloutRestartContinues: a gateway stopped at the second step starts
// again at the second step, from the state file.
func TestRolloutRestartContinues(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	port := freePort(t, ip)
	stable, canary := newBackend(t, "stable"), newBackend(t, "canary")
	state := filepath.Join(t.TempDir(), "rollouts.json")
	cfg := rolloutYAML(ip, port, stable, canary, `steps:
- {weight: 10, minDuration: 500ms, minRequests: 10}
- {weight: 30, minDuration: 1h, minRequests: 10}
- {weight: 100}`)
	g := startGateway(t, ip, cfg, "--rollout-state", state, "--rollout-interval", "100ms")
	stop := load(t, g.url(port, "/"))
	waitRollout(t, state, 20*time.Second, "at step 2", func(p string, s, w int) bool { return p == "Progressing" && s == 1 && w == 30 })
	stop()
	g.cmd.Process.Signal(syscall.SIGTERM)
	<-g.exited

	g2 := startGateway(t, ip, cfg, "--rollout-state", state, "--rollout-interval", "100ms")
	if e := g2.findLog("rollout continues", nil); e == nil || e["step"].(float64) != 1 || e["weight"].(float64) != 30 {
		t.Fatalf("restarted gateway did not continue at step 2 (30%%): %v", e)
	}
	if g2.findLog("rollout step", nil) != nil {
		t.Errorf("restarted gateway entered a step instead of continuing")
	}
	counts := map[string]int{}
	for i := 0; i < 400; i++ {
		counts[get(t, g2.url(port, "/"), "").backend()]++
	}
	if c := counts["canary"]; c < 80 || c > 160 {
		t.Errorf("after restart canary got %d of 400 requests, want about 30%%", c)
	}
}

// TestRolloutManualPause: spec.paused holds the first step however much
// traffic passes; unsetting it resumes and the rollout completes.
func TestRolloutManualPause(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	port := freePort(t, ip)
	stable, canary := newBackend(t, "stable"), newBackend(t, "canary")
	state := filepath.Join(t.TempDir(), "rollouts.json")
	spec := `steps:
- {weight: 20, minDuration: 300ms, minRequests: 5}
- {weight: 60, minDuration: 300ms, minRequests: 5}
paused: %v`
	g := startGateway(t, ip, rolloutYAML(ip, port, stable, canary, fmt.Sprintf(spec, true)), "--rollout-state", state, "--rollout-interval", "100ms")
	stop := load(t, g.url(port, "/"))
	waitRollout(t, state, 10*time.Second, "Paused", func(p string, _, w int) bool { return p == "Paused" && w == 20 })
	time.Sleep(2 * time.Second)
	if p, s, w, _ := readRolloutState(t, state); p != "Paused" || s != 0 || w != 20 {
		t.Fatalf("paused rollout moved: phase %s step %d weight %d", p, s, w)
	}
	seen := stop()
	if seen["canary200"] == 0 || seen["stable200"] == 0 {
		t.Errorf("while paused at 20%% both backends should serve: %v", seen)
	}
	g.reload(rolloutYAML(ip, port, stable, canary, fmt.Sprintf(spec, false)))
	stop = load(t, g.url(port, "/"))
	waitRollout(t, state, 20*time.Second, "Succeeded after resume", func(p string, _, w int) bool { return p == "Succeeded" && w == 100 })
	stop()
}

// adminBody is the body of GET admin path.
func adminBody(t *testing.T, g *gateway, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + g.adminAddr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
