package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestListenerSet covers ListenerSets (GEP-1713) from files: two teams
// attach their own listeners to one shared Gateway, on the Gateway's HTTP
// port and on an HTTPS port of their own, and each team's listeners serve
// only that team's routes. The Gateway's own catch-all listener keeps its
// route, which never sees the teams' hostnames; a third team's ListenerSet
// from a namespace the Gateway does not admit is not served, and `gateway
// validate` reports it NotAllowed.
func TestListenerSet(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	pHTTP, pTLS := freePort(t, ip), freePort(t, ip)
	certA := newTestCert(t, "a.team.test")
	site, teamA, teamB, teamC := newBackend(t, "site"), newBackend(t, "team-a"), newBackend(t, "team-b"), newBackend(t, "team-c")

	var cfg strings.Builder
	fmt.Fprintf(&cfg, `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: meshgate
spec:
  controllerName: gateway.meshgate.dev/controller
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: shared
  namespace: infra
spec:
  gatewayClassName: meshgate
  addresses:
  - type: IPAddress
    value: %s
  allowedListeners:
    namespaces:
      from: Selector
      selector:
        matchLabels:
          shared-gateway: "yes"
  listeners:
  - name: http
    protocol: HTTP
    port: %d
`, ip, pHTTP)
	for _, ns := range []string{"team-a", "team-b", "team-c"} {
		label := `  labels: {shared-gateway: "yes"}` + "\n"
		if ns == "team-c" {
			label = ""
		}
		fmt.Fprintf(&cfg, "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n%s", ns, label)
	}
	listenerSet := func(ns, name, listeners string) {
		fmt.Fprintf(&cfg, `---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata:
  name: %s
  namespace: %s
spec:
  parentRef:
    name: shared
    namespace: infra
  listeners:
%s
`, name, ns, listeners)
	}
	listenerSet("team-a", "a", fmt.Sprintf(`  - {name: http, protocol: HTTP, port: %d, hostname: a.team.test}
  - name: https
    protocol: HTTPS
    port: %d
    hostname: a.team.test
    tls: {certificateRefs: [{name: a-tls}]}`, pHTTP, pTLS))
	// The same listener name as team A's: names need only be unique
	// within one ListenerSet.
	listenerSet("team-b", "b", fmt.Sprintf(`  - {name: http, protocol: HTTP, port: %d, hostname: b.team.test}`, pHTTP))
	listenerSet("team-c", "c", fmt.Sprintf(`  - {name: http, protocol: HTTP, port: %d, hostname: c.team.test}`, pHTTP))

	route := func(ns, name, parentRef, backendName string) {
		fmt.Fprintf(&cfg, `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: %s
  namespace: %s
spec:
  parentRefs:
  - %s
  rules:
  - backendRefs:
    - %s
`, name, ns, parentRef, ref(backendName))
	}
	lsRef := func(name, section string) string {
		s := "{group: gateway.networking.k8s.io, kind: ListenerSet, name: " + name
		if section != "" {
			s += ", sectionName: " + section
		}
		return s + "}"
	}
	// No hostnames: the route takes whatever its listeners accept.
	route("infra", "site", "{name: shared}", "site")
	route("team-a", "app", lsRef("a", ""), "team-a")
	route("team-b", "app", lsRef("b", "http"), "team-b")
	route("team-c", "app", lsRef("c", ""), "team-c")
	for ns, b := range map[string]*backend{"infra": site, "team-a": teamA, "team-b": teamB, "team-c": teamC} {
		cfg.WriteString(strings.Replace(b.yaml(), "namespace: default", "namespace: "+ns, 1))
	}
	cfg.WriteString(strings.Replace(certA.secretYAML("a-tls"), "namespace: default", "namespace: team-a", 1))

	g := startGateway(t, ip, cfg.String())

	for _, tc := range []struct {
		host, want string
	}{
		{"a.team.test", "team-a"},
		{"b.team.test", "team-b"},
		// Not admitted: its listener is not bound, so the Gateway's
		// own catch-all listener answers.
		{"c.team.test", "site"},
		{"www.example.test", "site"},
	} {
		r := get(t, g.url(pHTTP, "/x"), tc.host)
		if r.status != http.StatusOK || r.backend() != tc.want {
			t.Errorf("Host %s on the shared port: %v, want 200 from %s", tc.host, r, tc.want)
		}
	}
	for _, b := range []*backend{teamA, teamB} {
		for _, e := range b.requests() {
			if !strings.HasSuffix(strings.Split(e.Host, ":")[0], ".team.test") {
				t.Errorf("backend %s got a request for Host %s", b.name, e.Host)
			}
		}
	}
	if n := len(teamC.requests()); n != 0 {
		t.Errorf("team C's backend got %d requests through a ListenerSet the Gateway does not admit", n)
	}

	// Team A's HTTPS listener, with the certificate from its own
	// namespace, on a port only it uses.
	roots := x509.NewCertPool()
	roots.AddCert(certA.cert)
	c := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "a.team.test"},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, g.addr(pTLS))
		},
	}}
	defer c.CloseIdleConnections()
	r := do(t, c, request{url: "https://a.team.test/secure"})
	if r.status != http.StatusOK || r.backend() != "team-a" {
		t.Errorf("HTTPS a.team.test: %v, want 200 from team-a", r)
	}

	t.Run("validate", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "listenersets.yaml")
		if err := os.WriteFile(path, []byte(cfg.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		code, out := runCLI(t, "validate", "--config", path)
		if code != 1 {
			t.Fatalf("exit %d, want 1 (one ListenerSet not admitted):\n%s", code, out)
		}
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`(?m)^REJECTED +ListenerSet team-c/c: NotAllowed: spec\.parentRef: Gateway infra/shared does not admit ListenerSets from namespace team-c`),
			regexp.MustCompile(`(?m)^REJECTED +HTTPRoute team-c/app: .*ListenerSet team-c/c is not attached`),
			regexp.MustCompile(`(?m)^ACCEPTED +ListenerSet team-a/a$`),
			regexp.MustCompile(`(?m)^ACCEPTED +ListenerSet team-b/b$`),
			regexp.MustCompile(`(?m)^ACCEPTED +Gateway infra/shared$`),
			regexp.MustCompile(`(?m)^ACCEPTED +HTTPRoute team-a/app$`),
			regexp.MustCompile(`(?m)^ACCEPTED +HTTPRoute team-b/app$`),
		} {
			if !want.MatchString(out) {
				t.Errorf("output does not match %s:\n%s", want, out)
			}
		}
	})
}
