package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// adminBody fetches an admin path and returns status and body.
func (g *gateway) adminBody(path string) (int, string) {
	g.t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + g.adminAddr + path)
	if err != nil {
		g.t.Fatalf("admin GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAdminAPI checks /config (applied config, no Secret data), /routes (the
// compiled tables in precedence order) and /explain (which route serves a
// request and why).
func TestAdminAPI(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	p, pTLS := freePort(t, ip), freePort(t, ip)
	cert := newTestCert(t, "admin.test")
	a, b := newBackend(t, "a"), newBackend(t, "b")
	cfg := gatewayYAML(ip, listener{name: "http", port: p}, listener{name: "https", port: pTLS, protocol: "HTTPS", certs: []string{"admin-tls"}}) +
		cert.secretYAML("admin-tls") + a.yaml() + b.yaml() + `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: api, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: [api.test]
  rules:
  - matches: [{path: {type: PathPrefix, value: /v1}, headers: [{name: x-canary, value: "yes"}]}]
    backendRefs: [` + ref("b") + `]
  - matches: [{path: {type: PathPrefix, value: /v1}}]
    backendRefs: [` + wref("a", 90) + `, ` + wref("b", 10) + `]
`
	g := startGateway(t, ip, cfg)

	t.Run("config", func(t *testing.T) {
		code, body := g.adminBody("/config")
		if code != 200 {
			t.Fatalf("GET /config: %d", code)
		}
		var st struct {
			Generation int64 `json:"generation"`
			Config     struct {
				Listeners []struct {
					Address      string `json:"address"`
					Certificates []struct {
						Name string `json:"name"`
					} `json:"certificates"`
				} `json:"listeners"`
			} `json:"config"`
			Statuses []struct {
				Kind, Name string
			} `json:"statuses"`
		}
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatalf("not JSON: %v", err)
		}
		if st.Generation != 1 || len(st.Config.Listeners) != 2 || len(st.Statuses) == 0 {
			t.Fatalf("generation %d, %d listeners, %d statuses", st.Generation, len(st.Config.Listeners), len(st.Statuses))
		}
		if strings.Contains(body, "BEGIN") || strings.Contains(body, strings.Split(cert.keyPEM, "\n")[1]) {
			t.Fatal("/config shows certificate or key data")
		}
		if !strings.Contains(body, "secret/default/admin-tls") {
			t.Error("/config does not name the certificate's Secret")
		}
	})

	t.Run("metrics", func(t *testing.T) {
		for i := 0; i < 3; i++ {
			if r := get(t, g.url(p, "/v1/x"), "api.test"); r.status != 200 {
				t.Fatalf("got %v", r)
			}
		}
		get(t, g.url(p, "/nothing"), "nowhere.test")
		code, body := g.adminBody("/metrics")
		if code != 200 {
			t.Fatalf("GET /metrics: %d", code)
		}
		for _, want := range []string{
			`route="default/api"`,
			`meshgate_gateway_errors_total{reason="no_route"} 1`,
			`meshgate_config_generation 1`,
			`meshgate_config_reloads_total{result="success"} 1`,
			`meshgate_certificate_expiry_timestamp_seconds{certificate="secret/default/admin-tls"`,
			`meshgate_connections_active{`,
			`meshgate_http_request_duration_seconds_bucket{`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
		var total float64
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, "meshgate_http_requests_total{") && strings.Contains(line, `route="default/api"`) && strings.Contains(line, `code_class="2xx"`) {
				var v float64
				fmt.Sscan(line[strings.LastIndex(line, " ")+1:], &v)
				total += v
			}
		}
		if total != 3 {
			t.Errorf("meshgate_http_requests_total for default/api 2xx = %v, want 3", total)
		}
	})

	t.Run("routes", func(t *testing.T) {
		code, body := g.adminBody("/routes")
		if code != 200 {
			t.Fatalf("GET /routes: %d", code)
		}
		canary := strings.Index(body, "default/api rule 0")
		split := strings.Index(body, "default/api rule 1")
		if canary < 0 || split < 0 || canary > split {
			t.Fatalf("routes not listed in precedence order (header match first):\n%s", body)
		}
		if !strings.Contains(body, "backend/default/a 90%, backend/default/b 10%") {
			t.Errorf("split not shown:\n%s", body)
		}
	})

	explain := func(t *testing.T, q url.Values) map[string]any {
		t.Helper()
		code, body := g.adminBody("/explain?" + q.Encode())
		if code != 200 {
			t.Fatalf("GET /explain: %d %s", code, body)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	port := strings.TrimPrefix(g.addr(p), ip+":")
	t.Run("explain header route", func(t *testing.T) {
		m := explain(t, url.Values{"host": {"api.test"}, "path": {"/v1/users"}, "header": {"x-canary: yes"}, "listener": {port}})
		chosen, _ := m["chosen"].(map[string]any)
		if chosen == nil || chosen["route"] != "default/api" || chosen["rule"] != float64(0) {
			t.Fatalf("chosen %v; answer %v", chosen, m["answer"])
		}
	})
	t.Run("explain split route and why", func(t *testing.T) {
		m := explain(t, url.Values{"host": {"api.test"}, "path": {"/v1/users"}, "listener": {port}})
		chosen, _ := m["chosen"].(map[string]any)
		if chosen == nil || chosen["rule"] != float64(1) {
			t.Fatalf("chosen %v", chosen)
		}
		cands, _ := m["candidates"].([]any)
		if len(cands) != 2 || cands[0].(map[string]any)["matched"] != false {
			t.Fatalf("candidates %v", cands)
		}
		if ans, _ := m["answer"].(string); !strings.Contains(ans, "1 route(s) before it") {
			t.Errorf("answer %q does not say why", ans)
		}
	})
	t.Run("explain no route", func(t *testing.T) {
		m := explain(t, url.Values{"host": {"other.test"}, "path": {"/"}, "listener": {port}})
		if m["chosen"] != nil || !strings.HasPrefix(m["answer"].(string), "404") {
			t.Fatalf("got %v", m)
		}
	})
	t.Run("explain needs a listener when there are several", func(t *testing.T) {
		code, _ := g.adminBody("/explain?path=/")
		if code != http.StatusBadRequest {
			t.Fatalf("status %d, want 400", code)
		}
	})
}
