package plan

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/meshgate/meshgate/ir"
	"github.com/meshgate/meshgate/translate"
)

func be(name string, eps ...string) *ir.Backend {
	b := &ir.Backend{Name: name, Protocol: ir.BackendHTTP1}
	for _, e := range eps {
		b.Endpoints = append(b.Endpoints, ir.Endpoint{Address: e})
	}
	return b
}

func route(name string, rule int, path string, bs ...ir.WeightedBackend) *ir.Route {
	return &ir.Route{Name: name, RuleIndex: rule, Match: ir.Match{Path: ir.PathMatch{Type: ir.PathPrefix, Value: path}}, Backends: bs}
}

func wb(b *ir.Backend, w int32) ir.WeightedBackend { return ir.WeightedBackend{Weight: w, Target: b} }

func cfg(ls ...*ir.Listener) *ir.Config { return &ir.Config{Listeners: ls} }

func lis(addr string, routes ...*ir.Route) *ir.Listener {
	return &ir.Listener{Name: addr, Address: addr, Protocol: ir.ProtocolHTTP,
		Hosts: []*ir.ListenerHost{{Name: "default/gw/http", Routes: routes}}}
}

func res(c *ir.Config, st ...translate.ObjectStatus) *translate.Result {
	return &translate.Result{Config: c, Statuses: st}
}

// mutate builds a fresh base config and lets f change it.
func base() *ir.Config {
	a, b := be("backend/default/a", "127.0.0.1:1"), be("backend/default/b", "127.0.0.1:2")
	return cfg(lis("127.0.0.1:8080",
		route("default/api", 0, "/v1", wb(a, 90), wb(b, 10)),
		route("default/web", 0, "/", wb(a, 1))))
}

func TestDiff(t *testing.T) {
	type want struct {
		op      Op
		kind    Kind
		id      string
		contain string // in the change's summary or details
	}
	tests := []struct {
		name     string
		new      func(c *ir.Config) *translate.Result
		want     []want
		exit     int
		rejected int
	}{
		{
			name: "no change",
			new:  func(c *ir.Config) *translate.Result { return res(c) },
			exit: ExitNoChange,
		},
		{
			name: "listener added",
			new: func(c *ir.Config) *translate.Result {
				c.Listeners = append(c.Listeners, lis("127.0.0.1:9090", route("default/new", 0, "/n", wb(be("backend/default/a", "127.0.0.1:1"), 1))))
				return res(c)
			},
			want: []want{{Added, KindListener, "127.0.0.1:9090", "HTTP"}, {Added, KindGatewayHost, "default/gw/http", "(any)"},
				{Added, KindRoute, "default/new rule 0 match 0", "PathPrefix /n"}},
			exit: ExitChanges,
		},
		{
			name: "listener removed",
			new:  func(c *ir.Config) *translate.Result { return res(cfg()) },
			want: []want{{Removed, KindListener, "127.0.0.1:8080", ""}, {Removed, KindRoute, "default/api rule 0 match 0", "/v1"},
				{Removed, KindBackend, "backend/default/a", "127.0.0.1:1"}},
			exit: ExitChanges,
		},
		{
			name: "listener rebound",
			new: func(c *ir.Config) *translate.Result {
				c.Listeners[0].Protocol = ir.ProtocolHTTPS
				return res(c)
			},
			want: []want{{Changed, KindListener, "127.0.0.1:8080", "protocol HTTP → HTTPS"}},
			exit: ExitChanges,
		},
		{
			name: "hostname changed",
			new: func(c *ir.Config) *translate.Result {
				c.Listeners[0].Hosts[0].Hostname = "*.example.com"
				return res(c)
			},
			want: []want{{Changed, KindGatewayHost, "default/gw/http", "hostname: (any) → *.example.com"}},
			exit: ExitChanges,
		},
		{
			name: "client certificates and TLS options changed",
			new: func(c *ir.Config) *translate.Result {
				c.Listeners[0].ClientAuth = &ir.ClientAuth{Mode: ir.ClientAuthAllowValidOnly, CAName: "configmap/default/ca", IdentityHeader: "X-Forwarded-Client-Cert"}
				c.Listeners[0].Hosts[0].TLS = &ir.TLSOptions{MinVersion: "1.3"}
				return res(c)
			},
			want: []want{{Changed, KindListener, "127.0.0.1:8080", "client certificates: (none) → AllowValidOnly, CA configmap/default/ca, identity header X-Forwarded-Client-Cert"},
				{Changed, KindGatewayHost, "default/gw/http", `tls options: (none) → {"minVersion":"1.3"}`}},
			exit: ExitChanges,
		},
		{
			name: "route added",
			new: func(c *ir.Config) *translate.Result {
				h := c.Listeners[0].Hosts[0]
				h.Routes = append(h.Routes, route("default/api", 1, "/v2", wb(be("backend/default/b", "127.0.0.1:2"), 1)))
				return res(c)
			},
			want: []want{{Added, KindRoute, "default/api rule 1 match 0", "PathPrefix /v2 → backend/default/b weight 1 (100%)"}},
			exit: ExitChanges,
		},
		{
			name: "route removed",
			new: func(c *ir.Config) *translate.Result {
				h := c.Listeners[0].Hosts[0]
				h.Routes = h.Routes[:1]
				return res(c)
			},
			want: []want{{Removed, KindRoute, "default/web rule 0 match 0", "PathPrefix /"}},
			exit: ExitChanges,
		},
		{
			name: "weight change",
			new: func(c *ir.Config) *translate.Result {
				c.Listeners[0].Hosts[0].Routes[0].Backends[0].Weight = 50
				c.Listeners[0].Hosts[0].Routes[0].Backends[1].Weight = 50
				return res(c)
			},
			want: []want{{Changed, KindRoute, "default/api rule 0 match 0", "weight backend/default/a: 90 → 50 (share 90% → 50%)"}},
			exit: ExitChanges,
		},
		{
			name: "match change",
			new: func(c *ir.Config) *translate.Result {
				r := c.Listeners[0].Hosts[0].Routes[0]
				r.Match.Path = ir.PathMatch{Type: ir.PathExact, Value: "/v1"}
				r.Match.Headers = []ir.StringMatch{{Type: ir.MatchExact, Name: "x-canary", Value: "yes"}}
				return res(c)
			},
			want: []want{{Changed, KindRoute, "default/api rule 0 match 0", `match: PathPrefix /v1 → Exact /v1, header x-canary = "yes"`}},
			exit: ExitChanges,
		},
		{
			name: "route policy change",
			new: func(c *ir.Config) *translate.Result {
				r := c.Listeners[0].Hosts[0].Routes[0]
				r.Policies = []string{"default/retry"}
				r.Retry = &ir.Retry{Attempts: 2, Codes: []int{503}, BudgetPercent: 20, MinRetryConcurrency: 3}
				r.RateLimits = []*ir.RateLimit{{Name: "policy default/rl rule 0", Key: ir.RateLimitClientIP, Requests: 5, Period: time.Minute}}
				r.Timeouts.Request = 5 * time.Second
				return res(c)
			},
			want: []want{
				{Changed, KindRoute, "default/api rule 0 match 0", "policies: (none) → default/retry"},
				{Changed, KindRoute, "default/api rule 0 match 0", "retry: (none) → 2 attempt(s) on codes [503]"},
				{Changed, KindRoute, "default/api rule 0 match 0", "rate limits: (none) → policy default/rl rule 0: 5 per 1m0s by ClientIP"},
				{Changed, KindRoute, "default/api rule 0 match 0", "timeouts: (none) → request 5s"},
			},
			exit: ExitChanges,
		},
		{
			name: "backend policy change",
			new: func(c *ir.Config) *translate.Result {
				nb := be("backend/default/a~default/cb", "127.0.0.1:1")
				nb.CircuitBreaker = &ir.CircuitBreaker{MaxRequests: 2}
				for _, r := range c.Listeners[0].Hosts[0].Routes {
					r.Backends[0].Target = nb
				}
				return res(c)
			},
			want: []want{
				{Changed, KindBackend, "backend/default/a", "circuitBreaker: (none) → {MaxConnections:0 MaxPendingRequests:0 MaxRequests:2 MaxRetries:0}"},
				{Changed, KindBackend, "backend/default/a", "policies: none → default/cb"},
				{Changed, KindRoute, "default/web rule 0 match 0", "backend backend/default/a policies: none → default/cb"},
			},
			exit: ExitChanges,
		},
		{
			name: "rejected object",
			new: func(c *ir.Config) *translate.Result {
				return res(c, translate.ObjectStatus{Kind: "HTTPRoute", Namespace: "default", Name: "bad", Reason: "spec.rules[0]: bad regex"})
			},
			exit:     ExitInvalid,
			rejected: 1,
		},
		{
			name: "translator failed",
			new:  func(c *ir.Config) *translate.Result { return res(nil) },
			want: []want{{Removed, KindListener, "127.0.0.1:8080", ""}},
			exit: ExitInvalid,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := Diff(res(base()), tc.new(base()))
			var buf bytes.Buffer
			p.Write(&buf)
			if got := p.ExitCode(); got != tc.exit {
				t.Errorf("exit code %d, want %d\n%s", got, tc.exit, buf.String())
			}
			if len(p.Rejected) != tc.rejected {
				t.Errorf("%d rejected, want %d", len(p.Rejected), tc.rejected)
			}
			if len(tc.want) == 0 && !p.Empty() {
				t.Errorf("want no changes, got:\n%s", buf.String())
			}
			for _, w := range tc.want {
				found := false
				for _, c := range p.Changes {
					text := c.Summary + "|" + strings.Join(c.Details, "|")
					if c.Op == w.op && c.Kind == w.kind && c.ID == w.id && strings.Contains(text, w.contain) {
						found = true
					}
				}
				if !found {
					t.Errorf("no %s %s %q containing %q in:\n%s", w.op, w.kind, w.id, w.contain, buf.String())
				}
			}
		})
	}
}

// TestDiffRejectedNewAndFixed: a rejection seen before is "still"; one that
// went away is listed as fixed.
func TestDiffRejectedNewAndFixed(t *testing.T) {
	bad := func(name, reason string) translate.ObjectStatus {
		return translate.ObjectStatus{Kind: "HTTPRoute", Namespace: "default", Name: name, Reason: reason}
	}
	p := Diff(res(base(), bad("a", "x"), bad("b", "y")), res(base(), bad("a", "x"), bad("c", "z")))
	if len(p.Rejected) != 2 || p.Rejected[0].New || !p.Rejected[1].New {
		t.Fatalf("rejected = %+v", p.Rejected)
	}
	if len(p.Fixed) != 1 || p.Fixed[0] != "HTTPRoute default/b" {
		t.Fatalf("fixed = %v", p.Fixed)
	}
}

// TestDiffJSONRoundTrip: a config read back from /config JSON (no PEM
// data) compares equal to the translated one.
func TestDiffJSONRoundTrip(t *testing.T) {
	c := base()
	c.Listeners[0].Protocol = ir.ProtocolHTTPS
	c.Listeners[0].Certificates = []*ir.Certificate{{Name: "secret/default/tls", CertPEM: []byte("cert"), KeyPEM: []byte("key")}}
	c.Listeners[0].Hosts[0].Routes[0].Fault = &ir.Fault{Name: "default/f", Abort: &ir.FaultAbort{HTTPStatus: 418, Percent: 100}}
	b, err := json.Marshal(res(c))
	if err != nil {
		t.Fatal(err)
	}
	var back translate.Result
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	p := Diff(&back, res(c))
	if !p.Empty() {
		var buf bytes.Buffer
		p.Write(&buf)
		t.Fatalf("round trip shows changes:\n%s", buf.String())
	}
}

func TestWriteAndLines(t *testing.T) {
	n := base()
	n.Listeners[0].Hosts[0].Routes[0].Backends[0].Weight = 50
	p := Diff(res(base()), res(n))
	p.Live = &Live{Source: "http://admin", Window: time.Second, RPS: map[string]float64{"default/api": 12.5},
		Connections: map[string]float64{"127.0.0.1:8080": 3}}
	var buf bytes.Buffer
	p.Write(&buf)
	out := buf.String()
	for _, s := range []string{"Routes (rule / match):", "~ default/api rule 0 match 0 [127.0.0.1:8080]", "route default/api: 12.5 req/s",
		"listener 127.0.0.1:8080: 3 open connection(s)", "Plan: 0 to add, 0 to remove, 1 to change."} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}
	if l := p.Lines(5); len(l) != 1 || !strings.HasPrefix(l[0], "~ route default/api rule 0 match 0") {
		t.Errorf("lines = %q", l)
	}
	if got := p.AffectedRoutes(); len(got) != 1 || got[0] != "default/api" {
		t.Errorf("affected routes = %v", got)
	}
}
