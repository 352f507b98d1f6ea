package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestTrafficPolicyStatus covers how TrafficPolicies are judged: `gateway
// validate` rejects one whose target does not exist and one that loses a
// conflict to an older policy, each with a message naming the target, and
// accepts the winner; a running gateway reports the same through /config
// with the Gateway API reasons TargetNotFound and Conflicted; an invalid
// TrafficPolicy (retry attempts 11) is rejected naming the field while the
// rest of the config, including its route, serves.
func TestTrafficPolicyStatus(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	port := freePort(t, ip)
	be := newBackend(t, "app")
	const host = "status.test"
	cfg := gatewayYAML(ip, listener{name: "http", port: port}) + be.yaml() +
		simpleRoute("app", []string{host}, "app") + `---
apiVersion: gateway.meshgate.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: missing-target, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: no-such-route}]
  timeouts: {request: 5s}
---
apiVersion: gateway.meshgate.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: older, namespace: default, creationTimestamp: "2026-01-01T00:00:00Z"}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: app}]
  timeouts: {request: 5s}
---
apiVersion: gateway.meshgate.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: newer, namespace: default, creationTimestamp: "2026-02-01T00:00:00Z"}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: app}]
  timeouts: {request: 9s}
---
apiVersion: gateway.meshgate.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: too-many-attempts, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: app}]
  retry: {attempts: 11}
`
	t.Run("validate", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "policies.yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		code, out := runCLI(t, "validate", "--config", path)
		if code != 1 {
			t.Fatalf("exit %d, want 1:\n%s", code, out)
		}
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`(?m)^REJECTED +TrafficPolicy default/missing-target: TargetNotFound: spec\.targetRefs\[0\]: gateway\.networking\.k8s\.io/HTTPRoute default/no-such-route not found$`),
			regexp.MustCompile(`(?m)^REJECTED +TrafficPolicy default/newer: Conflicted: spec\.targetRefs\[0\]: TrafficPolicy default/older already targets .*HTTPRoute default/app and wins`),
			regexp.MustCompile(`(?m)^ACCEPTED +TrafficPolicy default/older$`),
			regexp.MustCompile(`(?m)^REJECTED +TrafficPolicy default/too-many-attempts\b.*spec\.retry\.attempts`),
			regexp.MustCompile(`(?m)^ACCEPTED +HTTPRoute default/app$`),
		} {
			if !want.MatchString(out) {
				t.Errorf("output does not match %s:\n%s", want, out)
			}
		}
	})

	t.Run("run", func(t *testing.T) {
		g := startGateway(t, ip, cfg)
		// The invalid policy is rejected by name and field...
		e := g.findLog("object rejected", func(m map[string]any) bool {
			return m["kind"] == "TrafficPolicy" && m["name"] == "too-many-attempts"
		})
		if e == nil {
			t.Fatalf("no \"object rejected\" log line for TrafficPolicy too-many-attempts")
		}
		if reason, _ := e["reason"].(string); !strings.Contains(reason, "spec.retry.attempts") {
			t.Errorf("rejection reason %q does not name spec.retry.attempts", reason)
		}
		// ...while the rest serves.
		for i := 0; i < 3; i++ {
			if r := get(t, g.url(port, "/"), host); r.status != http.StatusOK || r.backend() != "app" {
				t.Fatalf("GET /: %v, want the backend's 200", r)
			}
		}
		// Conditions in /config carry the Gateway API reasons.
		code, body := g.adminBody("/config")
		if code != http.StatusOK {
			t.Fatalf("admin /config: %d", code)
		}
		var state struct {
			Statuses []struct {
				Kind       string `json:"kind"`
				Name       string `json:"name"`
				Accepted   bool   `json:"accepted"`
				Conditions []struct {
					Type    string `json:"type"`
					Status  string `json:"status"`
					Reason  string `json:"reason"`
					Message string `json:"message"`
				} `json:"conditions"`
			} `json:"statuses"`
		}
		if err := json.Unmarshal([]byte(body), &state); err != nil {
			t.Fatalf("admin /config: %v", err)
		}
		want := map[string]struct {
			status, reason string
		}{
			"missing-target": {"False", "TargetNotFound"},
			"newer":          {"False", "Conflicted"},
			"older":          {"True", "Accepted"},
		}
		found := map[string]bool{}
		for _, st := range state.Statuses {
			w, ok := want[st.Name]
			if st.Kind != "TrafficPolicy" || !ok {
				continue
			}
			found[st.Name] = true
			var cond string
			for _, c := range st.Conditions {
				if c.Type == "Accepted" {
					cond = c.Status + " " + c.Reason
					if c.Status != w.status || c.Reason != w.reason {
						t.Errorf("TrafficPolicy %s: Accepted=%s reason %s (%s), want Accepted=%s reason %s", st.Name, c.Status, c.Reason, c.Message, w.status, w.reason)
					}
				}
			}
			if cond == "" {
				t.Errorf("TrafficPolicy %s has no Accepted condition: %+v", st.Name, st)
			}
		}
		for name := range want {
			if !found[name] {
				t.Errorf("/config has no status for TrafficPolicy %s", name)
			}
		}
	})
}
