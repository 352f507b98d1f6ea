package e2e

import (
	"net/http"
	"strings"
	"testing"
)

// TestTrafficSessionPersistence covers HTTPRoute rule sessionPersistence,
// Cookie and Header: the first answer hands out the session token; 50
// requests carrying it all reach the same backend and the same endpoint,
// although the rule splits 50/50 between two backends of two endpoints
// each; a token naming an endpoint a reload removed is replaced by a new
// one that sticks in turn.
func TestTrafficSessionPersistence(t *testing.T) {
	t.Parallel()
	ip := newLoopbackIP(t)
	port := freePort(t, ip)
	a1, a2 := newBackend(t, "a1"), newBackend(t, "a2")
	b1, b2 := newBackend(t, "b1"), newBackend(t, "b2")
	byName := map[string]*backend{"a1": a1, "a2": a2, "b1": b1, "b2": b2}
	route := `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: sticky, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: ["sticky.test"]
  rules:
  - matches: [{path: {type: PathPrefix, value: /cookie}}]
    sessionPersistence: {type: Cookie, sessionName: sticky-session}
    backendRefs: [` + wref("a", 50) + `, ` + wref("b", 50) + `]
  - matches: [{path: {type: PathPrefix, value: /header}}]
    sessionPersistence: {type: Header, sessionName: x-sticky}
    backendRefs: [` + wref("a", 50) + `, ` + wref("b", 50) + `]
`
	config := func(eps map[string]bool) string {
		var aPorts, bPorts []int
		for _, n := range []string{"a1", "a2"} {
			if eps[n] {
				aPorts = append(aPorts, byName[n].port)
			}
		}
		for _, n := range []string{"b1", "b2"} {
			if eps[n] {
				bPorts = append(bPorts, byName[n].port)
			}
		}
		return gatewayYAML(ip, listener{name: "http", port: port}) +
			trafficBackendYAML("a", aPorts...) + trafficBackendYAML("b", bPorts...) + route
	}
	all := map[string]bool{"a1": true, "a2": true, "b1": true, "b2": true}
	g := startGateway(t, ip, config(all))
	c := newClient()
	defer c.CloseIdleConnections()

	// kind is one way of carrying the session: token reads the token an
	// answer hands out ("" for none), send the headers carrying one.
	type kind struct {
		name  string
		path  string
		token func(r result) string
		send  func(tok string) http.Header
	}
	kinds := []kind{
		{
			name: "Cookie", path: "/cookie",
			token: func(r result) string {
				for _, sc := range r.header.Values("Set-Cookie") {
					if v, ok := strings.CutPrefix(sc, "sticky-session="); ok {
						v, _, _ = strings.Cut(v, ";")
						return v
					}
				}
				return ""
			},
			send: func(tok string) http.Header {
				return http.Header{"Cookie": {"other=1; sticky-session=" + tok}}
			},
		},
		{
			name: "Header", path: "/header",
			token: func(r result) string { return r.header.Get("X-Sticky") },
			send:  func(tok string) http.Header { return http.Header{"X-Sticky": {tok}} },
		},
	}

	// startSession sends a request without a token and returns the token
	// handed out and the endpoint (backend server) that answered.
	startSession := func(t *testing.T, k kind) (string, string) {
		t.Helper()
		r := do(t, c, request{url: g.url(port, k.path), host: "sticky.test"})
		tok := k.token(r)
		if r.status != http.StatusOK || r.backend() == "" || tok == "" {
			t.Fatalf("first request: %v, headers %v: want 200 from a backend and a %s token", r, r.header, k.name)
		}
		return tok, r.backend()
	}
	// stick sends 50 requests with tok and checks they all reach want and
	// none hands out another token.
	stick := func(t *testing.T, k kind, tok, want string) {
		t.Helper()
		for i := 0; i < 50; i++ {
			r := do(t, c, request{url: g.url(port, k.path), host: "sticky.test", header: k.send(tok)})
			if r.status != http.StatusOK || r.backend() != want {
				t.Fatalf("request %d with the session token: %v, want 200 from %s", i+1, r, want)
			}
			if again := k.token(r); again != "" {
				t.Fatalf("request %d with a valid token got a new token %q (had %q)", i+1, again, tok)
			}
		}
	}

	for _, k := range kinds {
		t.Run(k.name+" sticks to backend and endpoint", func(t *testing.T) {
			// Several sessions, so they land on different endpoints; each
			// sticks to its own.
			seen := map[string]bool{}
			for s := 0; s < 6; s++ {
				tok, ep := startSession(t, k)
				seen[ep] = true
				stick(t, k, tok, ep)
			}
			t.Logf("sessions landed on %v", seen)
		})
	}

	for _, k := range kinds {
		t.Run(k.name+" stale token is re-issued", func(t *testing.T) {
			tok, ep := startSession(t, k)
			stick(t, k, tok, ep)
			without := map[string]bool{}
			for n := range all {
				without[n] = n != ep
			}
			g.reload(config(without))
			defer g.reload(config(all))
			r := do(t, c, request{url: g.url(port, k.path), host: "sticky.test", header: k.send(tok)})
			fresh := k.token(r)
			if r.status != http.StatusOK || r.backend() == "" || r.backend() == ep {
				t.Fatalf("with a token for removed endpoint %s: %v, want 200 from another endpoint", ep, r)
			}
			if fresh == "" || fresh == tok {
				t.Fatalf("with a stale token: new token %q (stale %q), want a new one", fresh, tok)
			}
			stick(t, k, fresh, r.backend())
		})
	}
}
